//! Bitbucket Data Center deliveries on PostgreSQL: a PR's life to its merge, redelivery, deletion.

use super::*;
use crate::datacenter::{
    self, acme_room, bytes, event, fixture, hipchat, html, merged, pending, processed, reviews,
    REPO,
};
use crate::fake_chat::{hipchat_ok, Fake};
use crate::helpers::{route, uuid_like};
use pr_reminder::config::{Room, Sink};

/// A delivery as Data Center sends it (`X-Request-Id`), under `request_id`.
async fn deliver_as(app: &PgApp, key: &str, request_id: &str, body: &Value) -> Answer {
    datacenter::deliver_as(app, key, request_id, bytes(body)).await
}

/// (event key, date, the reviewers' statuses, the acting reviewer and their previous
/// status, (approvals, changes requested) after it, the message it is announced with)
type Step = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    (&'static str, &'static str),
    (i64, i64),
    Value,
);

/// `datacenter::three_reviewers_from_opened_to_merged` on PostgreSQL: the pending row and
/// the exact HipChat message after each step, the stored times, and a redelivery by
/// request id a duplicate that changes nothing.
#[tokio::test]
async fn three_reviewers_from_opened_to_merged() {
    let room = Fake::start(vec![hipchat_ok()]).await;
    let url = room.url("/v2/room/acme/notification?auth_token=t0k");
    let Some(app) = spawn_pg("dclife", acme_room(url), Clock::system()).await else {
        return;
    };
    processed(&app, "pr:opened", &fixture("base.json")).await;
    assert_eq!(pending(&app).await, vec![(REPO.to_owned(), 7, 0, 0)]);
    let hits = room.exactly(1).await;
    assert_eq!(
        hits[0].body,
        hipchat(&html("Needs review", "0/3 approvals"), "yellow", true)
    );

    let steps: [Step; 4] = [
        (
            "pr:reviewer:approved",
            "2019-03-01T10:40:00+0100",
            &[("ada", "APPROVED")],
            ("ada", "UNAPPROVED"),
            (1, 0),
            hipchat(
                &html("1/3 approvals", "1/3 approvals: Ada Lovelace"),
                "yellow",
                true,
            ),
        ),
        (
            "pr:reviewer:needs_work",
            "2019-03-01T10:50:00+0100",
            &[("ada", "APPROVED"), ("brian", "NEEDS_WORK")],
            ("brian", "UNAPPROVED"),
            (1, 1),
            hipchat(
                &html(
                    "Changes requested by Brian Kernighan",
                    "1/3 approvals: Ada Lovelace · changes requested by Brian Kernighan",
                ),
                "purple",
                true,
            ),
        ),
        (
            "pr:reviewer:approved",
            "2019-03-01T11:05:00+0100",
            &[("ada", "APPROVED"), ("brian", "APPROVED")],
            ("brian", "NEEDS_WORK"),
            (2, 0),
            hipchat(
                &html(
                    "2/3 approvals",
                    "2/3 approvals: Ada Lovelace, Brian Kernighan",
                ),
                "yellow",
                true,
            ),
        ),
        (
            "pr:reviewer:approved",
            "2019-03-01T11:10:00+0100",
            &[
                ("ada", "APPROVED"),
                ("brian", "APPROVED"),
                ("claire", "APPROVED"),
            ],
            ("claire", "UNAPPROVED"),
            (3, 0),
            hipchat(
                &html(
                    "Ready to merge",
                    "3/3 approvals: Ada Lovelace, Brian Kernighan, Claire Chen",
                ),
                "green",
                true,
            ),
        ),
    ];
    let mut last_id = String::new();
    for (i, (key, date, statuses, acting, (approvals, changes), message)) in
        steps.into_iter().enumerate()
    {
        last_id = uuid_like("dc");
        let answer = deliver_as(
            &app,
            key,
            &last_id,
            &event(key, date, statuses, Some(acting)),
        )
        .await;
        assert_eq!(answer.body["status"], "processed", "{}", answer.body);
        let expected = if approvals < 3 {
            vec![(REPO.to_owned(), 7, approvals, changes)]
        } else {
            vec![]
        };
        assert_eq!(pending(&app).await, expected, "{key} at {date}");
        let hits = room.exactly(i + 2).await;
        assert_eq!(hits[i + 1].body, message, "{key} at {date}");
    }
    let row = app.pull_request(REPO, 7).await.unwrap();
    assert_eq!(row.updated_on, "2019-03-01T10:10:00.000000Z");
    assert_eq!(row.created_on, "2019-03-01T09:31:15.860000Z");
    let reviews = reviews(&[
        ("ada", "approved"),
        ("brian", "approved"),
        ("claire", "approved"),
    ]);
    assert_eq!(app.reviews(REPO, 7).await, reviews);

    // A redelivery of the last approval, with a body that would change the state: a
    // duplicate, by its request id.
    let deliveries = app.deliveries().await;
    let newer = event(
        "pr:reviewer:unapproved",
        "2019-03-01T12:00:00+0100",
        &[("ada", "APPROVED"), ("brian", "APPROVED")],
        Some(("claire", "APPROVED")),
    );
    let answer = deliver_as(&app, "pr:reviewer:unapproved", &last_id, &newer).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"status": "duplicate", "request_id": last_id})
    );
    assert_eq!(app.deliveries().await, deliveries, "nothing recorded");
    assert_eq!(app.reviews(REPO, 7).await, reviews, "nothing changed");

    // Merged (a merge moves updatedDate).
    let merged = merged(
        "2019-03-01T11:20:00+0100",
        1_551_435_600_000,
        &[
            ("ada", "APPROVED"),
            ("brian", "APPROVED"),
            ("claire", "APPROVED"),
        ],
    );
    processed(&app, "pr:merged", &merged).await;
    assert_eq!(app.pull_request(REPO, 7).await.unwrap().state, "MERGED");
    let hits = room.exactly(6).await;
    assert_eq!(
        hits[5].body,
        hipchat(
            &html(
                "Merged",
                "3/3 approvals: Ada Lovelace, Brian Kernighan, Claire Chen"
            ),
            "gray",
            false
        )
    );
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 6)
        .await;
}

/// `datacenter::a_deleted_pr_leaves_the_lists_...` and `nothing_dated_after_the_deletion_...`
/// on PostgreSQL: `pr:deleted` withdraws the waiting message, and nothing that comes later
/// (from before the deletion, or dated after it) reopens or announces it.
#[tokio::test]
async fn a_deleted_pr_is_withdrawn_and_stays_gone() {
    let Some(app) = spawn_pg(
        "dcdeleted",
        |s| {
            s.notify.rooms = vec![Room {
                name: "acme".into(),
                sink: Sink::Console,
            }];
            s.notify.routes = vec![route(&["acme/*"], "acme")];
            s.notify.coalesce = Duration::from_secs(600);
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    let outbox = || async {
        sqlx::query_as::<_, (String, String)>("SELECT events, state FROM outbox ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap()
    };
    processed(&app, "pr:opened", &fixture("base.json")).await;
    assert_eq!(pending(&app).await, vec![(REPO.to_owned(), 7, 0, 0)]);
    assert_eq!(
        outbox().await,
        [("opened".to_owned(), "pending".to_owned())],
        "routed by a lower-case glob"
    );
    processed(&app, "pr:deleted", &fixture("pr_deleted.json")).await;
    assert_eq!(pending(&app).await, vec![]);
    assert_eq!(outbox().await, vec![], "the waiting message is withdrawn");
    assert_eq!(app.pull_request(REPO, 7).await.unwrap().state, "DELETED");
    let late = [
        (
            "pr:reviewer:approved",
            event(
                "pr:reviewer:approved",
                "2019-03-01T11:45:00+0100",
                &[("ada", "APPROVED")],
                Some(("ada", "UNAPPROVED")),
            ),
        ),
        ("pr:opened", fixture("base.json")),
        (
            "pr:comment:added",
            event("pr:comment:added", "2019-03-01T13:30:00+0100", &[], None),
        ),
    ];
    for (key, body) in &late {
        processed(&app, key, body).await;
        assert_eq!(pending(&app).await, vec![], "{key}");
        assert_eq!(outbox().await, vec![], "{key}");
        assert_eq!(
            app.pull_request(REPO, 7).await.unwrap().state,
            "DELETED",
            "{key}"
        );
    }
}

//! Bitbucket Data Center deliveries on PostgreSQL: a PR's life to its merge, redelivery, deletion.

use super::*;
use crate::fake_chat::{hipchat_ok, Fake};
use crate::helpers::{route, uuid_like};
use pr_reminder::config::{NotifySettings, Room, Sink};

const REPO: &str = "ACME/api";
const PR_URL: &str = "https://bitbucket.acme.example/projects/ACME/repos/api/pull-requests/7";

fn fixture(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/datacenter")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn user_key(slug: &str) -> String {
    let id = match slug {
        "ada" => 102,
        "brian" => 103,
        "claire" => 104,
        other => panic!("no such reviewer in base.json: {other}"),
    };
    format!("datacenter/bitbucket.acme.example/user/{id}")
}

/// `base.json` (ACME/api #7 by Pat Author; reviewers Ada, Brian, Claire) delivered under
/// `key` at `date`, with these reviewers' statuses; `acting`: the reviewer the event is
/// about, with their previous status.
fn event(key: &str, date: &str, statuses: &[(&str, &str)], acting: Option<(&str, &str)>) -> Value {
    let mut body = fixture("base.json");
    body["eventKey"] = json!(key);
    body["date"] = json!(date);
    for reviewer in body["pullRequest"]["reviewers"].as_array_mut().unwrap() {
        let slug = reviewer["user"]["slug"].as_str().unwrap().to_owned();
        let status = statuses
            .iter()
            .find(|(who, _)| *who == slug)
            .map_or("UNAPPROVED", |(_, s)| *s);
        reviewer["status"] = json!(status);
        reviewer["approved"] = json!(status == "APPROVED");
    }
    if let Some((slug, previous)) = acting {
        let participant = body["pullRequest"]["reviewers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["user"]["slug"] == slug)
            .unwrap()
            .clone();
        let mut actor = participant["user"].clone();
        actor.as_object_mut().unwrap().remove("links");
        body["actor"] = actor;
        body["participant"] = participant;
        body["previousStatus"] = json!(previous);
    }
    body
}

/// A delivery as Data Center sends it (`X-Request-Id`), under `request_id`.
async fn deliver_as(app: &PgApp, key: &str, request_id: &str, body: &Value) -> Answer {
    send_as(
        &app.client,
        &app.address,
        "data-center",
        key,
        request_id,
        &serde_json::to_vec(body).unwrap(),
    )
    .await
}

async fn dc_processed(app: &PgApp, key: &str, body: &Value) {
    let answer = deliver_as(app, key, &uuid_like("dc"), body).await;
    assert_eq!(answer.status, 200, "{key}: {}", answer.body);
    assert_eq!(answer.body["status"], "processed", "{key}: {}", answer.body);
    assert_eq!(answer.body["repository"], REPO, "{key}: {}", answer.body);
}

async fn pending(app: &PgApp) -> Vec<(String, i64, i64, i64)> {
    app.pending()
        .await
        .into_iter()
        .map(|p| (p.repository, p.number, p.approvals, p.changes_requested))
        .collect()
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

fn hipchat(message: String, color: &str, notify: bool) -> Value {
    json!({
        "message": message, "message_format": "html", "color": color, "notify": notify,
        "from": "pr-reminder",
    })
}

fn html(head: &str, details: &str) -> String {
    format!(
        "<b>{head}</b>: <a href=\"{PR_URL}\">Retry card captures</a> (ACME/api #7) by Pat \
         Author<br>{details}"
    )
}

/// `datacenter::three_reviewers_from_opened_to_merged` on PostgreSQL: the pending row and
/// the exact HipChat message after each step, the stored times, and a redelivery by
/// request id a duplicate that changes nothing.
#[tokio::test]
async fn three_reviewers_from_opened_to_merged() {
    let room = Fake::start(vec![hipchat_ok()]).await;
    let url = room.url("/v2/room/acme/notification?auth_token=t0k");
    let mut acme = route(&["ACME/*"], "acme");
    acme.required_approvals = Some(3);
    acme.announce.merged = true;
    let Some(app) = spawn_pg(
        "dclife",
        move |s| {
            s.notify = NotifySettings {
                rooms: vec![Room {
                    name: "acme".into(),
                    sink: Sink::HipChat(SecretString::from(url)),
                }],
                routes: vec![acme],
                coalesce: Duration::from_millis(50),
                max_attempts: 3,
                timeout: Duration::from_secs(2),
                retry_min: Duration::from_millis(20),
                retry_max: Duration::from_millis(200),
                room_rate_per_minute: Some(6000),
            }
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    dc_processed(&app, "pr:opened", &fixture("base.json")).await;
    assert_eq!(pending(&app).await, vec![(REPO.to_owned(), 7, 0, 0)]);
    let hits = room.exactly(1).await;
    assert_eq!(
        hits[0].body,
        hipchat(html("Needs review", "0/3 approvals"), "yellow", true)
    );

    let steps: [Step; 4] = [
        (
            "pr:reviewer:approved",
            "2019-03-01T10:40:00+0100",
            &[("ada", "APPROVED")],
            ("ada", "UNAPPROVED"),
            (1, 0),
            hipchat(
                html("1/3 approvals", "1/3 approvals: Ada Lovelace"),
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
                html(
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
                html(
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
                html(
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
    let reviews: Vec<(String, String, String)> = ["ada", "brian", "claire"]
        .iter()
        .map(|slug| (user_key(slug), "REVIEWER".to_owned(), "approved".to_owned()))
        .collect();
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
    let mut merged = event(
        "pr:merged",
        "2019-03-01T11:20:00+0100",
        &[
            ("ada", "APPROVED"),
            ("brian", "APPROVED"),
            ("claire", "APPROVED"),
        ],
        None,
    );
    let pr = &mut merged["pullRequest"];
    pr["state"] = json!("MERGED");
    pr["open"] = json!(false);
    pr["closed"] = json!(true);
    pr["closedDate"] = json!(1_551_435_600_000i64);
    pr["updatedDate"] = json!(1_551_435_600_000i64);
    dc_processed(&app, "pr:merged", &merged).await;
    assert_eq!(app.pull_request(REPO, 7).await.unwrap().state, "MERGED");
    let hits = room.exactly(6).await;
    assert_eq!(
        hits[5].body,
        hipchat(
            html(
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
    dc_processed(&app, "pr:opened", &fixture("base.json")).await;
    assert_eq!(pending(&app).await, vec![(REPO.to_owned(), 7, 0, 0)]);
    assert_eq!(
        outbox().await,
        [("opened".to_owned(), "pending".to_owned())],
        "routed by a lower-case glob"
    );
    dc_processed(&app, "pr:deleted", &fixture("pr_deleted.json")).await;
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
        dc_processed(&app, key, body).await;
        assert_eq!(pending(&app).await, vec![], "{key}");
        assert_eq!(outbox().await, vec![], "{key}");
        assert_eq!(
            app.pull_request(REPO, 7).await.unwrap().state,
            "DELETED",
            "{key}"
        );
    }
}

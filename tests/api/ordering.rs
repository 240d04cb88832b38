//! Redelivery and out-of-order delivery never move state backwards.

use serde_json::Value;

use crate::helpers::{spawn_app, uuid_like};
use crate::lifecycle::{key_of, pr_event, REPO};

/// Four events for PR `number`, in the order Bitbucket produced them.
fn history(number: i64) -> Vec<(&'static str, Value)> {
    vec![
        (
            "pullrequest:created",
            pr_event(
                number,
                "2026-11-20T09:00:00Z",
                "OPEN",
                "First title",
                "aaaaaaaaaaaa",
                &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
            ),
        ),
        (
            "pullrequest:approved",
            pr_event(
                number,
                "2026-11-20T09:10:00Z",
                "OPEN",
                "First title",
                "aaaaaaaaaaaa",
                &[
                    ("bob", "REVIEWER", Some("approved")),
                    ("carol", "REVIEWER", None),
                ],
            ),
        ),
        (
            "pullrequest:updated",
            pr_event(
                number,
                "2026-11-20T09:20:00Z",
                "OPEN",
                "Second title",
                "bbbbbbbbbbbb",
                &[
                    ("bob", "REVIEWER", Some("approved")),
                    ("carol", "REVIEWER", None),
                    ("dave", "PARTICIPANT", None),
                ],
            ),
        ),
        (
            "pullrequest:changes_request_created",
            pr_event(
                number,
                "2026-11-20T09:30:00Z",
                "OPEN",
                "Second title",
                "bbbbbbbbbbbb",
                &[
                    ("bob", "REVIEWER", Some("approved")),
                    ("carol", "REVIEWER", Some("changes_requested")),
                ],
            ),
        ),
    ]
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[tokio::test]
async fn every_permutation_of_four_events_ends_in_the_in_order_state() {
    let app = spawn_app().await;
    // PR 1 gets the events in order; PRs 100.. get them in every other order.
    for (key, body) in history(1) {
        app.deliver_json(key, &uuid_like("inorder"), &body).await;
    }
    let expected_pr = app.pull_request(REPO, 1).await.unwrap();
    let expected_reviews = app.reviews(REPO, 1).await;
    assert_eq!(expected_pr.title, "Second title");
    assert_eq!(expected_pr.source_commit.as_deref(), Some("bbbbbbbbbbbb"));
    assert_eq!(
        expected_reviews,
        {
            let mut v = vec![
                (key_of("bob"), "REVIEWER".into(), "approved".into()),
                (
                    key_of("carol"),
                    "REVIEWER".into(),
                    "changes_requested".into(),
                ),
            ];
            v.sort();
            v
        },
        "dave left in the newest snapshot"
    );

    let orders = permutations(4);
    assert_eq!(orders.len(), 24);
    for (i, order) in orders.iter().enumerate() {
        let number = 100 + i as i64;
        let events = history(number);
        for &step in order {
            let (key, body) = &events[step];
            let answer = app.deliver_json(key, &uuid_like("perm"), body).await;
            assert_eq!(answer.status, 200);
        }
        let mut pr = app.pull_request(REPO, number).await.unwrap();
        pr.number = 1;
        pr.url = expected_pr.url.clone();
        assert_eq!(pr, expected_pr, "order {order:?}");
        assert_eq!(
            app.reviews(REPO, number).await,
            expected_reviews,
            "order {order:?}"
        );
    }
}

#[tokio::test]
async fn a_late_approval_leaves_a_merged_pr_merged() {
    let app = spawn_app().await;
    let merged = pr_event(
        7,
        "2026-11-20T12:00:00Z",
        "MERGED",
        "Done",
        "cccccccccccc",
        &[("bob", "REVIEWER", Some("approved"))],
    );
    let late = pr_event(
        7,
        "2026-11-20T11:00:00Z",
        "OPEN",
        "Done",
        "cccccccccccc",
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("carol", "REVIEWER", Some("approved")),
        ],
    );
    app.deliver_json("pullrequest:fulfilled", &uuid_like("m"), &merged)
        .await;
    let answer = app
        .deliver_json("pullrequest:approved", &uuid_like("m"), &late)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["status"], "processed",
        "accepted and recorded, but older"
    );
    let pr = app.pull_request(REPO, 7).await.unwrap();
    assert_eq!(pr.state, "MERGED");
    // Carol is a requested reviewer in the merged snapshot; her late approval is not applied.
    assert_eq!(
        app.reviews(REPO, 7).await,
        vec![
            (key_of("bob"), "REVIEWER".into(), "approved".into()),
            (key_of("carol"), "REVIEWER".into(), "none".into()),
        ]
    );
}

#[tokio::test]
async fn a_redelivery_changes_nothing() {
    let app = spawn_app().await;
    let first = pr_event(
        8,
        "2026-11-20T09:00:00Z",
        "OPEN",
        "Original",
        "dddddddddddd",
        &[],
    );
    let answer = app
        .deliver_json("pullrequest:created", "req-1", &first)
        .await;
    assert_eq!(answer.body["status"], "processed");
    let before = app.pull_request(REPO, 8).await.unwrap();

    // Same request id, even with a different body: a redelivery, acknowledged and ignored.
    let other = pr_event(
        8,
        "2026-11-20T10:00:00Z",
        "OPEN",
        "Changed",
        "dddddddddddd",
        &[],
    );
    for body in [&first, &other] {
        let answer = app.deliver_json("pullrequest:updated", "req-1", body).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.body,
            serde_json::json!({"status": "duplicate", "request_id": "req-1"})
        );
    }
    assert_eq!(app.pull_request(REPO, 8).await.unwrap(), before);
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 1);
}

#[tokio::test]
async fn concurrent_redeliveries_commit_once() {
    let app = spawn_app().await;
    let body = pr_event(
        9,
        "2026-11-20T09:00:00Z",
        "OPEN",
        "Race",
        "eeeeeeeeeeee",
        &[],
    );
    let sends = (0..20).map(|_| app.deliver_json("pullrequest:created", "same-id", &body));
    let answers = futures_util::future::join_all(sends).await;
    let processed = answers
        .iter()
        .filter(|a| a.body["status"] == "processed")
        .count();
    let duplicates = answers
        .iter()
        .filter(|a| a.body["status"] == "duplicate")
        .count();
    assert_eq!((processed, duplicates), (1, 19));
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 1);
}

#[tokio::test]
async fn a_rejected_attempt_can_be_retried_under_the_same_id() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&pr_event(
        10,
        "2026-11-20T09:00:00Z",
        "OPEN",
        "Retry",
        "ffffffffffff",
        &[],
    ))
    .unwrap();
    let bad = app
        .post(
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Request-UUID", "retry-1"),
                ("X-Hub-Signature", "sha256=00"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(bad.status, 401);
    let good = app.deliver("pullrequest:created", "retry-1", &body).await;
    assert_eq!(good.body["status"], "processed", "{}", good.body);
    let rows = app.wait_for_deliveries(2).await;
    let outcomes: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(outcomes, vec!["rejected", "processed"]);
}

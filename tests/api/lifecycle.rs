//! A pull request's life, checked in `pending_reviews` after every delivery.

use serde_json::{json, Value};

use crate::helpers::{
    on_both, own_fixture, spawn_app, spawn_on, uuid_like, On, PendingRow, Served,
    PENDING_ROW_SELECT,
};
use pr_reminder::clock::Clock;

pub const REPO: &str = "acme/payments-api";

/// A `pullrequest:*` body for acme/payments-api#`number`, built from our own fixture: the given
/// state, title, source commit and participants `(user, role, state)`.
pub fn pr_event(
    number: i64,
    updated_on: &str,
    state: &str,
    title: &str,
    commit: &str,
    participants: &[(&str, &str, Option<&str>)],
) -> Value {
    let users = own_fixture("users.json");
    let mut body = own_fixture("pullrequest_created.json");
    let pr = &mut body["pullrequest"];
    pr["id"] = json!(number);
    pr["updated_on"] = json!(updated_on);
    pr["state"] = json!(state);
    pr["title"] = json!(title);
    pr["source"]["commit"]["hash"] = json!(commit);
    pr["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{REPO}/pull-requests/{number}"
    ));
    pr["participants"] = participants
        .iter()
        .map(|(user, role, review)| {
            json!({
                "type": "participant",
                "user": users[*user],
                "role": role,
                "approved": *review == Some("approved"),
                "state": review,
                "participated_on": review.map(|_| updated_on),
            })
        })
        .collect();
    body
}

pub fn key_of(user: &str) -> String {
    own_fixture("users.json")[user]["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn send(app: &impl Served, key: &str, body: &Value) {
    let answer = app.deliver_body(key, &uuid_like("life"), body).await;
    assert_eq!(answer.status, 200, "{key}: {}", answer.body);
    assert_eq!(answer.body["status"], "processed", "{key}: {}", answer.body);
}

/// The wall clock in whole milliseconds, as SQLite's `julianday('now')` reads it (SQLite keeps
/// milliseconds only, so a bound read here is never ahead of SQLite's reading within it).
fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn pending_42(rows: &[PendingRow]) -> Option<(i64, i64, i64)> {
    assert!(rows.len() <= 1, "{rows:?}");
    rows.first().map(|r| {
        assert_eq!(r.repository, REPO);
        assert_eq!(r.number, 42);
        assert_eq!(r.author, "Alice Author");
        assert_eq!(
            r.url.as_deref(),
            Some("https://bitbucket.org/acme/payments-api/pull-requests/42")
        );
        (r.approvals, r.required_approvals, r.changes_requested)
    })
}

#[tokio::test]
async fn created_approved_unapproved_changes_requested_fulfilled() {
    let app = spawn_app().await;
    let t = |minute: u32| format!("2026-11-20T10:{minute:02}:00.000000+00:00");

    // Created with two requested reviewers.
    send(
        &app,
        "pullrequest:created",
        &own_fixture("pullrequest_created.json"),
    )
    .await;
    // `age_hours` is SQLite's `julianday('now')` minus the fixture's `created_on`, truncated:
    // between the whole hours elapsed when the query started and when it ended.
    let before = wall_clock_ms();
    let rows = app.pending().await;
    let after = wall_clock_ms();
    assert_eq!(pending_42(&rows), Some((0, 2, 0)));
    assert_eq!(rows[0].title, "Retry card captures on gateway timeouts");
    assert_eq!(rows[0].build_state, None);
    let created = chrono::DateTime::parse_from_rfc3339("2026-11-20T09:00:00+00:00")
        .unwrap()
        .timestamp_millis();
    let hours = |at: i64| (at - created).div_euclid(3_600_000);
    assert!(
        (hours(before)..=hours(after)).contains(&rows[0].age_hours),
        "age_hours {} outside [{}, {}]",
        rows[0].age_hours,
        hours(before),
        hours(after)
    );

    // Approved by Bob. The author approving her own PR does not count.
    let body = pr_event(
        42,
        &t(1),
        "OPEN",
        "Retry card captures on gateway timeouts",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("carol", "REVIEWER", None),
            ("alice", "PARTICIPANT", Some("approved")),
        ],
    );
    send(&app, "pullrequest:approved", &body).await;
    assert_eq!(pending_42(&app.pending().await), Some((1, 2, 0)));

    // Approved by Carol: enough approvals, no longer pending.
    let body = pr_event(
        42,
        &t(2),
        "OPEN",
        "Retry card captures on gateway timeouts",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("carol", "REVIEWER", Some("approved")),
        ],
    );
    send(&app, "pullrequest:approved", &body).await;
    assert_eq!(pending_42(&app.pending().await), None);
    assert_eq!(
        app.count("SELECT count(*) FROM reviews WHERE state = 'approved'")
            .await,
        2,
        "Alice's self-approval was dropped by the newer snapshot"
    );

    // Bob withdraws: pending again with Carol's approval.
    let body = pr_event(
        42,
        &t(3),
        "OPEN",
        "Retry card captures on gateway timeouts",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", None),
            ("carol", "REVIEWER", Some("approved")),
        ],
    );
    send(&app, "pullrequest:unapproved", &body).await;
    assert_eq!(pending_42(&app.pending().await), Some((1, 2, 0)));

    // Dave, not a reviewer, requests changes.
    let body = pr_event(
        42,
        &t(4),
        "OPEN",
        "Retry card captures on gateway timeouts",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", None),
            ("carol", "REVIEWER", Some("approved")),
            ("dave", "PARTICIPANT", Some("changes_requested")),
        ],
    );
    send(&app, "pullrequest:changes_request_created", &body).await;
    assert_eq!(pending_42(&app.pending().await), Some((1, 2, 1)));
    let counts: (i64, i64) =
        sqlx::query_as("SELECT approvals, changes_requested FROM pull_requests WHERE number = 42")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        counts,
        (1, 1),
        "the counts the sweep reads agree with the view"
    );
    assert_eq!(app.reviews(REPO, 42).await, {
        let mut v = vec![
            (key_of("bob"), "REVIEWER".to_owned(), "none".to_owned()),
            (
                key_of("carol"),
                "REVIEWER".to_owned(),
                "approved".to_owned(),
            ),
            (
                key_of("dave"),
                "PARTICIPANT".to_owned(),
                "changes_requested".to_owned(),
            ),
        ];
        v.sort();
        v
    });

    // Merged.
    let body = pr_event(
        42,
        &t(5),
        "MERGED",
        "Retry card captures on gateway timeouts",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", None),
            ("carol", "REVIEWER", Some("approved")),
            ("dave", "PARTICIPANT", Some("changes_requested")),
        ],
    );
    send(&app, "pullrequest:fulfilled", &body).await;
    assert_eq!(pending_42(&app.pending().await), None);
    let pr = app.pull_request(REPO, 42).await.unwrap();
    assert_eq!(pr.state, "MERGED");
    assert_eq!(pr.updated_on, "2026-11-20T10:05:00.000000Z");
    assert_eq!(
        app.count("SELECT count(*) FROM deliveries WHERE outcome = 'processed'")
            .await,
        6
    );
}

#[tokio::test]
async fn own_fixtures_for_what_the_shared_set_lacks() {
    let app = spawn_app().await;
    send(
        &app,
        "pullrequest:created",
        &own_fixture("pullrequest_created.json"),
    )
    .await;

    // A failing build on the PR's source commit (the status carries the full 40-digit hash).
    send(
        &app,
        "repo:commit_status_updated",
        &own_fixture("repo_commit_status_failed.json"),
    )
    .await;
    let rows = app.pending().await;
    assert_eq!(rows[0].build_state.as_deref(), Some("FAILED"));
    let status: (String, String, String, String) =
        sqlx::query_as("SELECT commit_hash, key, state, url FROM commit_statuses")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        status,
        (
            "9b2c4e6f8a100c1d2e3f4a5b6c7d8e9f0a1b2c3d".to_owned(),
            "ci-unit-tests".to_owned(),
            "FAILED".to_owned(),
            "https://ci.acme.example/builds/381".to_owned()
        )
    );

    send(
        &app,
        "pullrequest:changes_request_created",
        &own_fixture("pullrequest_changes_request_created.json"),
    )
    .await;
    assert_eq!(pending_42(&app.pending().await), Some((0, 2, 1)));
    send(
        &app,
        "pullrequest:changes_request_removed",
        &own_fixture("pullrequest_changes_request_removed.json"),
    )
    .await;
    assert_eq!(pending_42(&app.pending().await), Some((0, 2, 0)));

    // The unapproved fixture is older than the removal above: it must not change anything.
    let before = app.pull_request(REPO, 42).await.unwrap();
    send(
        &app,
        "pullrequest:unapproved",
        &own_fixture("pullrequest_unapproved.json"),
    )
    .await;
    assert_eq!(app.pull_request(REPO, 42).await.unwrap(), before);
    let carol = app.reviews(REPO, 42).await;
    assert!(
        carol.iter().all(|(_, _, state)| state == "none"),
        "{carol:?}"
    );
}

#[tokio::test]
async fn required_approvals_is_configurable() {
    let app = crate::helpers::spawn_app_with(|s| s.required_approvals = 1).await;
    send(
        &app,
        "pullrequest:created",
        &own_fixture("pullrequest_created.json"),
    )
    .await;
    assert_eq!(pending_42(&app.pending().await), Some((0, 1, 0)));
    let body = pr_event(
        42,
        "2026-11-21T00:00:00Z",
        "OPEN",
        "t",
        "9b2c4e6f8a10",
        &[("bob", "REVIEWER", Some("approved"))],
    );
    send(&app, "pullrequest:approved", &body).await;
    assert_eq!(pending_42(&app.pending().await), None);
}

/// A `repo:commit_status_*` body from our own fixture: build `key` on `commit` in `state`.
pub(crate) fn commit_status(key: &str, state: &str, commit: &str, updated_on: &str) -> Value {
    let mut body = own_fixture("repo_commit_status_failed.json");
    let status = &mut body["commit_status"];
    status["key"] = json!(key);
    status["name"] = json!(format!("{key} build"));
    status["state"] = json!(state);
    status["commit"]["hash"] = json!(commit);
    status["url"] = json!(format!("https://ci.acme.example/{key}"));
    status["updated_on"] = json!(updated_on);
    body
}

on_both!(the_combined_build_state_of_several_statuses_on_one_commit);

/// The combined state of every status on the PR's source commit: FAILED wins over INPROGRESS,
/// which wins over STOPPED, which wins over SUCCESSFUL; no status at all is NULL. Read in both
/// `pending_reviews.build_state` and `pull_request_builds` (state and the `key=STATE` list).
async fn the_combined_build_state_of_several_statuses_on_one_commit(on: On) {
    const COMMIT: &str = "9b2c4e6f8a100c1d2e3f4a5b6c7d8e9f0a1b2c3d";
    let Some(app) = spawn_on(on, "builds", |_| {}, Clock::system()).await else {
        return;
    };
    send(
        &app,
        "pullrequest:created",
        &own_fixture("pullrequest_created.json"),
    )
    .await;

    // (build_state in pending_reviews, build_state and sorted builds in pull_request_builds)
    async fn builds(app: &impl Served) -> (Option<String>, Option<String>, Vec<String>) {
        let rows: Vec<PendingRow> = app.query_rows(PENDING_ROW_SELECT).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let found: Vec<(Option<String>, Option<String>)> = app
            .query_rows(&format!(
                "SELECT build_state, builds FROM pull_request_builds \
                 WHERE repository = '{REPO}' AND number = 42"
            ))
            .await;
        let (state, list) = found[0].clone();
        let mut list: Vec<String> = list
            .map(|l| l.split(", ").map(str::to_owned).collect())
            .unwrap_or_default();
        list.sort();
        (rows[0].build_state.clone(), state, list)
    }
    let expect = |state: Option<&str>, list: &[&str]| {
        (
            state.map(str::to_owned),
            state.map(str::to_owned),
            list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(builds(&app).await, expect(None, &[]), "no status yet");

    // A failure on another commit is not this PR's.
    send(
        &app,
        "repo:commit_status_created",
        &commit_status(
            "other",
            "FAILED",
            "0000000000000000000000000000000000000000",
            "2026-11-20T09:10:00Z",
        ),
    )
    .await;
    assert_eq!(builds(&app).await, expect(None, &[]), "another commit");

    // (event key, build key, its state, the combined state, the `key=STATE` list)
    type Step<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a [&'a str]);
    let steps: [Step; 7] = [
        (
            "repo:commit_status_created",
            "a-lint",
            "SUCCESSFUL",
            Some("SUCCESSFUL"),
            &["a-lint=SUCCESSFUL"],
        ),
        (
            "repo:commit_status_created",
            "b-e2e",
            "STOPPED",
            Some("STOPPED"),
            &["a-lint=SUCCESSFUL", "b-e2e=STOPPED"],
        ),
        (
            "repo:commit_status_created",
            "c-unit",
            "INPROGRESS",
            Some("INPROGRESS"),
            &["a-lint=SUCCESSFUL", "b-e2e=STOPPED", "c-unit=INPROGRESS"],
        ),
        (
            "repo:commit_status_created",
            "d-deploy",
            "FAILED",
            Some("FAILED"),
            &[
                "a-lint=SUCCESSFUL",
                "b-e2e=STOPPED",
                "c-unit=INPROGRESS",
                "d-deploy=FAILED",
            ],
        ),
        // Each fix uncovers the next state down.
        (
            "repo:commit_status_updated",
            "d-deploy",
            "SUCCESSFUL",
            Some("INPROGRESS"),
            &[
                "a-lint=SUCCESSFUL",
                "b-e2e=STOPPED",
                "c-unit=INPROGRESS",
                "d-deploy=SUCCESSFUL",
            ],
        ),
        (
            "repo:commit_status_updated",
            "c-unit",
            "SUCCESSFUL",
            Some("STOPPED"),
            &[
                "a-lint=SUCCESSFUL",
                "b-e2e=STOPPED",
                "c-unit=SUCCESSFUL",
                "d-deploy=SUCCESSFUL",
            ],
        ),
        (
            "repo:commit_status_updated",
            "b-e2e",
            "SUCCESSFUL",
            Some("SUCCESSFUL"),
            &[
                "a-lint=SUCCESSFUL",
                "b-e2e=SUCCESSFUL",
                "c-unit=SUCCESSFUL",
                "d-deploy=SUCCESSFUL",
            ],
        ),
    ];
    for (minute, (event_key, key, state, combined, list)) in steps.into_iter().enumerate() {
        let at = format!("2026-11-20T09:{:02}:00Z", 20 + minute);
        send(&app, event_key, &commit_status(key, state, COMMIT, &at)).await;
        assert_eq!(
            builds(&app).await,
            expect(combined, list),
            "after {key}={state}"
        );
    }

    // A late failure of one build, then the other states back in the opposite order.
    let steps: [(&str, &str, Option<&str>); 4] = [
        ("a-lint", "STOPPED", Some("STOPPED")),
        ("b-e2e", "INPROGRESS", Some("INPROGRESS")),
        ("c-unit", "FAILED", Some("FAILED")),
        ("b-e2e", "FAILED", Some("FAILED")),
    ];
    for (minute, (key, state, combined)) in steps.into_iter().enumerate() {
        let at = format!("2026-11-20T09:{:02}:00Z", 40 + minute);
        send(
            &app,
            "repo:commit_status_updated",
            &commit_status(key, state, COMMIT, &at),
        )
        .await;
        assert_eq!(
            builds(&app).await.0.as_deref(),
            combined,
            "after {key}={state}"
        );
    }
    assert_eq!(
        app.count_rows("SELECT count(*) FROM commit_statuses").await,
        5,
        "one row per (commit, key)"
    );
}

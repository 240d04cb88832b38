//! Build statuses on a PR, on PostgreSQL: the combined state in the views, and the messages.

use super::*;
use crate::fake_chat::{hipchat_ok, Fake};
use crate::helpers::own_fixture;
use crate::lifecycle;
use crate::notifications::{hipchat, one_room};

const COMMIT: &str = "9b2c4e6f8a100c1d2e3f4a5b6c7d8e9f0a1b2c3d";

fn commit_status(key: &str, state: &str, updated_on: &str) -> Value {
    lifecycle::commit_status(key, state, COMMIT, updated_on)
}

/// (pending_reviews.build_state, pull_request_builds.build_state, its `key=STATE` list).
async fn builds(app: &PgApp) -> (Option<String>, Option<String>, Option<String>) {
    let rows = app.pending().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (state, list): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT build_state, builds FROM pull_request_builds \
         WHERE repository = 'acme/payments-api' AND number = 42",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    (rows[0].build_state.clone(), state, list)
}

/// `lifecycle::the_combined_build_state_of_several_statuses_on_one_commit` on PostgreSQL:
/// FAILED wins over INPROGRESS over STOPPED over SUCCESSFUL, a status of another commit is
/// not the PR's, and the list of builds is in key order (as sqlite3 shows it); then the
/// chat messages of `notifications::a_failed_build_on_an_open_pr_is_a_red_message_...`.
#[tokio::test]
async fn the_combined_build_state_and_the_build_messages() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let url = fake.url("/v2/room/r/notification");
    let Some(app) = spawn_pg(
        "builds",
        move |s| {
            s.notify = one_room(hipchat("r", url));
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    app.processed(
        "pullrequest:created",
        &own_fixture("pullrequest_created.json"),
    )
    .await;
    assert_eq!(builds(&app).await, (None, None, None), "no status yet");
    fake.wait_for_hits(1).await;

    // Another commit's failure, then the PR's builds one by one.
    let mut other = commit_status("other", "FAILED", "2026-11-20T09:10:00Z");
    other["commit_status"]["commit"]["hash"] = json!("0".repeat(40));
    app.processed("repo:commit_status_created", &other).await;
    assert_eq!(builds(&app).await, (None, None, None), "another commit's");
    let steps = [
        (
            "d-deploy",
            "SUCCESSFUL",
            "SUCCESSFUL",
            "d-deploy=SUCCESSFUL",
        ),
        (
            "b-e2e",
            "STOPPED",
            "STOPPED",
            "b-e2e=STOPPED, d-deploy=SUCCESSFUL",
        ),
        (
            "c-unit",
            "INPROGRESS",
            "INPROGRESS",
            "b-e2e=STOPPED, c-unit=INPROGRESS, d-deploy=SUCCESSFUL",
        ),
        (
            "a-lint",
            "FAILED",
            "FAILED",
            "a-lint=FAILED, b-e2e=STOPPED, c-unit=INPROGRESS, d-deploy=SUCCESSFUL",
        ),
        (
            "c-unit",
            "SUCCESSFUL",
            "FAILED",
            "a-lint=FAILED, b-e2e=STOPPED, c-unit=SUCCESSFUL, d-deploy=SUCCESSFUL",
        ),
    ];
    for (minute, (key, state, combined, list)) in steps.into_iter().enumerate() {
        let at = format!("2026-11-20T09:{:02}:00Z", 20 + minute);
        app.processed(
            "repo:commit_status_updated",
            &commit_status(key, state, &at),
        )
        .await;
        assert_eq!(
            builds(&app).await,
            (
                Some(combined.to_owned()),
                Some(combined.to_owned()),
                Some(list.to_owned())
            ),
            "after {key}={state}"
        );
    }

    // The failure was announced red, with the failing build's link.
    let hits = fake.exactly(2).await;
    let pr = "<a href=\"https://bitbucket.org/acme/payments-api/pull-requests/42\">Retry \
              card captures on gateway timeouts</a>";
    assert_eq!(
        hits[1].body,
        json!({
            "message": format!(
                "<b>Build failed</b>: {pr} (acme/payments-api #42) by Alice Author<br>\
                 0/2 approvals · build FAILED: \
                 <a href=\"https://ci.acme.example/a-lint\">a-lint build</a>"
            ),
            "message_format": "html",
            "color": "red",
            "notify": true,
            "from": "pr-reminder",
        })
    );
    // Fixed: green.
    app.processed(
        "repo:commit_status_updated",
        &commit_status("a-lint", "SUCCESSFUL", "2026-11-20T09:40:00Z"),
    )
    .await;
    let hits = fake.exactly(3).await;
    assert_eq!(
        hits[2].html(),
        format!(
            "<b>Build fixed</b>: {pr} (acme/payments-api #42) by Alice Author<br>\
             0/2 approvals · build stopped"
        )
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT events FROM outbox WHERE state = 'sent' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(events, ["opened", "build_failed", "build_recovered"]);
}

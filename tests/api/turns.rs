//! Whose turn (issue 23): the view `open_pull_requests` from real Bitbucket Cloud and Data
//! Center deliveries (`../shared/fixtures/bitbucket`), on both databases.

use pr_reminder::clock::Clock;
use pr_reminder::config::{Room, Settings, Sink};
use serde_json::{json, Value};

use crate::datacenter::deliver_as;
use crate::helpers::{on_both, route, shared_fixtures, spawn_on, uuid_like, On, Served};

/// (repository, number, author, turn, waiting_on, approvals, required_approvals, build_state,
/// open_tasks, turn_since): every column but `title` and `age_hours` (which follows the clock).
type TurnRow = (
    String,
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    String,
);

async fn turns(app: &impl Served) -> Vec<TurnRow> {
    app.query_rows(
        "SELECT repository, number, author, turn, waiting_on, approvals, required_approvals,
                build_state, open_tasks, turn_since
           FROM open_pull_requests",
    )
    .await
}

fn row(
    (repository, number, author, turn, waiting_on): (&str, i64, &str, &str, Option<&str>),
    (approvals, required, build, tasks, since): (i64, i64, Option<&str>, Option<i64>, &str),
) -> TurnRow {
    (
        repository.into(),
        number,
        author.into(),
        turn.into(),
        waiting_on.map(Into::into),
        approvals,
        required,
        build.map(Into::into),
        tasks,
        since.into(),
    )
}

/// The text of the `n`th message sent (1-based), once it is sent: what the chat showed, as
/// `outbox.message` records it.
async fn sent(app: &impl Served, n: i64) -> String {
    for _ in 0..500 {
        if app
            .count_rows("SELECT count(*) FROM outbox WHERE state = 'sent'")
            .await
            >= n
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rows: Vec<(Option<String>,)> = app
        .query_rows("SELECT message FROM outbox WHERE state = 'sent' ORDER BY id")
        .await;
    let Some((Some(message),)) = rows.get(usize::try_from(n - 1).unwrap()).cloned() else {
        panic!("no message #{n}: {rows:?}");
    };
    message
}

fn settings(after_push: bool, required: u32) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.notify.coalesce = std::time::Duration::ZERO;
        s.required_approvals = required;
        s.notify.rooms = vec![Room {
            name: "acme".into(),
            sink: Sink::Console,
        }];
        let mut r = route(&["*"], "acme");
        r.approvals_after_last_push = after_push;
        s.notify.routes = vec![r];
    }
}

fn shared(file: &str) -> Option<Value> {
    let dir = shared_fixtures()?;
    Some(serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap())
}

async fn cloud(app: &impl Served, key: &str, body: &Value) {
    app.processed(key, body).await;
}

async fn datacenter(app: &impl Served, key: &str, body: &Value) {
    let answer = deliver_as(
        app,
        key,
        &uuid_like("dc"),
        serde_json::to_vec(body).unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "{key}: {}", answer.body);
    assert_eq!(answer.body["status"], "processed", "{key}: {}", answer.body);
}

const BLE: &str = "arolgroup/j0664-ns2-firmware";

on_both!(
    cloud_reviewers_owe_until_they_approve_and_new_commits_date_the_turn,
    cloud_approvals_before_the_last_push_count_only_when_the_route_says,
    datacenter_needs_work_then_approval_then_a_new_commit,
);

/// ble-testsuite's PR #9: opened with Gianpaolo asked, two comments and two new commits, no
/// verdict; PR #7: approved by its requested reviewer Gianluca.
async fn cloud_reviewers_owe_until_they_approve_and_new_commits_date_the_turn(on: On) {
    let Some(app) = spawn_on(on, "turnscloud", settings(false, 1), Clock::system()).await else {
        return;
    };
    let Some(created) = shared("cloud/ble-testsuite/2023-05-17-142123-webhook-site.json") else {
        return;
    };
    cloud(&app, "pullrequest:created", &created).await;
    assert_eq!(
        turns(&app).await,
        vec![row(
            (
                BLE,
                9,
                "Gianluca Teti",
                "reviewers",
                Some("Gianpaolo Macario")
            ),
            (0, 1, None, Some(0), "2023-05-17T12:21:20.777669Z"),
        )]
    );
    let message = sent(&app, 1).await;
    assert!(
        message.contains("Needs review from Gianpaolo Macario: Gt/develop (arolgroup/"),
        "{message}"
    );
    for (key, file) in [
        (
            "pullrequest:comment_created",
            "2023-05-18-084651-webhook-site.json",
        ),
        ("pullrequest:updated", "2023-15-18-085639-webhook-site.json"),
        (
            "pullrequest:comment_created",
            "2023-15-18-103146-webhook-site.json",
        ),
        ("pullrequest:updated", "2023-05-18-103517-webhook-site.json"),
    ] {
        let body = shared(&format!("cloud/ble-testsuite/{file}")).unwrap();
        cloud(&app, key, &body).await;
    }
    assert_eq!(
        turns(&app).await,
        vec![row(
            (
                BLE,
                9,
                "Gianluca Teti",
                "reviewers",
                Some("Gianpaolo Macario")
            ),
            (0, 1, None, Some(0), "2023-05-18T08:35:15.058595Z"),
        )],
        "their turn since the latest new commit"
    );
    let approved = shared("cloud/ble-testsuite/2023-05-16-123305-webhook-site.json").unwrap();
    cloud(&app, "pullrequest:approved", &approved).await;
    let rows = turns(&app).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        row(
            (
                BLE,
                7,
                "Gianpaolo Macario",
                "merge",
                Some("Gianpaolo Macario")
            ),
            (1, 1, None, Some(0), "2023-05-16T10:33:04.281505Z"),
        ),
        "ready to merge since the approval"
    );
}

/// PR #7's real approval, then the same PR with a new source commit pushed after it.
async fn cloud_approvals_before_the_last_push_count_only_when_the_route_says(on: On) {
    for after_push in [false, true] {
        let label = if after_push {
            "turnspush1"
        } else {
            "turnspush0"
        };
        let Some(app) = spawn_on(on, label, settings(after_push, 1), Clock::system()).await else {
            return;
        };
        let Some(mut body) = shared("cloud/ble-testsuite/2023-05-16-123305-webhook-site.json")
        else {
            return;
        };
        cloud(&app, "pullrequest:approved", &body).await;
        assert_eq!(turns(&app).await[0].3, "merge");
        body["pullrequest"]["source"]["commit"]["hash"] = json!("0123456789ab");
        body["pullrequest"]["updated_on"] = json!("2023-05-16T10:40:00.000000+00:00");
        cloud(&app, "pullrequest:updated", &body).await;
        let expected = if after_push {
            row(
                (
                    BLE,
                    7,
                    "Gianpaolo Macario",
                    "reviewers",
                    Some("Gianluca Teti"),
                ),
                (0, 1, None, Some(0), "2023-05-16T10:40:00.000000Z"),
            )
        } else {
            row(
                (
                    BLE,
                    7,
                    "Gianpaolo Macario",
                    "merge",
                    Some("Gianpaolo Macario"),
                ),
                (1, 1, None, Some(0), "2023-05-16T10:40:00.000000Z"),
            )
        };
        assert_eq!(
            turns(&app).await,
            vec![expected],
            "after_push = {after_push}"
        );
    }
}

/// go-playground-webhooks' Data Center PR #5 by Foo Bar, Cain Piper asked: opened, needs work,
/// approved (each verdict with its `lastReviewedCommit`), then a new commit.
async fn datacenter_needs_work_then_approval_then_a_new_commit(on: On) {
    let Some(app) = spawn_on(on, "turnsdc", settings(true, 1), Clock::system()).await else {
        return;
    };
    let dir = "server/go-playground-webhooks";
    let Some(opened) = shared(&format!("{dir}/pr-opened.json")) else {
        return;
    };
    let repo = "~gopher/webhook-test";
    datacenter(&app, "pr:opened", &opened).await;
    assert_eq!(
        turns(&app).await,
        vec![row(
            (repo, 5, "Foo Bar", "reviewers", Some("Cain Piper")),
            (0, 1, None, None, "2019-03-01T09:31:15.860000Z"),
        )]
    );
    let message = sent(&app, 1).await;
    assert!(
        message.contains("Needs review from Cain Piper: Update README (~gopher/webhook-test #5)"),
        "{message}"
    );
    let needs_work = shared(&format!("{dir}/pr-reviewer-needs-work.json")).unwrap();
    datacenter(&app, "pr:reviewer:needs_work", &needs_work).await;
    assert_eq!(
        turns(&app).await,
        vec![row(
            (repo, 5, "Foo Bar", "author", Some("Foo Bar")),
            (0, 1, None, None, "2019-03-01T09:34:53.000000Z"),
        )],
        "changes requested: the author's turn since the verdict"
    );
    let message = sent(&app, 2).await;
    assert!(
        message.contains("Changes requested by Cain Piper: Foo Bar's turn: Update README"),
        "{message}"
    );
    let mut approved = shared(&format!("{dir}/pr-reviewer-approved.json")).unwrap();
    datacenter(&app, "pr:reviewer:approved", &approved).await;
    assert_eq!(
        turns(&app).await,
        vec![row(
            (repo, 5, "Foo Bar", "merge", Some("Foo Bar")),
            (1, 1, None, None, "2019-03-01T09:35:38.000000Z"),
        )]
    );
    let message = sent(&app, 3).await;
    assert!(
        message.contains("Ready to merge: Foo Bar: Update README"),
        "{message}"
    );
    // A new commit: the approval was given on the previous one (lastReviewedCommit).
    approved["pullRequest"]["fromRef"]["latestCommit"] =
        json!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    approved["date"] = json!("2019-03-01T10:40:00+0100");
    approved.as_object_mut().unwrap().remove("participant");
    datacenter(&app, "pr:from_ref_updated", &approved).await;
    assert_eq!(
        turns(&app).await,
        vec![row(
            (repo, 5, "Foo Bar", "reviewers", Some("Cain Piper")),
            (0, 1, None, None, "2019-03-01T09:40:00.000000Z"),
        )],
        "approved before the latest new commit: Cain owes a new look"
    );
}

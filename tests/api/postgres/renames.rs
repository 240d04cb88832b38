//! Renamed repositories, and two that share a name, on PostgreSQL.

use super::*;
use crate::helpers::{own_fixture, route, uuid_like};
use crate::lifecycle::pr_event;
use pr_reminder::config::{Room, Sink};

const OLD: &str = "acme/payments-api";
const NEW: &str = "acme/payments-service";
const UUID: &str = "{5e1f0a77-9d0b-4c1e-8f53-0123456789ab}";

fn renamed(mut body: Value, full_name: &str) -> Value {
    for path in [
        "/repository",
        "/pullrequest/source/repository",
        "/pullrequest/destination/repository",
    ] {
        if let Some(repo) = body.pointer_mut(path).filter(|r| r.is_object()) {
            repo["full_name"] = json!(full_name);
            repo["uuid"] = json!(UUID);
        }
    }
    body["repository"]["links"]["html"]["href"] =
        json!(format!("https://bitbucket.org/{full_name}"));
    let number = body["pullrequest"]["id"].clone();
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{full_name}/pull-requests/{number}"
    ));
    body
}

async fn app(label: &str) -> Option<PgApp> {
    spawn_pg(
        label,
        |s| {
            let console = |name: &str| Room {
                name: name.into(),
                sink: Sink::Console,
            };
            s.notify.rooms = vec![console("old-room"), console("new-room")];
            s.notify.routes = vec![route(&[OLD], "old-room"), route(&[NEW], "new-room")];
            s.notify.coalesce = Duration::from_secs(600);
        },
        Clock::system(),
    )
    .await
}

async fn outbox(app: &PgApp) -> Vec<(String, String, i64, String)> {
    sqlx::query_as(
        "SELECT o.room, r.full_name, o.number, o.events FROM outbox o \
         JOIN repositories r ON r.repository_key = o.repository_key ORDER BY o.id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn pending(app: &PgApp) -> Vec<(String, i64, String, i64)> {
    sqlx::query_as("SELECT repository, number, title, approvals FROM pending_reviews")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// `rename::a_renamed_repository_keeps_one_pr_under_its_current_name` on PostgreSQL: one PR
/// under the current name, routed by it, and a late delivery under the old name changing
/// nothing.
#[tokio::test]
async fn a_renamed_repository_keeps_one_pr_under_its_current_name() {
    let Some(app) = app("rename").await else {
        return;
    };
    let opened = pr_event(
        42,
        "2026-11-20T10:00:00+00:00",
        "OPEN",
        "Retry card captures",
        "9b2c4e6f8a10",
        &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
    );
    app.processed("pullrequest:created", &renamed(opened, OLD))
        .await;
    let approved = pr_event(
        42,
        "2026-11-20T11:00:00+00:00",
        "OPEN",
        "Retry card captures",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("carol", "REVIEWER", None),
        ],
    );
    app.processed("pullrequest:approved", &renamed(approved, NEW))
        .await;
    assert_eq!(
        pending(&app).await,
        vec![(NEW.to_owned(), 42, "Retry card captures".to_owned(), 1)]
    );
    assert_eq!(app.count("SELECT count(*) FROM pull_requests").await, 1);
    assert_eq!(
        app.pull_request(NEW, 42).await.unwrap().url.as_deref(),
        Some("https://bitbucket.org/acme/payments-service/pull-requests/42")
    );
    assert!(app.pull_request(OLD, 42).await.is_none());
    assert_eq!(
        outbox(&app).await,
        vec![
            ("old-room".into(), NEW.into(), 42, "opened".into()),
            ("new-room".into(), NEW.into(), 42, "approvals".into()),
        ]
    );

    // Late, from before the rename: changes neither the name nor the PR.
    let late = pr_event(
        42,
        "2026-11-20T10:30:00+00:00",
        "OPEN",
        "Retry card captures (old title)",
        "9b2c4e6f8a10",
        &[],
    );
    app.processed("pullrequest:updated", &renamed(late, OLD))
        .await;
    assert_eq!(
        pending(&app).await,
        vec![(NEW.to_owned(), 42, "Retry card captures".to_owned(), 1)]
    );
    let names: Vec<String> = sqlx::query_scalar("SELECT full_name FROM repositories")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(names, [NEW]);
    assert_eq!(outbox(&app).await.len(), 2);
}

/// `rename::repo_updated_renames_before_any_pr_event_says_so` on PostgreSQL: the repository's
/// new name and link, from `repo:updated`, before any PR event carries them.
#[tokio::test]
async fn repo_updated_renames_before_any_pr_event_says_so() {
    let Some(app) = app("repoupdated").await else {
        return;
    };
    let opened = pr_event(
        7,
        "2026-11-20T10:00:00+00:00",
        "OPEN",
        "Add refunds",
        "0a1b2c3d4e5f",
        &[],
    );
    app.processed("pullrequest:created", &renamed(opened, OLD))
        .await;
    let answer = app
        .deliver_json(
            "repo:updated",
            &uuid_like("repo"),
            &own_fixture("repo_updated.json"),
        )
        .await;
    assert_eq!(
        (
            answer.status,
            &answer.body["status"],
            &answer.body["repository"]
        ),
        (200, &json!("processed"), &json!(NEW)),
        "{}",
        answer.body
    );
    assert_eq!(
        pending(&app).await,
        vec![(NEW.to_owned(), 7, "Add refunds".to_owned(), 0)]
    );
    let repo: (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT full_name, url, named_on FROM repositories")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        (repo.0.as_str(), repo.1.as_deref()),
        (NEW, Some("https://bitbucket.org/acme/payments-service"))
    );
    assert!(repo.2.is_some(), "named_on recorded: {repo:?}");
    let recorded: (String, Option<String>) = sqlx::query_as(
        "SELECT outcome, repository FROM deliveries WHERE event_key = 'repo:updated'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(recorded, ("processed".to_owned(), Some(NEW.to_owned())));
}

/// Two repositories that share a name (one deleted and created again) stay two, each with
/// its PR #1, both waiting for review.
#[tokio::test]
async fn two_repositories_sharing_a_name_stay_apart() {
    let Some(app) = app("samename").await else {
        return;
    };
    let first = renamed(
        pr_event(
            1,
            "2026-11-20T10:00:00+00:00",
            "OPEN",
            "One",
            "0a1b2c3d4e5f",
            &[],
        ),
        OLD,
    );
    let mut again = first.clone();
    for path in [
        "/repository",
        "/pullrequest/source/repository",
        "/pullrequest/destination/repository",
    ] {
        if let Some(repo) = again.pointer_mut(path).filter(|r| r.is_object()) {
            repo["uuid"] = json!("{00000000-0000-4000-8000-00000000beef}");
        }
    }
    again["pullrequest"]["title"] = json!("Other");
    again["pullrequest"]["updated_on"] = json!("2026-11-21T10:00:00+00:00");
    app.processed("pullrequest:created", &first).await;
    app.processed("pullrequest:created", &again).await;
    let prs: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT r.repository_key, r.full_name, p.number, p.title FROM pull_requests p \
         JOIN repositories r ON r.repository_key = p.repository_key ORDER BY p.title",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        prs,
        [
            (format!("cloud/{UUID}"), OLD.to_owned(), 1, "One".to_owned()),
            (
                "cloud/{00000000-0000-4000-8000-00000000beef}".to_owned(),
                OLD.to_owned(),
                1,
                "Other".to_owned()
            ),
        ]
    );
    assert_eq!(pending(&app).await.len(), 2);
}

//! Renamed repositories, and two that share a name, on PostgreSQL.

use super::*;
use crate::helpers::{own_fixture, uuid_like};
use crate::lifecycle::pr_event;
use crate::rename::{
    keeps_one_pr_under_its_current_name, pending, renamed, same_name_other_repository, settings,
    NEW, OLD, UUID,
};

async fn app(label: &str) -> Option<PgApp> {
    spawn_pg(label, settings, Clock::system()).await
}

/// `rename::a_renamed_repository_keeps_one_pr_under_its_current_name` on PostgreSQL: one PR
/// under the current name, routed by it, and a late delivery under the old name changing
/// nothing.
#[tokio::test]
async fn a_renamed_repository_keeps_one_pr_under_its_current_name() {
    let Some(app) = app("rename").await else {
        return;
    };
    keeps_one_pr_under_its_current_name(&app).await;
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
    let mut again = same_name_other_repository(first.clone());
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

//! Build results reach the open PRs whose source commit they are on.

use pr_reminder::domain::routing::Announce;
use pr_reminder::domain::{BuildState, Submission};
use pr_reminder::store::WriteOutcome::Committed;

use crate::build::{at, pr, pr_change, processed, repo, status, status_change, SOURCE_COMMIT};
use crate::harness::{route, Store};

/// The full hash of `SOURCE_COMMIT` (statuses name 40 digits, PRs 12).
fn full_hash() -> String {
    format!("{SOURCE_COMMIT}0c1d2e3f4a5b6c7d8e9f0a1b2c3d")
}

/// (room, number, events) of every queued message.
async fn queued(s: &Store) -> Vec<(String, i64, String)> {
    s.read
        .messages()
        .await
        .into_iter()
        .map(|m| (m.room, m.number, m.events))
        .collect()
}

#[tokio::test]
async fn a_failed_build_on_the_source_commit_is_announced_in_the_routed_room() {
    let Some(s) = Store::start(&[route(&["acme/*"], "team", Announce::default())]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    // Known from a backfill, so that nothing else is queued for it.
    let backfill = Submission::reconciliation(pr_change(&pr(&r, 1, at(1))), false);
    assert_eq!(s.submit(backfill).await, Committed);
    // Another PR, on another commit.
    let mut elsewhere = pr(&r, 2, at(1));
    elsewhere.source_commit = Some("0123456789ab".into());
    let backfill = Submission::reconciliation(pr_change(&elsewhere), false);
    assert_eq!(s.submit(backfill).await, Committed);
    assert_eq!(queued(&s).await, vec![]);

    let failed = status(&r, &full_hash(), BuildState::Failed, at(2));
    let delivery = Submission::delivery(processed("s-1", status_change(&failed)));
    assert_eq!(s.submit(delivery).await, Committed);
    assert_eq!(
        s.read.builds().await,
        vec![(full_hash(), "ci".into(), "FAILED".into())]
    );
    assert_eq!(
        queued(&s).await,
        vec![("team".into(), 1, "build_failed".into())]
    );

    // Failing again is not news.
    let again = status(&r, &full_hash(), BuildState::Failed, at(3));
    let delivery = Submission::delivery(processed("s-2", status_change(&again)));
    assert_eq!(s.submit(delivery).await, Committed);
    assert_eq!(
        queued(&s).await,
        vec![("team".into(), 1, "build_failed".into())]
    );
}

#[tokio::test]
async fn a_route_without_builds_hears_no_build() {
    let announce = Announce {
        builds: false,
        ..Announce::default()
    };
    let Some(s) = Store::start(&[route(&["acme/*"], "team", announce)]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let backfill = Submission::reconciliation(pr_change(&pr(&r, 1, at(1))), false);
    assert_eq!(s.submit(backfill).await, Committed);
    let failed = status(&r, &full_hash(), BuildState::Failed, at(2));
    let delivery = Submission::delivery(processed("s-1", status_change(&failed)));
    assert_eq!(s.submit(delivery).await, Committed);
    assert_eq!(s.read.builds().await.len(), 1);
    assert_eq!(queued(&s).await, vec![]);
}

/// A reconciliation pass fetches a commit's statuses again only while a build of *that*
/// repository's commit is still running: the same hash running elsewhere (a fork, a mirror)
/// costs no request here.
#[tokio::test]
async fn a_running_build_in_another_repository_does_not_ask_for_a_refetch() {
    use pr_reminder::store::reconciliations::{commits_to_check, mark_commits_checked};
    let Some(s) = Store::start(&[route(&["acme/*"], "team", Announce::default())]).await else {
        return;
    };
    let (api, fork) = (repo("{r-1}", "acme/api"), repo("{r-2}", "acme/api-fork"));
    for r in [&api, &fork] {
        let backfill = Submission::reconciliation(pr_change(&pr(r, 1, at(1))), false);
        assert_eq!(s.submit(backfill).await, Committed);
    }
    let running = status(&fork, &full_hash(), BuildState::InProgress, at(2));
    let delivery = Submission::delivery(processed("s-1", status_change(&running)));
    assert_eq!(s.submit(delivery).await, Committed);
    for r in [&api, &fork] {
        mark_commits_checked(&s.db, &r.key, &[SOURCE_COMMIT], &at(3))
            .await
            .unwrap();
    }
    let wanted = |r: &pr_reminder::domain::Repository| {
        let key = r.key.clone();
        let db = s.db.clone();
        async move { commits_to_check(&db, &key, &[SOURCE_COMMIT]).await.unwrap() }
    };
    assert!(wanted(&api).await.is_empty(), "nothing runs in acme/api");
    assert_eq!(
        wanted(&fork).await,
        [SOURCE_COMMIT.to_owned()].into_iter().collect()
    );
}

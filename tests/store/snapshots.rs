//! Every PR event carries the whole PR, applied as a snapshot: the newest wins, whatever the
//! arrival order, across batches and within one.

use pr_reminder::domain::routing::Announce;
use pr_reminder::domain::PrState;
use pr_reminder::domain::ReviewState::{Approved, ChangesRequested, None as NoVerdict};
use pr_reminder::store::WriteOutcome::Committed;

use crate::build::{at, delivered, pr, repo, reviewer};
use crate::harness::{route, Store};

#[tokio::test]
async fn an_older_snapshot_never_overwrites_a_newer_one() {
    let Some(s) = Store::start(&[route(&["acme/*"], "team", Announce::default())]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut newer = pr(&r, 1, at(5));
    newer.title = "Newer title".into();
    newer.state = PrState::Merged;
    newer.participants = vec![reviewer("bob", Approved)];
    let mut older = pr(&r, 1, at(3));
    older.title = "Older title".into();
    older.participants = vec![reviewer("bob", NoVerdict), reviewer("carol", NoVerdict)];

    for (id, snapshot) in [("d-new", &newer), ("d-old", &older)] {
        let submission = delivered(id, snapshot);
        assert_eq!(s.submit(submission).await, Committed);
    }
    let stored = s.read.pr(&r.key, 1).await.unwrap();
    assert_eq!(
        (stored.title.as_str(), stored.state.as_str()),
        ("Newer title", "MERGED")
    );
    assert_eq!(stored.updated_on, at(5).as_str());
    assert_eq!(stored.approvals, 1);
    // Carol, only in the older snapshot, is not attached.
    assert_eq!(
        s.read.reviews(&r.key, 1).await,
        vec![("bob".into(), "approved".into())]
    );
    // First seen merged is not news, and the late open snapshot is not either.
    assert_eq!(s.read.messages().await, vec![]);
    // Both deliveries are recorded, though only one changed anything.
    assert_eq!(s.read.deliveries().await.len(), 2);
}

#[tokio::test]
async fn the_newest_snapshot_per_pr_wins_within_one_batch() {
    let Some(s) = Store::start(&[route(&["acme/*"], "team", Announce::default())]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut first = pr(&r, 1, at(1));
    first.title = "First".into();
    let mut third = pr(&r, 1, at(3));
    third.title = "Third".into();
    third.participants = vec![reviewer("bob", Approved)];
    let mut second = pr(&r, 1, at(2));
    second.title = "Second".into();
    second.participants = vec![reviewer("carol", ChangesRequested)];
    let other = pr(&r, 2, at(1));

    let submit = |id: &str, p| s.writer.submit(delivered(id, p));
    // Submitted together (newest in the middle), so that the writer folds them into one
    // transaction.
    let outcomes = tokio::join!(
        submit("d-1", &first),
        submit("d-3", &third),
        submit("d-2", &second),
        submit("d-other", &other),
    );
    for outcome in [outcomes.0, outcomes.1, outcomes.2, outcomes.3] {
        assert_eq!(outcome.unwrap(), Committed);
    }

    let stored = s.read.pr(&r.key, 1).await.unwrap();
    assert_eq!(stored.title, "Third");
    assert_eq!(stored.updated_on, at(3).as_str());
    assert_eq!(
        s.read.reviews(&r.key, 1).await,
        vec![("bob".into(), "approved".into())]
    );
    assert_eq!(s.read.pull_requests().await, 2);

    // One batch: each PR is announced once, from its newest snapshot ("opened", where separate
    // batches would have added "approvals" for #1), and both messages share the batch's commit.
    let mut messages = s.read.messages().await;
    messages.sort_by_key(|m| m.number);
    let seen: Vec<(&str, i64, &str)> = messages
        .iter()
        .map(|m| (m.room.as_str(), m.number, m.events.as_str()))
        .collect();
    assert_eq!(seen, vec![("team", 1, "opened"), ("team", 2, "opened")]);
    assert_eq!(
        messages[0].created_at, messages[1].created_at,
        "not one batch"
    );
}

/// Two snapshots with the same `updated_on` (Bitbucket's clock has microseconds, but a retried
/// or reconciled answer can repeat one): the later arrival wins the PR row, and should win the
/// list of people attached too.
///
/// Fails today: `DELETE_STALE_REVIEWS` (src/store/writer.rs) removes only rows with
/// `snapshot_on < updated_on`, while `UPSERT_PULL_REQUESTS` applies a snapshot on
/// `updated_on >=`; a reviewer missing from the later snapshot of a tie stays attached (and
/// still counts in `pending_reviews`, while `pull_requests.approvals` does not count them).
#[tokio::test]
async fn a_later_snapshot_with_the_same_time_replaces_who_is_attached() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut first = pr(&r, 1, at(1));
    first.participants = vec![reviewer("bob", NoVerdict), reviewer("carol", Approved)];
    let mut again = pr(&r, 1, at(1));
    again.title = "Same time, Carol removed".into();
    again.participants = vec![reviewer("bob", NoVerdict)];
    for (id, snapshot) in [("d-1", &first), ("d-2", &again)] {
        let submission = delivered(id, snapshot);
        assert_eq!(s.submit(submission).await, Committed);
    }
    let stored = s.read.pr(&r.key, 1).await.unwrap();
    assert_eq!(
        (stored.title.as_str(), stored.approvals),
        ("Same time, Carol removed", 0)
    );
    assert_eq!(
        s.read.reviews(&r.key, 1).await,
        vec![("bob".into(), "none".into())]
    );
}

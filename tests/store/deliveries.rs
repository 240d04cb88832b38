//! Deliveries are de-duplicated by request id: Bitbucket retries, and a retry must change nothing.

use pr_reminder::domain::{PrState, Submission};
use pr_reminder::store::WriteOutcome::{Committed, Duplicate};

use crate::build::{at, delivered, ignored, pr, rejected, repo};
use crate::harness::Store;
use crate::reads::DeliveryRow;

fn row(request_id: &str, outcome: &str, pr_number: Option<i64>) -> DeliveryRow {
    DeliveryRow {
        request_id: Some(request_id.into()),
        outcome: outcome.into(),
        repository: pr_number.map(|_| "acme/api".to_owned()),
        pr_number,
    }
}

#[tokio::test]
async fn a_delivery_is_recorded_once_and_its_redelivery_changes_nothing() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let first = pr(&r, 1, at(1));
    assert_eq!(s.submit(delivered("req-1", &first)).await, Committed);

    // The same request id again, even with a newer snapshot in it: nothing is applied.
    let mut newer = pr(&r, 1, at(2));
    newer.title = "Merged meanwhile".into();
    newer.state = PrState::Merged;
    assert_eq!(s.submit(delivered("req-1", &newer)).await, Duplicate);
    assert_eq!(
        s.read.deliveries().await,
        vec![row("req-1", "processed", Some(1))]
    );
    let stored = s.read.pr(&r.key, 1).await.unwrap();
    assert_eq!(
        (stored.title.as_str(), stored.state.as_str()),
        ("Change 1", "OPEN")
    );
    assert_eq!(stored.updated_on, at(1).as_str());

    // Under a request id of its own the newer snapshot is applied.
    assert_eq!(s.submit(delivered("req-2", &newer)).await, Committed);
    assert_eq!(s.read.pr(&r.key, 1).await.unwrap().state, "MERGED");
    assert_eq!(
        s.read.deliveries().await,
        vec![
            row("req-1", "processed", Some(1)),
            row("req-2", "processed", Some(1))
        ]
    );
}

#[tokio::test]
async fn an_ignored_delivery_takes_its_request_id_too() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    assert_eq!(
        s.submit(Submission::delivery(ignored("req-1"))).await,
        Committed
    );
    assert_eq!(
        s.submit(Submission::delivery(ignored("req-1"))).await,
        Duplicate
    );
    assert_eq!(
        s.read.deliveries().await,
        vec![row("req-1", "ignored", None)]
    );
}

#[tokio::test]
async fn a_rejected_delivery_does_not_block_a_later_accepted_one_under_the_same_id() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    // Refused twice (say, a signature secret being rotated): each attempt is recorded.
    assert_eq!(
        s.submit(Submission::delivery(rejected("req-1"))).await,
        Committed
    );
    assert_eq!(
        s.submit(Submission::delivery(rejected("req-1"))).await,
        Committed
    );
    assert_eq!(s.read.pull_requests().await, 0);

    let accepted = || delivered("req-1", &pr(&r, 1, at(1)));
    assert_eq!(s.submit(accepted()).await, Committed);
    assert!(s.read.pr(&r.key, 1).await.is_some());
    // Once accepted, the id is taken.
    assert_eq!(s.submit(accepted()).await, Duplicate);
    assert_eq!(
        s.read.deliveries().await,
        vec![
            row("req-1", "rejected", None),
            row("req-1", "rejected", None),
            row("req-1", "processed", Some(1)),
        ]
    );
}

#[tokio::test]
async fn the_same_request_id_twice_in_one_batch_is_taken_once() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut newer = pr(&r, 1, at(2));
    newer.title = "Newer".into();
    // Submitted together, so that the writer folds them into one transaction (where the id is
    // taken by the first of the batch; in two batches the outcome would be the same).
    let (a, b) = tokio::join!(
        s.writer.submit(delivered("req-1", &pr(&r, 1, at(1)))),
        s.writer.submit(delivered("req-1", &newer)),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (Committed, Duplicate));
    assert_eq!(
        s.read.deliveries().await,
        vec![row("req-1", "processed", Some(1))]
    );
    // The duplicate's (newer) snapshot was not applied.
    assert_eq!(s.read.pr(&r.key, 1).await.unwrap().title, "Change 1");
}

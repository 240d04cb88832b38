//! A repository keeps its key (`cloud/{uuid}`) through a rename; its name is that of its newest
//! change.

use pr_reminder::domain::Submission;
use pr_reminder::store::WriteOutcome::Committed;

use crate::build::{at, delivered, pr, pr_change, processed, rename_change, repo};
use crate::harness::Store;

const UUID: &str = "{5e1f0a77-9d0b-4c1e-8f53-0123456789ab}";
const OLD: &str = "acme/payments-api";
const NEW: &str = "acme/payments-service";

#[tokio::test]
async fn a_rename_leaves_one_pr_under_the_new_name_and_an_older_change_does_not_undo_it() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let old = repo(UUID, OLD);
    let new = repo(UUID, NEW);
    assert_eq!(old.key, new.key);
    let key = old.key.as_str().to_owned();

    assert_eq!(
        s.submit(delivered("d-1", &pr(&old, 1, at(1)))).await,
        Committed
    );
    assert_eq!(
        s.submit(delivered("d-2", &pr(&new, 1, at(2)))).await,
        Committed
    );
    assert_eq!(s.read.pull_requests().await, 1);
    assert_eq!(s.read.repositories().await, vec![(key.clone(), NEW.into())]);
    assert_eq!(s.read.pr(&new.key, 1).await.unwrap().full_name, NEW);
    assert_eq!(s.read.find_by_name(NEW).await, Some(new.key.clone()));
    assert_eq!(s.read.find_by_name(OLD).await, None);

    // Late deliveries still under the old name: another PR's older snapshot, and an older
    // snapshot of #1. Neither renames the repository back.
    assert_eq!(
        s.submit(delivered("d-3", &pr(&old, 2, at(1)))).await,
        Committed
    );
    assert_eq!(
        s.submit(delivered("d-4", &pr(&old, 1, at(1)))).await,
        Committed
    );
    assert_eq!(s.read.repositories().await, vec![(key, NEW.into())]);
    assert_eq!(s.read.pull_requests().await, 2);
    assert_eq!(
        s.read.pr(&old.key, 1).await.unwrap().updated_on,
        at(2).as_str()
    );
    assert_eq!(s.read.pr(&old.key, 2).await.unwrap().full_name, NEW);
}

#[tokio::test]
async fn a_repository_update_alone_renames_it() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let old = repo(UUID, OLD);
    let new = repo(UUID, NEW);
    let key = old.key.as_str().to_owned();
    let opened = Submission::delivery(processed("d-1", pr_change(&pr(&old, 1, at(1)))));
    assert_eq!(s.submit(opened).await, Committed);

    let renamed = Submission::delivery(processed("d-2", rename_change(&new, at(5))));
    assert_eq!(s.submit(renamed).await, Committed);
    assert_eq!(s.read.repositories().await, vec![(key.clone(), NEW.into())]);
    let stored = s.read.pr(&old.key, 1).await.unwrap();
    assert_eq!(stored.full_name, NEW);
    // The PR itself is untouched.
    assert_eq!(
        (stored.title.as_str(), stored.updated_on.as_str()),
        ("Change 1", at(1).as_str())
    );
    assert_eq!(s.read.find_by_name(NEW).await, Some(new.key.clone()));

    // An older `repo:updated` (say, from a reconciliation pass) does not rename it back.
    let stale = Submission::reconciliation(rename_change(&old, at(4)), false);
    assert_eq!(s.submit(stale).await, Committed);
    assert_eq!(s.read.repositories().await, vec![(key, NEW.into())]);
}

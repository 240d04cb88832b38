//! A snooze hides a PR from the room's digest until the PR changes in a way that matters.

use pr_reminder::domain::ReviewState::None as NoVerdict;
use pr_reminder::domain::Timestamp;
use pr_reminder::store::snoozes;
use pr_reminder::store::WriteOutcome::Committed;

use crate::build::{at, delivered, pr, repo, reviewer};
use crate::harness::Store;

#[tokio::test]
async fn a_new_commit_ends_a_snooze_and_a_title_edit_does_not() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut open = pr(&r, 1, at(1));
    open.participants = vec![reviewer("bob", NoVerdict)];
    assert_eq!(s.submit(delivered("d-1", &open)).await, Committed);

    let until = Timestamp::parse("2099-01-01T00:00:00Z").unwrap();
    let snoozed = snoozes::snooze(&s.db, "bob", &r.key, 1, &until, &at(2))
        .await
        .unwrap();
    assert!(snoozed);
    assert_eq!(s.read.open_prs(&at(3)).await, vec![]);

    let mut edited = open.clone();
    edited.updated_on = at(3);
    edited.title = "Better title".into();
    assert_eq!(s.submit(delivered("d-2", &edited)).await, Committed);
    assert_eq!(s.read.snoozes().await, 1, "a title edit keeps the snooze");
    assert_eq!(s.read.open_prs(&at(4)).await, vec![]);

    let mut pushed = edited.clone();
    pushed.updated_on = at(4);
    pushed.source_commit = Some("ffffeeee0000".into());
    assert_eq!(s.submit(delivered("d-3", &pushed)).await, Committed);
    assert_eq!(s.read.snoozes().await, 0, "a new commit ends the snooze");
    assert_eq!(
        s.read.open_prs(&at(5)).await,
        vec![("acme/api".to_owned(), 1)]
    );
}

//! A snooze hides a PR from the room's digest until the PR changes in a way that matters.

use pr_reminder::domain::ReviewState::None as NoVerdict;
use pr_reminder::domain::Timestamp;
use pr_reminder::store::snoozes::{self, CurrentSnooze, SnoozeOutcome};
use pr_reminder::store::WriteOutcome::Committed;

use crate::build::{at, delivered, pr, repo, reviewer};
use crate::harness::Store;

/// The author may not hide their own PR from the room; an unknown PR is said so; the snoozes
/// in force name who snoozed and until when, and leave out ended ones and closed PRs.
#[tokio::test]
async fn an_author_cannot_snooze_their_own_and_the_snoozes_in_force_say_who() {
    let Some(s) = Store::start(&[]).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut open = pr(&r, 1, at(1));
    open.participants = vec![reviewer("bob", NoVerdict)];
    assert_eq!(s.submit(delivered("d-1", &open)).await, Committed);
    let mut other = pr(&r, 2, at(1));
    other.participants = vec![reviewer("bob", NoVerdict)];
    assert_eq!(s.submit(delivered("d-2", &other)).await, Committed);

    let until = Timestamp::parse("2099-01-01T00:00:00Z").unwrap();
    let snooze = |user: &'static str, number: i64, until: Timestamp| {
        let (db, key) = (s.db.clone(), r.key.clone());
        async move {
            snoozes::snooze(&db, user, &key, number, &until, &at(2))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        snooze("alice", 1, until.clone()).await,
        SnoozeOutcome::OwnPullRequest
    );
    assert_eq!(s.read.snoozes().await, 0, "nothing written for the author");
    assert_eq!(
        snooze("bob", 9, until.clone()).await,
        SnoozeOutcome::Unknown
    );
    assert_eq!(
        snooze("bob", 1, until.clone()).await,
        SnoozeOutcome::Snoozed
    );
    let soon = Timestamp::parse("2098-01-01T00:00:00Z").unwrap();
    assert_eq!(snooze("bob", 2, soon.clone()).await, SnoozeOutcome::Snoozed);
    let ended = at(3);
    assert_eq!(snooze("carol", 2, ended).await, SnoozeOutcome::Snoozed);

    let current = snoozes::current(&s.db, &at(4)).await.unwrap();
    let shown = |number: i64, until: &Timestamp| CurrentSnooze {
        repository_key: r.key.as_str().to_owned(),
        full_name: "acme/api".into(),
        number,
        user_key: "bob".into(),
        snoozed_by: "BOB".into(),
        until: until.as_str().to_owned(),
    };
    assert_eq!(
        current,
        vec![shown(2, &soon), shown(1, &until)],
        "soonest first, Bob's display name, Carol's ended snooze left out"
    );

    let mut merged = other.clone();
    merged.updated_on = at(5);
    merged.state = pr_reminder::domain::PrState::Merged;
    assert_eq!(s.submit(delivered("d-3", &merged)).await, Committed);
    assert_eq!(
        snoozes::current(&s.db, &at(6)).await.unwrap(),
        vec![shown(1, &until)],
        "a closed PR's snooze is not in force"
    );
}

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
    assert_eq!(snoozed, SnoozeOutcome::Snoozed);
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

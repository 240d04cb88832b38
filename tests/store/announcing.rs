//! Who hears about a change: a webhook delivery announces it in the routed room, a backfill
//! (reconciliation with `announce: false`) only writes state, and a message still waiting for a
//! PR that stopped being reviewable is withdrawn.

use pr_reminder::domain::routing::{Announce, Route};
use pr_reminder::domain::{PrState, Submission};
use pr_reminder::store::WriteOutcome::Committed;

use crate::build::{at, delivered, pr, pr_change, repo};
use crate::harness::{route, Store};
use crate::reads::Message;

/// acme's PRs are heard in `team`, everything else in `everyone` (first match wins).
fn routes(announce: Announce) -> Vec<Route> {
    vec![
        route(&["acme/*"], "team", announce),
        route(&["*"], "everyone", Announce::default()),
    ]
}

/// (room, repository key, number, events, state) of every queued message.
async fn queued(s: &Store) -> Vec<(String, String, i64, String, String)> {
    s.read
        .messages()
        .await
        .into_iter()
        .map(|m: Message| {
            let key = m.repository.as_str().to_owned();
            (m.room, key, m.number, m.events, m.state)
        })
        .collect()
}

fn message(key: &str, number: i64, events: &str) -> (String, String, i64, String, String) {
    let room = "team".to_owned();
    (room, key.into(), number, events.into(), "pending".into())
}

#[tokio::test]
async fn a_backfill_writes_state_but_announces_nothing_and_records_no_delivery() {
    let Some(s) = Store::start(&routes(Announce::default())).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let open = pr(&r, 1, at(1));
    let backfill = Submission::reconciliation(pr_change(&open), false);
    assert_eq!(s.submit(backfill).await, Committed);

    assert_eq!(s.read.pr(&r.key, 1).await.unwrap().state, "OPEN");
    assert_eq!(queued(&s).await, vec![]);
    assert_eq!(s.read.deliveries().await, vec![]);

    // Known from the backfill, a later webhook of the still-open PR is not news either.
    let mut later = pr(&r, 1, at(2));
    later.title = "Renamed title".into();
    let delivery = delivered("d-1", &later);
    assert_eq!(s.submit(delivery).await, Committed);
    assert_eq!(s.read.pr(&r.key, 1).await.unwrap().title, "Renamed title");
    assert_eq!(queued(&s).await, vec![]);
}

#[tokio::test]
async fn the_same_change_as_a_delivery_queues_one_opened_message_for_the_routed_room() {
    let Some(s) = Store::start(&routes(Announce::default())).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let delivery = delivered("d-1", &pr(&r, 1, at(1)));
    assert_eq!(s.submit(delivery).await, Committed);

    assert_eq!(s.read.pr(&r.key, 1).await.unwrap().state, "OPEN");
    assert_eq!(queued(&s).await, vec![message(r.key.as_str(), 1, "opened")]);
    assert_eq!(s.read.deliveries().await.len(), 1);
}

#[tokio::test]
async fn a_reconciliation_may_announce_yet_records_no_delivery() {
    let Some(s) = Store::start(&routes(Announce::default())).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let found = Submission::reconciliation(pr_change(&pr(&r, 1, at(1))), true);
    assert_eq!(s.submit(found).await, Committed);
    assert_eq!(queued(&s).await, vec![message(r.key.as_str(), 1, "opened")]);
    assert_eq!(s.read.deliveries().await, vec![]);
}

#[tokio::test]
async fn a_merge_withdraws_the_message_still_waiting_in_its_window() {
    // The route does not announce merges (the default).
    let Some(s) = Store::start(&routes(Announce::default())).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let open = pr(&r, 1, at(1));
    assert_eq!(s.submit(delivered("d-1", &open)).await, Committed);
    assert_eq!(queued(&s).await, vec![message(r.key.as_str(), 1, "opened")]);

    let mut merged = pr(&r, 1, at(2));
    merged.state = PrState::Merged;
    assert_eq!(s.submit(delivered("d-2", &merged)).await, Committed);
    assert_eq!(s.read.pr(&r.key, 1).await.unwrap().state, "MERGED");
    assert_eq!(queued(&s).await, vec![], "the opened message is withdrawn");
}

#[tokio::test]
async fn a_route_announcing_merges_adds_the_merge_to_the_waiting_message() {
    let announce = Announce {
        merged: true,
        ..Announce::default()
    };
    let Some(s) = Store::start(&routes(announce)).await else {
        return;
    };
    let r = repo("{r-1}", "acme/api");
    let mut merged = pr(&r, 1, at(2));
    merged.state = PrState::Merged;
    for (id, p) in [("d-1", pr(&r, 1, at(1))), ("d-2", merged)] {
        let delivery = delivered(id, &p);
        assert_eq!(s.submit(delivery).await, Committed);
    }
    assert_eq!(
        queued(&s).await,
        vec![message(r.key.as_str(), 1, "opened,merged")]
    );
}

#[tokio::test]
async fn the_first_matching_route_decides_the_room() {
    let Some(s) = Store::start(&routes(Announce::NOTHING)).await else {
        return;
    };
    let acme = repo("{r-1}", "acme/api");
    let other = repo("{r-2}", "other/web");
    for (id, p) in [("d-1", pr(&acme, 1, at(1))), ("d-2", pr(&other, 7, at(1)))] {
        let delivery = delivered(id, &p);
        assert_eq!(s.submit(delivery).await, Committed);
    }
    // acme's room announces nothing; other/web falls through to `everyone`.
    let messages = queued(&s).await;
    let rooms: Vec<(&str, i64, &str)> = messages
        .iter()
        .map(|m| (m.0.as_str(), m.2, m.3.as_str()))
        .collect();
    assert_eq!(rooms, vec![("everyone", 7, "opened")]);
}

//! Room leases on PostgreSQL: the replica sending a room keeps its lease through a long run of
//! chat requests.
//!
//! PostgreSQL-only: leases (`room_leases`, tied to a database session) are how replicas on one
//! PostgreSQL database share the rooms; on SQLite one process sends every room and there is no
//! lease to keep. The backlog summary itself is specified on both databases in
//! `crate::notifications`.

use super::*;
use crate::fake_chat::{hipchat_ok, Fake};
use crate::helpers::Served;
use crate::lifecycle::pr_event;
use crate::notifications::{hipchat, one_room};
use pr_reminder::config::NotifySettings;

/// A backlog summary of several parts to a slow chat server is one long run of requests: the
/// lease is renewed between the parts, not only between two looks at the queue. (Found by a
/// reviewer: with the renewal only between looks, a summary longer than the lease let a second
/// replica take the room mid-summary, and both sent; 416 PRs were announced twice.)
#[tokio::test]
async fn the_lease_is_renewed_between_the_parts_of_a_long_summary() {
    // The first message is refused, so that its retry finds every PR's news due at once.
    let slow_ok = hipchat_ok().set_delay(Duration::from_millis(1000));
    let fake = Fake::start(vec![wiremock::ResponseTemplate::new(503), slow_ok]).await;
    let url = fake.url("/v2/room/team/notification");
    let Some(app) = spawn_pg(
        "lease_summary",
        move |s| {
            s.notify = NotifySettings {
                coalesce: Duration::from_secs(3),
                timeout: Duration::from_secs(5),
                retry_min: Duration::from_secs(1),
                ..one_room(hipchat("team", url))
            };
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    // Titles at the message's field limit: 100 PRs' news make a summary of several parts. All
    // delivered at once, well within the first one's coalescing window.
    let bodies: Vec<Value> = (1..=100)
        .map(|k| {
            let title = format!("{k:03} {}", "long title ".repeat(30));
            pr_event(
                k,
                &format!("2026-11-20T10:00:{:02}.000000+00:00", k % 60),
                "OPEN",
                &title,
                "9b2c4e6f8a10",
                &[],
            )
        })
        .collect();
    futures_util::future::join_all(
        bodies
            .iter()
            .map(|body| app.processed("pullrequest:created", body)),
    )
    .await;
    let expires = || async {
        let at: String = sqlx::query_scalar(
            "SELECT CAST(extract(epoch FROM expires_at) AS text) FROM room_leases WHERE room = 'team'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        at.parse::<f64>().unwrap()
    };
    // The lease's end as each part arrives at the chat (its answer still 1 s away).
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hits = fake.hits().len();
        if hits > seen.len() {
            seen.push(expires().await);
        }
        let sent = app
            .count("SELECT count(*) FROM outbox WHERE state = 'sent'")
            .await;
        if sent == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "not all sent: {sent}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hits = fake.hits();
    let parts = hits.len() - 1;
    assert!(parts >= 4, "a summary of several parts, got {parts}");
    assert!(
        hits[1]
            .html()
            .starts_with("<b>While this room was unreachable, 100 pull requests changed: (1/"),
        "{}",
        hits[1].html()
    );
    assert_eq!(seen.len(), parts + 1, "every request seen: {seen:?}");
    assert!(
        seen[parts] - seen[1] >= 2.5,
        "the lease was renewed during the summary: {seen:?}"
    );
    let messages: i64 = app
        .count("SELECT count(DISTINCT message) FROM outbox WHERE state = 'sent'")
        .await;
    assert_eq!(messages, parts as i64, "each row sent once, by its part");
}

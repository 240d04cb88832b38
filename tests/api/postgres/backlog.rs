//! A room's backlog on PostgreSQL: one summary, its rows claimed, sent and released in one
//! statement each (`FOR UPDATE SKIP LOCKED`).

use super::*;
use crate::fake_chat::{hipchat_ok, Fake};
use crate::helpers::{route, ManualClock};
use crate::lifecycle::pr_event;
use pr_reminder::config::{NotifySettings, Room, Sink};
use wiremock::ResponseTemplate;

/// `notifications::a_room_back_from_an_outage_gets_one_summary_of_its_backlog` on
/// PostgreSQL, on a frozen clock: twelve PRs' news wait while the room refuses (503); the
/// room is probed every 5 s; once it answers, one summary lists all twelve, oldest first,
/// and every row is recorded sent with that summary at the same instant.
#[tokio::test]
async fn a_room_back_from_an_outage_gets_one_summary_of_its_backlog() {
    let down = || ResponseTemplate::new(503);
    let fake = Fake::start(vec![down(), down(), hipchat_ok()]).await;
    let url = fake.url("/v2/room/team/notification");
    let t0 = utc(2026, 11, 30, 9, 0);
    let clock = ManualClock::frozen(t0);
    let Some(app) = spawn_pg(
        "backlog",
        move |s| {
            s.notify = NotifySettings {
                rooms: vec![Room {
                    name: "team".into(),
                    sink: Sink::HipChat(SecretString::from(url)),
                }],
                routes: vec![route(&["*"], "team")],
                coalesce: Duration::from_millis(200),
                max_attempts: 10,
                timeout: Duration::from_secs(2),
                retry_min: Duration::from_secs(10),
                retry_max: Duration::from_secs(10),
                room_rate_per_minute: Some(6000),
            }
        },
        clock.clock(),
    )
    .await
    else {
        return;
    };
    for k in 1..=12 {
        let body = pr_event(
            k,
            &format!("2026-11-20T10:00:{k:02}.000000+00:00"),
            "OPEN",
            &format!("Outage {k}"),
            "9b2c4e6f8a10",
            &[],
        );
        app.processed("pullrequest:created", &body).await;
    }
    let ms = |n| t0 + chrono::Duration::milliseconds(n);
    for wait in [200, 5_200, 10_200] {
        assert!(clock.until_waiting(1, PATIENCE).await, "the room waits");
        assert_eq!(clock.waits(), vec![ms(wait)]);
        assert_eq!(clock.advance_to_next(), Some(ms(wait)));
    }
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 12)
        .await;
    let hits = fake.exactly(3).await;
    assert!(hits[0].html().contains("(acme/payments-api #1)"));
    assert_eq!(
        hits[1].body, hits[2].body,
        "the refused summary, then the same"
    );
    let html = hits[2].html();
    assert!(
        html.starts_with("<b>While this room was unreachable, 12 pull requests changed:</b>"),
        "{html}"
    );
    let mut from = 0;
    for k in 1..=12 {
        let item = format!(
            "<br><br><b>Needs review</b>: <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/{k}\">Outage {k}</a> (acme/payments-api #{k}) by Alice Author"
        );
        let found = html[from..]
            .find(&item)
            .unwrap_or_else(|| panic!("#{k} after the ones before it: {html}"));
        from += found + item.len();
    }
    let rows: Vec<(i64, i64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT number, attempts, sent_at, message FROM outbox ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let summary = rows[0].3.clone().unwrap();
    assert!(
        summary.starts_with("While this room was unreachable, 12 pull requests changed:\n"),
        "{summary}"
    );
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row.0, k as i64 + 1);
        assert_eq!(
            row.2.as_deref(),
            Some("2026-11-30T09:00:10.200000Z"),
            "#{}",
            row.0
        );
        assert_eq!(row.3.as_ref(), Some(&summary), "#{}", row.0);
    }
    assert_eq!(
        rows[0].1, 3,
        "#1: refused alone, refused in the summary, sent"
    );
}

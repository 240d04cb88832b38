//! `GET /status` on PostgreSQL: the lists, the chart's age buckets and the health tables.

use super::*;
use crate::fake_chat::Fake;
use crate::helpers::ManualClock;
use crate::lifecycle::key_of;
use crate::status::{
    assert_seeded_page, between, refusing_chat, seed, seeded_settings, start, STATUS_TOKEN,
};

/// `status::seeded_app` on PostgreSQL: rooms `payments` (console) and `web` (a chat that
/// refuses), and at `start()`: acme/payments-api #1 (1 day), #2 hostile title approved by
/// Bob (5 days), #3 Carol asks for changes (2 days), #4 a draft (6 h), #5 "WIP: ..."
/// (2 d 23 h), #6 snoozed by Bob (6 days); acme/web #7 (1 h), refused by its room; one
/// refused delivery.
async fn seeded_app() -> Option<(PgApp, Fake)> {
    let (fake, web_url) = refusing_chat().await;
    let clock = ManualClock::running(start());
    let app = spawn_pg("status", seeded_settings(web_url), clock.clock()).await?;
    seed(&app).await;
    app.wait_count("SELECT count(*) FROM deliveries", 8).await;

    // Bob snoozes #6 for a day (as `/reviews snooze` records it).
    sqlx::query(
        "INSERT INTO snoozes (user_key, repository_key, number, until, created_at)
         SELECT $1, repository_key, 6, '2026-11-25T09:00:00.000000Z',
                '2026-11-24T09:00:00.000000Z'
           FROM repositories WHERE full_name = 'acme/payments-api'",
    )
    .bind(key_of("bob"))
    .execute(&app.db)
    .await
    .unwrap();

    // The web room refused #7's message for good.
    fake.wait_for_hits(1).await;
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'failed'", 1)
        .await;
    Some((app, fake))
}

/// The page of `status::the_page_lists_what_waits_oldest_first_...`, read from PostgreSQL:
/// the lists and their order, the chart's age buckets, the last delivery of each flavour,
/// the refusals of the day, the failed message.
#[tokio::test]
async fn the_status_page_reads_lists_chart_and_health_from_postgres() {
    let Some((app, _fake)) = seeded_app().await else {
        return;
    };
    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(!html.contains("<script"), "{html}");

    assert_seeded_page(&html);
}

/// On PostgreSQL the health tables say which replica sends each room's messages and whether
/// its database session is still there (a killed replica's lease shows as gone until another
/// takes the room). SQLite's page has no such table: one process sends every room.
#[tokio::test]
async fn the_page_names_the_replica_sending_each_room() {
    let Some((app, _fake)) = seeded_app().await else {
        return;
    };
    // Each room's sender takes its lease as it starts.
    app.wait_count("SELECT count(*) FROM room_leases", 2).await;
    sqlx::query(
        "INSERT INTO room_leases (room, holder, expires_at, backend_pid)
         VALUES ('retired', 'old-host/1/1', now() + interval '1 minute', 0)",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    let table = between(&html, "<table id=\"leases\">", "</table>");
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 3, "{table}");
    // Readable: host, process id, start (not the lease's raw `host/pid/epoch-ms`).
    let this_process = format!(", process {}, started 20", std::process::id());
    for (row, room) in rows.iter().zip(["payments", "retired", "web"]) {
        assert!(row.starts_with(&format!("<td>{room}</td>")), "{row}");
    }
    for row in [rows[0], rows[2]] {
        assert!(
            row.contains(&this_process) && row.contains(">connected<"),
            "{row}"
        );
    }
    assert!(
        rows[1].contains("<td>old-host, process 1, started 1970-01-01 00:00 UTC</td>")
            && rows[1].contains(">gone: another replica"),
        "{}",
        rows[1]
    );
}

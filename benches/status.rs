//! Status page benchmark: `GET /status`'s work (the review queue read in full, the chart, the
//! health tables, the HTML) over 10,000 pending PRs in 100 repositories routed to 10 rooms.
//!
//!     cargo bench --bench status
//!
//! Generates the data straight into a fresh SQLite file, then times `status::gather` and
//! `status::page::render` five times and prints the times and the page's size. Asserts only that
//! the data is what it says (10,000 pending reviews).

mod common;

use std::time::Instant;

use pr_reminder::config::{Announce, Room, Route, Settings, SignaturePolicy, Sink};
use pr_reminder::domain::routing::Routing;
use pr_reminder::status;

const PRS: i64 = 10_000;
const REPOS: i64 = 100;
const ROOMS: i64 = 10;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("status-bench.db");
    let db = pr_reminder::store::open(&path, "normal").await?;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await?;

    let started = Instant::now();
    // No drafts, and at most one approval each (two are required): all 10,000 wait.
    common::seed(
        &pool,
        &common::Shape {
            prs: PRS,
            repos: REPOS,
            rooms: ROOMS,
            draft: "0",
            review_state: "CASE WHEN k.k = 1 AND p.number % 5 = 0 THEN 'approved' WHEN (p.number + k.k) % 5 = 1 THEN 'changes_requested' ELSE 'none' END",
        },
    )
    .await?;
    // Health rows: a day of deliveries (a few refused) and a few failed messages.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 5000)
         INSERT INTO deliveries (request_id, event_key, received_at, outcome, reason, flavour)
         SELECT printf('req-%d', i), 'pullrequest:updated',
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d seconds', i * 17)),
                CASE WHEN i % 50 = 0 THEN 'rejected' ELSE 'processed' END,
                CASE WHEN i % 50 = 0 THEN 'signature does not match' END,
                CASE WHEN i % 3 = 0 THEN 'datacenter' ELSE 'cloud' END
           FROM n",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO outbox (room, kind, repository_key, number, events, state, created_at,
                             not_before, attempts, last_error)
         SELECT 'room-' || (number % 10), 'pull_request', repository_key, number, 'opened',
                'failed', updated_on, updated_on, 10, 'HTTP 404 Not Found: no such room'
           FROM pull_requests WHERE number % 97 = 0",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let gauges = pr_reminder::store::status::gauges(&db).await?;
    assert_eq!(gauges.pending_reviews, PRS, "every PR waits");
    println!(
        "generated {PRS} pending PRs in {REPOS} repositories routed to {ROOMS} rooms in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let routes: Vec<Route> = (0..ROOMS)
        .map(|i| Route {
            repositories: vec![format!("w{i}/*")],
            rooms: vec![format!("room-{i}")],
            required_approvals: None,
            approvals_after_last_push: false,
            room_reminders: true,
            announce: Announce::default(),
            ignore_title_patterns: vec!["WIP".into()],
        })
        .collect();
    let routing = Routing::new(&routes, 2)?;
    let mut settings = Settings::with_defaults(SignaturePolicy::Demo);
    settings.notify.rooms = (0..ROOMS)
        .map(|i| Room {
            name: format!("room-{i}"),
            sink: Sink::Console,
        })
        .collect();
    settings.notify.routes = routes;

    let mut times = Vec::new();
    let mut gathers = Vec::new();
    let mut bytes = 0;
    let mut rows = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let page = status::gather(&db, &routing, &settings, chrono::Utc::now()).await?;
        gathers.push(t.elapsed().as_secs_f64());
        let html = status::page::render(&page);
        times.push(t.elapsed().as_secs_f64());
        bytes = html.len();
        rows = html.matches("<tr class=\"pr\"").count();
    }
    times.sort_by(f64::total_cmp);
    gathers.sort_by(f64::total_cmp);
    println!("page: {rows} PR rows, {} KiB of HTML", bytes / 1024);
    println!(
        "time (read + render): median {:.3} s, min {:.3} s, max {:.3} s (5 runs); reading alone: median {:.3} s",
        times[2], times[0], times[4], gathers[2]
    );
    pool.close().await;
    db.close().await;
    Ok(())
}

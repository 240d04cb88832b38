//! Sweep benchmark: 100,000 open PRs in 1,000 repositories routed to 50 rooms.
//!
//!     cargo bench --bench sweep
//!
//! Generates the data straight into a fresh SQLite file (set-based SQL, a few seconds), then
//! times `sweep::run` (selection, rendering, queueing one digest per room) several times and
//! reports wall time and the process's memory. Prints its numbers; asserts nothing.

mod common;

use std::time::Instant;

use pr_reminder::config::{Announce, Room, Route, Settings, SignaturePolicy, Sink};
use pr_reminder::domain::routing::Routing;
use pr_reminder::domain::Trigger;
use pr_reminder::sweep;

const PRS: i64 = 100_000;
const REPOS: i64 = 1_000;
const ROOMS: i64 = 50;

fn memory_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // SWEEP_BENCH_DB=path keeps the generated database for a look with sqlite3.
    let path = std::env::var_os("SWEEP_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("sweep-bench.db"));
    let _ = std::fs::remove_file(&path);
    let db = pr_reminder::store::open(&path, "normal").await?;
    // The data is generated straight in SQL, on a connection of the bench's own.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await?;

    let started = Instant::now();
    // One PR in ten a draft; reviewers approve or ask for changes now and then.
    common::seed(
        &pool,
        &common::Shape {
            prs: PRS,
            repos: REPOS,
            rooms: ROOMS,
            draft: "(i / ?2) % 10 = 0",
            review_state: "CASE (p.number + k.k) % 5 WHEN 0 THEN 'approved' WHEN 1 THEN 'changes_requested' ELSE 'none' END",
        },
    )
    .await?;
    let (prs, reviews, statuses): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pull_requests), (SELECT count(*) FROM reviews),
                (SELECT count(*) FROM commit_statuses)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "generated {prs} open PRs ({} drafts) in {REPOS} repositories, {reviews} reviews, {statuses} build statuses in {:.1} s",
        prs / 10,
        started.elapsed().as_secs_f64()
    );

    let rooms: Vec<Room> = (0..ROOMS)
        .map(|i| Room {
            name: format!("room-{i}"),
            sink: Sink::Console,
        })
        .collect();
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
    settings.notify.rooms = rooms;
    settings.notify.routes = routes;

    let before = memory_kb("RssAnon:");
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        let report = sweep::run(
            &db,
            &routing,
            &settings,
            chrono::Utc::now(),
            Trigger::Cli,
            true,
        )
        .await?;
        times.push(t.elapsed().as_secs_f64());
        last = Some(report);
    }
    let report = last.expect("ran");
    let posted = report.rooms.iter().filter(|r| r.status == "posted").count();
    let waiting: usize = report
        .rooms
        .iter()
        .map(|r| r.waiting_review + r.waiting_on_author + r.ready_to_merge)
        .sum();
    times.sort_by(f64::total_cmp);
    println!(
        "sweep over {prs} open PRs -> {posted} rooms posted, {waiting} PRs listed as waiting (each digest cut to 10,000 chars)"
    );
    println!(
        "time: median {:.3} s, min {:.3} s, max {:.3} s (5 runs)",
        times[2], times[0], times[4]
    );
    println!(
        "memory after the sweeps: heap (RssAnon) {} MiB; file pages mapped by SQLite's mmap \
         (RssFile) {} MiB; peak RSS (VmHWM, includes generating the data) {} MiB",
        memory_kb("RssAnon:") / 1024,
        memory_kb("RssFile:") / 1024,
        memory_kb("VmHWM:") / 1024
    );
    println!("heap before the sweeps: {} MiB", before / 1024);
    let digest_bytes: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(length(payload)), 0) FROM outbox WHERE kind = 'digest'",
    )
    .fetch_one(&pool)
    .await?;
    println!("largest digest payload: {digest_bytes} bytes");
    pool.close().await;
    db.close().await;
    Ok(())
}

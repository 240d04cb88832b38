//! Review-flow report benchmark (issue 28): `pr-reminder report`'s work (the read of the dated
//! facts, `ReviewFlow::compute`, the table) over 100,000 PRs in 200 repositories routed to 10
//! rooms, with 1,000,000 deliveries in the same database. Must answer in under 2 s.
//!
//!     cargo bench --bench report
//!
//! Generates the rows straight into a fresh SQLite file (PRs opened one every 4 minutes over
//! the last 278 days, the newest 2,000 still open; three turn spans and two review requests
//! each), then times `report::flow` + `report::to_text` five times for the default window
//! (28 days; 12 weeks are read for the trend) and for the whole history, and prints the
//! medians. Asserts only that the data is what it says.

use std::time::Instant;

use pr_reminder::config::{Announce, Room, Route, Settings, SignaturePolicy, Sink};

const PRS: i64 = 100_000;
const REPOS: i64 = 200;
const ROOMS: i64 = 10;
const DELIVERIES: i64 = 1_000_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// `now` minus `seconds` (an SQL expression) as a stored instant.
fn at(seconds: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%S', 'now', printf('-%d seconds', {seconds})) || '.000000Z'")
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("report-bench.db");
    let db = pr_reminder::store::open(&path, "normal").await?;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await?;

    let started = Instant::now();
    // PR i was opened i * 240 s ago; ages below are in seconds before now (a smaller age is
    // later). Ready 10 minutes after opening for one in ten (drafts); first review up to 16 h
    // later (none for one in 13); approved an hour after that (none for one in 7); closed up
    // to 50 h after opening, one in ten declined; the newest 2,000 open.
    let created = "n.i * 240";
    let ready = "n.i * 240 - CASE WHEN n.i % 10 = 0 THEN 600 ELSE 0 END";
    let review = "n.i * 240 - 600 - (n.i % 97) * 600";
    let approved = "n.i * 240 - 4200 - (n.i % 97) * 600";
    let closed = "n.i * 240 - (n.i % 50 + 1) * 3600";
    let open = "n.i < 2000";
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {PRS})
         INSERT INTO pull_request_facts (repository_key, number, repository_name, title, url,
             author, created_on, ready_on, first_review_on, approved_on, state, closed_on,
             approvals, required_approvals, rounds, updated_on, source_commit, pushed_on,
             blocked, turn, turn_since)
         SELECT 'cloud/{{r' || (n.i % {REPOS}) || '}}', n.i, 'w' || (n.i % {ROOMS}) || '/repo-'
                || (n.i % {REPOS}), 'PR ' || n.i, NULL, '{{user-' || (n.i % 50) || '}}',
                {c}, {r}, CASE WHEN n.i % 13 = 0 THEN NULL ELSE {v} END,
                CASE WHEN n.i % 13 = 0 OR n.i % 7 = 0 THEN NULL ELSE {a} END,
                CASE WHEN {open} THEN 'OPEN' WHEN n.i % 10 = 0 THEN 'DECLINED' ELSE 'MERGED' END,
                CASE WHEN {open} THEN NULL ELSE {x} END,
                CASE WHEN n.i % 7 = 0 THEN 1 ELSE 2 END, 2, n.i % 3, {c}, 'abc', {c}, 0,
                CASE WHEN {open} THEN 'reviewers' END, CASE WHEN {open} THEN {v} END
           FROM n",
        c = at(created),
        r = at(ready),
        v = at(review),
        a = at(approved),
        x = at(closed),
    ))
    .execute(&pool)
    .await?;
    // Spans: reviewers from ready to the first review, the author's hour, then reviewers
    // again until closed (or now).
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {PRS})
         INSERT INTO pull_request_turns (repository_key, number, turn, since, until)
         SELECT 'cloud/{{r' || (n.i % {REPOS}) || '}}', n.i, s.turn,
                CASE s.k WHEN 0 THEN {r} WHEN 1 THEN {v} ELSE {w} END,
                CASE s.k WHEN 0 THEN {v} WHEN 1 THEN {w}
                         ELSE CASE WHEN {open} THEN NULL ELSE {x} END END
           FROM n CROSS JOIN (SELECT 0 AS k, 'reviewers' AS turn UNION ALL
                              SELECT 1, 'author' UNION ALL SELECT 2, 'reviewers') s",
        r = at(ready),
        v = at(review),
        w = at("n.i * 240 - 4200 - (n.i % 97) * 600 + 600"),
        x = at(closed),
    ))
    .execute(&pool)
    .await?;
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {PRS})
         INSERT INTO pull_request_review_requests (repository_key, number, reviewer,
             reviewer_name, asked_on, reviewed_on)
         SELECT 'cloud/{{r' || (n.i % {REPOS}) || '}}', n.i, '{{rev-' || ((n.i + k.k) % 40) || '}}',
                'Reviewer ' || ((n.i + k.k) % 40), {r},
                CASE WHEN n.i % 13 = 0 OR k.k = 1 AND n.i % 3 = 0 THEN NULL ELSE {v} END
           FROM n CROSS JOIN (SELECT 0 AS k UNION ALL SELECT 1) k",
        r = at(ready),
        v = at(review),
    ))
    .execute(&pool)
    .await?;
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {DELIVERIES})
         INSERT INTO deliveries (request_id, event_key, received_at, outcome, repository,
                                 pr_number, flavour)
         SELECT printf('req-%d', i), 'pullrequest:updated', {t}, 'processed',
                'w' || (i % {ROOMS}) || '/repo-' || (i % {REPOS}), i / 10, 'cloud'
           FROM n",
        t = at("i * 24"),
    ))
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pull_request_facts), (SELECT count(*) FROM pull_request_turns),
                (SELECT count(*) FROM pull_request_review_requests), (SELECT count(*) FROM deliveries)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(counts, (PRS, 3 * PRS, 2 * PRS, DELIVERIES));
    println!(
        "generated {PRS} PRs ({} turn spans, {} review requests) in {REPOS} repositories routed \
         to {ROOMS} rooms, and {DELIVERIES} deliveries, in {:.1} s",
        counts.1,
        counts.2,
        started.elapsed().as_secs_f64()
    );

    let mut settings = Settings::with_defaults(SignaturePolicy::Demo);
    settings.notify.rooms = (0..ROOMS)
        .map(|i| Room {
            name: format!("room-{i}"),
            sink: Sink::Console,
        })
        .collect();
    settings.notify.routes = (0..ROOMS)
        .map(|i| Route {
            repositories: vec![format!("w{i}/*")],
            rooms: vec![format!("room-{i}")],
            required_approvals: None,
            approvals_after_last_push: false,
            room_reminders: true,
            announce: Announce::default(),
            ignore_title_patterns: Vec::new(),
        })
        .collect();

    let now = chrono::Utc::now();
    for (label, since) in [
        ("default window (28 days)", now - chrono::Duration::days(28)),
        (
            "whole history (280 days)",
            now - chrono::Duration::days(280),
        ),
    ] {
        let mut times = Vec::new();
        let mut reads = Vec::new();
        let mut shown = (0, 0, 0);
        for _ in 0..5 {
            let t = Instant::now();
            let from = pr_reminder::domain::Timestamp::from_datetime(
                pr_reminder::domain::analytics::earliest(since, now),
            );
            let rows = pr_reminder::store::analytics::read(&db, &from, None).await?;
            reads.push(t.elapsed().as_secs_f64());
            let flow = pr_reminder::report::flow(&db, &settings, since, now, None).await?;
            let text = pr_reminder::report::to_text(&flow);
            // The read is timed twice above (alone, then within `flow`): the report's own
            // time is the total minus the first read.
            times.push(t.elapsed().as_secs_f64() - reads.last().copied().unwrap_or(0.0));
            shown = (
                rows.facts.len(),
                flow.overall.merged as usize,
                text.lines().count(),
            );
        }
        times.sort_by(f64::total_cmp);
        reads.sort_by(f64::total_cmp);
        println!(
            "{label}: {} PRs read, {} merged in the window, {} lines of table; report (read + \
             compute + table): median {:.3} s, min {:.3} s, max {:.3} s (5 runs); reading \
             alone: median {:.3} s",
            shown.0, shown.1, shown.2, times[2], times[0], times[4], reads[2]
        );
    }
    pool.close().await;
    db.close().await;
    Ok(())
}

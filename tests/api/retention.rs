//! Retention (`[retention]`): the built-in schedule and `pr-reminder prune [--dry-run]` delete
//! exactly the old rows of each table, keep the recent ones, failed messages, open pull
//! requests and whatever a kept row names, and a recent redelivery stays a duplicate; a prune
//! of the review-flow histories (tests/api/analytics.rs) leaves their figures byte for byte.
//!
//! One fixed set of rows (`seed`) dated relative to the app's clock, and the exact counts it
//! must leave (`PRUNED`, `KEPT`), shared by every scenario.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use pr_reminder::clock::{Clock, ManualClock};
use pr_reminder::config::RetentionSettings;
use pr_reminder::domain::Timestamp;
use serde_json::Value;

use crate::analytics;
use crate::fake_chat::PATIENCE;
use crate::helpers::{on_both, run_binary, spawn_on, test_settings, uuid_like, App, On, Served};
use crate::lifecycle::pr_event;

on_both!(
    the_schedule_prunes_old_rows_and_keeps_the_rest,
    prune_dry_run_deletes_nothing_and_counts_what_prune_deletes,
    a_redelivery_two_hours_later_is_still_a_duplicate_after_a_prune,
    a_prune_keeps_the_figures_identical_and_a_recent_redelivery_a_duplicate,
);

const REPO: &str = "cloud/{retention-repo}";

/// What the defaults (90 days of deliveries, 30 of messages, 365 of closed PRs) prune of
/// `seed`, per table (every table of the report).
const PRUNED: [(&str, u64); 13] = [
    ("deliveries", 4),
    ("sweeps", 2),
    ("outbox", 4),
    ("direct_outbox", 2),
    ("pull_requests", 2),
    ("reviews", 2),
    ("default_reviewers", 1),
    ("snoozes", 1),
    ("chat_messages", 1),
    ("direct_mutes", 1),
    ("direct_turns", 1),
    ("commit_statuses", 2),
    ("reconciled_commits", 1),
];

/// What stays of `seed` after a prune, by the rows' own names.
const KEPT: [(&str, &str); 11] = [
    ("SELECT request_id FROM deliveries ORDER BY id", "d5,d6"),
    ("SELECT reason FROM sweeps ORDER BY id", "s3,s4"),
    ("SELECT events FROM outbox ORDER BY id", "o2,o4,o5"),
    ("SELECT dedupe FROM direct_outbox ORDER BY id", "q2"),
    (
        "SELECT title FROM pull_requests ORDER BY number",
        "pr2 declined, failed message,pr3 open,pr4 merged lately",
    ),
    (
        "SELECT CAST(number AS TEXT) || ':' || user_key FROM reviews ORDER BY number",
        "2:u1,3:u1,4:u1",
    ),
    (
        "SELECT commit_hash FROM commit_statuses ORDER BY commit_hash",
        "aaaaaaaaaaaa0000000000000000000000000000,cccccccccccc0000000000000000000000000000",
    ),
    (
        "SELECT commit_hash FROM reconciled_commits ORDER BY commit_hash",
        "aaaaaaaaaaaa",
    ),
    ("SELECT user_key FROM snoozes", ""),
    ("SELECT channel FROM chat_messages", ""),
    (
        "SELECT flavour || ' ' || repository || ' ' || received_at FROM repository_deliveries",
        "cloud acme/old {98 days}",
    ),
];

/// `now - days` as stored (`Timestamp` text).
fn ago(now: DateTime<Utc>, days: i64) -> String {
    Timestamp::from_datetime(now - chrono::Duration::days(days))
        .as_str()
        .to_owned()
}

/// The rows every scenario starts from, dated relative to `now`. Named (request ids, titles,
/// events...) so that what stays can be read back by name.
fn seed(now: DateTime<Utc>) -> String {
    let d = |days: i64| ago(now, days);
    let hour = Timestamp::from_datetime(now - chrono::Duration::hours(1))
        .as_str()
        .to_owned();
    format!(
        "INSERT INTO users (user_key) VALUES ('u1'), ('u2');
         INSERT INTO repositories (repository_key, full_name) VALUES ('{REPO}', 'acme/repo');

         -- Deliveries: three old processed ones of acme/old, an old rejected one, a recent
         -- processed one and an ignored one of an hour ago.
         INSERT INTO deliveries (request_id, event_key, received_at, outcome, repository, flavour)
         VALUES ('d1', 'pullrequest:created', '{d100}', 'processed', 'acme/old', 'cloud'),
                ('d2', 'pullrequest:updated', '{d99}', 'processed', 'acme/old', 'cloud'),
                ('d3', 'pullrequest:updated', '{d98}', 'processed', 'ACME/old', 'cloud'),
                ('d4', 'pullrequest:created', '{d95}', 'rejected', NULL, 'cloud'),
                ('d5', 'pullrequest:created', '{d10}', 'processed', 'acme/new', 'cloud'),
                ('d6', 'repo:push', '{hour}', 'ignored', NULL, 'cloud');

         -- Pull requests: 1 merged 400 days ago with a row in every table naming it; 2 declined
         -- as long ago but with a failed message; 3 open and untouched for 500 days; 4 merged
         -- 10 days ago; 5 superseded 366 days ago.
         INSERT INTO pull_requests (repository_key, number, title, author, state, source_commit,
                                    created_on, updated_on, last_activity_on)
         VALUES ('{REPO}', 1, 'pr1 merged long ago', 'u2', 'MERGED', 'eeeeeeeeeeee', '{d500}', '{d400}', '{d400}'),
                ('{REPO}', 2, 'pr2 declined, failed message', 'u2', 'DECLINED', NULL, '{d500}', '{d400}', '{d400}'),
                ('{REPO}', 3, 'pr3 open', 'u2', 'OPEN', 'aaaaaaaaaaaa', '{d800}', '{d500}', '{d500}'),
                ('{REPO}', 4, 'pr4 merged lately', 'u2', 'MERGED', NULL, '{d20}', '{d10}', '{d10}'),
                ('{REPO}', 5, 'pr5 superseded', 'u2', 'SUPERSEDED', NULL, '{d400}', '{d366}', '{d366}');
         INSERT INTO reviews (repository_key, number, user_key, role, state, snapshot_on)
         VALUES ('{REPO}', 1, 'u1', 'REVIEWER', 'approved', '{d400}'),
                ('{REPO}', 1, 'u2', 'PARTICIPANT', 'none', '{d400}'),
                ('{REPO}', 2, 'u1', 'REVIEWER', 'none', '{d400}'),
                ('{REPO}', 3, 'u1', 'REVIEWER', 'none', '{d500}'),
                ('{REPO}', 4, 'u1', 'REVIEWER', 'approved', '{d10}');
         INSERT INTO default_reviewers (repository_key, number, user_key, position, checked_on)
         VALUES ('{REPO}', 1, 'u1', 0, '{d400}');
         INSERT INTO snoozes (user_key, repository_key, number, until, created_at)
         VALUES ('u1', '{REPO}', 1, '{d399}', '{d401}');
         INSERT INTO chat_messages (room, repository_key, number, channel, ts, created_at)
         VALUES ('team', '{REPO}', 1, 'C1', '1.2', '{d401}');
         INSERT INTO direct_mutes (person, repository_key, number, created_at)
         VALUES ('u1', '{REPO}', 1, '{d401}');
         INSERT INTO direct_turns (person, repository_key, number, turn, seen_at)
         VALUES ('u1', '{REPO}', 1, 'review', '{d401}');

         -- Room messages: o0 a digest sent 41 days ago, named by sweep s1 (which goes);
         -- o1 sent 40 days ago; o2 a digest as old that the kept sweep s3 names;
         -- o3 a digest sent 35 days ago; o4 sent 5 days ago; o5 failed 100 days ago (about PR 2);
         -- o6 sent 2 days ago about PR 1 (goes with it).
         INSERT INTO outbox (room, kind, repository_key, number, events, state, created_at,
                             not_before, sent_at)
         VALUES ('team', 'digest', NULL, NULL, 'o0', 'sent', '{d41}', '{d41}', '{d41}'),
                ('team', 'pull_request', '{REPO}', 4, 'o1', 'sent', '{d40}', '{d40}', '{d40}'),
                ('team', 'digest', NULL, NULL, 'o2', 'sent', '{d38}', '{d38}', '{d38}'),
                ('team', 'digest', NULL, NULL, 'o3', 'sent', '{d35}', '{d35}', '{d35}'),
                ('team', 'pull_request', '{REPO}', 4, 'o4', 'sent', '{d5}', '{d5}', '{d5}'),
                ('team', 'pull_request', '{REPO}', 2, 'o5', 'failed', '{d100}', '{d100}', NULL),
                ('team', 'pull_request', '{REPO}', 1, 'o6', 'sent', '{d2}', '{d2}', '{d2}');
         -- Direct messages: q1 a queue sent 40 days ago, q2 failed 100 days ago, q3 news of PR 1
         -- sent 31 days ago.
         INSERT INTO direct_outbox (chat, person, kind, repository_key, number, dedupe, payload,
                                    state, created_at, not_before, sent_at)
         VALUES ('slack', 'u1', 'queue', NULL, NULL, 'q1', '{{}}', 'sent', '{d40}', '{d40}', '{d40}'),
                ('slack', 'u1', 'queue', NULL, NULL, 'q2', '{{}}', 'failed', '{d100}', '{d100}', NULL),
                ('slack', 'u1', 'news', '{REPO}', 1, 'q3', '{{}}', 'sent', '{d31}', '{d31}', '{d31}');
         -- Sweeps of room team: s1 posted 40 days ago, s2 skipped 39 days ago, s3 the last
         -- posted (38 days ago, digest o2), s4 the last (skipped yesterday).
         INSERT INTO sweeps (room, at, trigger, outcome, reason, outbox_id)
         VALUES ('team', '{d40}', 'schedule', 'posted', 's1',
                 (SELECT id FROM outbox WHERE events = 'o0')),
                ('team', '{d39}', 'schedule', 'skipped', 's2', NULL),
                ('team', '{d38}', 'schedule', 'posted', 's3',
                 (SELECT id FROM outbox WHERE events = 'o2')),
                ('team', '{d1}', 'schedule', 'skipped', 's4', NULL);

         -- Builds: of a commit no PR names (old), of PR 1's commit (old: goes with PR 1), of
         -- open PR 3's commit (old), and a recent one.
         INSERT INTO commit_statuses (commit_hash, key, repository_key, state, updated_on)
         VALUES ('bbbbbbbbbbbb0000000000000000000000000000', 'ci', '{REPO}', 'SUCCESSFUL', '{d400}'),
                ('eeeeeeeeeeee0000000000000000000000000000', 'ci', '{REPO}', 'SUCCESSFUL', '{d400}'),
                ('aaaaaaaaaaaa0000000000000000000000000000', 'ci', '{REPO}', 'FAILED', '{d400}'),
                ('cccccccccccc0000000000000000000000000000', 'ci', '{REPO}', 'SUCCESSFUL', '{d10}');
         INSERT INTO reconciled_commits (repository_key, commit_hash, checked_on)
         VALUES ('{REPO}', 'dddddddddddd', '{d400}'), ('{REPO}', 'aaaaaaaaaaaa', '{d400}');",
        d1 = d(1),
        d2 = d(2),
        d5 = d(5),
        d10 = d(10),
        d20 = d(20),
        d31 = d(31),
        d35 = d(35),
        d38 = d(38),
        d39 = d(39),
        d40 = d(40),
        d41 = d(41),
        d95 = d(95),
        d98 = d(98),
        d99 = d(99),
        d100 = d(100),
        d366 = d(366),
        d399 = d(399),
        d400 = d(400),
        d401 = d(401),
        d500 = d(500),
        d800 = d(800),
    )
}

async fn row_counts(app: &App) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    // Every table a prune deletes from, and the summary it folds deliveries into.
    let tables = pr_reminder::store::retention::TABLES
        .iter()
        .chain(&["repository_deliveries"]);
    for table in tables {
        let n = app
            .count_rows(&format!("SELECT count(*) FROM {table}"))
            .await;
        counts.push(((*table).to_owned(), n));
    }
    counts
}

/// The rows `KEPT` names, each query's values joined by commas.
async fn assert_kept(app: &App, now: DateTime<Utc>) {
    for (sql, want) in KEPT {
        let rows: Vec<(Option<String>,)> = app.query_rows(sql).await;
        let got: Vec<String> = rows.into_iter().map(|(v,)| v.unwrap_or_default()).collect();
        let want = want.replace("{98 days}", &ago(now, 98));
        assert_eq!(got.join(","), want, "{sql}");
    }
}

/// Moves the clock a minute at a time (the first prune is due a minute after start, counted
/// from when the task first waited) until `sql` counts `want`.
async fn run_schedule_until(clock: &ManualClock, app: &App, sql: &str, want: i64) {
    let started = std::time::Instant::now();
    loop {
        clock.advance(Duration::from_secs(61));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = app.count_rows(sql).await;
        if got == want {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{sql}: {got}, not {want}");
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// The built-in schedule prunes a minute after start (on the service's clock): exactly the old
/// rows of each table go, and `pr_reminder_pruned_rows_total` counts them per table.
async fn the_schedule_prunes_old_rows_and_keeps_the_rest(on: On) {
    let now = utc(2026, 6, 1, 12, 0);
    let clock = ManualClock::frozen(now);
    let Some(app) = spawn_on(
        on,
        "retention_schedule",
        |s| s.retention = RetentionSettings::default(),
        clock.clock(),
    )
    .await
    else {
        return;
    };
    app.execute(&seed(now)).await;
    let before = row_counts(&app).await;

    // Nothing before the first run is due.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(row_counts(&app).await, before);

    // The last table pruned (reconciled_commits), then every count.
    run_schedule_until(&clock, &app, "SELECT count(*) FROM reconciled_commits", 1).await;
    let after = row_counts(&app).await;
    for (table, rows) in PRUNED {
        let was = before.iter().find(|(t, _)| t == table).unwrap().1;
        let is = after.iter().find(|(t, _)| t == table).unwrap().1;
        assert_eq!(was - is, rows as i64, "{table}: {was} before, {is} after");
    }
    assert_kept(&app, now).await;

    // The counter, per table (scraped once the run's last batch is counted).
    let started = std::time::Instant::now();
    loop {
        let (status, text) = app.get_text("/metrics", None).await;
        assert_eq!(status, 200, "{text}");
        let all = PRUNED.iter().all(|(table, rows)| {
            text.contains(&format!(
                "pr_reminder_pruned_rows_total{{table=\"{table}\"}} {rows}\n"
            ))
        });
        if all {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An hour later the next run finds nothing more to delete.
    clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(row_counts(&app).await, after);
}

/// `pr-reminder prune --dry-run --json` deletes nothing and reports exactly what `prune --json`
/// then deletes (the defaults: 90, 30 and 365 days).
async fn prune_dry_run_deletes_nothing_and_counts_what_prune_deletes(on: On) {
    // The service prunes nothing itself (the tests' settings): only the binary does, with
    // the defaults.
    let Some(app) = spawn_on(on, "retention_cli", |_| {}, Clock::system()).await else {
        return;
    };
    let now = Utc::now();
    app.execute(&seed(now)).await;
    let before = row_counts(&app).await;

    let (code, out, err) = run_binary(&app.database(), &["prune", "--dry-run", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let dry: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(dry["dry_run"], true, "{out}");
    assert_eq!(dry["skipped"], false, "{out}");
    for (table, rows) in PRUNED {
        assert_eq!(dry["tables"][table], rows, "{table}: {out}");
    }
    assert_eq!(
        row_counts(&app).await,
        before,
        "a dry run deleted something"
    );

    let (code, out, err) = run_binary(&app.database(), &["prune", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let real: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(real["dry_run"], false, "{out}");
    assert_eq!(real["tables"], dry["tables"], "{out}");
    assert_kept(&app, now).await;

    // The text report: one line per table in pruning order, then the total.
    let (code, out, err) = run_binary(&app.database(), &["prune", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["deliveries", "0", "would", "delete"],
        "{out}"
    );
    assert_eq!(
        lines[13].split_whitespace().collect::<Vec<_>>(),
        ["total", "0", "would", "delete"],
        "{out}"
    );
}

/// With `deliveries_days` shorter than a day, a delivery of two hours ago is kept by a prune,
/// and its redelivery is answered as a duplicate.
async fn a_redelivery_two_hours_later_is_still_a_duplicate_after_a_prune(on: On) {
    let now = utc(2026, 11, 20, 12, 0);
    let clock = ManualClock::frozen(now);
    let Some(app) = spawn_on(
        on,
        "retention_redelivery",
        |s| s.retention.deliveries = Some(chrono::Duration::hours(1)),
        clock.clock(),
    )
    .await
    else {
        return;
    };
    // A delivery of two days ago, which the prune deletes: the sign that it ran.
    app.execute(&format!(
        "INSERT INTO deliveries (request_id, event_key, received_at, outcome, repository, flavour)
         VALUES ('marker', 'repo:push', '{}', 'ignored', NULL, 'cloud')",
        ago(now, 2)
    ))
    .await;
    let body = pr_event(
        7,
        "2026-11-20T11:00:00.000000+00:00",
        "OPEN",
        "Pay",
        "abc123abc123",
        &[],
    );
    let id = uuid_like("retention");
    let first = app.deliver_body("pullrequest:created", &id, &body).await;
    assert_eq!(first.body["status"], "processed", "{}", first.body);

    clock.advance(Duration::from_secs(2 * 3600));
    run_schedule_until(
        &clock,
        &app,
        "SELECT count(*) FROM deliveries WHERE request_id = 'marker'",
        0,
    )
    .await;
    assert_eq!(
        app.count_rows(&format!(
            "SELECT count(*) FROM deliveries WHERE request_id = '{id}'"
        ))
        .await,
        1
    );
    let again = app.deliver_body("pullrequest:created", &id, &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body,
        serde_json::json!({"status": "duplicate", "request_id": id})
    );
}

/// The figures of the review-flow histories of tests/api/analytics.rs (over their whole span,
/// to a fixed end), serialised as `pr-reminder report --json` prints them.
async fn figures(app: &App, clock: &ManualClock) -> String {
    let mut settings = test_settings(
        pr_reminder::store::Database::parse(&app.database()).unwrap(),
        &clock.clock(),
    );
    analytics::settings(&mut settings);
    let db = analytics::connect(app).await;
    let flow = pr_reminder::report::flow(
        &db,
        &settings,
        utc(2019, 1, 1, 0, 0),
        Some(utc(2026, 12, 1, 0, 0)),
        None,
    )
    .await
    .unwrap();
    db.close().await;
    serde_json::to_string_pretty(&flow).unwrap()
}

/// Waits until every room message is sent (one waiting would keep its pull request).
async fn all_sent(app: &App) {
    let started = std::time::Instant::now();
    loop {
        let unsent = app
            .count_rows("SELECT count(*) FROM outbox WHERE state <> 'sent'")
            .await;
        if unsent == 0 {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{unsent} messages not sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A prune that takes the histories' deliveries, their messages and their closed pull requests
/// (every retention a day) leaves the figures byte for byte as they were, and the facts tables
/// row for row; a delivery of an hour ago stays, and its redelivery is a duplicate.
async fn a_prune_keeps_the_figures_identical_and_a_recent_redelivery_a_duplicate(on: On) {
    // The Cloud histories arrive three days ago on the service's clock, the Data Center one an
    // hour ago; the binary prunes on the system clock.
    let now = Utc::now();
    let clock = ManualClock::frozen(now - chrono::Duration::days(3));
    let Some(app) = spawn_on(on, "retention_figures", analytics::settings, clock.clock()).await
    else {
        return;
    };
    if analytics::cloud_history(&app).await.is_none() {
        return;
    }
    analytics::weekend_history(&app).await.unwrap();
    // Their messages sent then, three days ago.
    all_sent(&app).await;
    clock.advance(Duration::from_secs(3 * 86_400 - 3600));
    analytics::datacenter_history(&app).await.unwrap();
    all_sent(&app).await;

    let figures_before = figures(&app, &clock).await;
    // The four PRs count: three merged (#7, #11 and #5), which the prune takes.
    let flow: Value = serde_json::from_str(&figures_before).unwrap();
    assert_eq!(
        (&flow["overall"]["opened"], &flow["overall"]["merged"]),
        (&serde_json::json!(4), &serde_json::json!(3)),
        "{figures_before}"
    );
    let facts_before = (
        analytics::facts(&app).await,
        analytics::spans(&app).await,
        analytics::requests(&app).await,
    );
    let deliveries = app.count_rows("SELECT count(*) FROM deliveries").await;
    let messages = app.count_rows("SELECT count(*) FROM outbox").await;
    // #7, #9, #11 (Cloud) and #5 (Data Center); the Data Center deliveries of an hour ago.
    assert_eq!(
        app.count_rows("SELECT count(*) FROM pull_requests").await,
        4
    );
    assert!(messages > 0, "no message to prune");
    let recent: Vec<(String, String)> = app
        .query_rows("SELECT event_key, request_id FROM deliveries ORDER BY id")
        .await;
    let recent: Vec<(String, String)> = recent
        .into_iter()
        .filter(|(key, _)| key.starts_with("pr:"))
        .collect();
    assert_eq!(recent.len(), 4, "{recent:?}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pr-reminder.toml");
    std::fs::write(
        &config,
        "[retention]\ndeliveries_days = 1\noutbox_days = 1\nclosed_pull_requests_days = 1\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (code, out, err) =
        run_binary(&app.database(), &["--config", &config, "prune", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let pruned: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

    // The rows went: the Cloud deliveries of three days ago, every message (sent three days
    // ago, or about a closed PR), every closed PR; the open #9 and the recent deliveries stay.
    assert_eq!(pruned["tables"]["deliveries"], deliveries - 4, "{out}");
    assert_eq!(pruned["tables"]["pull_requests"], 3, "{out}");
    assert_eq!(pruned["tables"]["outbox"], messages, "{out}");
    let kept: Vec<(String, String)> = app
        .query_rows("SELECT event_key, request_id FROM deliveries ORDER BY id")
        .await;
    assert_eq!(kept, recent);
    let open: Vec<(i64, String)> = app
        .query_rows("SELECT number, state FROM pull_requests")
        .await;
    assert_eq!(open, [(9, "OPEN".to_owned())]);
    assert_eq!(app.count_rows("SELECT count(*) FROM outbox").await, 0);

    // The figures and their rows, unchanged.
    assert_eq!(figures(&app, &clock).await, figures_before);
    assert_eq!(
        (
            analytics::facts(&app).await,
            analytics::spans(&app).await,
            analytics::requests(&app).await,
        ),
        facts_before
    );

    // The merge of #5 (an hour ago), delivered again: a duplicate, #5 not brought back.
    let (key, id) = recent.last().unwrap().clone();
    assert_eq!(key, "pr:merged");
    let body = analytics::shared("server/go-playground-webhooks/pr-merged.json").unwrap();
    let again =
        crate::datacenter::deliver_as(&app, &key, &id, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body,
        serde_json::json!({"status": "duplicate", "request_id": id})
    );
    assert_eq!(
        app.count_rows("SELECT count(*) FROM pull_requests").await,
        1
    );
}

//! Chat notifications end to end: signed webhooks in, `outbox` rows in SQLite, and the exact
//! requests a fake HipChat or Slack server (wiremock) receives.
//!
//! Every fake records each request with the instant it arrived, and answers from a script (the
//! last answer repeats), so a test can say "500, then 204" and measure the gaps between requests.
//! Durations are small (coalescing 200 ms, first retry 50 ms) and every wait is a bounded poll.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pr_reminder::config::{NotifySettings, Room, Route, Sink};
use pr_reminder::signature::sign;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::SqlitePool;
use wiremock::ResponseTemplate;

use crate::fake_chat::{hipchat_ok, Answer, Fake, Hit, PATIENCE};
use crate::helpers::{
    on_both, own_fixture, route, set_repository, spawn_app_with, spawn_app_with_clock, spawn_on,
    uuid_like, App, ManualClock, On, Served, TestApp, SECRET,
};
use crate::lifecycle::{pr_event, REPO};
use pr_reminder::clock::Clock;

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");
/// What a HipChat v2 integration URL looks like once pasted: room in the path, token in the query.
const HIPCHAT_PATH: &str = "/v2/room/Payments%20Team/notification";
const TOKEN_QUERY: &str = "auth_token=AbC-123_xyz%2Bq~9";
const TITLE: &str = "Fix <script>alert(1)</script> & co";

fn slack_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string("ok")
}

// ---------------------------------------------------------------------------------------------
// Settings.

/// Room `name`: HipChat at `url`.
pub(crate) fn hipchat(name: &str, url: String) -> Room {
    Room {
        name: name.into(),
        sink: Sink::HipChat(SecretString::from(url)),
    }
}

fn slack(name: &str, url: String) -> Room {
    Room {
        name: name.into(),
        sink: Sink::Slack(SecretString::from(url)),
    }
}

/// Quick settings for tests: short window, fast retries, no rate limit to speak of.
pub(crate) fn notify(rooms: Vec<Room>, routes: Vec<Route>) -> NotifySettings {
    NotifySettings {
        rooms,
        routes,
        coalesce: Duration::from_millis(200),
        max_attempts: 10,
        timeout: Duration::from_secs(2),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        room_rate_per_minute: Some(6000),
    }
}

/// One room that hears about every repository.
pub(crate) fn one_room(room: Room) -> NotifySettings {
    let name = room.name.clone();
    notify(vec![room], vec![route(&["*"], &name)])
}

async fn app_with(settings: NotifySettings) -> TestApp {
    spawn_app_with(move |s| s.notify = settings).await
}

// ---------------------------------------------------------------------------------------------
// Events.

/// `10:mm:ss` on the fixtures' day: every event gets its own, increasing `updated_on`.
fn at(second: u32) -> String {
    format!(
        "2026-11-20T10:{:02}:{:02}.000000+00:00",
        second / 60,
        second % 60
    )
}

/// An open PR in acme/payments-api (commit 9b2c4e6f8a10, the failing build's commit).
fn open_pr(number: i64, updated_on: &str, title: &str, approvers: &[&str]) -> Value {
    let participants: Vec<(&str, &str, Option<&str>)> = approvers
        .iter()
        .map(|u| (*u, "REVIEWER", Some("approved")))
        .collect();
    pr_event(
        number,
        updated_on,
        "OPEN",
        title,
        "9b2c4e6f8a10",
        &participants,
    )
}

/// The same event in another repository.
fn in_repo(mut body: Value, repository: &str) -> Value {
    let number = body["pullrequest"]["id"].clone();
    set_repository(&mut body, repository);
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{repository}/pull-requests/{number}"
    ));
    body
}

async fn deliver(app: &impl Served, event_key: &str, body: &Value) {
    let answer = app
        .deliver_body(event_key, &uuid_like("notify"), body)
        .await;
    assert_eq!(answer.status, 200, "{event_key}: {}", answer.body);
    assert_eq!(
        answer.body["status"], "processed",
        "{event_key}: {}",
        answer.body
    );
}

fn pr_link(repository: &str, number: i64, title: &str) -> String {
    format!("<a href=\"https://bitbucket.org/{repository}/pull-requests/{number}\">{title}</a>")
}

// ---------------------------------------------------------------------------------------------
// The outbox as an operator reads it.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outbox {
    id: i64,
    room: String,
    repository: String,
    number: i64,
    events: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    message: Option<String>,
}

type OutboxTuple = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

/// Every outbox row (`Outbox`), oldest first.
const OUTBOX_SELECT: &str =
    "SELECT o.id, o.room, coalesce(r.full_name, ''), coalesce(o.number, 0), o.events, \
     o.state, o.attempts, o.last_error, o.message \
     FROM outbox o LEFT JOIN repositories r ON r.repository_key = o.repository_key \
     ORDER BY o.id";

impl From<OutboxTuple> for Outbox {
    fn from(row: OutboxTuple) -> Outbox {
        let (id, room, repository, number, events, state, attempts, last_error, message) = row;
        Outbox {
            id,
            room,
            repository,
            number,
            events,
            state,
            attempts,
            last_error,
            message,
        }
    }
}

async fn outbox_rows(db: &SqlitePool) -> Vec<Outbox> {
    let rows: Vec<OutboxTuple> = sqlx::query_as(OUTBOX_SELECT).fetch_all(db).await.unwrap();
    rows.into_iter().map(Outbox::from).collect()
}

async fn outbox(app: &TestApp) -> Vec<Outbox> {
    outbox_rows(&app.db).await
}

/// Polls the outbox until `done` holds.
async fn wait_outbox_in(
    db: &SqlitePool,
    what: &str,
    done: impl Fn(&[Outbox]) -> bool,
) -> Vec<Outbox> {
    let started = Instant::now();
    loop {
        let rows = outbox_rows(db).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "outbox never reached: {what}; it holds {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_outbox(
    app: &impl Served,
    what: &str,
    done: impl Fn(&[Outbox]) -> bool,
) -> Vec<Outbox> {
    let started = Instant::now();
    loop {
        let rows: Vec<OutboxTuple> = app.query_rows(OUTBOX_SELECT).await;
        let rows: Vec<Outbox> = rows.into_iter().map(Outbox::from).collect();
        if done(&rows) {
            return rows;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for {what}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn all_in(state: &'static str, count: usize) -> impl Fn(&[Outbox]) -> bool {
    move |rows| rows.len() == count && rows.iter().all(|r| r.state == state)
}

// ---------------------------------------------------------------------------------------------
// HipChat.

#[tokio::test]
async fn hipchat_gets_exactly_the_v2_room_notification() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let url = fake.url(&format!("{HIPCHAT_PATH}?{TOKEN_QUERY}"));
    let app = app_with(one_room(hipchat("payments", url))).await;

    deliver(&app, "pullrequest:created", &open_pr(7, &at(0), TITLE, &[])).await;
    let rows = wait_outbox(&app, "one row sent", all_in("sent", 1)).await;
    let hits = fake.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.path, HIPCHAT_PATH, "the room in the path, as pasted");
    assert_eq!(
        hit.query.as_deref(),
        Some(TOKEN_QUERY),
        "the auth_token query, byte for byte as pasted"
    );
    assert_eq!(hit.content_type.as_deref(), Some("application/json"));
    let html = format!(
        "<b>Needs review from Bob Reviewer, Carol Reviewer</b>: {} (acme/payments-api #7) by Alice Author<br>0/2 approvals",
        pr_link(
            REPO,
            7,
            "Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
        )
    );
    assert_eq!(
        hit.body,
        json!({
            "message": html,
            "message_format": "html",
            "color": "yellow",
            "notify": true,
            "from": "pr-reminder",
        })
    );

    // The row, as `sqlite3` shows it: what happened, how it went, and the text that was sent.
    let row = &rows[0];
    assert_eq!(
        (
            row.room.as_str(),
            row.repository.as_str(),
            row.number,
            row.events.as_str(),
            row.attempts,
            row.last_error.as_deref()
        ),
        ("payments", REPO, 7, "opened", 1, None)
    );
    assert_eq!(
        row.message.as_deref(),
        Some(
            "Needs review from Bob Reviewer, Carol Reviewer: Fix <script>alert(1)</script> & co (acme/payments-api #7) by Alice \
             Author <https://bitbucket.org/acme/payments-api/pull-requests/7> — 0/2 approvals"
        )
    );
    let sent_at: Option<String> = sqlx::query_scalar("SELECT sent_at FROM outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(sent_at.is_some());
}

#[tokio::test]
async fn a_500_is_retried_and_the_message_delivered_exactly_once() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(500).set_body_string("internal error"),
        hipchat_ok(),
    ])
    .await;
    let app = app_with(one_room(hipchat("r", fake.url(HIPCHAT_PATH)))).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = wait_outbox(&app, "sent", all_in("sent", 1)).await;
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(rows[0].last_error, None, "cleared once delivered");
    let hits = fake.hits();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(hits[0].body, hits[1].body, "the same message, sent again");
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        hipchat_ok(),
    ])
    .await;
    let t0 = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 30, 9, 0, 0).unwrap();
    let clock = ManualClock::frozen(t0);
    let settings = one_room(hipchat("r", fake.url(HIPCHAT_PATH)));
    let app = spawn_app_with_clock(move |s| s.notify = settings, clock.clock()).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    // The 200 ms window, then the 429.
    let ms = |n| t0 + chrono::Duration::milliseconds(n);
    assert!(clock.until_waiting(1, PATIENCE).await);
    assert_eq!(clock.advance_to_next(), Some(ms(200)));
    let rows = wait_outbox(&app, "retrying", all_in("retrying", 1)).await;
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("HTTP 429 Too Many Requests")
    );
    // The own backoff is 50-100 ms: the retry is due exactly the second the header asked for.
    assert!(clock.until_waiting(1, PATIENCE).await);
    assert_eq!(clock.waits(), vec![ms(1200)]);
    assert_eq!(fake.hits().len(), 1, "nothing more before then");
    assert_eq!(clock.advance_to_next(), Some(ms(1200)));
    let rows = wait_outbox(&app, "sent", all_in("sent", 1)).await;
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(fake.hits().len(), 2);
}

#[tokio::test]
async fn hipchat_flood_control_reset_is_honoured() {
    // HipChat's reset is a Unix time in whole seconds: 1 to 2 s from when the 429 is sent.
    let flooded = Answer::Made(Arc::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        ResponseTemplate::new(429)
            .insert_header("X-FloodControl-Remaining", "0")
            .insert_header("X-FloodControl-Reset", (now + 2).to_string().as_str())
    }));
    let fake = Fake::start_with(vec![flooded, hipchat_ok().into()]).await;
    let app = app_with(one_room(hipchat("r", fake.url(HIPCHAT_PATH)))).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    wait_outbox(&app, "sent", all_in("sent", 1)).await;
    let hits = fake.hits();
    assert_eq!(hits.len(), 2);
    // The own backoff is 50-100 ms: only the header explains a second or more.
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
}

#[tokio::test]
async fn a_401_fails_at_once_and_later_messages_still_flow() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(401).set_body_json(json!({
            "error": {"code": 401, "message": "Invalid OAuth session", "type": "Unauthorized"}
        })),
        hipchat_ok(),
    ])
    .await;
    let url = fake.url(&format!("{HIPCHAT_PATH}?{TOKEN_QUERY}"));
    let app = app_with(one_room(hipchat("r", url))).await;

    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;
    let rows = wait_outbox(&app, "failed", all_in("failed", 1)).await;
    let failed = &rows[0];
    assert_eq!(failed.attempts, 1, "no retry for a refused token");
    let error = failed.last_error.as_deref().unwrap();
    assert!(error.contains("401"), "{error}");
    assert!(error.contains("Invalid OAuth session"), "{error}");
    assert!(
        !error.contains("AbC-123"),
        "the token never lands in the database: {error}"
    );
    assert!(
        failed.message.as_deref().unwrap().contains("#1"),
        "the text it tried to send is kept"
    );
    assert_eq!(fake.hits().len(), 1);

    // A later message for another PR in the same room is not held up by the failed one.
    deliver(&app, "pullrequest:created", &open_pr(2, &at(0), "Two", &[])).await;
    let rows = wait_outbox(&app, "the second sent", |rows| {
        rows.len() == 2 && rows[1].state == "sent"
    })
    .await;
    assert_eq!(rows[0].state, "failed");
    assert_eq!(rows[0].attempts, 1);
    let hits = fake.hits();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert!(hits[0].html().contains("(acme/payments-api #1)"));
    assert!(hits[1].html().contains("(acme/payments-api #2)"));
}

#[tokio::test]
async fn a_timeout_is_retried_then_delivered() {
    // Longer than the timeout (300 ms) plus the largest first retry delay (1.5 s doubled by
    // jitter at most: 3 s) plus a poll, so a retry sooner than this did not wait for the answer.
    let slow = Duration::from_secs(6);
    let fake = Fake::start(vec![hipchat_ok().set_delay(slow), hipchat_ok()]).await;
    let mut settings = one_room(hipchat("r", fake.url(HIPCHAT_PATH)));
    settings.timeout = Duration::from_millis(300);
    // Long enough to see the row waiting for its retry, even on a loaded machine (400 ms was
    // missed once by a poll under the whole suite).
    settings.retry_min = Duration::from_millis(1500);
    let app = app_with(settings).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = wait_outbox(&app, "retrying after the timeout", |rows| {
        rows.len() == 1 && rows[0].state == "retrying"
    })
    .await;
    assert_eq!(rows[0].attempts, 1);
    let error = rows[0].last_error.as_deref().unwrap_or_default();
    assert!(error.contains("timed out"), "last_error: {error:?}");

    let rows = wait_outbox(&app, "sent", all_in("sent", 1)).await;
    assert_eq!(rows[0].attempts, 2);
    let hits = fake.hits();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(1800) && gap < slow,
        "gave up after the 300 ms timeout and retried after >= 1,500 ms, not after the slow \
         answer: {gap:?}"
    );
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_given_up_on_after_max_attempts() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(502).set_body_string("bad gateway")
    ])
    .await;
    let mut settings = one_room(hipchat("r", fake.url(HIPCHAT_PATH)));
    settings.max_attempts = 3;
    let app = app_with(settings).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = wait_outbox(&app, "failed", all_in("failed", 1)).await;
    assert_eq!(rows[0].attempts, 3);
    assert!(
        rows[0].last_error.as_deref().unwrap().contains("502"),
        "{rows:?}"
    );
    assert_eq!(fake.hits().len(), 3);
    // Nothing after giving up (several backoff periods later).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(fake.hits().len(), 3);
}

#[tokio::test]
async fn an_unreachable_server_is_retried_and_the_cause_recorded() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = one_room(hipchat(
        "r",
        format!("http://127.0.0.1:{port}{HIPCHAT_PATH}?{TOKEN_QUERY}"),
    ));
    settings.max_attempts = 2;
    let app = app_with(settings).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = wait_outbox(&app, "failed", all_in("failed", 1)).await;
    assert_eq!(rows[0].attempts, 2, "retried before giving up");
    let error = rows[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("onnect"),
        "the cause, not just 'error sending request': {error}"
    );
    assert!(
        !error.contains("AbC-123") && !error.contains(HIPCHAT_PATH),
        "{error}"
    );
}

/// `pr-reminder outbox list --failed` / `outbox retry --failed` against a running service.
#[tokio::test]
async fn a_failed_message_can_be_retried_by_hand() {
    let fake = Fake::start(vec![ResponseTemplate::new(404), hipchat_ok()]).await;
    let app = app_with(one_room(hipchat("r", fake.url(HIPCHAT_PATH)))).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;
    wait_outbox(&app, "failed", all_in("failed", 1)).await;

    let db = app.db_path.clone();
    let cli = move |args: &'static [&'static str]| {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            crate::helpers::clean_command(BIN)
                .env("PR_REMINDER_DATABASE", &db)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let listed = cli(&["outbox", "list", "--failed"]).await.unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("failed") && listed.contains("404") && listed.contains("#1"),
        "{listed}"
    );
    let retried = cli(&["outbox", "retry", "--failed"]).await.unwrap();
    assert!(retried.status.success(), "{retried:?}");
    assert!(String::from_utf8_lossy(&retried.stdout).contains("1 notification(s) requeued"));

    // The idle room looks at the queue at least every 5 s.
    let rows = wait_outbox(&app, "sent after the retry", all_in("sent", 1)).await;
    assert_eq!(rows[0].attempts, 1, "attempts start again from zero");
    assert_eq!(fake.hits().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Coalescing and the room's rate.

/// On a clock that moves only when the test moves it: however long the burst takes, it falls in
/// one coalescing window, the first message goes out exactly when the window ends and each next
/// one exactly one rate period later.
#[tokio::test]
async fn a_burst_on_ten_prs_becomes_one_message_each_within_the_room_rate() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let coalesce = Duration::from_millis(1500);
    let mut settings = one_room(hipchat("team", fake.url(HIPCHAT_PATH)));
    settings.coalesce = coalesce;
    settings.room_rate_per_minute = Some(600); // one message per 102 ms (100 ms + 2 %)
    let t0 = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 30, 9, 0, 0).unwrap();
    let clock = ManualClock::frozen(t0);
    let app = spawn_app_with_clock(move |s| s.notify = settings, clock.clock()).await;

    // PR k: created, then 9 approval changes cycling none -> Bob -> Bob+Carol, shifted by k.
    // Every step changes who approved, so each is an `approvals` event; step 9 leaves PR k with
    // approvers(k % 3).
    fn approvers(n: i64) -> &'static [&'static str] {
        match n % 3 {
            0 => &[],
            1 => &["bob"],
            _ => &["bob", "carol"],
        }
    }
    let per_pr = (1..=10i64).map(|k| {
        let app = &app;
        async move {
            let base = k as u32 * 60;
            deliver(
                app,
                "pullrequest:created",
                &open_pr(k, &at(base), &format!("Burst {k}"), &[]),
            )
            .await;
            for step in 1..=9i64 {
                let (before, now) = (approvers(k + step - 1), approvers(k + step));
                let key = if now.len() > before.len() {
                    "pullrequest:approved"
                } else {
                    "pullrequest:unapproved"
                };
                let body = open_pr(k, &at(base + step as u32), &format!("Burst {k}"), now);
                deliver(app, key, &body).await;
            }
        }
    });
    futures_util::future::join_all(per_pr).await;
    // Each PR's first event opened its row; the row stays pending (open to later events) until
    // `coalesce` after that: the whole burst, at t0 by the clock, is one window, so 10 rows.
    assert_eq!(app.count("SELECT count(*) FROM deliveries").await, 100);
    let received: Vec<String> = sqlx::query_scalar("SELECT DISTINCT received_at FROM deliveries")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        received,
        vec!["2026-11-30T09:00:00.000000Z"],
        "arrivals by the clock"
    );
    let rows = outbox(&app).await;
    assert_eq!(rows.len(), 10, "one row per PR: {rows:#?}");
    for row in &rows {
        assert_eq!(row.events, "opened,approvals", "{row:?}");
    }

    // Every wait the room makes ends where the clock is moved to: first the window's end, then
    // one permit every 102 ms. Nothing goes out while the clock stands still.
    let window_end = t0 + chrono::Duration::from_std(coalesce).unwrap();
    for k in 0..10 {
        assert!(
            clock.until_waiting(1, PATIENCE).await,
            "the room waits for message {k}"
        );
        assert_eq!(fake.hits().len(), k, "sent so far");
        let expected = window_end + chrono::Duration::microseconds(102_000 * k as i64);
        assert_eq!(clock.advance_to_next(), Some(expected), "message {k}");
    }
    let rows = wait_outbox(&app, "all ten sent", all_in("sent", 10)).await;
    let mut sent_at: Vec<String> = sqlx::query_scalar("SELECT sent_at FROM outbox")
        .fetch_all(&app.db)
        .await
        .unwrap();
    sent_at.sort();
    let expected: Vec<String> = (0..10)
        .map(|k| {
            let at = window_end + chrono::Duration::microseconds(102_000 * k);
            pr_reminder::domain::Timestamp::from_datetime(at).to_string()
        })
        .collect();
    assert_eq!(
        sent_at, expected,
        "exactly 102 ms apart from the window's end"
    );
    assert!(rows.iter().all(|r| r.attempts == 1), "{rows:#?}");
    let hits = fake.hits();
    assert_eq!(hits.len(), 10, "exactly one message per PR: {hits:#?}");

    let mut seen = Vec::new();
    for hit in &hits {
        let k = (1..=10i64)
            .find(|k| hit.html().contains(&format!("(acme/payments-api #{k})")))
            .unwrap_or_else(|| panic!("which PR? {}", hit.html()));
        seen.push(k);
        let (head, color, details) = match k % 3 {
            0 => (
                "0/2 approvals, needs review from Bob Reviewer, Carol Reviewer",
                "yellow",
                "0/2 approvals",
            ),
            1 => (
                "1/2 approvals, needs review from Carol Reviewer",
                "yellow",
                "1/2 approvals: Bob Reviewer",
            ),
            _ => (
                "Ready to merge: Alice Author",
                "green",
                "2/2 approvals: Bob Reviewer, Carol Reviewer",
            ),
        };
        let expected = format!(
            "<b>{head}</b>: {} (acme/payments-api #{k}) by Alice Author<br>{details}",
            pr_link(REPO, k, &format!("Burst {k}"))
        );
        assert_eq!(hit.html(), expected, "PR {k} shows its latest state");
        assert_eq!(hit.body["color"], color, "PR {k}");
    }
    seen.sort();
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Slack-compatible webhooks.

const SLACK_PATH: &str = "/services/T000/B000/XXXXXXXX";

#[tokio::test]
async fn slack_gets_exactly_the_incoming_webhook_payload() {
    let fake = Fake::start(vec![slack_ok()]).await;
    let app = app_with(one_room(slack("team", fake.url(SLACK_PATH)))).await;
    deliver(&app, "pullrequest:created", &open_pr(7, &at(0), TITLE, &[])).await;

    let rows = wait_outbox(&app, "sent", all_in("sent", 1)).await;
    assert_eq!(rows[0].attempts, 1);
    let hits = fake.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.path, SLACK_PATH);
    assert_eq!(hit.query, None);
    assert_eq!(hit.content_type.as_deref(), Some("application/json"));
    // The record keeps the plain text; Slack's fallback is escaped like its text, so that a
    // title can never turn into a link or a mention there either.
    let plain = "Needs review from Bob Reviewer, Carol Reviewer: Fix <script>alert(1)</script> & co (acme/payments-api #7) by \
                 Alice Author <https://bitbucket.org/acme/payments-api/pull-requests/7> — \
                 0/2 approvals";
    let fallback = "Needs review from Bob Reviewer, Carol Reviewer: Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; co \
                    (acme/payments-api #7) by Alice Author \
                    &lt;https://bitbucket.org/acme/payments-api/pull-requests/7&gt; — 0/2 approvals";
    assert_eq!(
        hit.body,
        json!({
            "text": "*Needs review from Bob Reviewer, Carol Reviewer*: <https://bitbucket.org/acme/payments-api/pull-requests/7|\
                     Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; co> (acme/payments-api #7) \
                     by Alice Author\n0/2 approvals",
            "attachments": [{"color": "#f2c744", "fallback": fallback}],
        })
    );
    assert_eq!(rows[0].message.as_deref(), Some(plain));
}

#[tokio::test]
async fn slack_500_then_200_is_delivered_once() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(500).set_body_string("internal_error"),
        slack_ok(),
    ])
    .await;
    let app = app_with(one_room(slack("team", fake.url(SLACK_PATH)))).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = wait_outbox(&app, "sent", all_in("sent", 1)).await;
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(fake.hits().len(), 2);
}

#[tokio::test]
async fn slack_404_is_a_permanent_failure() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(404).set_body_string("no_service")
    ])
    .await;
    let app = app_with(one_room(slack("team", fake.url(SLACK_PATH)))).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = wait_outbox(&app, "failed", all_in("failed", 1)).await;
    assert_eq!(rows[0].attempts, 1);
    let error = rows[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("404") && error.contains("no_service"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.hits().len(), 1, "not retried");
}

// ---------------------------------------------------------------------------------------------
// What is announced where.

#[tokio::test]
async fn the_first_matching_route_picks_the_room_and_unrouted_repositories_stay_silent() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let mut payments = route(&["acme/payments-*"], "payments");
    payments.required_approvals = Some(1);
    let app = app_with(notify(
        vec![
            hipchat(
                "payments",
                fake.url("/v2/room/payments/notification?auth_token=p"),
            ),
            hipchat(
                "backend",
                fake.url("/v2/room/backend/notification?auth_token=b"),
            ),
        ],
        // acme/payments-api matches both; the first route wins.
        vec![payments, route(&["acme/*"], "backend")],
    ))
    .await;

    let pr = |repo: &str, n: i64| in_repo(open_pr(n, &at(0), &format!("PR {n}"), &[]), repo);
    deliver(&app, "pullrequest:created", &pr("acme/payments-api", 1)).await;
    deliver(&app, "pullrequest:created", &pr("acme/web", 2)).await;
    deliver(&app, "pullrequest:created", &pr("other/api", 3)).await;
    // Rows are written with the delivery: what is not there now never will be.
    let rows = outbox(&app).await;
    let placed: Vec<_> = rows
        .iter()
        .map(|r| (r.room.as_str(), r.repository.as_str(), r.number))
        .collect();
    assert_eq!(
        placed,
        vec![
            ("payments", "acme/payments-api", 1),
            ("backend", "acme/web", 2)
        ]
    );
    assert!(
        app.pull_request("other/api", 3).await.is_some(),
        "stored, only not announced"
    );

    wait_outbox(&app, "both sent", all_in("sent", 2)).await;
    let mut hits = fake.hits();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    hits.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(hits[0].path, "/v2/room/backend/notification");
    assert_eq!(
        hits[0].html(),
        format!(
            "<b>Needs review from Bob Reviewer, Carol Reviewer</b>: {} (acme/web #2) by Alice Author<br>0/2 approvals",
            pr_link("acme/web", 2, "PR 2")
        )
    );
    assert_eq!(hits[1].path, "/v2/room/payments/notification");
    assert_eq!(
        hits[1].html(),
        format!(
            "<b>Needs review from Bob Reviewer, Carol Reviewer</b>: {} (acme/payments-api #1) by Alice Author<br>0/1 approvals",
            pr_link("acme/payments-api", 1, "PR 1")
        ),
        "the route's own required approvals"
    );
}

#[tokio::test]
async fn merges_are_announced_only_where_the_route_asks() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let mut loud = route(&["acme/loud"], "loud");
    loud.announce.merged = true;
    let app = app_with(notify(
        vec![
            hipchat("quiet", fake.url("/v2/room/quiet/notification")),
            hipchat("loud", fake.url("/v2/room/loud/notification")),
        ],
        vec![route(&["acme/quiet"], "quiet"), loud],
    ))
    .await;
    let pr = |repo: &str, n: i64, second: u32, state: &str| {
        in_repo(
            pr_event(n, &at(second), state, "Tidy", "9b2c4e6f8a10", &[]),
            repo,
        )
    };
    deliver(&app, "pullrequest:created", &pr("acme/quiet", 1, 0, "OPEN")).await;
    deliver(&app, "pullrequest:created", &pr("acme/loud", 2, 0, "OPEN")).await;
    deliver(&app, "pullrequest:created", &pr("acme/loud", 3, 0, "OPEN")).await;
    wait_outbox(&app, "opened messages sent", all_in("sent", 3)).await;

    deliver(
        &app,
        "pullrequest:fulfilled",
        &pr("acme/quiet", 1, 1, "MERGED"),
    )
    .await;
    deliver(
        &app,
        "pullrequest:fulfilled",
        &pr("acme/loud", 2, 1, "MERGED"),
    )
    .await;
    // Declines are not announced in either room.
    deliver(
        &app,
        "pullrequest:rejected",
        &pr("acme/loud", 3, 1, "DECLINED"),
    )
    .await;
    let rows = outbox(&app).await;
    assert_eq!(
        rows.len(),
        4,
        "only the loud merge queued a message: {rows:#?}"
    );
    assert_eq!(
        (
            rows[3].room.as_str(),
            rows[3].number,
            rows[3].events.as_str()
        ),
        ("loud", 2, "merged")
    );

    wait_outbox(&app, "merge sent", all_in("sent", 4)).await;
    let hits = fake.hits();
    assert_eq!(hits.len(), 4);
    let merged = &hits[3];
    assert_eq!(merged.path, "/v2/room/loud/notification");
    assert_eq!(
        merged.body,
        json!({
            "message": format!(
                "<b>Merged</b>: {} (acme/loud #2) by Alice Author<br>0/2 approvals",
                pr_link("acme/loud", 2, "Tidy")
            ),
            "message_format": "html",
            "color": "gray",
            "notify": false,
            "from": "pr-reminder",
        })
    );
}

/// The message is rendered when its window closes. A PR that closed (or went back to draft)
/// inside the window must not be announced as needing review.
#[tokio::test]
async fn a_pr_that_closes_within_its_window_is_not_announced_as_open() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let mut loud = route(&["acme/loud"], "loud");
    loud.announce.merged = true;
    let mut settings = notify(
        vec![
            hipchat("quiet", fake.url("/v2/room/quiet/notification")),
            hipchat("loud", fake.url("/v2/room/loud/notification")),
        ],
        vec![loud, route(&["*"], "quiet")],
    );
    settings.coalesce = Duration::from_millis(500);
    let app = app_with(settings).await;
    let pr = |repo: &str, n: i64, second: u32, state: &str| {
        in_repo(
            pr_event(n, &at(second), state, "Quick fix", "9b2c4e6f8a10", &[]),
            repo,
        )
    };

    // Opened, then merged / declined before its message went out: nothing left to say.
    deliver(&app, "pullrequest:created", &pr(REPO, 1, 0, "OPEN")).await;
    deliver(&app, "pullrequest:created", &pr(REPO, 2, 0, "OPEN")).await;
    assert_eq!(outbox(&app).await.len(), 2);
    deliver(&app, "pullrequest:fulfilled", &pr(REPO, 1, 1, "MERGED")).await;
    deliver(&app, "pullrequest:rejected", &pr(REPO, 2, 1, "DECLINED")).await;
    // Opened, then back to draft: nothing until it is ready again.
    deliver(&app, "pullrequest:created", &pr(REPO, 3, 0, "OPEN")).await;
    let mut redrafted = pr(REPO, 3, 1, "OPEN");
    redrafted["pullrequest"]["draft"] = json!(true);
    deliver(&app, "pullrequest:updated", &redrafted).await;
    assert_eq!(outbox(&app).await, vec![], "withdrawn with the change");
    deliver(&app, "pullrequest:updated", &pr(REPO, 3, 2, "OPEN")).await;
    // Where merges are announced, the merge joins the waiting message and decides its headline.
    deliver(&app, "pullrequest:created", &pr("acme/loud", 4, 0, "OPEN")).await;
    deliver(
        &app,
        "pullrequest:fulfilled",
        &pr("acme/loud", 4, 1, "MERGED"),
    )
    .await;

    let rows = wait_outbox(&app, "sent", all_in("sent", 2)).await;
    let sent: Vec<_> = rows
        .iter()
        .map(|r| (r.room.as_str(), r.number, r.events.as_str()))
        .collect();
    assert_eq!(
        sent,
        vec![("quiet", 3, "opened"), ("loud", 4, "opened,merged")]
    );
    let hits = fake.hits();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    let mut heads: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            (
                h.path.clone(),
                h.html().split("</b>").next().unwrap().to_owned(),
            )
        })
        .collect();
    heads.sort();
    assert_eq!(
        heads,
        vec![
            (
                "/v2/room/loud/notification".to_owned(),
                "<b>Merged".to_owned()
            ),
            (
                "/v2/room/quiet/notification".to_owned(),
                "<b>Needs review from Bob Reviewer, Carol Reviewer".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn drafts_and_wip_titles_announce_nothing_until_they_leave_that_state() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let app = app_with(one_room(hipchat("r", fake.url(HIPCHAT_PATH)))).await;

    // #1: a draft, approved while still a draft.
    let mut draft = pr_event(1, &at(0), "OPEN", "Capture retries", "aaaaaaaaaaaa", &[]);
    draft["pullrequest"]["draft"] = json!(true);
    deliver(&app, "pullrequest:created", &draft).await;
    let mut approved_draft = pr_event(
        1,
        &at(1),
        "OPEN",
        "Capture retries",
        "aaaaaaaaaaaa",
        &[("bob", "REVIEWER", Some("approved"))],
    );
    approved_draft["pullrequest"]["draft"] = json!(true);
    deliver(&app, "pullrequest:approved", &approved_draft).await;
    // #2: a WIP title, whose build then fails.
    deliver(
        &app,
        "pullrequest:created",
        &open_pr(2, &at(0), "WIP: parser rewrite", &[]),
    )
    .await;
    deliver(
        &app,
        "repo:commit_status_updated",
        &own_fixture("repo_commit_status_failed.json"),
    )
    .await;
    assert_eq!(
        outbox(&app).await,
        vec![],
        "nothing to say about work in progress"
    );

    // "Wipe" is not "WIP".
    deliver(
        &app,
        "pullrequest:created",
        &pr_event(
            3,
            &at(0),
            "OPEN",
            "Wipe stale sessions",
            "bbbbbbbbbbbb",
            &[],
        ),
    )
    .await;
    // Both leave their quiet state.
    let mut ready = pr_event(
        1,
        &at(2),
        "OPEN",
        "Capture retries",
        "aaaaaaaaaaaa",
        &[("bob", "REVIEWER", Some("approved"))],
    );
    ready["pullrequest"]["draft"] = json!(false);
    deliver(&app, "pullrequest:updated", &ready).await;
    deliver(
        &app,
        "pullrequest:updated",
        &open_pr(2, &at(1), "Parser rewrite", &[]),
    )
    .await;
    let rows = outbox(&app).await;
    let queued: Vec<_> = rows.iter().map(|r| (r.number, r.events.as_str())).collect();
    assert_eq!(queued, vec![(3, "opened"), (1, "opened"), (2, "opened")]);

    wait_outbox(&app, "sent", all_in("sent", 3)).await;
    let hits = fake.hits();
    let html: Vec<&str> = hits.iter().map(Hit::html).collect();
    assert_eq!(
        html,
        vec![
            format!(
                "<b>Needs review from Bob Reviewer, Carol Reviewer</b>: {} (acme/payments-api #3) by Alice Author<br>0/2 approvals",
                pr_link(REPO, 3, "Wipe stale sessions")
            ),
            format!(
                "<b>Needs review from Carol Reviewer</b>: {} (acme/payments-api #1) by Alice Author<br>\
                 1/2 approvals: Bob Reviewer",
                pr_link(REPO, 1, "Capture retries")
            ),
            format!(
                "<b>Needs review</b>: {} (acme/payments-api #2) by Alice Author<br>\
                 0/2 approvals · build FAILED: \
                 <a href=\"https://ci.acme.example/builds/381\">Unit tests #381</a>",
                pr_link(REPO, 2, "Parser rewrite")
            ),
        ]
    );
}

on_both!(a_failed_build_on_an_open_pr_is_a_red_message_with_the_build_link);

/// A failing build is a red message naming (and linking) the failing build; the same failure
/// again is not news; fixed, a green one.
async fn a_failed_build_on_an_open_pr_is_a_red_message_with_the_build_link(on: On) {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let settings = one_room(hipchat("r", fake.url(HIPCHAT_PATH)));
    let Some(app) = spawn_on(on, "builds", move |s| s.notify = settings, Clock::system()).await
    else {
        return;
    };
    deliver(
        &app,
        "pullrequest:created",
        &own_fixture("pullrequest_created.json"),
    )
    .await;
    wait_outbox(&app, "opened sent", all_in("sent", 1)).await;

    let failed = own_fixture("repo_commit_status_failed.json");
    deliver(&app, "repo:commit_status_updated", &failed).await;
    let rows = wait_outbox(&app, "build message sent", all_in("sent", 2)).await;
    assert_eq!(rows[1].events, "build_failed");
    let hits = fake.hits();
    assert_eq!(hits.len(), 2);
    let pr = pr_link(REPO, 42, "Retry card captures on gateway timeouts");
    assert_eq!(
        hits[1].body,
        json!({
            "message": format!(
                "<b>Build failed: Alice Author's turn</b>: {pr} (acme/payments-api #42) by Alice Author<br>\
                 0/2 approvals · build FAILED: \
                 <a href=\"https://ci.acme.example/builds/381\">Unit tests #381</a>"
            ),
            "message_format": "html",
            "color": "red",
            "notify": true,
            "from": "pr-reminder",
        })
    );

    // The same failure reported again (Bitbucket sends _created and _updated) is not news.
    deliver(&app, "repo:commit_status_created", &failed).await;
    assert_eq!(app.count_rows("SELECT count(*) FROM outbox").await, 2);

    // Fixed: green.
    let mut passed = failed.clone();
    passed["commit_status"]["state"] = json!("SUCCESSFUL");
    passed["commit_status"]["updated_on"] = json!("2026-11-20T09:20:00.000000+00:00");
    deliver(&app, "repo:commit_status_updated", &passed).await;
    let rows = wait_outbox(&app, "recovery sent", all_in("sent", 3)).await;
    assert_eq!(rows[2].events, "build_recovered");
    let hits = fake.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(
        hits[2].html(),
        format!(
            "<b>Build fixed</b>: {pr} (acme/payments-api #42) by Alice Author<br>\
             0/2 approvals · build passed"
        )
    );
    assert_eq!(hits[2].body["color"], "green");
}

// ---------------------------------------------------------------------------------------------
// Durability: the binary, killed with messages pending.

/// The binary serving with a config file; killed (SIGKILL) when dropped.
struct Service {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Service {
    async fn start(dir: &Path, config: &Path, db: &Path) -> Service {
        let mut child = crate::helpers::clean_command(BIN)
            .current_dir(dir)
            .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
            .env("PR_REMINDER_DATABASE", db)
            .env("PR_REMINDER_WEBHOOK_SECRET", SECRET)
            .arg("--config")
            .arg(config)
            .args(["--log-format", "json", "serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // Keep draining stderr so that a chatty service never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["port"].as_u64())
                {
                    let _ = port_tx.send(port as u16);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let started = Instant::now();
        let port = loop {
            if let Ok(port) = port_rx.try_recv() {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the service exited: {status}\n{}", log.lock().unwrap());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no port logged:\n{}",
                log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Service { child, port, log }
    }

    async fn deliver(&self, event_key: &str, body: &Value) {
        let body = serde_json::to_vec(body).unwrap();
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/webhooks/bitbucket", self.port))
            .header("Content-Type", "application/json")
            .header("X-Event-Key", event_key)
            .header("X-Request-UUID", uuid_like("restart"))
            .header("X-Hub-Signature", sign(SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) -> String {
        use std::os::unix::process::ExitStatusExt;
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status}");
        self.log()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_pending_when_the_service_is_killed_are_delivered_after_restart() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(503).set_delay(Duration::from_millis(800))
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let config = |retry_min_ms: u32| {
        let path = dir.path().join(format!("config-{retry_min_ms}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[rooms]]\nname = \"team\"\nhipchat_url = \"{}\"\n\n\
                 [notify]\ncoalesce_seconds = 0.2\nretry_min_ms = {retry_min_ms}\n\
                 retry_max_seconds = 2\ntimeout_seconds = 5\nmax_attempts = 1000\n\
                 room_rate_per_minute = 6000\n",
                fake.url(&format!("{HIPCHAT_PATH}?{TOKEN_QUERY}"))
            ),
        )
        .unwrap();
        path
    };

    // 1. The chat server answers 503 after 800 ms. Kill while the second attempt is in flight:
    //    #1 is 'sending', #2 and #3 wait behind it.
    let service = Service::start(dir.path(), &config(50), &db).await;
    let reader = SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    for n in 1..=3 {
        service
            .deliver(
                "pullrequest:created",
                &open_pr(n, &at(0), &format!("PR {n}"), &[]),
            )
            .await;
    }
    fake.wait_for_hits(2).await;
    let rows = wait_outbox_in(&reader, "#1 in flight", |rows| {
        rows.len() == 3 && rows[0].state == "sending"
    })
    .await;
    let mut log = service.kill();
    let states: Vec<_> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    assert_eq!(states, vec![("sending", 1), ("pending", 0), ("pending", 0)]);
    assert_eq!(
        outbox_rows(&reader).await,
        rows,
        "nothing moved after the kill"
    );

    // 2. Restart, still 503 (immediately). The interrupted row is recovered and tried again; one
    //    more PR arrives. Kill while #1 waits for its next retry (>= 1 s away).
    fake.answer(vec![ResponseTemplate::new(503)]);
    let service = Service::start(dir.path(), &config(1000), &db).await;
    service
        .deliver("pullrequest:created", &open_pr(4, &at(0), "PR 4", &[]))
        .await;
    let rows = wait_outbox_in(&reader, "#1 retrying", |rows| {
        rows.len() == 4 && rows[0].state == "retrying" && rows[0].attempts == 2
    })
    .await;
    log.push_str(&service.kill());
    let states: Vec<_> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    assert_eq!(
        states,
        vec![
            ("retrying", 2),
            ("pending", 0),
            ("pending", 0),
            ("pending", 0)
        ]
    );
    assert!(
        log.contains("messages interrupted by the last stop will be sent again"),
        "{log}"
    );
    let before_restart = fake.hits().len();

    // 3. Restart with the chat server healthy: everything arrives, once.
    fake.answer(vec![hipchat_ok()]);
    let service = Service::start(dir.path(), &config(1000), &db).await;
    let rows = wait_outbox_in(&reader, "all sent", all_in("sent", 4)).await;
    let attempts: Vec<_> = rows.iter().map(|r| r.attempts).collect();
    assert_eq!(attempts, vec![3, 1, 1, 1]);
    let delivered: Vec<String> = fake.hits()[before_restart..]
        .iter()
        .map(|h| h.html().to_owned())
        .collect();
    assert_eq!(delivered.len(), 4, "{delivered:#?}");
    for (n, html) in (1..=4).zip(&delivered) {
        assert!(
            html.contains(&format!("(acme/payments-api #{n})")),
            "{html}"
        );
    }
    log.push_str(&service.log());
    assert!(
        !log.contains("AbC-123"),
        "the room token leaked into the log:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// A room back from an outage.

/// The app of the outage tests, on a frozen clock at `t0`: one HipChat room answering `answers`
/// (the last repeats), backing off from 10 s (so only the probe explains a quicker retry).
async fn outage_app(
    on: On,
    answers: Vec<ResponseTemplate>,
    max_attempts: u32,
) -> Option<(Fake, App, ManualClock, chrono::DateTime<chrono::Utc>)> {
    let fake = Fake::start(answers).await;
    let mut settings = one_room(hipchat("team", fake.url(HIPCHAT_PATH)));
    settings.retry_min = Duration::from_secs(10);
    settings.retry_max = Duration::from_secs(10);
    settings.max_attempts = max_attempts;
    let t0 = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 30, 9, 0, 0).unwrap();
    let clock = ManualClock::frozen(t0);
    let app = spawn_on(on, "outage", move |s| s.notify = settings, clock.clock()).await?;
    Some((fake, app, clock, t0))
}

/// Moves the clock to the room's next wait, which must end at `expected`.
async fn next_wait(clock: &ManualClock, expected: chrono::DateTime<chrono::Utc>) {
    assert!(clock.until_waiting(1, PATIENCE).await, "the room waits");
    assert_eq!(clock.waits(), vec![expected]);
    assert_eq!(clock.advance_to_next(), Some(expected));
}

/// Twelve PRs' news wait while the room refuses: the room is probed every 5 s (not after the
/// 10 s backoff), and once it answers, one summary lists all twelve, oldest first, and marks
/// every row sent; no PR is posted on its own.
async fn a_room_back_from_an_outage_gets_one_summary_of_its_backlog(on: On) {
    let down = || ResponseTemplate::new(503);
    let Some((fake, app, clock, t0)) = outage_app(on, vec![down(), down(), hipchat_ok()], 10).await
    else {
        return;
    };
    for k in 1..=12 {
        let body = open_pr(k, &at(k as u32), &format!("Outage {k}"), &[]);
        deliver(&app, "pullrequest:created", &body).await;
    }
    let ms = |n| t0 + chrono::Duration::milliseconds(n);
    // The window ends; #1 is refused; eleven wait behind it, so the retry is a 5 s probe.
    next_wait(&clock, ms(200)).await;
    next_wait(&clock, ms(5_200)).await;
    // The probe (already the summary: #1 failed before and twelve are due) is refused too.
    next_wait(&clock, ms(10_200)).await;
    let rows = wait_outbox(&app, "all twelve sent", all_in("sent", 12)).await;

    let hits = fake.hits();
    assert_eq!(hits.len(), 3, "{hits:#?}");
    assert!(hits[0].html().contains("(acme/payments-api #1)"));
    assert_eq!(
        hits[1].body, hits[2].body,
        "the refused summary, then the same again"
    );
    let html = hits[2].html();
    let heading = "<b>While this room was unreachable, 12 pull requests changed:</b>";
    assert!(html.starts_with(heading), "{html}");
    let mut from = 0;
    for k in 1..=12 {
        let item = format!(
            "<br><br><b>Needs review from Bob Reviewer, Carol Reviewer</b>: {} (acme/payments-api #{k}) by Alice Author",
            pr_link(REPO, k, &format!("Outage {k}"))
        );
        let found = html[from..]
            .find(&item)
            .unwrap_or_else(|| panic!("#{k} listed after the ones before it: {html}"));
        from += found + item.len();
        assert_eq!(html.matches(&format!("#{k})")).count(), 1, "#{k} once");
    }
    assert_eq!(hits[2].body["color"], "yellow");
    assert_eq!(hits[2].body["notify"], true);
    assert_eq!(hits[2].body["message_format"], "html");

    let summary = rows[0].message.clone().unwrap();
    assert!(summary.starts_with("While this room was unreachable, 12 pull requests changed:\n"));
    for row in &rows {
        assert_eq!(row.message.as_ref(), Some(&summary), "#{}", row.number);
    }
    let sent_at: Vec<(Option<String>,)> =
        app.query_rows("SELECT DISTINCT sent_at FROM outbox").await;
    assert_eq!(
        sent_at,
        vec![(Some("2026-11-30T09:00:10.200000Z".to_owned()),)]
    );
}

on_both!(a_room_back_from_an_outage_gets_one_summary_of_its_backlog);

/// Ten waiting is not a flood: after the outage each PR gets its own message, in order.
#[tokio::test]
async fn ten_waiting_after_an_outage_are_sent_one_by_one() {
    let (fake, app, clock, t0) = outage_app(
        On::Sqlite,
        vec![ResponseTemplate::new(503), hipchat_ok()],
        10,
    )
    .await
    .unwrap();
    for k in 1..=10 {
        let body = open_pr(k, &at(k as u32), &format!("Outage {k}"), &[]);
        deliver(&app, "pullrequest:created", &body).await;
    }
    let ms = |n| t0 + chrono::Duration::milliseconds(n);
    next_wait(&clock, ms(200)).await;
    next_wait(&clock, ms(5_200)).await;
    // Then one permit every 10.2 ms (6,000 a minute, plus 2 %).
    for k in 1..10 {
        next_wait(
            &clock,
            ms(5_200) + chrono::Duration::microseconds(10_200 * k),
        )
        .await;
    }
    wait_outbox(&app, "all ten sent", all_in("sent", 10)).await;
    let hits = fake.hits();
    assert_eq!(hits.len(), 11, "{hits:#?}");
    for (k, hit) in hits[1..].iter().enumerate() {
        assert!(
            hit.html()
                .contains(&format!("(acme/payments-api #{})", k + 1)),
            "{}",
            hit.html()
        );
        assert!(!hit.html().contains("unreachable"));
    }
}

/// Probing every 5 s does not give up sooner than backing off would: with 3 attempts and 10 s
/// delays (20 s in all), a message refused every time gives up at 20 s after its first failure,
/// not at its third try.
#[tokio::test]
async fn probing_does_not_give_up_sooner_than_backing_off() {
    let (_fake, app, clock, t0) = outage_app(On::Sqlite, vec![ResponseTemplate::new(503)], 3)
        .await
        .unwrap();
    for k in 1..=2 {
        let body = open_pr(k, &at(k as u32), &format!("Outage {k}"), &[]);
        deliver(&app, "pullrequest:created", &body).await;
    }
    let ms = |n| t0 + chrono::Duration::milliseconds(n);
    next_wait(&clock, ms(200)).await;
    for probe in 1..=4 {
        next_wait(&clock, ms(200 + 5_000 * probe)).await;
    }
    let rows = wait_outbox(&app, "#1 given up", |rows| {
        rows.iter().any(|r| r.number == 1 && r.state == "failed")
    })
    .await;
    let first = rows.iter().find(|r| r.number == 1).unwrap();
    assert_eq!(first.attempts, 5, "tries at 0, 5, 10, 15 and 20 s");
    assert_eq!(
        first.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
}

/// News faster than the room's rate is a backlog too: twelve PRs due at once (one window) go out
/// as one summary, not twelve posts over 25 s at 30 a minute; nothing failed, so it does not
/// speak of an outage.
#[tokio::test]
async fn twelve_due_at_once_are_one_summary_without_an_outage() {
    let (fake, app, clock, t0) = outage_app(On::Sqlite, vec![hipchat_ok()], 10)
        .await
        .unwrap();
    for k in 1..=12 {
        let body = open_pr(k, &at(k as u32), &format!("Burst {k}"), &[]);
        deliver(&app, "pullrequest:created", &body).await;
    }
    next_wait(&clock, t0 + chrono::Duration::milliseconds(200)).await;
    let rows = wait_outbox(&app, "all twelve sent", all_in("sent", 12)).await;
    let hits = fake.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let html = hits[0].html();
    assert!(
        html.starts_with("<b>12 pull requests changed:</b><br><br><b>Needs review from Bob Reviewer, Carol Reviewer</b>: "),
        "{html}"
    );
    for k in 1..=12 {
        assert_eq!(
            html.matches(&format!("(acme/payments-api #{k})")).count(),
            1
        );
    }
    assert!(rows.iter().all(|r| r.attempts == 1), "{rows:#?}");
}

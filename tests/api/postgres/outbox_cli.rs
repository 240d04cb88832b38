//! `pr-reminder outbox list|retry` on PostgreSQL, beside the running service.

use super::*;
use crate::fake_chat::{hipchat_ok, Fake};
use crate::lifecycle::pr_event;
use crate::notifications::{hipchat, one_room};
use wiremock::ResponseTemplate;

/// (id, state, attempts, room, created_at, events, last_error, first_failed_at) of the row.
type Row = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

async fn the_row(app: &PgApp) -> Row {
    sqlx::query_as(
        "SELECT id, state, attempts, room, created_at, events, last_error, first_failed_at \
         FROM outbox",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// Waits until the one row is in `state`.
async fn wait_state(app: &PgApp, state: &str) -> Row {
    let started = Instant::now();
    loop {
        let row = the_row(app).await;
        if row.1 == state {
            return row;
        }
        assert!(started.elapsed() < PATIENCE, "never {state}: {row:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `outbox list`'s table: its header and one line per row, as the binary lays them out.
fn table(lines: &[String]) -> String {
    let mut out = format!(
        "{:>6}  {:<9} {:>3}  {:<12} {:<40} {:<28} {}\n",
        "id", "state", "try", "room", "pull request", "created", "events / last error"
    );
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn line(row: &Row, pr: &str) -> String {
    let detail = match &row.6 {
        Some(error) => format!("{} / {error}", row.5),
        None => row.5.clone(),
    };
    format!(
        "{:>6}  {:<9} {:>3}  {:<12} {:<40} {:<28} {}",
        row.0, row.1, row.2, row.3, pr, row.4, detail
    )
}

/// A message the room refuses (404) is failed; `outbox list [--failed]` shows it with its
/// error; `outbox retry 999` names what it cannot retry (exit 1), `outbox retry` alone is a
/// usage error (exit 2); `outbox retry <id>` and `outbox retry --failed` put it back with
/// its attempts at zero, and the running service sends it (here refused once more, then
/// accepted).
#[tokio::test]
async fn a_failed_message_is_listed_and_retried_by_id_and_all_failed() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(404).set_body_string("no such room"),
        ResponseTemplate::new(404).set_body_string("no such room"),
        hipchat_ok(),
    ])
    .await;
    let url = fake.url("/v2/room/payments/notification?auth_token=outbox-secret-token");
    let Some(app) = spawn_pg(
        "outbox",
        move |s| {
            s.notify = one_room(hipchat("payments", url));
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    let body = pr_event(
        1,
        "2026-11-20T10:00:00.000000+00:00",
        "OPEN",
        "One",
        "9b2c4e6f8a10",
        &[],
    );
    app.processed("pullrequest:created", &body).await;
    let failed = wait_state(&app, "failed").await;
    assert_eq!(
        (failed.2, failed.5.as_str(), failed.6.as_deref()),
        (1, "opened", Some("HTTP 404 Not Found: no such room"))
    );
    assert!(failed.7.is_some(), "first_failed_at: {failed:?}");
    let pr = "acme/payments-api#1";

    for args in [&["outbox", "list", "--failed"][..], &["outbox", "list"][..]] {
        let (code, stdout, stderr) = run_cli(&app.url, args).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(stdout, table(&[line(&failed, pr)]), "{args:?}");
    }
    let (code, stdout, stderr) = run_cli(&app.url, &["outbox", "retry", "999"]).await;
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    // As on SQLite: the fatal error said once; nothing else (no notice of PostgreSQL's about
    // the migrations table).
    assert_eq!(
        stderr,
        "pr-reminder: notification 999 does not exist or has not failed\n"
    );
    let (code, _, stderr) = run_cli(&app.url, &["outbox", "retry"]).await;
    assert_eq!(code, 2, "id or --failed is required: {stderr}");

    // By id: requeued, refused once more.
    let id = failed.0.to_string();
    let (code, stdout, stderr) = run_cli(&app.url, &["outbox", "retry", &id]).await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "1 notification(s) requeued\n"),
        "{stderr}"
    );
    fake.wait_for_hits(2).await;
    let again = wait_state(&app, "failed").await;
    assert_eq!(again.2, 1, "attempts started again from zero: {again:?}");

    // All failed ones: requeued, and sent by the service.
    let (code, stdout, stderr) = run_cli(&app.url, &["outbox", "retry", "--failed"]).await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "1 notification(s) requeued\n"),
        "{stderr}"
    );
    let sent = wait_state(&app, "sent").await;
    assert_eq!(
        (sent.2, sent.6.as_deref(), sent.7.as_deref()),
        (1, None, None),
        "one attempt since the retry, no error, no failure"
    );
    assert_eq!(fake.exactly(3).await.len(), 3);
    let (_, stdout, _) = run_cli(&app.url, &["outbox", "list", "--failed"]).await;
    assert_eq!(stdout, table(&["(no notifications)".to_owned()]));
    let (_, stdout, _) = run_cli(&app.url, &["outbox", "list"]).await;
    assert_eq!(stdout, table(&[line(&sent, pr)]));
    assert!(!stdout.contains("outbox-secret-token"));
}

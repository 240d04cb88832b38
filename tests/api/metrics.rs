//! `GET /metrics`: exact values after known actions (a processed, a duplicate, an ignored and a
//! rejected delivery; a sent and a failed notification through the fake chat), the bearer token,
//! and no secret anywhere in the exposition.

use std::time::Duration;

use pr_reminder::config::{NotifySettings, Room, SecretToken, Settings, Sink};
use secrecy::SecretString;
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::fake_chat::Fake;
use crate::helpers::{
    deliver_signed, on_both, post_webhook, route, set_repository, spawn_app_with, spawn_on,
    uuid_like, App, On, Served, SECRET,
};
use crate::lifecycle::pr_event;
use pr_reminder::clock::Clock;

pub(crate) const METRICS_TOKEN: &str = "metrics-token-0123456789";
pub(crate) const SLACK_PATH: &str = "/services/T000/B000/slack-url-secret-42";
pub(crate) const HIPCHAT_QUERY: &str = "auth_token=hipchat-url-secret-42";

/// Every sample line of the exposition (no comments), for exact comparisons.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// The value of the one sample named exactly `series` (name and labels as exposed).
pub(crate) fn value(text: &str, series: &str) -> String {
    let found: Vec<&str> = samples(text)
        .into_iter()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .collect();
    assert_eq!(found.len(), 1, "{series} in:\n{text}");
    found[0].to_owned()
}

async fn scrape(app: &impl Served, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = app.client().get(format!("{}/metrics", app.address()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, response.text().await.unwrap())
}

async fn wait_for(app: &impl Served, sql: &str, want: i64) {
    for _ in 0..500 {
        if app.count_rows(sql).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{sql}: expected {want}, got {}", app.count_rows(sql).await);
}

on_both!(metrics_count_deliveries_and_notifications_exactly);

/// The chats of the metrics tests: Slack takes every message; HipChat refuses every one (404).
pub(crate) async fn fakes() -> (Fake, Fake) {
    let slack = Fake::start(vec![ResponseTemplate::new(200).set_body_string("ok")]).await;
    let hipchat = Fake::start(vec![
        ResponseTemplate::new(404).set_body_string("no such room")
    ])
    .await;
    (slack, hipchat)
}

/// Rooms payments (Slack at `slack`) and web (HipChat at `hipchat`), each with its repository;
/// the metrics token.
pub(crate) fn settings(slack: &Fake, hipchat: &Fake) -> impl FnOnce(&mut Settings) {
    let slack_url = slack.url(SLACK_PATH);
    let hipchat_url = hipchat.url_with("/v2/room/1/notification", HIPCHAT_QUERY);
    move |s| {
        s.notify = NotifySettings {
            rooms: vec![
                Room {
                    name: "payments".into(),
                    sink: Sink::Slack(SecretString::from(slack_url)),
                },
                Room {
                    name: "web".into(),
                    sink: Sink::HipChat(SecretString::from(hipchat_url)),
                },
            ],
            routes: vec![
                route(&["acme/payments-api"], "payments"),
                route(&["acme/web"], "web"),
            ],
            coalesce: Duration::from_millis(100),
            max_attempts: 3,
            timeout: Duration::from_secs(2),
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            room_rate_per_minute: Some(6000),
        };
        s.monitoring.metrics_token = Some(SecretToken(SecretString::from(METRICS_TOKEN)));
    }
}

/// Delivers a PR to each room (processed), the first again (duplicate), a push (ignored) and a
/// badly signed one (rejected, 401).
pub(crate) async fn deliver_five(app: &impl Served) {
    let payments = pr_event(
        7,
        "2026-11-20T10:00:00.000000+00:00",
        "OPEN",
        "Pay",
        "abc123abc123",
        &[],
    );
    let mut web = pr_event(
        8,
        "2026-11-20T10:00:00.000000+00:00",
        "OPEN",
        "Web",
        "abc123abc124",
        &[],
    );
    set_repository(&mut web, "acme/web");
    web["pullrequest"]["links"]["html"]["href"] =
        json!("https://bitbucket.org/acme/web/pull-requests/8");
    let once = uuid_like("metrics");
    let (client, address) = (app.client(), app.address());
    for (event_key, id, body, want) in [
        (
            "pullrequest:created",
            once.clone(),
            serde_json::to_vec(&payments).unwrap(),
            "processed",
        ),
        (
            "pullrequest:created",
            once,
            serde_json::to_vec(&payments).unwrap(),
            "duplicate",
        ),
        (
            "pullrequest:created",
            uuid_like("metrics"),
            serde_json::to_vec(&web).unwrap(),
            "processed",
        ),
        (
            "repo:push",
            uuid_like("metrics"),
            br#"{"push": {"changes": []}}"#.to_vec(),
            "ignored",
        ),
    ] {
        let a = deliver_signed(client, address, event_key, &id, &body).await;
        assert_eq!(a.body["status"], want, "{}", a.body);
    }
    let a = post_webhook(
        client,
        address,
        &[
            ("X-Event-Key", "pullrequest:created"),
            ("X-Request-UUID", &uuid_like("metrics")),
            ("X-Hub-Signature", "sha256=00"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
}

/// The gauges read from the database (pending reviews, outbox messages per state) and the
/// counters, after a processed (twice), a duplicate, an ignored and a rejected delivery and a
/// sent and a failed message; no secret (nor PostgreSQL's password) in the exposition.
async fn metrics_count_deliveries_and_notifications_exactly(on: On) {
    let (slack, hipchat) = fakes().await;
    let Some(app) = spawn_on(on, "metrics", settings(&slack, &hipchat), Clock::system()).await
    else {
        return;
    };

    // Before anything: every series of both flavours is there, at 0.
    let (status, _, before) = scrape(&app, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{before}");
    for flavour in ["cloud", "datacenter"] {
        for outcome in ["processed", "duplicate", "ignored", "rejected"] {
            let series = format!(
                "pr_reminder_webhook_deliveries_total{{flavour=\"{flavour}\",outcome=\"{outcome}\"}}"
            );
            assert_eq!(value(&before, &series), "0");
        }
    }

    // Processed (twice: one PR in each room), a duplicate, an ignored one and a rejected one.
    deliver_five(&app).await;
    // The rejected one is recorded without the sender waiting.
    wait_for(&app, "SELECT count(*) FROM deliveries", 4).await;

    // One message accepted by the Slack fake, one refused for good by the HipChat fake.
    slack.wait_for_hits(1).await;
    hipchat.wait_for_hits(1).await;
    wait_for(&app, "SELECT count(*) FROM outbox WHERE state = 'sent'", 1).await;
    wait_for(
        &app,
        "SELECT count(*) FROM outbox WHERE state = 'failed'",
        1,
    )
    .await;

    // Without the token: 401 and a Bearer challenge, nothing exposed.
    let (status, challenge, body) = scrape(&app, None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    assert!(!body.contains("pr_reminder"), "{body}");
    let (status, _, _) = scrape(&app, Some("wrong-token-0123456789")).await;
    assert_eq!(status, 401);

    let (status, _, text) = scrape(&app, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let expect = [
        ("pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"processed\"}", "2"),
        ("pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"duplicate\"}", "1"),
        ("pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"ignored\"}", "1"),
        ("pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"rejected\"}", "1"),
        ("pr_reminder_webhook_deliveries_total{flavour=\"datacenter\",outcome=\"processed\"}", "0"),
        ("pr_reminder_webhook_deliveries_total{flavour=\"datacenter\",outcome=\"rejected\"}", "0"),
        ("pr_reminder_pending_reviews", "2"),
        // Both wait for their reviewers (issue 23).
        ("pr_reminder_open_pull_requests{turn=\"reviewers\"}", "2"),
        ("pr_reminder_open_pull_requests{turn=\"author\"}", "0"),
        ("pr_reminder_open_pull_requests{turn=\"merge\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"pending\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"retrying\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"sending\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"sent\"}", "1"),
        ("pr_reminder_outbox_messages{state=\"failed\"}", "1"),
        ("pr_reminder_notifications_sent_total{sink=\"slack\"}", "1"),
        ("pr_reminder_notifications_sent_total{sink=\"hipchat\"}", "0"),
        ("pr_reminder_notification_failures_total{sink=\"slack\"}", "0"),
        ("pr_reminder_notification_failures_total{sink=\"hipchat\"}", "1"),
        // Four answered 200, one refused 401; the route pattern, not the path.
        ("pr_reminder_http_request_duration_seconds_count{route=\"/webhooks/bitbucket\",status=\"200\"}", "4"),
        ("pr_reminder_http_request_duration_seconds_count{route=\"/webhooks/bitbucket\",status=\"401\"}", "1"),
        ("pr_reminder_http_request_duration_seconds_count{route=\"/metrics\",status=\"401\"}", "2"),
        ("pr_reminder_http_request_duration_seconds_count{route=\"/metrics\",status=\"200\"}", "1"),
        // Five submissions reached the writer (the duplicate too; the rejected one as a record).
        ("pr_reminder_writer_batch_size_sum", "5.0"),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series), want, "{series}");
    }
    let batches: u64 = value(&text, "pr_reminder_writer_batch_size_count")
        .parse()
        .unwrap();
    assert!((1..=5).contains(&batches), "{batches}");
    assert_eq!(
        value(&text, "pr_reminder_writer_commit_duration_seconds_count"),
        batches.to_string()
    );
    // Every family is declared with its type.
    for declared in [
        "# TYPE pr_reminder_webhook_deliveries counter",
        "# TYPE pr_reminder_pending_reviews gauge",
        "# TYPE pr_reminder_open_pull_requests gauge",
        "# TYPE pr_reminder_outbox_messages gauge",
        "# TYPE pr_reminder_notifications_sent counter",
        "# TYPE pr_reminder_notification_failures counter",
        "# TYPE pr_reminder_http_request_duration_seconds histogram",
        "# TYPE pr_reminder_writer_batch_size histogram",
        "# TYPE pr_reminder_writer_commit_duration_seconds histogram",
        // No site is configured: no reconciliation series (see the reconcile tests).
        "# TYPE pr_reminder_reconciliation_pass_duration_seconds histogram",
    ] {
        assert!(text.contains(declared), "{declared} in:\n{text}");
    }
    // No secret, no chat address, no repository or user label.
    for secret in [
        METRICS_TOKEN,
        SECRET,
        "slack-url-secret-42",
        "hipchat-url-secret-42",
        &slack.server.uri(),
        &hipchat.server.uri(),
        "acme/",
        "Alice",
    ] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
    if let App::Postgres(pg) = &app {
        let password = crate::postgres::password_of(&pg.url);
        assert!(
            !text.contains(&password),
            "the database password in:\n{text}"
        );
    }
}

#[tokio::test]
async fn metrics_are_open_without_a_token() {
    let app = spawn_app_with(|_| {}).await;
    let (status, challenge, text) = scrape(&app, None).await;
    assert_eq!((status, challenge), (200, None));
    assert_eq!(value(&text, "pr_reminder_pending_reviews"), "0");
    for turn in ["reviewers", "author", "merge"] {
        let series = format!("pr_reminder_open_pull_requests{{turn=\"{turn}\"}}");
        assert_eq!(value(&text, &series), "0", "{series}");
    }
    // The console room of the defaults.
    assert_eq!(
        value(
            &text,
            "pr_reminder_notifications_sent_total{sink=\"console\"}"
        ),
        "0"
    );
    // An unknown path is labelled as such, not by its path.
    assert_eq!(app.get("/wp-admin/secret-path").await, 404);
    let (_, _, text) = scrape(&app, None).await;
    assert_eq!(
        value(
            &text,
            "pr_reminder_http_request_duration_seconds_count{route=\"unmatched\",status=\"404\"}"
        ),
        "1"
    );
    assert!(!text.contains("wp-admin"), "{text}");
}

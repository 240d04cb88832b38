//! `GET /metrics` on PostgreSQL: the gauges read from the database, and the counters.

use super::*;
use crate::fake_chat::Fake;
use crate::helpers::{route, set_repository, uuid_like};
use crate::lifecycle::pr_event;
use pr_reminder::config::{NotifySettings, Room, SecretToken, Sink};
use wiremock::ResponseTemplate;

const METRICS_TOKEN: &str = "metrics-token-0123456789";

/// The value of the one sample named exactly `series`.
fn value(text: &str, series: &str) -> String {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .collect();
    assert_eq!(found.len(), 1, "{series} in:\n{text}");
    found[0].to_owned()
}

/// `metrics::metrics_count_deliveries_and_notifications_exactly` on PostgreSQL: the gauges
/// read from the database (pending reviews, outbox messages per state) and the counters,
/// after a processed (twice), a duplicate, an ignored and a rejected delivery and a sent and
/// a failed message; no secret, no database password in the exposition.
#[tokio::test]
async fn gauges_and_counters_are_exact() {
    let slack = Fake::start(vec![ResponseTemplate::new(200).set_body_string("ok")]).await;
    let hipchat = Fake::start(vec![
        ResponseTemplate::new(404).set_body_string("no such room")
    ])
    .await;
    let slack_url = slack.url("/services/T000/B000/slack-url-secret-42");
    let hipchat_url = hipchat.url_with(
        "/v2/room/1/notification",
        "auth_token=hipchat-url-secret-42",
    );
    let Some(app) = spawn_pg(
        "metrics",
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
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    let (status, before) = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(value(&before, "pr_reminder_pending_reviews"), "0");

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
    for (body, id, want) in [
        (&payments, once.as_str(), "processed"),
        (&payments, once.as_str(), "duplicate"),
        (&web, &uuid_like("metrics"), "processed"),
    ] {
        let a = app.deliver_json("pullrequest:created", id, body).await;
        assert_eq!(a.body["status"], want, "{}", a.body);
    }
    let a = app
        .deliver(
            "repo:push",
            &uuid_like("metrics"),
            br#"{"push": {"changes": []}}"#,
        )
        .await;
    assert_eq!(a.body["status"], "ignored", "{}", a.body);
    let a = app
        .post(
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Request-UUID", &uuid_like("metrics")),
                ("X-Hub-Signature", "sha256=00"),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(a.status, 401, "{}", a.body);
    app.wait_count("SELECT count(*) FROM deliveries", 4).await;
    slack.wait_for_hits(1).await;
    hipchat.wait_for_hits(1).await;
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 1)
        .await;
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'failed'", 1)
        .await;

    let (status, text) = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    for (series, want) in [
        (
            "pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"processed\"}",
            "2",
        ),
        (
            "pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"duplicate\"}",
            "1",
        ),
        (
            "pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"ignored\"}",
            "1",
        ),
        (
            "pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"rejected\"}",
            "1",
        ),
        ("pr_reminder_pending_reviews", "2"),
        ("pr_reminder_outbox_messages{state=\"pending\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"retrying\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"sending\"}", "0"),
        ("pr_reminder_outbox_messages{state=\"sent\"}", "1"),
        ("pr_reminder_outbox_messages{state=\"failed\"}", "1"),
        ("pr_reminder_notifications_sent_total{sink=\"slack\"}", "1"),
        (
            "pr_reminder_notification_failures_total{sink=\"hipchat\"}",
            "1",
        ),
        ("pr_reminder_writer_batch_size_sum", "5.0"),
    ] {
        assert_eq!(value(&text, series), want, "{series}");
    }
    let password = password_of(&app.url);
    for secret in [
        METRICS_TOKEN,
        SECRET,
        "slack-url-secret-42",
        "hipchat-url-secret-42",
        password.as_str(),
        "acme/",
    ] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
}

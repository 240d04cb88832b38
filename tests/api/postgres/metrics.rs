//! `GET /metrics` on PostgreSQL: the gauges read from the database, and the counters.

use super::*;
use crate::metrics::{deliver_five, fakes, settings, value, METRICS_TOKEN};

/// `metrics::metrics_count_deliveries_and_notifications_exactly` on PostgreSQL: the gauges
/// read from the database (pending reviews, outbox messages per state) and the counters,
/// after a processed (twice), a duplicate, an ignored and a rejected delivery and a sent and
/// a failed message; no secret, no database password in the exposition.
#[tokio::test]
async fn gauges_and_counters_are_exact() {
    let (slack, hipchat) = fakes().await;
    let Some(app) = spawn_pg("metrics", settings(&slack, &hipchat), Clock::system()).await else {
        return;
    };
    let (status, before) = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(value(&before, "pr_reminder_pending_reviews"), "0");

    deliver_five(&app).await;
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

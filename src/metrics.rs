//! Prometheus metrics (`GET /metrics`), through `prometheus-client` (the Prometheus project's own
//! Rust client: OpenMetrics text exposition, typed label sets, no global registry, so each
//! `Application` — and each test — has its own).
//!
//! The names below are a public interface (dashboards and external checks use them;
//! docs/monitoring.md). Labels stay low-cardinality: flavour, outcome, sink kind, outbox state, route
//! pattern, HTTP status and configured site; never a repository, user or PR.
//!
//! Counters and histograms are kept in memory by the code that does the work; the gauges
//! (`pending_reviews`, `outbox_messages`, the reconciliation's last success, `webhooks`) are read from the
//! database when scraped (`Metrics::encode`), so they hold across restarts and other processes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::config::{Settings, Sink};
use crate::domain::{Flavour, Turn};
use crate::reconcile::ReconcileReport;
use crate::store::{self, Db};

/// The `Content-Type` of the exposition (OpenMetrics text 1.0, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of a webhook delivery (`outcome` label of `pr_reminder_webhook_deliveries_total`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DeliveryOutcome {
    /// Stored, and it changed pull-request state.
    processed,
    /// A redelivery of a request id already accepted: nothing changed.
    duplicate,
    /// Understood and recorded, but not about anything tracked (a push, a comment...).
    ignored,
    /// Refused with a 4xx (signature, headers, payload, size, time).
    rejected,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    flavour: &'static str,
    outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChatLabels {
    chat: &'static str,
}

/// `turn`: `reviewers`, `author` or `merge` (`Turn::label`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnLabels {
    turn: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

/// `table`: one of `store::retention::TABLES`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: String,
}

/// Every state of `pr_reminder_webhooks`, each always exposed (0 when none): the coverage
/// states reconciliation records (one per checked repository), then `silent` (repositories of
/// any coverage state that look silent; see `status::webhooks::is_silent`).
const WEBHOOK_STATES: [&str; 6] = [
    "covered",
    "incomplete",
    "inactive",
    "missing",
    "unknown",
    "silent",
];

/// The review-flow histograms' buckets, in seconds: 5, 15 and 30 minutes; 1, 2, 4 and 8
/// hours; 1, 2 and 4 days; 1, 2 and 4 weeks.
const FLOW_BUCKETS: [f64; 13] = [
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14_400.0,
    28_800.0,
    86_400.0,
    172_800.0,
    345_600.0,
    604_800.0,
    1_209_600.0,
    2_419_200.0,
];

/// Every outbox state (`outbox.state`), each always exposed (0 when none).
const OUTBOX_STATES: [&str; 5] = ["pending", "retrying", "sending", "sent", "failed"];

/// The service's metrics. Cheap to clone; every clone feeds the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    notifications_sent: Family<SinkLabels, Counter>,
    notification_failures: Family<SinkLabels, Counter>,
    direct_sent: Family<ChatLabels, Counter>,
    direct_failures: Family<ChatLabels, Counter>,
    http: Family<HttpLabels, Histogram>,
    batch_size: Histogram,
    commit_seconds: Histogram,
    time_to_first_review: Histogram,
    time_to_merge: Histogram,
    pending_reviews: Gauge,
    open_pull_requests: Family<TurnLabels, Gauge>,
    outbox: Family<StateLabels, Gauge>,
    webhooks: Family<StateLabels, Gauge>,
    /// `webhook_silence_days`.
    webhook_silence: Duration,
    reconciliation_requests: Family<SiteLabels, Counter>,
    reconciliation_failures: Family<SiteLabels, Counter>,
    reconciliation_seconds: Histogram,
    reconciliation_last_success: Family<SiteLabels, Gauge<f64, AtomicU64>>,
    pruned_rows: Family<TableLabels, Counter>,
    /// The configured sites' names (`Site::name()`: their URL, which never carries credentials),
    /// in `[[bitbucket]]` order.
    sites: Vec<String>,
}

/// The `sink` label of a room: its kind of chat, never its URL.
pub fn sink_kind(sink: &Sink) -> &'static str {
    match sink {
        Sink::HipChat(_) | Sink::HipChatBearer { .. } => "hipchat",
        Sink::Slack(_) => "slack",
        Sink::SlackApi { .. } => "slack_api",
        Sink::Teams(_) => "teams",
        Sink::GoogleChat(_) => "google_chat",
        Sink::Console => "console",
    }
}

fn http_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// A registry holding every metric, with the label sets that `settings` make possible
    /// (both flavours and outcomes, the configured rooms' kinds, the configured sites) already
    /// at 0, so that a dashboard sees a series before its first event.
    pub fn new(settings: &Settings) -> Metrics {
        let mut registry = Registry::with_prefix("pr_reminder");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by Bitbucket flavour and outcome",
            deliveries.clone(),
        );
        let pending_reviews = Gauge::default();
        registry.register(
            "pending_reviews",
            "Open pull requests short of their required approvals (the pending_reviews view)",
            pending_reviews.clone(),
        );
        let open_pull_requests = Family::<TurnLabels, Gauge>::default();
        registry.register(
            "open_pull_requests",
            "Open pull requests by whose turn it is (the open_pull_requests view)",
            open_pull_requests.clone(),
        );
        for turn in Turn::LABELS {
            drop(open_pull_requests.get_or_create(&TurnLabels { turn }));
        }
        let outbox = Family::<StateLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Chat messages in the outbox, by state",
            outbox.clone(),
        );
        let webhooks = Family::<StateLabels, Gauge>::default();
        registry.register(
            "webhooks",
            "Configured repositories by what reconciliation found of pr-reminder's webhook \
             (covered, incomplete, inactive, missing, unknown), and those that look silent",
            webhooks.clone(),
        );
        let notifications_sent = Family::<SinkLabels, Counter>::default();
        registry.register(
            "notifications_sent",
            "Chat messages the chat server accepted, by kind of room",
            notifications_sent.clone(),
        );
        let notification_failures = Family::<SinkLabels, Counter>::default();
        registry.register(
            "notification_failures",
            "Attempts to send a chat message that failed (refused, rate-limited, unreachable), by kind of room",
            notification_failures.clone(),
        );
        let direct_sent = Family::<ChatLabels, Counter>::default();
        registry.register(
            "direct_messages_sent",
            "Direct messages to a person the chat server accepted, by chat",
            direct_sent.clone(),
        );
        let direct_failures = Family::<ChatLabels, Counter>::default();
        registry.register(
            "direct_message_failures",
            "Attempts to send a direct message that failed, by chat",
            direct_failures.clone(),
        );
        for chat in crate::config::DirectChat::ALL {
            if settings.direct.configured(chat) {
                let labels = ChatLabels {
                    chat: chat.as_str(),
                };
                drop(direct_sent.get_or_create(&labels));
                drop(direct_failures.get_or_create(&labels));
            }
        }
        let http = Family::<HttpLabels, Histogram>::new_with_constructor(
            http_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern and status",
            http.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "writer_batch_size",
            "Submissions folded into one committed writer transaction",
            batch_size.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        registry.register(
            "writer_commit_duration_seconds",
            "Time to fold and commit one writer batch",
            commit_seconds.clone(),
        );
        let time_to_first_review = Histogram::new(FLOW_BUCKETS);
        registry.register(
            "time_to_first_review_seconds",
            "Time from a PR being ready for review to its first review (Bitbucket's dates), \
             observed once per PR when the review arrives",
            time_to_first_review.clone(),
        );
        let time_to_merge = Histogram::new(FLOW_BUCKETS);
        registry.register(
            "time_to_merge_seconds",
            "Time from a PR being ready for review (else opened) to its merge (Bitbucket's \
             dates), observed once per PR when it is merged",
            time_to_merge.clone(),
        );
        let reconciliation_requests = Family::<SiteLabels, Counter>::default();
        registry.register(
            "reconciliation_requests",
            "Requests sent to Bitbucket's REST API by reconciliation passes, by site",
            reconciliation_requests.clone(),
        );
        let reconciliation_failures = Family::<SiteLabels, Counter>::default();
        registry.register(
            "reconciliation_repository_failures",
            "Repositories a reconciliation pass could not go through, by site",
            reconciliation_failures.clone(),
        );
        let reconciliation_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "reconciliation_pass_duration_seconds",
            "Wall time of one reconciliation pass",
            reconciliation_seconds.clone(),
        );
        let reconciliation_last_success = Family::<SiteLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "reconciliation_last_success_timestamp_seconds",
            "Unix time of the last successful reconciliation of any repository of the site",
            reconciliation_last_success.clone(),
        );
        let pruned_rows = Family::<TableLabels, Counter>::default();
        registry.register(
            "pruned_rows",
            "Rows deleted by retention ([retention], pr-reminder prune in this process), by table",
            pruned_rows.clone(),
        );
        for table in store::retention::TABLES {
            drop(pruned_rows.get_or_create(&TableLabels { table }));
        }

        for flavour in [Flavour::Cloud, Flavour::DataCenter] {
            for outcome in [
                DeliveryOutcome::processed,
                DeliveryOutcome::duplicate,
                DeliveryOutcome::ignored,
                DeliveryOutcome::rejected,
            ] {
                drop(deliveries.get_or_create(&DeliveryLabels {
                    flavour: flavour.as_str(),
                    outcome,
                }));
            }
        }
        for room in &settings.notify.rooms {
            let labels = SinkLabels {
                sink: sink_kind(&room.sink),
            };
            drop(notifications_sent.get_or_create(&labels));
            drop(notification_failures.get_or_create(&labels));
        }
        let sites: Vec<String> = settings
            .bitbucket
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        for site in &sites {
            let labels = SiteLabels { site: site.clone() };
            drop(reconciliation_requests.get_or_create(&labels));
            drop(reconciliation_failures.get_or_create(&labels));
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                deliveries,
                notifications_sent,
                notification_failures,
                direct_sent,
                direct_failures,
                http,
                batch_size,
                commit_seconds,
                time_to_first_review,
                time_to_merge,
                pending_reviews,
                open_pull_requests,
                outbox,
                webhooks,
                webhook_silence: settings.monitoring.webhook_silence,
                reconciliation_requests,
                reconciliation_failures,
                reconciliation_seconds,
                reconciliation_last_success,
                pruned_rows,
                sites,
            }),
        }
    }

    /// Counts one webhook delivery.
    pub fn delivery(&self, flavour: Flavour, outcome: DeliveryOutcome) {
        self.inner
            .deliveries
            .get_or_create(&DeliveryLabels {
                flavour: flavour.as_str(),
                outcome,
            })
            .inc();
    }

    /// Counts one attempt to send a chat message to a room of this kind: accepted or not.
    pub fn notification(&self, sink: &Sink, accepted: bool) {
        let labels = SinkLabels {
            sink: sink_kind(sink),
        };
        let family = if accepted {
            &self.inner.notifications_sent
        } else {
            &self.inner.notification_failures
        };
        family.get_or_create(&labels).inc();
    }

    /// Counts one attempt to send a direct message through `chat`: accepted or not.
    pub fn direct_message(&self, chat: crate::config::DirectChat, accepted: bool) {
        let labels = ChatLabels {
            chat: chat.as_str(),
        };
        let family = if accepted {
            &self.inner.direct_sent
        } else {
            &self.inner.direct_failures
        };
        family.get_or_create(&labels).inc();
    }

    /// Records one answered HTTP request: its route pattern (`/commands/hipchat/{token}`, never
    /// the path itself; `unmatched` for paths no route has), status and duration.
    pub fn http_request(&self, route: Option<&str>, status: u16, took: Duration) {
        let labels = HttpLabels {
            route: route.unwrap_or("unmatched").to_owned(),
            status,
        };
        self.inner
            .http
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records one committed writer batch.
    pub fn writer_commit(&self, size: usize, took: Duration) {
        self.inner.batch_size.observe(size as f64);
        self.inner.commit_seconds.observe(took.as_secs_f64());
    }

    /// What the writer calls after each commit (`WriterConfig::on_commit`).
    pub fn commit_observer(&self) -> store::writer::CommitObserver {
        let metrics = self.clone();
        Arc::new(move |size, took| metrics.writer_commit(size, took))
    }

    /// Counts `rows` deleted from `table` by retention (`pr_reminder_pruned_rows_total`).
    pub fn pruned(&self, table: &'static str, rows: u64) {
        self.inner
            .pruned_rows
            .get_or_create(&TableLabels { table })
            .inc_by(rows);
    }

    /// What the writer calls with each point a PR reached once its batch committed: feeds
    /// `time_to_first_review_seconds` and `time_to_merge_seconds`.
    pub fn flow_observer(&self) -> store::writer::FlowObserver {
        let metrics = self.clone();
        Arc::new(move |point| match point {
            store::writer::FlowPoint::FirstReview(s) => {
                metrics.inner.time_to_first_review.observe(s as f64)
            }
            store::writer::FlowPoint::Merged(s) => metrics.inner.time_to_merge.observe(s as f64),
        })
    }

    /// Records a reconciliation pass: its requests and failed repositories per site, its time.
    pub fn reconciliation(&self, report: &ReconcileReport) {
        self.inner
            .reconciliation_seconds
            .observe(report.elapsed_ms as f64 / 1000.0);
        for repository in &report.repositories {
            let labels = SiteLabels {
                site: repository.site.clone(),
            };
            self.inner
                .reconciliation_requests
                .get_or_create(&labels)
                .inc_by(repository.requests);
            if !repository.ok {
                self.inner
                    .reconciliation_failures
                    .get_or_create(&labels)
                    .inc();
            }
        }
    }

    /// Reads the gauges from the database (webhook silence judged at `now`), then writes the
    /// whole exposition (OpenMetrics text, ending in `# EOF`).
    pub async fn encode(&self, db: &Db, now: DateTime<Utc>) -> anyhow::Result<String> {
        let gauges = store::status::gauges(db).await?;
        let inner = &self.inner;
        let webhooks =
            crate::status::webhooks::lines(db, &inner.sites, inner.webhook_silence, now).await?;
        for state in WEBHOOK_STATES {
            let count = webhooks
                .iter()
                .filter(|w| {
                    if state == "silent" {
                        w.silent
                    } else {
                        w.state == state
                    }
                })
                .count();
            inner
                .webhooks
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        inner.pending_reviews.set(gauges.pending_reviews);
        for turn in Turn::LABELS {
            let count = gauges
                .turns
                .iter()
                .find(|(t, _)| t == turn)
                .map_or(0, |(_, n)| *n);
            inner
                .open_pull_requests
                .get_or_create(&TurnLabels { turn })
                .set(count);
        }
        for state in OUTBOX_STATES {
            let count = gauges
                .outbox
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            inner
                .outbox
                .get_or_create(&StateLabels { state })
                .set(count);
        }
        for site in &inner.sites {
            let last = gauges
                .reconciled
                .iter()
                .find(|(s, _)| s == site)
                .map(|(_, at)| at.to_datetime().timestamp_micros() as f64 / 1e6);
            let labels = SiteLabels { site: site.clone() };
            match last {
                Some(at) => {
                    inner
                        .reconciliation_last_success
                        .get_or_create(&labels)
                        .set(at);
                }
                // Never reconciled: no sample rather than a misleading 1970.
                None => {
                    inner.reconciliation_last_success.remove(&labels);
                }
            }
        }
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &inner.registry)
            .map_err(|_| anyhow::anyhow!("encoding the metrics"))?;
        Ok(out)
    }
}

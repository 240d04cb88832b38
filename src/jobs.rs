//! Periodic work, one path for every entry point: `POST /sweep`, `pr-reminder sweep` and the
//! built-in schedule all run a `Job` through `Jobs::run` (reconciliation comes next, as one more
//! variant). One job at a time per process; the database transaction covers other processes.

use std::sync::Arc;

use chrono::{Timelike, Utc};
use serde::Serialize;
use tokio::sync::{Mutex, Notify};

use crate::clock::Clock;
use crate::config::{parse_schedule, Settings};
use crate::domain::routing::Routing;
use crate::domain::{Timestamp, Trigger};
use crate::metrics::Metrics;
use crate::reconcile::{ReconcileReport, Reconciler, Scope};
use crate::remind::{self, RemindReport};
use crate::retention::{self, PruneReport};
use crate::store::{self, Db};
use crate::sweep::{self, SweepReport};
use crate::weekly_report::{self, WeeklyReport};

/// A piece of periodic work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Post each room's digest; `force` ignores `min_interval` and quiet hours.
    Sweep { force: bool },
    /// A reconciliation pass over Bitbucket's REST API (`POST /reconcile`,
    /// `pr-reminder reconcile`, `poll_interval_minutes`).
    Reconcile(Scope),
    /// Queue the personal reminders that are due (`POST /remind`, `pr-reminder remind`, every
    /// minute): of one person (`user`) or everyone; `force` sends now, whatever the hour.
    Remind {
        /// One person (a `[[users]]` bitbucket name, chat id or e-mail), or everyone.
        user: Option<String>,
        /// Now, whatever the hour or day.
        force: bool,
    },
    /// Queue each room's weekly team report if one is due (`[analytics] weekly_report`, issue
    /// 28; `run_weekly_reports`): once per room and week, see `weekly_report`.
    WeeklyReport,
    /// Delete what `[retention]` no longer keeps (`pr-reminder prune`, hourly); `dry_run`
    /// deletes nothing and says what would go.
    Prune { dry_run: bool },
}

/// What a job did, as the HTTP answer and the CLI print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum JobReport {
    Sweep(SweepReport),
    Reconcile(ReconcileReport),
    Remind(RemindReport),
    WeeklyReport(WeeklyReport),
    Prune(PruneReport),
}

impl JobReport {
    /// A human-readable report (the CLI's default output).
    pub fn to_text(&self) -> String {
        match self {
            JobReport::Sweep(report) => report.to_text(),
            JobReport::Reconcile(report) => report.to_text(),
            JobReport::Remind(report) => report.to_text(),
            JobReport::WeeklyReport(report) => report.to_text(),
            JobReport::Prune(report) => report.to_text(),
        }
    }
}

/// Runs jobs against the service's database, routes and settings.
pub struct Jobs {
    db: Db,
    routing: Arc<Routing>,
    settings: Arc<Settings>,
    /// Wakes the chat dispatcher after a job queued messages.
    wake: Arc<Notify>,
    clock: Clock,
    running: Mutex<()>,
    /// One prune at a time in this process. Pruning does not take `running`: a prune of a
    /// large backlog takes minutes (short transactions with pauses), and sweeps and reminders
    /// must not wait for it.
    pruning: Mutex<()>,
    /// Runs `Job::Reconcile`; `None` when no Bitbucket site is configured.
    reconciler: Option<Arc<Reconciler>>,
    /// Counts reconciliation passes (the service's; the CLI has none).
    metrics: Option<Metrics>,
}

impl Jobs {
    /// PostgreSQL: when site `site`'s last pass (by any replica) ended less than 90 % of `every`
    /// ago, how long until `every` after it. `None`: poll now (always on SQLite, whose one
    /// process paces itself).
    async fn recently_reconciled(
        &self,
        site: usize,
        every: std::time::Duration,
    ) -> Option<std::time::Duration> {
        if !self.db.is_postgres() {
            return None;
        }
        let name = self.settings.bitbucket.get(site)?.name().to_owned();
        let last = store::status::reconciliations(&self.db)
            .await
            .ok()?
            .into_iter()
            .find(|r| r.site == name)
            .and_then(|r| Timestamp::parse(&r.last_pass_on).ok())?;
        let since = (self.clock.now() - last.to_datetime()).to_std().ok()?;
        (since < every.mul_f64(0.9)).then(|| every - since)
    }

    /// Jobs over `db` with these routes and settings; `wake` is the dispatcher's, `clock` says
    /// what `now` is.
    pub fn new(
        db: Db,
        routing: Arc<Routing>,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
        clock: Clock,
    ) -> Self {
        Jobs {
            db,
            routing,
            settings,
            wake,
            clock,
            running: Mutex::new(()),
            pruning: Mutex::new(()),
            reconciler: None,
            metrics: None,
        }
    }

    /// The same jobs, able to reconcile through `reconciler`.
    pub fn with_reconciler(mut self, reconciler: Arc<Reconciler>) -> Self {
        self.reconciler = Some(reconciler);
        self
    }

    /// The same jobs, counting reconciliation passes in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// What runs `Job::Reconcile`, if Bitbucket sites are configured.
    pub fn reconciler(&self) -> Option<&Arc<Reconciler>> {
        self.reconciler.as_ref()
    }

    /// Runs `job` now (after any job already running in this process).
    pub async fn run(&self, job: Job, trigger: Trigger) -> anyhow::Result<JobReport> {
        if let Job::Prune { dry_run } = job {
            let _pruning = self.pruning.lock().await;
            let report = retention::run(
                &self.db,
                &self.settings.retention,
                self.clock.now(),
                dry_run,
                store::retention::Pace::default(),
                self.metrics.as_ref(),
            )
            .await?;
            return Ok(JobReport::Prune(report));
        }
        let _running = self.running.lock().await;
        let now = self.clock.now();
        let report = match job {
            Job::Sweep { force } => JobReport::Sweep(
                sweep::run(&self.db, &self.routing, &self.settings, now, trigger, force).await?,
            ),
            Job::Reconcile(scope) => {
                let reconciler = self.reconciler.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("no Bitbucket site is configured ([[bitbucket]])")
                })?;
                let report = reconciler.run(&scope).await?;
                if let Some(metrics) = &self.metrics {
                    metrics.reconciliation(&report);
                }
                JobReport::Reconcile(report)
            }
            // Run above, without `running`.
            Job::Prune { .. } => unreachable!("a prune does not wait for other jobs"),
            Job::Remind { user, force } => JobReport::Remind(
                remind::run(
                    &self.db,
                    &self.routing,
                    &self.settings,
                    now,
                    user.as_deref(),
                    force,
                )
                .await?,
            ),
            Job::WeeklyReport => JobReport::WeeklyReport(
                weekly_report::run(&self.db, &self.routing, &self.settings, now).await?,
            ),
        };
        self.wake.notify_waiters();
        if let Err(err) = store::announce_news(&self.db).await {
            tracing::warn!(error = %format!("{err:#}"), "other replicas will see the queued messages at their next look");
        }
        Ok(report)
    }
}

/// The built-in schedule (`sweep.schedule`, cron in the sweep's time zone): runs the sweep as if
/// a scheduler had called `POST /sweep`, until the task is aborted.
pub async fn run_schedule(jobs: Arc<Jobs>, expression: String) {
    let schedule = match parse_schedule(&expression) {
        Ok(schedule) => schedule,
        Err(err) => {
            tracing::error!(%err, "the sweep schedule is invalid; no scheduled sweeps");
            return;
        }
    };
    let tz = jobs.settings.sweep.calendar.tz;
    loop {
        let now = jobs.clock.now();
        let Some(next) = schedule.after(&now.with_timezone(&tz)).next() else {
            tracing::warn!("the sweep schedule has no future run");
            return;
        };
        let next = next.with_timezone(&Utc);
        tracing::info!(next = %next, "next scheduled sweep");
        jobs.clock.sleep_until(next).await;
        match jobs
            .run(Job::Sweep { force: false }, Trigger::Schedule)
            .await
        {
            Ok(report) => tracing::info!(report = %one_line(&report), "scheduled sweep done"),
            Err(err) => tracing::error!(error = %format!("{err:#}"), "scheduled sweep failed"),
        }
    }
}

/// Polls one Bitbucket site (`poll_interval_minutes`): a reconciliation pass at start, then one
/// every `every`, through the same job path as the scheduled sweep, until the task is aborted.
pub async fn run_polls(jobs: Arc<Jobs>, site: usize, every: std::time::Duration) {
    loop {
        // Several replicas each poll: a site another replica went through within the interval
        // is not gone through again now (the writes are idempotent; the requests are not free).
        if let Some(wait) = jobs.recently_reconciled(site, every).await {
            tracing::debug!(
                site,
                "reconciled by another replica within the interval; waiting"
            );
            jobs.clock.sleep(wait).await;
            continue;
        }
        let job = Job::Reconcile(Scope {
            site: Some(site),
            repository: None,
        });
        match jobs.run(job, Trigger::Schedule).await {
            Ok(report) => {
                tracing::info!(site, report = %one_line(&report), "scheduled reconciliation done")
            }
            Err(err) => {
                tracing::error!(site, error = %format!("{err:#}"), "scheduled reconciliation failed")
            }
        }
        jobs.clock.sleep(every).await;
    }
}

/// The personal reminders' schedule: at the start of every minute (on the service's clock),
/// queues the reminders due then (`Job::Remind`), as a scheduler calling `POST /remind` would,
/// until the task is aborted. Runs only when someone could get a direct message.
pub async fn run_reminders(jobs: Arc<Jobs>) {
    loop {
        let now = jobs.clock.now();
        let next = now + chrono::Duration::seconds(60 - i64::from(now.second()))
            - chrono::Duration::nanoseconds(i64::from(now.nanosecond() % 1_000_000_000));
        jobs.clock.sleep_until(next).await;
        let job = Job::Remind {
            user: None,
            force: false,
        };
        match jobs.run(job, Trigger::Schedule).await {
            Ok(JobReport::Remind(report)) if report.queued() > 0 => {
                tracing::info!(queued = report.queued(), report = %report.to_text().replace('\n', "; "), "personal reminders queued")
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "personal reminders failed")
            }
        }
    }
}

/// The weekly team report's schedule (`[analytics] weekly_report`, in `[sweep] timezone`): runs
/// `Job::WeeklyReport` at start (a report due within the last day and not yet queued goes out:
/// a restart at 09:05 does not lose Monday's) and then at each weekly instant, until the task is
/// aborted. Every replica runs it; the report is queued once per room and week all the same.
pub async fn run_weekly_reports(jobs: Arc<Jobs>) {
    let Some((weekday, time)) = jobs.settings.analytics.weekly_report else {
        return;
    };
    let tz = jobs.settings.sweep.calendar.tz;
    loop {
        match jobs.run(Job::WeeklyReport, Trigger::Schedule).await {
            Ok(report) => tracing::info!(report = %one_line(&report), "weekly report run"),
            Err(err) => tracing::error!(error = %format!("{err:#}"), "weekly report failed"),
        }
        let next = weekly_report::next_due(jobs.clock.now(), weekday, time, tz);
        tracing::info!(next = %next, "next weekly report");
        jobs.clock.sleep_until(next).await;
    }
}

/// How long after start the built-in schedule first prunes (on the service's clock): past the
/// start's own work, soon enough that a service restarted often still prunes.
pub const FIRST_PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the built-in schedule prunes after the first time.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The built-in retention schedule: a prune `FIRST_PRUNE_AFTER` the start, then every
/// `PRUNE_EVERY`, through the same job path as `pr-reminder prune`, until the task is aborted.
/// Started when `[retention]` keeps anything for a limited time.
pub async fn run_retention(jobs: Arc<Jobs>) {
    let mut wait = FIRST_PRUNE_AFTER;
    loop {
        jobs.clock.sleep(wait).await;
        wait = PRUNE_EVERY;
        match jobs
            .run(Job::Prune { dry_run: false }, Trigger::Schedule)
            .await
        {
            Ok(JobReport::Prune(report)) if report.skipped => {
                tracing::debug!("another replica is pruning; skipped")
            }
            Ok(JobReport::Prune(report)) => {
                tracing::info!(
                    rows = report.total(),
                    report = %serde_json::to_string(&report.tables).unwrap_or_default(),
                    transactions = report.transactions,
                    longest_transaction_us = report.longest_transaction_us,
                    "scheduled prune done"
                )
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %format!("{err:#}"), "scheduled prune failed"),
        }
    }
}

/// A job's report on one line of a log (its JSON), not the multi-line text the CLI prints.
fn one_line(report: &JobReport) -> String {
    serde_json::to_string(report).unwrap_or_else(|_| report.to_text().replace('\n', "; "))
}

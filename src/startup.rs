//! Wiring: opens the database, starts the writer, the dispatcher and the schedule, builds each
//! route's state and binds the listener (port 0 in tests: see `Application::port`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service as _};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::bitbucket::rest::RetryPolicy;
use crate::bitbucket::servers::DataCenterServers;
use crate::clock::Clock;
use crate::config::{Settings, SignaturePolicy};
use crate::domain::routing::Routing;
use crate::identity::Identities;
use crate::jobs::{self, Jobs};
use crate::metrics::Metrics;
use crate::notify::direct::DirectDispatcher;
use crate::notify::dispatcher::Dispatcher;
use crate::reconcile::Reconciler;
use crate::routes;
use crate::store::{self, Db, WriterConfig};

/// The running service: database ready, writer started, listener bound.
pub struct Application {
    port: u16,
    server: Server,
    writer_task: JoinHandle<()>,
    dispatcher: Dispatcher,
    /// Sends the direct messages (issue 24).
    direct: DirectDispatcher,
    scheduler: Option<JoinHandle<()>>,
    /// Queues the personal reminders every minute, when anyone can get a direct message.
    reminders: Option<JoinHandle<()>>,
    /// Queues each room's weekly team report, when `[analytics] weekly_report` is set.
    weekly_reports: Option<JoinHandle<()>>,
    /// Prunes hourly what `[retention]` no longer keeps (when it keeps anything for a limited
    /// time).
    pruner: Option<JoinHandle<()>>,
    /// One reconciliation poller per site with `poll_interval_minutes`.
    pollers: Vec<JoinHandle<()>>,
    db: Db,
    /// SIGTERM and SIGINT, listened for from the start: one that comes as soon as the port is
    /// bound is a graceful stop too, not the default action's kill.
    signals: ShutdownSignals,
}

impl Application {
    /// Opens (and migrates) the database, starts the writer and binds `settings.listen`
    /// (port 0 picks a free port: see `port()`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// As `build`, on `clock` for every time decision: arrivals, coalescing windows, retries,
    /// the rooms' rate limits, sweeps, schedules, `/reviews` and Slack's replay window (tests
    /// move it).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        if let Some(err) = settings.placeholder() {
            return Err(err.into());
        }
        let signals = ShutdownSignals::listen().context("listening for SIGTERM and SIGINT")?;
        let db = store::connect(&settings.database, &settings.synchronous).await?;
        if db.migrations_applied() > 0 {
            tracing::info!(
                applied = db.migrations_applied(),
                database = %db.describe(),
                "database migrated"
            );
        }
        store::write_settings(&db, settings.required_approvals).await?;
        let routing = Arc::new(
            Routing::new(&settings.notify.routes, settings.required_approvals)
                .context("compiling routes")?
                .with_final_edits(settings.notify.editing_rooms()),
        );
        store::repositories::apply_required_approvals(&db, |key, name| {
            routing
                .route(key.flavour(), name)
                .map_or((None, false), |r| {
                    (r.required_override, r.approvals_after_last_push)
                })
        })
        .await?;
        // PostgreSQL: other replicas may be sending right now; a room's messages left half-sent
        // are recovered by whichever replica takes the room's lease (`notify::dispatcher`).
        let recovered = if db.is_postgres() {
            0
        } else {
            store::outbox::recover_in_flight(&db).await?
        };
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "messages interrupted by the last stop will be sent again"
            );
        }
        // Direct messages: one sender per chat, not per room, so any process may recover them.
        let recovered = store::direct::recover_in_flight(&db).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "direct messages interrupted by the last stop will be sent again"
            );
        }
        // One Data Center server, one identity: what the configuration (or the data) says is one
        // server is merged before anything is read or written.
        let identities = Arc::new(Identities::new(
            DataCenterServers::from_sites(&settings.bitbucket),
            db.clone(),
        ));
        identities
            .heal()
            .await
            .context("merging Data Center server identities")?;
        let wake = Arc::new(Notify::new());
        let metrics = Metrics::new(&settings);
        let (writer, writer_task) = db
            .spawn_writer(WriterConfig {
                max_batch: settings.max_batch,
                queue: 8192,
                routing: routing.clone(),
                coalesce: settings.notify.coalesce,
                wake: wake.clone(),
                now: clock.reader(),
                on_commit: Some(metrics.commit_observer()),
                on_flow: Some(metrics.flow_observer()),
            })
            .await?;
        // The Slack Web API's per-channel limits: one for the process, whoever calls it.
        let slack_limits = crate::notify::slack_api::Limits::new(clock.clone());
        let dispatcher = Dispatcher::spawn(
            db.clone(),
            &settings.notify,
            wake.clone(),
            clock.clone(),
            metrics.clone(),
            &settings.commands.users,
            &slack_limits,
        )?;
        let direct = DirectDispatcher::spawn(
            db.clone(),
            &settings.direct,
            &settings.notify,
            &settings.commands.users,
            wake.clone(),
            clock.clone(),
            metrics.clone(),
            &slack_limits,
        )?;
        // PostgreSQL: other replicas' commits wake this one's dispatcher too.
        let _news = store::listen_for_news(&db, wake.clone());
        for room in &settings.notify.rooms {
            tracing::info!(room = %room.name, sink = ?room.sink, "room configured");
        }

        match &settings.signature {
            SignaturePolicy::Verify(_) => {}
            SignaturePolicy::Insecure => tracing::warn!(
                "INSECURE: webhook signatures are NOT verified (insecure_skip_signature is set); \
                 anyone who can reach this port can write pull-request state"
            ),
            SignaturePolicy::Demo => tracing::warn!(
                "DEMO MODE: no configuration found, so unsigned deliveries are accepted on {} only. \
                 Set PR_REMINDER_WEBHOOK_SECRET before exposing the service",
                settings.listen
            ),
            // Said where the reconciler is set up.
            SignaturePolicy::PollOnly => {}
        }
        if settings.sweep.token.is_none() {
            tracing::info!("POST /sweep is disabled (no PR_REMINDER_SWEEP_TOKEN)");
        }
        match (&settings.sweep.schedule, &settings.sweep.token) {
            (Some(schedule), _) => tracing::info!(
                schedule = %schedule,
                timezone = %settings.sweep.calendar.tz,
                "digests are posted on the schedule"
            ),
            // Only `pr-reminder sweep` (cron beside the service) could post one: say so where a
            // deployment will read it, since the digest is the main thing it is for.
            (None, None) if !matches!(settings.signature, SignaturePolicy::Demo) => tracing::warn!(
                "no digest is posted unless `pr-reminder sweep` runs: set [sweep] schedule in \
                 the settings file (or PR_REMINDER_SWEEP_TOKEN for a scheduler calling POST /sweep)"
            ),
            _ => {}
        }

        let reconciler = reconciler(&settings, &db, &writer, &clock)?;
        let settings = Arc::new(settings);
        let mut jobs = Jobs::new(
            db.clone(),
            routing.clone(),
            settings.clone(),
            wake,
            clock.clone(),
        );
        if let Some(reconciler) = reconciler {
            jobs = jobs.with_reconciler(reconciler);
        }
        jobs = jobs.with_metrics(metrics.clone());
        let jobs = Arc::new(jobs);
        let pollers = pollers(&settings, &jobs);
        let scheduler = settings
            .sweep
            .schedule
            .clone()
            .map(|expression| tokio::spawn(jobs::run_schedule(jobs.clone(), expression)));
        // Someone could get a direct message: their queue at their hour, every minute.
        let anyone_direct = crate::config::DirectChat::ALL
            .into_iter()
            .any(|chat| settings.direct.configured(chat))
            && !settings.commands.users.is_empty();
        if anyone_direct {
            let chats: Vec<&str> = crate::config::DirectChat::ALL
                .into_iter()
                .filter(|chat| settings.direct.configured(*chat))
                .map(|chat| chat.as_str())
                .collect();
            tracing::info!(
                people = settings.commands.users.len(),
                chats = %chats.join(", "),
                "personal reminders and direct messages: checked every minute"
            );
        }
        let reminders = anyone_direct.then(|| tokio::spawn(jobs::run_reminders(jobs.clone())));
        let weekly_reports = settings
            .analytics
            .weekly_report
            .is_some()
            .then(|| tokio::spawn(jobs::run_weekly_reports(jobs.clone())));
        let r = &settings.retention;
        let pruner =
            (r.deliveries.is_some() || r.outbox.is_some() || r.closed_pull_requests.is_some())
                .then(|| tokio::spawn(jobs::run_retention(jobs.clone())));
        let webhook = web::Data::new(routes::webhook::WebhookState {
            signature: settings.signature.clone(),
            max_body_bytes: settings.max_body_bytes,
            body_timeout: settings.body_timeout,
            writer,
            clock: clock.clone(),
            metrics: metrics.clone(),
            identities,
        });
        let reconcile = web::Data::new(routes::reconcile::ReconcileState {
            token: settings.sweep.token.clone(),
            jobs: jobs.clone(),
        });
        let remind = web::Data::new(routes::remind::RemindState {
            token: settings.sweep.token.clone(),
            jobs: jobs.clone(),
        });
        let sweep = web::Data::new(routes::sweep::SweepState {
            token: settings.sweep.token.clone(),
            jobs,
        });
        let status = web::Data::new(routes::status::StatusState {
            settings: settings.clone(),
            db: db.clone(),
            routing: routing.clone(),
            clock: clock.clone(),
        });
        let metrics_route = web::Data::new(routes::metrics::MetricsState {
            token: settings.monitoring.metrics_token.clone(),
            metrics: metrics.clone(),
            db: db.clone(),
            clock: clock.clone(),
        });
        let commands = web::Data::new(routes::commands::CommandsState {
            settings: settings.clone(),
            db: db.clone(),
            routing,
            clock,
        });
        let health = web::Data::new(routes::health::HealthState { db: db.clone() });
        let connections = connection_cap();
        // Past half the cap in slow bodies, bodies get a short time to arrive.
        let pressure = web::Data::new(routes::BodyPressure::new(
            connections.per_worker * connections.workers / 2,
        ));
        let server = HttpServer::new(move || {
            let timed = metrics.clone();
            App::new()
                // Every answer's time, by route pattern and status (`pr_reminder_http_...`).
                .wrap_fn(move |req, srv| {
                    let metrics = timed.clone();
                    // A measurement, not a time decision: the real clock.
                    let started = std::time::Instant::now();
                    let answer = srv.call(req);
                    async move {
                        let answer = answer.await?;
                        let route = answer.request().match_pattern();
                        let status = answer.status().as_u16();
                        metrics.http_request(route.as_deref(), status, started.elapsed());
                        Ok(answer)
                    }
                })
                .app_data(webhook.clone())
                .app_data(sweep.clone())
                .app_data(remind.clone())
                .app_data(reconcile.clone())
                .app_data(commands.clone())
                .app_data(health.clone())
                .app_data(pressure.clone())
                .app_data(status.clone())
                .app_data(metrics_route.clone())
                .service(post("/webhooks/bitbucket").to(routes::webhook::bitbucket))
                .service(post("/sweep").to(routes::sweep::sweep))
                .service(post("/remind").to(routes::remind::remind))
                .service(post("/reconcile").to(routes::reconcile::reconcile))
                .service(post("/commands/hipchat/{token}").to(routes::commands::hipchat))
                .service(post("/commands/slack").to(routes::commands::slack))
                .service(get("/healthz", routes::health::healthz))
                .service(get("/readyz", routes::health::readyz))
                .service(get("/metrics", routes::metrics::metrics))
                .service(get("/status", routes::status::status))
                .service(get("/status/review-flow", routes::status::review_flow))
        })
        // Connections past the cap wait in the kernel's queue until a slot turns over; std's
        // listener would queue only 128, and a dropped SYN is retried by the client after a
        // whole second.
        .backlog(BACKLOG)
        .shutdown_timeout(10)
        .max_connections(connections.per_worker)
        .workers(connections.workers)
        // Signals are ours (see `run_until_stopped`): actix treats SIGINT as a forced shutdown
        // that drops connections whose delivery the writer may already have committed.
        .disable_signals()
        .bind(settings.listen)
        .with_context(|| format!("binding {}", settings.listen))?;
        let port = server
            .addrs()
            .first()
            .context("reading the bound port")?
            .port();
        let server = server.run();

        Ok(Application {
            port,
            server,
            writer_task,
            dispatcher,
            direct,
            scheduler,
            reminders,
            weekly_reports,
            pruner,
            pollers,
            db,
            signals,
        })
    }

    /// The port actually bound: the configured one, or the one the OS chose for port 0 (tests).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT or SIGTERM (both graceful: no new connections, requests in flight are
    /// answered within 10 s), then lets the writer commit what it holds, and closes the
    /// database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut shutdown = self.signals;
        let signals = tokio::spawn(async move {
            let name = shutdown.recv().await;
            tracing::info!(signal = name, "stopping: finishing requests in flight");
            // Graceful either way: every request in flight is answered (and its delivery
            // committed) or was never read; none is cut off after its commit.
            handle.stop(true).await;
        });
        let served = self.server.await.context("HTTP server");
        signals.abort();
        served?;
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
        }
        if let Some(weekly_reports) = &self.weekly_reports {
            weekly_reports.abort();
        }
        if let Some(reminders) = &self.reminders {
            reminders.abort();
        }
        if let Some(pruner) = &self.pruner {
            pruner.abort();
        }
        for poller in &self.pollers {
            poller.abort();
        }
        // The server (and with it every Writer handle) is gone; the writer drains and ends.
        if tokio::time::timeout(Duration::from_secs(10), self.writer_task)
            .await
            .is_err()
        {
            tracing::warn!("writer did not finish within 10 s");
        }
        // Messages in flight finish; the rest wait in the outbox for the next start.
        if tokio::time::timeout(Duration::from_secs(15), self.dispatcher.stop())
            .await
            .is_err()
        {
            tracing::warn!("notification dispatcher did not stop within 15 s");
        }
        if tokio::time::timeout(Duration::from_secs(15), self.direct.stop())
            .await
            .is_err()
        {
            tracing::warn!("direct-message dispatcher did not stop within 15 s");
        }
        self.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The reconciler of the configured Bitbucket sites, if any.
fn reconciler(
    settings: &Settings,
    db: &Db,
    writer: &store::Writer,
    clock: &Clock,
) -> anyhow::Result<Option<Arc<Reconciler>>> {
    if settings.bitbucket.is_empty() {
        return Ok(None);
    }
    if matches!(settings.signature, SignaturePolicy::PollOnly) {
        tracing::warn!(
            "POLL-ONLY: no webhook secret is set, so deliveries are refused; state comes from \
             Bitbucket's REST API (POST /reconcile, pr-reminder reconcile, poll_interval_minutes)"
        );
    }
    let reconciler = Reconciler::new(
        &settings.bitbucket,
        db.clone(),
        writer.clone(),
        clock.clone(),
        RetryPolicy::default(),
    )
    .context("setting up the Bitbucket REST clients")?;
    Ok(Some(Arc::new(reconciler)))
}

/// Starts a poller for each site with `poll_interval_minutes`.
fn pollers(settings: &Settings, jobs: &Arc<Jobs>) -> Vec<JoinHandle<()>> {
    settings
        .bitbucket
        .iter()
        .enumerate()
        .filter_map(|(i, site)| {
            let every = site.poll_interval?;
            tracing::info!(
                site = site.name(),
                minutes = every.as_secs_f64() / 60.0,
                "polling Bitbucket"
            );
            Some(tokio::spawn(jobs::run_polls(jobs.clone(), i, every)))
        })
        .collect()
}

/// SIGTERM (an orchestrator's stop) and SIGINT (Ctrl-C), listened for from creation on (tokio
/// replaces the default action, a kill, when the listener is made).
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(ShutdownSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignals {})
        }
    }

    /// Waits for either; answers which came.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// `path` for POST; any other method gets 405 with `Allow: POST`.
fn post(path: &str) -> PostResource {
    PostResource(path.to_owned())
}

/// A POST-only resource under construction (`post(path).to(handler)`).
struct PostResource(String);

impl PostResource {
    fn to<F, Args>(self, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(self.0)
            .route(web::post().to(handler))
            .default_service(web::to(|| not_allowed("POST")))
    }
}

/// `path` for GET and HEAD (the same answer without its body); any other method gets 405 with
/// `Allow: GET, HEAD`.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|| not_allowed("GET, HEAD")))
}

/// 405 Method Not Allowed, saying which methods the path takes (RFC 9110 §15.5.6).
async fn not_allowed(allow: &'static str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow))
        .json(serde_json::json!({
            "status": "rejected",
            "reason": format!("method not allowed here; use {allow}"),
        }))
}

/// Connections the kernel may queue for us while every slot is taken (Linux caps it at
/// `net.core.somaxconn`, 4,096 by default).
const BACKLOG: u32 = 4096;

/// How many connections the HTTP workers hold at most.
struct ConnectionCap {
    workers: usize,
    per_worker: usize,
}

/// Raises the open-file soft limit to the hard limit (a slow client holds a descriptor until its
/// body times out; running out of descriptors stops the process from accepting anything, health
/// checks included), then caps the connections below it, keeping 256 descriptors for the
/// database, the chat clients and the logs. Connections over the cap wait in the listen backlog.
fn connection_cap() -> ConnectionCap {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let usable = usize::try_from(limit.saturating_sub(256).max(64)).unwrap_or(usize::MAX);
    // At least 16 connections a worker: fewer workers where the limit is that low (many cores,
    // few files), so that the cap never exceeds what may be opened.
    let workers = workers.min(usable / 16).max(1);
    // actix's own default (25,000 a worker) unless the limit is lower.
    let per_worker = (usable / workers).clamp(16, 25_000);
    tracing::debug!(open_files = limit, workers, per_worker, "connection cap");
    ConnectionCap {
        workers,
        per_worker,
    }
}

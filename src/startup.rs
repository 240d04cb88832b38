use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions, SqlitePool};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{Settings, SignaturePolicy};
use crate::domain::routing::Router;
use crate::notify::outbox::{self, Dispatcher};
use crate::routes;
use crate::store::{self, Writer, WriterConfig};

/// The time, injectable so tests can sweep "on a Saturday".
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What every request handler can reach.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: SqlitePool,
    pub writer: Writer,
    pub router: Arc<Router>,
    /// Wakes the notification dispatcher after something was queued.
    pub wake: Arc<Notify>,
    pub sweep_lock: tokio::sync::Mutex<()>,
    pub clock: Clock,
}

/// The running service: database ready, writer started, listener bound.
pub struct Application {
    port: u16,
    server: Server,
    writer_task: JoinHandle<()>,
    dispatcher: Dispatcher,
    scheduler: Option<JoinHandle<()>>,
    pool: SqlitePool,
}

impl Application {
    /// Opens (and migrates) the database, starts the writer and binds `settings.listen`
    /// (port 0 picks a free port: see `port()`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, Arc::new(Utc::now)).await
    }

    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        let pool = store::open(&settings.database, &settings.synchronous).await?;
        store::write_settings(&pool, settings.required_approvals).await?;
        let write_conn = store::connect_options(&settings.database, &settings.synchronous)?
            .connect()
            .await
            .context("opening the write connection")?;
        let router = Arc::new(
            Router::new(&settings.notify.routes, settings.required_approvals)
                .context("compiling routes")?,
        );
        store::apply_routing(&pool, &router).await?;
        let recovered = outbox::recover_in_flight(&pool).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "messages interrupted by the last stop will be sent again"
            );
        }
        let wake = Arc::new(Notify::new());
        let (writer, writer_task) = Writer::spawn(
            write_conn,
            WriterConfig {
                max_batch: settings.max_batch,
                queue: 8192,
                router: router.clone(),
                coalesce: settings.notify.coalesce,
                wake: wake.clone(),
            },
        );
        let dispatcher = Dispatcher::spawn(pool.clone(), &settings.notify, wake.clone())?;
        for room in &settings.notify.rooms {
            tracing::info!(room = %room.name, sink = ?room.sink, "room configured");
        }

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
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
        }

        if settings.sweep.token.is_none() {
            tracing::info!("POST /sweep is disabled (no PR_REMINDER_SWEEP_TOKEN)");
        }
        let state = web::Data::new(AppState {
            settings: Arc::new(settings),
            pool: pool.clone(),
            writer,
            router,
            wake,
            sweep_lock: tokio::sync::Mutex::new(()),
            clock,
        });
        let scheduler = state
            .settings
            .sweep
            .schedule
            .clone()
            .map(|expr| tokio::spawn(scheduled_sweeps(state.clone(), expr)));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route(
                    "/webhooks/bitbucket",
                    web::post().to(routes::webhook::bitbucket),
                )
                .route("/sweep", web::post().to(routes::sweep::sweep))
                .route(
                    "/commands/hipchat/{token}",
                    web::post().to(routes::commands::hipchat),
                )
                .route("/commands/slack", web::post().to(routes::commands::slack))
                .route("/healthz", web::get().to(routes::health::healthz))
                .route("/readyz", web::get().to(routes::health::readyz))
        })
        .listen(listener)
        .context("starting the HTTP server")?
        .shutdown_timeout(10)
        .run();

        Ok(Application {
            port,
            server,
            writer_task,
            dispatcher,
            scheduler,
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (handled by actix), then lets in-flight requests finish,
    /// lets the writer commit what it holds, and closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("HTTP server")?;
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
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
        self.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The optional built-in schedule: sweeps as if a scheduler had called `POST /sweep`.
async fn scheduled_sweeps(state: web::Data<AppState>, expression: String) {
    let schedule = match crate::config::parse_schedule(&expression) {
        Ok(schedule) => schedule,
        Err(err) => {
            tracing::error!(%err, "sweep schedule unusable");
            return;
        }
    };
    let tz = state.settings.sweep.calendar.tz;
    loop {
        let now = (state.clock)();
        let Some(next) = schedule.after(&now.with_timezone(&tz)).next() else {
            tracing::warn!("the sweep schedule has no future run");
            return;
        };
        let next = next.with_timezone(&Utc);
        tracing::info!(next = %next, "next scheduled sweep");
        tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
        let _guard = state.sweep_lock.lock().await;
        let result = crate::sweep::run(
            &state.pool,
            &state.router,
            &state.settings,
            (state.clock)(),
            crate::sweep::Trigger::Schedule,
            false,
        )
        .await;
        match result {
            Ok(report) => {
                state.wake.notify_waiters();
                tracing::info!(report = %report.to_text(), "scheduled sweep done");
            }
            Err(err) => tracing::error!(error = %format!("{err:#}"), "scheduled sweep failed"),
        }
    }
}

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use pr_reminder::config::{LogFormat, Settings, SignaturePolicy};
use pr_reminder::domain::routing::Routing;
use pr_reminder::domain::{Timestamp, Trigger};
use pr_reminder::jobs::{Job, Jobs};
use pr_reminder::startup::Application;
use pr_reminder::store::outbox::{OutboxRow, Subject};
use pr_reminder::{store, telemetry};

fn format_outbox(rows: &[OutboxRow]) -> String {
    let mut out = format!(
        "{:>6}  {:<9} {:>3}  {:<12} {:<40} {:<28} {}\n",
        "id", "state", "try", "room", "pull request", "created", "events / last error"
    );
    for row in rows {
        let pr = match &row.subject {
            Subject::Digest => "(digest)".to_owned(),
            Subject::Report => "(weekly report)".to_owned(),
            Subject::PullRequest {
                full_name, number, ..
            } => format!("{full_name}#{number}"),
        };
        let detail = match &row.last_error {
            Some(err) => format!("{} / {}", row.events, err),
            None => row.events.clone(),
        };
        out.push_str(&format!(
            "{:>6}  {:<9} {:>3}  {:<12} {:<40} {:<28} {}\n",
            row.id, row.state, row.attempts, row.room, pr, row.created_at, detail
        ));
    }
    if rows.is_empty() {
        out.push_str("(no notifications)\n");
    }
    out
}

/// An error and its causes on one line, each said once: a cause whose text its context already
/// quotes (sqlx's migration errors quote their database error, which quotes its own cause) is
/// left out.
fn once(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Reminds chat rooms about Bitbucket pull requests that still need review.
#[derive(Parser)]
#[command(name = "pr-reminder", version, about)]
struct Cli {
    /// TOML settings file (see pr-reminder.example.toml); PR_REMINDER_* environment variables
    /// override it. Empty: none.
    #[arg(long, global = true, value_name = "FILE", env = "PR_REMINDER_CONFIG")]
    config: Option<PathBuf>,
    /// Log format (overrides PR_REMINDER_LOG_FORMAT).
    #[arg(long, global = true, value_enum)]
    log_format: Option<CliLogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (POST /webhooks/bitbucket, GET /healthz, GET /readyz).
    Serve {
        /// Accept deliveries without a verified signature (never on a reachable network).
        #[arg(long)]
        insecure_skip_signature: bool,
    },
    /// Apply pending migrations and exit (SQLite: the file is created if needed; PostgreSQL:
    /// the database must exist).
    Migrate,
    /// Validate the settings and print them, secrets redacted.
    CheckConfig,
    /// Post the digest of PRs waiting for review to each room now (as `POST /sweep` does;
    /// the running service sends the queued messages).
    Sweep {
        /// Post even within `min_interval` of the last digest, or in quiet hours.
        #[arg(long)]
        force: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue the personal reminders that are due now (as `POST /remind` does; the running
    /// service sends them): each person's queue at their `remind_at` hour, in a direct message.
    Remind {
        /// Only this person (their [[users]] bitbucket name, a chat id or their e-mail).
        #[arg(long, value_name = "U")]
        user: Option<String>,
        /// Now, whatever the hour or day (still not while away, nor with DMs off).
        #[arg(long)]
        force: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue each room's weekly team report if one is due (as the running service does at
    /// `[analytics] weekly_report`; it sends them): within a day of the configured weekday and
    /// time, once per room and week (docs/analytics.md).
    WeeklyReport {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reconcile with Bitbucket's REST API now: backfill the open pull requests of the
    /// configured repositories (`[[bitbucket]]`) and repair what webhooks missed. Exit status 1
    /// when a repository failed.
    Reconcile {
        /// Only this repository (`workspace/slug` or `PROJECT/slug`).
        #[arg(long, value_name = "R")]
        repository: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install pr-reminder's webhook on every configured Bitbucket site and keep it right:
    /// workspace hooks (Cloud) or project webhooks (Data Center), else repository hooks for the
    /// repositories listed one by one; creates what is missing, repairs what is inactive or short
    /// of events, never touches another hook. Needs `webhook_url` on each `[[bitbucket]]` site
    /// and `webhook_secret`. Exit status 1 when a scope could not be made right.
    Connect {
        /// Only this site (its `url`, or its host).
        #[arg(long, value_name = "NAME")]
        site: Option<String>,
        /// List the hooks and say what would change, changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete what `[retention]` no longer keeps, now (the service also does it hourly): old
    /// deliveries, sent messages and sweeps, closed pull requests with their rows; in small
    /// batches beside a running service. Prints the rows per table.
    Prune {
        /// Delete nothing; print what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The review flow in numbers: how long PRs waited for their first review, approval and
    /// merge (median / p90), per repository, room and reviewer, and the PRs waiting on their
    /// reviewers now, from the dated facts in the database (docs/analytics.md).
    Report {
        /// The window's start: a span back from now (`28d`, `12h`, `2w`) or an RFC 3339
        /// date-time; default `[analytics] window_days`.
        #[arg(long, value_name = "WHEN", value_parser = since_arg)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// The window's end, as `--since` reads it; default now. A past end gives the figures
        /// as they stood then (later reviews and merges undone, waits measured up to it).
        #[arg(long, value_name = "WHEN", value_parser = since_arg)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this repository (its full name, any case).
        #[arg(long, value_name = "R")]
        repository: Option<String>,
        /// Print the figures as JSON (field names in docs/analytics.md).
        #[arg(long)]
        json: bool,
    },
    /// Inspect chat notifications and requeue failed ones.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

/// `--since`: a span back from now or a date (`report::parse_since`).
fn since_arg(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    pr_reminder::report::parse_since(text, chrono::Utc::now())
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List notifications, newest first.
    List {
        /// Only those that failed for good.
        #[arg(long)]
        failed: bool,
        /// How many rows to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put a failed notification (or all of them) back in the queue; a running service sends it
    /// within a few seconds.
    Retry {
        /// The notification's id (see `outbox list --failed`).
        #[arg(required_unless_present = "failed")]
        id: Option<i64>,
        /// Every failed notification.
        #[arg(long, conflicts_with = "id")]
        failed: bool,
    },
    /// Delete a failed notification (or all of them) for good: it will not be sent, and
    /// retention no longer keeps it.
    Dismiss {
        /// The notification's id (see `outbox list --failed`).
        #[arg(required_unless_present = "failed")]
        id: Option<i64>,
        /// Every failed notification.
        #[arg(long, conflicts_with = "id")]
        failed: bool,
    },
}

/// `pr-reminder reconcile`: one pass through a writer of its own (the running service, if any,
/// serialises with it through SQLite's lock, as with `sweep`).
async fn reconcile(
    settings: &Settings,
    repository: Option<String>,
) -> anyhow::Result<pr_reminder::reconcile::ReconcileReport> {
    use pr_reminder::bitbucket::rest::RetryPolicy;
    use pr_reminder::reconcile::{Reconciler, Scope};

    if settings.bitbucket.is_empty() {
        anyhow::bail!(
            "no Bitbucket site is configured: add a [[bitbucket]] table or set \
             PR_REMINDER_BITBUCKET_KIND, _TOKEN and _REPOSITORIES"
        );
    }
    let db = store::connect(&settings.database, &settings.synchronous).await?;
    let routing = Arc::new(
        Routing::new(&settings.notify.routes, settings.required_approvals)?
            .with_final_edits(settings.notify.editing_rooms()),
    );
    let (writer, writer_task) = db
        .spawn_writer(store::WriterConfig {
            max_batch: settings.max_batch,
            queue: 8192,
            routing,
            coalesce: settings.notify.coalesce,
            // The running service sends what this queues.
            wake: Arc::new(tokio::sync::Notify::new()),
            now: pr_reminder::clock::Clock::system().reader(),
            on_commit: None,
            on_flow: None,
        })
        .await?;
    let reconciler = Reconciler::new(
        &settings.bitbucket,
        db.clone(),
        writer,
        pr_reminder::clock::Clock::system(),
        RetryPolicy::default(),
    )?;
    let report = reconciler
        .run(&Scope {
            site: None,
            repository,
        })
        .await;
    drop(reconciler);
    let _ = writer_task.await;
    db.close().await;
    report
}

/// The sites `connect --site NAME` means: NAME is a site's `url` or its host; all without it.
fn selected_sites<'a>(
    settings: &'a Settings,
    name: Option<&str>,
) -> Vec<&'a pr_reminder::config::Site> {
    settings
        .bitbucket
        .iter()
        .filter(|site| {
            name.is_none_or(|n| {
                let n = n.trim().trim_end_matches('/');
                site.name().eq_ignore_ascii_case(n)
                    || site.server().eq_ignore_ascii_case(n)
                    || site
                        .url
                        .host_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(n))
            })
        })
        .collect()
}

/// Why `connect` cannot run with these settings, naming what to set.
fn connect_usage(settings: &Settings, site: Option<&str>) -> Result<(), String> {
    if settings.bitbucket.is_empty() {
        return Err(
            "no Bitbucket site is configured: add a [[bitbucket]] table or set \
                    PR_REMINDER_BITBUCKET_KIND, _TOKEN and _REPOSITORIES"
                .into(),
        );
    }
    let sites = selected_sites(settings, site);
    if sites.is_empty() {
        let known: Vec<&str> = settings.bitbucket.iter().map(|s| s.name()).collect();
        return Err(format!(
            "--site {}: no configured site has that url or host (configured: {})",
            site.unwrap_or_default(),
            known.join(", ")
        ));
    }
    if !matches!(settings.signature, SignaturePolicy::Verify(_)) {
        return Err(
            "webhook_secret is not set: connect gives Bitbucket the secret to sign \
                    deliveries with (set webhook_secret or PR_REMINDER_WEBHOOK_SECRET)"
                .into(),
        );
    }
    for (i, s) in settings.bitbucket.iter().enumerate() {
        if s.webhook_url.is_none() && sites.iter().any(|t| std::ptr::eq(*t, s)) {
            return Err(format!(
                "bitbucket[{i}].webhook_url is not set ({}): the public URL Bitbucket should \
                 call, e.g. https://pr.example.com/webhooks/bitbucket \
                 (PR_REMINDER_BITBUCKET_WEBHOOK_URL for a single site)",
                s.name()
            ));
        }
    }
    Ok(())
}

/// Runs `job` once as the CLI's (`Trigger::Cli`) and prints its report (text, or JSON with
/// `--json`). The running service sends what it queues (it looks at the outbox every few
/// seconds); nothing here needs waking.
async fn run_job(settings: &Settings, job: Job, json: bool) -> anyhow::Result<()> {
    let db = store::connect(&settings.database, &settings.synchronous).await?;
    let routing = Arc::new(
        Routing::new(&settings.notify.routes, settings.required_approvals)?
            .with_final_edits(settings.notify.editing_rooms()),
    );
    let jobs = Jobs::new(
        db.clone(),
        routing,
        Arc::new(settings.clone()),
        Arc::new(tokio::sync::Notify::new()),
        pr_reminder::clock::Clock::system(),
    );
    let report = jobs.run(job, Trigger::Cli).await;
    db.close().await;
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn main() -> ExitCode {
    // An empty variable is an unset one, as for every setting (compose passes `${VAR:-}` on);
    // clap would take it for a missing value. Nothing else runs yet.
    if std::env::var_os("PR_REMINDER_CONFIG").is_some_and(|v| v.is_empty()) {
        std::env::remove_var("PR_REMINDER_CONFIG");
    }
    let cli = Cli::parse();
    // Only `serve` receives deliveries; the other commands need no webhook secret.
    let insecure = match cli.command {
        Command::Serve {
            insecure_skip_signature,
        } => insecure_skip_signature,
        Command::Migrate
        | Command::Outbox { .. }
        | Command::Prune { .. }
        | Command::Sweep { .. }
        | Command::Remind { .. }
        | Command::WeeklyReport { .. }
        | Command::Reconcile { .. }
        | Command::Report { .. }
        | Command::Connect { .. } => true,
        Command::CheckConfig => false,
    };
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let mut settings = match Settings::load(cli.config.as_deref(), &env, insecure) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("pr-reminder: {err}");
            return ExitCode::from(2);
        }
    };
    // check-config's own output fed back names its secrets but holds none: only check-config
    // reads it (and says so).
    if !matches!(cli.command, Command::CheckConfig) {
        if let Some(err) = settings.placeholder() {
            eprintln!("pr-reminder: {err}");
            return ExitCode::from(2);
        }
    }
    if let Some(format) = cli.log_format {
        settings.log_format = match format {
            CliLogFormat::Text => LogFormat::Text,
            CliLogFormat::Json => LogFormat::Json,
        };
    }
    telemetry::init(settings.log_format);
    let settings_log_format = settings.log_format;
    for name in Settings::unknown_variables(&env) {
        tracing::warn!(variable = %name, "not a pr-reminder setting; ignored (a typo?)");
    }

    // actix-web runs its HTTP workers on threads of their own; this runtime only drives the
    // server handle and the database writer, for which one thread is enough (and measured no
    // slower than a multi-threaded runtime that competes with the HTTP workers for 2 cores).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("pr-reminder: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Usage errors of `reconcile` (exit 2, like a bad setting), before anything is opened.
    if let Command::Reconcile { repository, .. } = &cli.command {
        if settings.bitbucket.is_empty() {
            eprintln!(
                "pr-reminder: no Bitbucket site is configured: add a [[bitbucket]] table or set \
                 PR_REMINDER_BITBUCKET_KIND, _TOKEN and _REPOSITORIES"
            );
            return ExitCode::from(2);
        }
        if let Some(name) = repository {
            let covered = settings
                .bitbucket
                .iter()
                .flat_map(|site| &site.repositories)
                .any(|selector| selector.covers(name));
            if !covered {
                eprintln!(
                    "pr-reminder: --repository {name}: no configured site covers it (see the \
                     repositories of [[bitbucket]] in check-config)"
                );
                return ExitCode::from(2);
            }
        }
    }
    // Usage errors of `connect` (exit 2), before anything is sent.
    if let Command::Connect { site, .. } = &cli.command {
        if let Err(message) = connect_usage(&settings, site.as_deref()) {
            eprintln!("pr-reminder: {message}");
            return ExitCode::from(2);
        }
    }
    // A report's window must not be empty (exit 2).
    if let Command::Report {
        since: Some(since),
        until,
        ..
    } = &cli.command
    {
        let end = until.unwrap_or_else(chrono::Utc::now);
        if *since >= end {
            eprintln!(
                "pr-reminder: --since {} is not before --until {} (the window is empty)",
                since.to_rfc3339(),
                end.to_rfc3339()
            );
            return ExitCode::from(2);
        }
    }
    let mut failed = false;
    let failed_ref = &mut failed;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::CheckConfig => {
                print!("{}", settings.render());
                if let Some(err) = settings.placeholder() {
                    eprintln!(
                        "pr-reminder: note: these settings are valid, but the other commands \
                         refuse them: {err}"
                    );
                }
                Ok(())
            }
            Command::Migrate => {
                let db = store::connect(&settings.database, &settings.synchronous).await?;
                let applied = db.migrations_applied();
                db.close().await;
                let shown = settings.database.redacted();
                match applied {
                    0 => println!("database {shown} is up to date (no migration to apply)"),
                    1 => println!("database {shown}: applied 1 migration; it is up to date"),
                    n => println!("database {shown}: applied {n} migrations; it is up to date"),
                }
                Ok(())
            }
            Command::Sweep { force, json } => run_job(&settings, Job::Sweep { force }, json).await,
            Command::Remind { user, force, json } => {
                run_job(&settings, Job::Remind { user, force }, json).await
            }
            Command::WeeklyReport { json } => run_job(&settings, Job::WeeklyReport, json).await,
            Command::Reconcile { repository, json } => {
                let report = reconcile(&settings, repository).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", report.to_text());
                }
                for r in report.repositories.iter().filter(|r| !r.ok) {
                    eprintln!("pr-reminder: {} {}: {}", r.site, r.repository, r.failure());
                }
                *failed_ref = !report.ok;
                Ok(())
            }
            Command::Connect {
                site,
                dry_run,
                json,
            } => {
                let SignaturePolicy::Verify(secrets) = &settings.signature else {
                    anyhow::bail!("webhook_secret is not set");
                };
                let targets: Vec<pr_reminder::connect::Target> =
                    selected_sites(&settings, site.as_deref())
                        .into_iter()
                        .map(|site| pr_reminder::connect::Target {
                            site,
                            secret: &secrets[0],
                        })
                        .collect();
                let report = pr_reminder::connect::run(
                    &targets,
                    dry_run,
                    pr_reminder::bitbucket::rest::RetryPolicy::default(),
                )
                .await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", report.to_text());
                }
                *failed_ref = !report.ok;
                Ok(())
            }
            Command::Prune { dry_run, json } => {
                run_job(&settings, Job::Prune { dry_run }, json).await
            }
            Command::Report {
                since,
                until,
                repository,
                json,
            } => {
                let end = until.unwrap_or_else(chrono::Utc::now);
                let since = since.unwrap_or(end - settings.analytics.window);
                let db = store::connect(&settings.database, &settings.synchronous).await?;
                let flow =
                    pr_reminder::report::flow(&db, &settings, since, until, repository.as_deref())
                        .await;
                db.close().await;
                let flow = flow?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&flow)?);
                } else {
                    print!("{}", pr_reminder::report::to_text(&flow));
                }
                Ok(())
            }
            Command::Outbox { command } => {
                let db = store::connect(&settings.database, &settings.synchronous).await?;
                match command {
                    OutboxCommand::List { failed, limit } => {
                        let rows = store::outbox::list(&db, failed, limit.max(1)).await?;
                        print!("{}", format_outbox(&rows));
                    }
                    OutboxCommand::Retry { id, .. } => {
                        let n = store::outbox::retry(&db, id, &Timestamp::now()).await?;
                        match (id, n) {
                            (Some(id), 0) => {
                                anyhow::bail!("notification {id} does not exist or has not failed")
                            }
                            _ => println!("{n} notification(s) requeued"),
                        }
                    }
                    OutboxCommand::Dismiss { id, .. } => {
                        let n = store::outbox::dismiss(&db, id).await?;
                        match (id, n) {
                            (Some(id), 0) => {
                                anyhow::bail!("notification {id} does not exist or has not failed")
                            }
                            _ => println!("{n} notification(s) dismissed"),
                        }
                    }
                }
                db.close().await;
                Ok(())
            }
            Command::Serve { .. } => {
                let app = Application::build(settings.clone()).await?;
                let what = if matches!(settings.signature, SignaturePolicy::PollOnly) {
                    "pr-reminder listening; poll-only: webhook deliveries are refused"
                } else {
                    "pr-reminder listening; POST Bitbucket webhooks to /webhooks/bitbucket"
                };
                tracing::info!(
                    listen = %settings.listen,
                    port = app.port(),
                    database = %settings.database.redacted(),
                    "{what}"
                );
                app.run_until_stopped().await
            }
        }
    });
    match result {
        Ok(()) if failed => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        // Said once: as a log line where logs are JSON (a collector reads every line), else
        // as a plain line for the person who ran the command.
        Err(err) => {
            let error = once(&err);
            match settings_log_format {
                LogFormat::Json => tracing::error!(error, "fatal"),
                LogFormat::Text => eprintln!("pr-reminder: {error}"),
            }
            ExitCode::FAILURE
        }
    }
}

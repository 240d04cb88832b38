//! Persistence: every SQL statement of the service lives under this module, one file per table
//! group, as functions over the database handle (`Db`). Nothing here imports a feature, a route
//! or a chat module; what the SQL needs (routes, the clock) comes in as plain values.
//!
//! Two databases: SQLite (a file, the embedded default) and PostgreSQL (several replicas on one
//! database). A statement both accept is written once (`$N` placeholders, which sqlx's SQLite
//! driver binds by number too) and run through `on_pool!`; where they differ (JSON functions,
//! upserts of a batch, locking) a function holds one text per database, side by side. One writer
//! task per process owns a write connection and group-commits changes (`writer`); everything else
//! goes through a small pool.

pub mod analytics;
pub mod chat_messages;
pub mod default_reviewers;
pub mod direct;
pub mod identities;
pub mod leases;
pub mod outbox;
pub mod reconciliations;
pub mod repositories;
pub mod retention;
pub mod review_queue;
pub mod snoozes;
pub mod status;
pub mod sweeps;
pub mod users;
pub mod webhooks;
pub mod weekly_reports;
pub mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

pub use writer::{WriteError, WriteOutcome, Writer, WriterConfig};

/// Runs `$body` with `$pool` bound to the database's own pool type (`SqlitePool` or `PgPool`):
/// a statement both databases accept is written once and compiled for each.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Where the state lives: `database` / `PR_REMINDER_DATABASE`. A `postgres://` or
/// `postgresql://` connection string selects PostgreSQL; anything else is a SQLite file path.
#[derive(Clone)]
pub enum Database {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string as sqlx's Postgres driver reads it
    /// (`postgres://user:password@host:5432/database?sslmode=require`); its password is a secret.
    Postgres(SecretString),
}

impl Database {
    /// Reads a configured value: a PostgreSQL connection string or a file path. Errors (never
    /// echoing the value, which may hold a password): empty, or a connection string sqlx cannot
    /// read.
    pub fn parse(value: &str) -> Result<Database, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must be a file path or a postgres:// connection string".into());
        }
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            PgConnectOptions::from_str(value).map_err(|e| {
                // The driver's reason (`unknown value of sslmode`...), never the password.
                let reason = redact_secret(&e.to_string(), value);
                format!(
                    "is not a valid PostgreSQL connection string \
                     (postgres://user:password@host:5432/database): {reason}"
                )
            })?;
            return Ok(Database::Postgres(SecretString::from(value.to_owned())));
        }
        // What would otherwise become a SQLite file named after a connection string (with its
        // password in the name, shown by check-config): a scheme missing a slash, or libpq's
        // `host=... password=...` form.
        if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
            return Err(
                "is not a valid PostgreSQL connection string: it must start with \
                        postgres:// (postgres://user:password@host:5432/database)"
                    .into(),
            );
        }
        let libpq_keyword = lower.split_whitespace().any(|word| {
            word.split_once('=').is_some_and(|(key, _)| {
                matches!(
                    key,
                    "host" | "hostaddr" | "port" | "dbname" | "user" | "password" | "sslmode"
                )
            })
        });
        if libpq_keyword {
            return Err(
                "looks like libpq's key=value connection string, which pr-reminder does \
                        not read: give it as a URL (postgres://user:password@host:5432/database)"
                    .into(),
            );
        }
        if lower.contains("://") {
            return Err(
                "is a URL of a database pr-reminder does not support: give a SQLite file path \
                 or a postgres:// connection string"
                    .into(),
            );
        }
        Ok(Database::Sqlite(PathBuf::from(value)))
    }

    /// The value with its password replaced by `[redacted]` (for `check-config`, logs and
    /// errors): `postgres://pr_reminder:[redacted]@db:5432/pr_reminder`.
    pub fn redacted(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => redact_password(url.expose_secret()),
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PartialEq for Database {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Database::Sqlite(a), Database::Sqlite(b)) => a == b,
            (Database::Postgres(a), Database::Postgres(b)) => {
                a.expose_secret() == b.expose_secret()
            }
            _ => false,
        }
    }
}

/// `scheme://user:password@rest` with the password (and a `password=` query parameter) replaced.
fn redact_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority_end, _) = rest
        .char_indices()
        .find(|&(_, c)| c == '/' || c == '?')
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:[redacted]@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=[redacted]")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The pool of either database. `on_pool!` runs one statement text on either.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database: a small read pool (and the occasional write outside the batch writer).
/// Cheap to clone. `Debug` shows no password.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    target: Target,
    /// PostgreSQL: one connection of this replica's own for room leases, whose session id
    /// (`pg_backend_pid()`) the leases name (`leases`).
    leases: Option<PgPool>,
    /// How many migrations opening it applied (0: it was up to date).
    migrations_applied: u64,
    /// SQLite: held by the batch writer around each batch and by the pruner around each of its
    /// delete transactions, so that the two take turns instead of meeting in SQLite's busy
    /// handler (`retention`). PostgreSQL: none (row locks).
    write_gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

#[derive(Clone)]
enum Target {
    File {
        path: PathBuf,
        synchronous: String,
        /// The database file's identity when opened: the pool keeps a file open even after it
        /// was deleted or replaced, so readiness compares the path with it.
        file: Option<FileIdentity>,
    },
    Postgres {
        options: Box<PgConnectOptions>,
        /// The connection string without its password, for messages.
        shown: String,
    },
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::File { path, .. } => write!(f, "Db(sqlite {})", path.display()),
            Target::Postgres { shown, .. } => write!(f, "Db({shown})"),
        }
    }
}

/// (device, inode) of a file, where the platform has them.
type FileIdentity = (u64, u64);

fn file_identity(path: &Path) -> std::io::Result<Option<FileIdentity>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(Some((meta.dev(), meta.ino())))
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// The combined build state of the source commit of the PR aliased `p` (the same rule as the
/// `pull_request_builds` view): any failure wins, then running, then stopped, else passed.
/// Cloud PRs name 12-digit commits and statuses 40-digit ones, hence the prefix range.
/// The approvals a PR of `repositories repo` needs, as routes stored them at start (else the
/// configured default in `settings`); NULL when neither is stored.
const REPO_REQUIRED_APPROVALS: &str = "coalesce(repo.required_approvals,
                  (SELECT CAST(value AS BIGINT) FROM settings WHERE name = 'required_approvals'))";

const PR_BUILD_STATE: &str = "(SELECT CASE WHEN count(*) = 0 THEN NULL
                  WHEN count(*) FILTER (WHERE cs.state = 'FAILED') > 0 THEN 'FAILED'
                  WHEN count(*) FILTER (WHERE cs.state = 'INPROGRESS') > 0 THEN 'INPROGRESS'
                  WHEN count(*) FILTER (WHERE cs.state = 'STOPPED') > 0 THEN 'STOPPED'
                  ELSE 'SUCCESSFUL' END
        FROM commit_statuses cs
       WHERE cs.commit_hash >= lower(p.source_commit)
         AND cs.commit_hash < lower(p.source_commit) || 'g')";

/// The embedded SQLite migrations in `migrations/sqlite/`, applied whenever the database is
/// opened (at start and by `pr-reminder migrate`); append-only: a released migration is never
/// edited.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL migrations in `migrations/postgres/`, the same schema; sqlx holds an advisory
/// lock while it applies them, so replicas starting together apply each once. During a rolling
/// upgrade the first new replica applies the new ones while old replicas still run, and an old
/// replica that restarts meanwhile must still start: migrations it does not know are ignored
/// (which is why a PostgreSQL migration only adds; removing waits for a later release).
pub static POSTGRES_MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator
    });

/// The PostgreSQL advisory lock key `connect` holds while it migrates ("pr-remin" in ASCII),
/// beside sqlx's own.
const POSTGRES_MIGRATION_LOCK: i64 = 0x7072_2d72_656d_696e;

/// Waits for, then holds, an exclusive lock on `<database>.lock` beside the SQLite file (an
/// advisory `flock`, released when the returned file is dropped or the process ends).
async fn lock_migrations(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening the migrations' lock file {}", lock_path.display()))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("waiting for the migrations' lock")?
        .with_context(|| format!("locking {}", lock_path.display()))
}

/// How many migrations the database records as applied (0 before the first).
async fn applied_migrations(pool: &Pool) -> u64 {
    let count = "SELECT count(*) FROM _sqlx_migrations WHERE success";
    let counted: Result<i64, sqlx::Error> = match pool {
        Pool::Sqlite(pool) => sqlx::query_scalar(count).fetch_one(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(count).fetch_one(pool).await,
    };
    counted.map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// Connection options shared by the writer and the read pool: WAL so readers never block the
/// writer, foreign keys on, and a busy timeout for the rare outside writer (`sqlite3`, `migrate`).
/// A new file is created with `auto_vacuum = INCREMENTAL`, so that pruning (`retention`) gives
/// freed pages back with `PRAGMA incremental_vacuum`; on an existing file the setting changes
/// nothing until a `VACUUM` (docs/database.md says when an operator runs one).
pub fn connect_options(path: &Path, synchronous: &str) -> anyhow::Result<SqliteConnectOptions> {
    let synchronous = SqliteSynchronous::from_str(synchronous)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("database synchronous mode")?;
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // The writer's statements have a fixed text, so the default cache is plenty.
        .statement_cache_capacity(64))
}

/// Opens the configured database and applies pending migrations (`synchronous` is SQLite's;
/// PostgreSQL's durability is the server's `synchronous_commit`).
pub async fn connect(database: &Database, synchronous: &str) -> anyhow::Result<Db> {
    match database {
        Database::Sqlite(path) => open(path, synchronous).await,
        Database::Postgres(url) => open_postgres(url).await,
    }
}

/// Opens a SQLite database, creating the file if needed, and applies pending migrations.
pub async fn open(path: &Path, synchronous: &str) -> anyhow::Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    // sqlx's SQLite migrator takes no lock: two processes starting together on a fresh file
    // (`serve` and a `sweep` from cron, replicas of a test) would both apply a migration, and
    // the second fail. One at a time, then, from creating the file to its last migration.
    let lock = lock_migrations(path).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        // The readers read through a memory map instead of a read() per page: sweeps scan every
        // open PR. (The writer does not: measured slower for ingest.)
        .connect_with(connect_options(path, synchronous)?.pragma("mmap_size", "268435456"))
        .await
        .with_context(|| format!("opening the database {}", path.display()))?;
    let before = applied_migrations(&Pool::Sqlite(pool.clone())).await;
    MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("applying migrations to {}", path.display()))?;
    let after = applied_migrations(&Pool::Sqlite(pool.clone())).await;
    drop(lock);
    let file = file_identity(path)
        .with_context(|| format!("reading the database file {}", path.display()))?;
    Ok(Db {
        migrations_applied: after.saturating_sub(before),
        write_gate: Some(std::sync::Arc::new(tokio::sync::Mutex::new(()))),
        leases: None,
        pool: Pool::Sqlite(pool),
        target: Target::File {
            path: path.to_owned(),
            synchronous: synchronous.to_owned(),
            file,
        },
    })
}

/// Connects to PostgreSQL and applies pending migrations. Errors name the server without the
/// password.
async fn open_postgres(url: &SecretString) -> anyhow::Result<Db> {
    let shown = redact_password(url.expose_secret());
    let mut options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| anyhow::anyhow!("{shown} is not a valid PostgreSQL connection string"))?
        // No NOTICEs: sqlx logs each at INFO, and the migrator's `CREATE TABLE IF NOT EXISTS`
        // drew one ("relation _sqlx_migrations already exists, skipping") on every start and
        // every command. Warnings and errors still come.
        .options([("client_min_messages", "warning")]);
    // Named in pg_stat_activity, unless the connection string names it.
    if options.get_application_name().is_none() {
        options = options.application_name("pr-reminder");
    }
    // One connection first, for the driver's own reason when it fails (refused, no such
    // database, wrong password): the pool would only say that it timed out.
    let probe = tokio::time::timeout(
        Duration::from_secs(10),
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
    .and_then(|connected| {
        connected.map_err(|e| anyhow::anyhow!("{}", redact_error(&e, url.expose_secret())))
    })
    .with_context(|| format!("connecting to {shown}"))?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{}", redact_error(&e, url.expose_secret())))
        .with_context(|| format!("connecting to {shown}"))?;
    // On the probe's session, under a lock of our own (sqlx's own is taken inside `run`): the
    // count before and after is this process's, whatever other replicas start meanwhile.
    // Closing the session releases both locks, whatever happened.
    let mut session = probe;
    let migrated = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(POSTGRES_MIGRATION_LOCK)
            .execute(&mut session)
            .await?;
        let count = "SELECT count(*) FROM _sqlx_migrations WHERE success";
        let before: i64 = sqlx::query_scalar(count)
            .fetch_one(&mut session)
            .await
            .unwrap_or(0);
        POSTGRES_MIGRATOR.run(&mut session).await?;
        let after: i64 = sqlx::query_scalar(count).fetch_one(&mut session).await?;
        anyhow::Ok(after.saturating_sub(before))
    }
    .await;
    let _ = sqlx::Connection::close(session).await;
    let migrations_applied = migrated
        .map_err(|e| anyhow::anyhow!("{}", redact_secret(&format!("{e:#}"), url.expose_secret())))
        .with_context(|| format!("applying migrations to {shown}"))?;
    // Connected when first used (only a service sends messages); one connection, so that its
    // session id is the one the leases name for as long as it lives.
    let leases = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.clone());
    Ok(Db {
        migrations_applied: u64::try_from(migrations_applied).unwrap_or(0),
        write_gate: None,
        leases: Some(leases),
        pool: Pool::Postgres(pool),
        target: Target::Postgres {
            options: Box::new(options),
            shown,
        },
    })
}

/// A driver error's text, with the connection string's password removed should the driver have
/// quoted it.
fn redact_error(err: &sqlx::Error, url: &str) -> String {
    redact_secret(&err.to_string(), url)
}

/// `text` without the password of the connection string `url` (in its user information or a
/// `password=` parameter, as written or percent-decoded).
fn redact_secret(text: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let mut secrets: Vec<String> = Vec::new();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password.to_owned());
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                if key.eq_ignore_ascii_case("password") {
                    secrets.push(value.to_owned());
                }
            }
        }
    }
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "[redacted]");
        let decoded = percent_encoding::percent_decode_str(secret).decode_utf8_lossy();
        if !decoded.is_empty() {
            out = out.replace(decoded.as_ref(), "[redacted]");
        }
    }
    out
}

impl Db {
    /// The pool, for `on_pool!`.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// SQLite: the gate the batch writer and the pruner take turns through.
    pub(crate) fn write_gate(&self) -> Option<&std::sync::Arc<tokio::sync::Mutex<()>>> {
        self.write_gate.as_ref()
    }

    /// PostgreSQL: the connection room leases are taken on.
    pub(crate) fn lease_pool(&self) -> Option<&PgPool> {
        self.leases.as_ref()
    }

    /// A sub-select of the integers of the JSON array bound as `$n` (`[1, 2]`), one column.
    pub(crate) fn json_ints(&self, n: u8) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("SELECT value FROM json_each(${n})"),
            Pool::Postgres(_) => format!(
                "SELECT CAST(value AS bigint) FROM jsonb_array_elements_text(CAST(${n} AS jsonb))"
            ),
        }
    }

    /// A sub-select of the strings of the JSON array bound as `$n` (`["a", "b"]`), one column
    /// named `value`.
    pub(crate) fn json_texts(&self, n: u8) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("SELECT value FROM json_each(${n})"),
            Pool::Postgres(_) => {
                format!("SELECT value FROM jsonb_array_elements_text(CAST(${n} AS jsonb))")
            }
        }
    }

    /// A `FROM` item `j` with one row per element of the JSON array bound as `$n`, the element
    /// in `j.value` (read with `j.value->>0`, `j.value->>'name'`; compare numbers through
    /// `CAST(... AS BIGINT)`).
    pub(crate) fn json_rows(&self, n: u8) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("json_each(${n}) j"),
            Pool::Postgres(_) => format!("jsonb_array_elements(CAST(${n} AS jsonb)) AS j(value)"),
        }
    }

    /// An aggregate of `expr` over the group as a JSON array, as text (`[]` for no row).
    pub(crate) fn json_agg(&self, expr: &str) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("json_group_array({expr})"),
            Pool::Postgres(_) => format!("CAST(coalesce(json_agg({expr}), '[]') AS text)"),
        }
    }

    /// A JSON array of the values of `exprs`, to aggregate with `json_agg`.
    pub(crate) fn json_array(&self, exprs: &[&str]) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("json_array({})", exprs.join(", ")),
            Pool::Postgres(_) => format!("json_build_array({})", exprs.join(", ")),
        }
    }

    /// `column` equals `value` ignoring ASCII case (SQLite's `COLLATE NOCASE`, which its index
    /// serves; PostgreSQL's `lower(...)` index).
    pub(crate) fn nocase_eq(&self, column: &str, value: &str) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("{column} = {value} COLLATE NOCASE"),
            Pool::Postgres(_) => format!("lower({column}) = lower({value})"),
        }
    }

    /// Days (fractional) from the stored instant `from` to `to` (both `Timestamp` text).
    pub(crate) fn days_between(&self, from: &str, to: &str) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("(julianday({to}) - julianday({from}))"),
            Pool::Postgres(_) => format!(
                "(extract(epoch FROM CAST({to} AS timestamptz) - CAST({from} AS timestamptz)) \
                 / 86400.0)"
            ),
        }
    }

    /// How many migrations opening the database applied (0: it was up to date).
    pub fn migrations_applied(&self) -> u64 {
        self.migrations_applied
    }

    /// Whether this is a PostgreSQL database (several replicas may share it).
    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Where the database is, for messages: the file path, or the connection string without its
    /// password.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::File { path, .. } => path.display().to_string(),
            Target::Postgres { shown, .. } => shown.clone(),
        }
    }

    /// Waits for the connections in use and closes them.
    pub async fn close(&self) {
        if let Some(leases) = &self.leases {
            leases.close().await;
        }
        on_pool!(self, pool => pool.close().await)
    }

    /// Starts the batch writer on a connection of its own (see `writer`).
    pub async fn spawn_writer(
        &self,
        config: WriterConfig,
    ) -> anyhow::Result<(Writer, tokio::task::JoinHandle<()>)> {
        use sqlx::ConnectOptions;
        match &self.target {
            Target::File {
                path, synchronous, ..
            } => {
                // A short busy timeout: while another process holds the database, a batch is
                // refused (503) in 2 s instead of every delivery waiting past Bitbucket's 10 s.
                let conn = connect_options(path, synchronous)?
                    .busy_timeout(Duration::from_secs(2))
                    .connect()
                    .await
                    .context("opening the write connection")?;
                Ok(Writer::spawn(
                    writer::Connection::Sqlite(conn),
                    config,
                    self.write_gate.clone(),
                ))
            }
            Target::Postgres { options, shown } => {
                // A pool of one: the writer's connection, re-established by the pool when the
                // server restarts or the network drops it.
                // Plans made for the rows at hand, not a generic plan cached while the tables
                // were empty: a generic plan read all of `deliveries` in every batch until the
                // first ANALYZE (measured: a third of a batch's time).
                let options = (**options)
                    .clone()
                    .options([("plan_cache_mode", "force_custom_plan")]);
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(2))
                    .connect_with(options)
                    .await
                    .with_context(|| format!("opening the write connection to {shown}"))?;
                Ok(Writer::spawn(
                    writer::Connection::Postgres(pool),
                    config,
                    None,
                ))
            }
        }
    }
}

/// Writes the settings that the SQL views read (`pending_reviews.required_approvals`).
pub async fn write_settings(db: &Db, required_approvals: u32) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('required_approvals', $1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(required_approvals.to_string())
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("writing settings")?;
    Ok(())
}

/// For readiness: SQLite's file is still the one opened (not deleted, moved or replaced; writes
/// would otherwise go to a file nobody will read again), and `SELECT 1` answers.
pub async fn ping(db: &Db) -> anyhow::Result<()> {
    if let Target::File { path, file, .. } = &db.target {
        let now =
            file_identity(path).with_context(|| format!("the database file {}", path.display()))?;
        if now != *file {
            anyhow::bail!(
                "the database file {} was replaced since it was opened",
                path.display()
            );
        }
    }
    on_pool!(db, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))
        .context("database ping")?;
    Ok(())
}

/// The PostgreSQL channel on which a commit that queued messages says so (`NOTIFY`), so that
/// the replica holding a room's lease sends them without waiting for its next look.
pub(crate) const NEWS_CHANNEL: &str = "pr_reminder_outbox";

/// Tells every replica that messages were queued outside the writer (a sweep's digests, a
/// job). SQLite: nothing to do (one process, whose dispatcher was woken directly).
pub async fn announce_news(db: &Db) -> anyhow::Result<()> {
    if let Pool::Postgres(pool) = &db.pool {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NEWS_CHANNEL)
            .execute(pool)
            .await
            .context("announcing queued messages to the other replicas")?;
    }
    Ok(())
}

/// PostgreSQL: listens for other replicas' queued messages and wakes this replica's dispatcher
/// (`wake`) on each, and after a lost connection (news may have been missed). SQLite: `None`.
pub fn listen_for_news(
    db: &Db,
    wake: std::sync::Arc<tokio::sync::Notify>,
) -> Option<tokio::task::JoinHandle<()>> {
    let Pool::Postgres(pool) = &db.pool else {
        return None;
    };
    let pool = pool.clone();
    Some(tokio::spawn(async move {
        // Until the pool closes (the process stops).
        while !pool.is_closed() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(_) if pool.is_closed() => return,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for other replicas' messages; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if let Err(err) = listener.listen(NEWS_CHANNEL).await {
                tracing::warn!(error = %err, "cannot listen for other replicas' messages; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => wake.notify_waiters(),
                    // The connection was lost and is re-established by the next call: what was
                    // said meanwhile is unknown, so look.
                    Ok(None) => wake.notify_waiters(),
                    Err(_) if pool.is_closed() => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "lost the channel of other replicas' messages; reconnecting");
                        wake.notify_waiters();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_string_selects_postgres_and_anything_else_is_a_file() {
        assert!(Database::parse("postgres://u:p@db:5432/pr")
            .unwrap()
            .is_postgres());
        assert!(Database::parse("PostgreSQL://db/pr").unwrap().is_postgres());
        assert_eq!(
            Database::parse(" ./data/pr-reminder.db ").unwrap(),
            Database::Sqlite("./data/pr-reminder.db".into())
        );
        assert!(Database::parse("").is_err());
        for typo in [
            "postgres:/u:hunter2@db:5432/pr",
            "postgresql:u:hunter2@db/pr",
            "host=db port=5432 user=u password=hunter2 dbname=pr",
            "dbname=pr",
        ] {
            let err = Database::parse(typo).unwrap_err();
            assert!(
                !err.contains("hunter2") && err.contains("postgres://"),
                "{typo}: {err}"
            );
        }
        let err = Database::parse("postgres://u:hunter2@db/pr?sslmode=bogus").unwrap_err();
        assert!(
            !err.contains("hunter2") && err.contains("\"bogus\""),
            "{err}"
        );
        let err = Database::parse("mysql://root:hunter2@db/pr").unwrap_err();
        assert!(
            !err.contains("hunter2") && err.contains("postgres://"),
            "{err}"
        );
        let err = Database::parse("postgres://u:hunter2@db:notaport/pr").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_password_is_never_shown() {
        for (url, shown) in [
            (
                "postgres://pr_reminder:s3cr%40t@db:5432/pr?sslmode=require",
                "postgres://pr_reminder:[redacted]@db:5432/pr?sslmode=require",
            ),
            (
                "postgres://db/pr?user=u&password=s3cr%40t",
                "postgres://db/pr?user=u&password=[redacted]",
            ),
            ("postgres://u@db/pr", "postgres://u@db/pr"),
            (
                "postgresql://u:p@a@db/pr",
                "postgresql://u:[redacted]@db/pr",
            ),
        ] {
            let database = Database::parse(url).unwrap();
            assert_eq!(database.redacted(), shown);
            assert_eq!(format!("{database:?}"), shown);
        }
    }
}

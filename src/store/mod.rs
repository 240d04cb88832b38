//! Persistence: every SQL statement of the service lives under this module, one file per table
//! group, as functions over the database handle (`Db`). Nothing here imports a feature, a route
//! or a chat module; what the SQL needs (routes, the clock) comes in as plain values.
//!
//! One writer task owns the only write connection and group-commits changes (`writer`);
//! everything else goes through a small pool. The SQLite-specific parts (`json_each`, `->>`,
//! `BEGIN IMMEDIATE`) are confined here, ready for a PostgreSQL sibling.

pub mod outbox;
pub mod reconciliations;
pub mod repositories;
pub mod review_queue;
pub mod snoozes;
pub mod status;
pub mod sweeps;
pub mod users;
pub mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use writer::{WriteError, WriteOutcome, Writer, WriterConfig};

/// The database: a small read pool (and the occasional write outside the batch writer).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    path: std::path::PathBuf,
    synchronous: String,
    /// The database file's identity when opened: the pool keeps a file open even after it was
    /// deleted or replaced, so readiness compares the path with it.
    file: Option<FileIdentity>,
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
const PR_BUILD_STATE: &str = "(SELECT CASE WHEN count(*) = 0 THEN NULL
                  WHEN sum(cs.state = 'FAILED') > 0 THEN 'FAILED'
                  WHEN sum(cs.state = 'INPROGRESS') > 0 THEN 'INPROGRESS'
                  WHEN sum(cs.state = 'STOPPED') > 0 THEN 'STOPPED'
                  ELSE 'SUCCESSFUL' END
        FROM commit_statuses cs
       WHERE cs.commit_hash >= lower(p.source_commit)
         AND cs.commit_hash < lower(p.source_commit) || 'g')";

/// The embedded migrations in `migrations/`, applied whenever the database is opened (at start
/// and by `pr-reminder migrate`); append-only: a released migration is never edited.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection options shared by the writer and the read pool: WAL so readers never block the
/// writer, foreign keys on, and a busy timeout for the rare outside writer (`sqlite3`, `migrate`).
pub fn connect_options(path: &Path, synchronous: &str) -> anyhow::Result<SqliteConnectOptions> {
    let synchronous = SqliteSynchronous::from_str(synchronous)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("database synchronous mode")?;
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // The writer's statements have a fixed text, so the default cache is plenty.
        .statement_cache_capacity(64))
}

/// Opens the database, creating the file if needed, and applies pending migrations.
pub async fn open(path: &Path, synchronous: &str) -> anyhow::Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        // The readers read through a memory map instead of a read() per page: sweeps scan every
        // open PR. (The writer does not: measured slower for ingest.)
        .connect_with(connect_options(path, synchronous)?.pragma("mmap_size", "268435456"))
        .await
        .with_context(|| format!("opening the database {}", path.display()))?;
    MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("applying migrations to {}", path.display()))?;
    let file = file_identity(path)
        .with_context(|| format!("reading the database file {}", path.display()))?;
    Ok(Db {
        pool,
        path: path.to_owned(),
        synchronous: synchronous.to_owned(),
        file,
    })
}

impl Db {
    /// Waits for the connections in use and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts the batch writer on a connection of its own (see `writer`).
    pub async fn spawn_writer(
        &self,
        config: WriterConfig,
    ) -> anyhow::Result<(Writer, tokio::task::JoinHandle<()>)> {
        use sqlx::ConnectOptions;
        // A short busy timeout: while another process holds the database, a batch is refused
        // (503) in 2 s instead of every delivery waiting past Bitbucket's 10 s.
        let conn = connect_options(&self.path, &self.synchronous)?
            .busy_timeout(Duration::from_secs(2))
            .connect()
            .await
            .context("opening the write connection")?;
        Ok(Writer::spawn(conn, config))
    }
}

/// Writes the settings that the SQL views read (`pending_reviews.required_approvals`).
pub async fn write_settings(db: &Db, required_approvals: u32) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('required_approvals', ?1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(required_approvals.to_string())
    .execute(&db.pool)
    .await
    .context("writing settings")?;
    Ok(())
}

/// For readiness: the database file is still the one opened (not deleted, moved or replaced;
/// writes would otherwise go to a file nobody will read again) and `SELECT 1` answers.
pub async fn ping(db: &Db) -> anyhow::Result<()> {
    let now = file_identity(&db.path)
        .with_context(|| format!("the database file {}", db.path.display()))?;
    if now != db.file {
        anyhow::bail!(
            "the database file {} was replaced since it was opened",
            db.path.display()
        );
    }
    sqlx::query("SELECT 1")
        .execute(&db.pool)
        .await
        .context("database ping")?;
    Ok(())
}

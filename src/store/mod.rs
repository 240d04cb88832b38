//! SQLite persistence. One writer task owns the only write connection and group-commits
//! deliveries (see `writer`); everything else reads through a small pool.

pub mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use writer::{WriteOutcome, Writer, WriterConfig};

/// The combined build state of the source commit of the PR aliased `p` (the same rule as the
/// `pull_request_builds` view): any failure wins, then running, then stopped, else passed.
/// Cloud PRs name 12-digit commits and statuses 40-digit ones, hence the prefix range.
pub const PR_BUILD_STATE: &str = "(SELECT CASE WHEN count(*) = 0 THEN NULL
                  WHEN sum(cs.state = 'FAILED') > 0 THEN 'FAILED'
                  WHEN sum(cs.state = 'INPROGRESS') > 0 THEN 'INPROGRESS'
                  WHEN sum(cs.state = 'STOPPED') > 0 THEN 'STOPPED'
                  ELSE 'SUCCESSFUL' END
        FROM commit_statuses cs
       WHERE cs.commit_hash >= lower(p.source_commit)
         AND cs.commit_hash < lower(p.source_commit) || 'g')";

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

/// Opens the read pool, creating the file if needed, and applies pending migrations.
pub async fn open(path: &Path, synchronous: &str) -> anyhow::Result<SqlitePool> {
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
    Ok(pool)
}

/// Writes the settings that the SQL views read (`pending_reviews.required_approvals`).
pub async fn write_settings(pool: &SqlitePool, required_approvals: u32) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('required_approvals', ?1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(required_approvals.to_string())
    .execute(pool)
    .await
    .context("writing settings")?;
    Ok(())
}

/// `SELECT 1`, for readiness.
pub async fn ping(pool: &SqlitePool) -> anyhow::Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .context("database ping")?;
    Ok(())
}

/// Writes each repository's required approvals as the current routes say (routes may have
/// changed since the last start). NULL means "the service default".
pub async fn apply_routing(
    pool: &SqlitePool,
    router: &crate::domain::routing::Router,
) -> anyhow::Result<()> {
    let repositories: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT full_name, required_approvals FROM repositories")
            .fetch_all(pool)
            .await
            .context("reading repositories")?;
    for (name, current) in repositories {
        let wanted = router
            .route(&name)
            .and_then(|r| r.required_override)
            .map(i64::from);
        if wanted != current {
            sqlx::query("UPDATE repositories SET required_approvals = ?1 WHERE full_name = ?2")
                .bind(wanted)
                .bind(&name)
                .execute(pool)
                .await
                .context("updating required approvals")?;
        }
    }
    Ok(())
}

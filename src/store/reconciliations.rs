//! What reconciliation passes remember (`reconciled_repositories`, `reconciled_commits`) and the
//! stored open pull requests a pass compares Bitbucket's answer with. The changes a pass finds go
//! through the writer like any delivery; only this bookkeeping is written here.

use std::collections::HashSet;

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::{Repository, RepositoryKey, Timestamp, UserKey};

/// A pull request stored as open, as a pass compares it with Bitbucket's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPr {
    /// Its repository as stored (key and current name).
    pub repository: Repository,
    /// The PR's number.
    pub number: i64,
    /// The stored title.
    pub title: String,
    /// Who opened it.
    pub author: UserKey,
    /// Source branch, source commit (as Bitbucket gave it) and target branch.
    pub source_branch: Option<String>,
    pub source_commit: Option<String>,
    pub destination_branch: Option<String>,
    /// Bitbucket's `draft`.
    pub draft: bool,
    /// When it was opened.
    pub created_on: Timestamp,
    /// The stored snapshot's time.
    pub updated_on: Timestamp,
    /// Latest activity seen.
    pub last_activity_on: Timestamp,
    /// Its web page.
    pub url: Option<String>,
    /// Everyone attached, as `(user_key, role, state)` in the database's spelling
    /// (`REVIEWER`, `approved`...), sorted.
    pub reviews: Vec<(String, String, String)>,
}

#[derive(sqlx::FromRow)]
struct OpenPrRow {
    repository_key: String,
    full_name: String,
    uuid: Option<String>,
    repository_url: Option<String>,
    number: i64,
    title: String,
    author: String,
    source_branch: Option<String>,
    source_commit: Option<String>,
    destination_branch: Option<String>,
    draft: bool,
    created_on: String,
    updated_on: String,
    last_activity_on: String,
    url: Option<String>,
    reviews: String,
}

fn stored_time(text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse(text).map_err(|e| anyhow::anyhow!("stored time: {e}"))
}

/// The pull requests stored as open in the repository called `full_name` (any case) whose key
/// starts with `key_prefix` (`cloud/`, `datacenter/`, or `datacenter/{server}/` for one server).
pub async fn open_pull_requests(
    db: &Db,
    key_prefix: &str,
    full_name: &str,
) -> anyhow::Result<Vec<OpenPr>> {
    let sql = format!(
        "SELECT r.repository_key, r.full_name, r.uuid, r.url AS repository_url, p.number,
                p.title, p.author, p.source_branch, p.source_commit, p.destination_branch,
                p.draft, p.created_on, p.updated_on, p.last_activity_on, p.url,
                (SELECT {}
                   FROM reviews v
                  WHERE v.repository_key = p.repository_key AND v.number = p.number) AS reviews
           FROM repositories r
           JOIN pull_requests p ON p.repository_key = r.repository_key
          WHERE {}
            AND substr(r.repository_key, 1, length($2)) = $2
            AND p.state = 'OPEN'
          ORDER BY p.number",
        db.json_agg(&db.json_array(&["v.user_key", "v.role", "v.state"])),
        db.nocase_eq("r.full_name", "$1")
    );
    let rows: Vec<OpenPrRow> = on_pool!(db, pool => sqlx::query_as(&sql)
    .bind(full_name)
    .bind(key_prefix)
    .fetch_all(pool)
    .await)
    .with_context(|| format!("reading the open pull requests of {full_name}"))?;
    rows.into_iter()
        .map(|row| {
            let mut reviews: Vec<(String, String, String)> =
                serde_json::from_str(&row.reviews).context("stored reviews")?;
            reviews.sort();
            Ok(OpenPr {
                repository: Repository {
                    key: RepositoryKey::from_stored(row.repository_key),
                    full_name: row.full_name,
                    uuid: row.uuid,
                    url: row.repository_url,
                },
                number: row.number,
                title: row.title,
                author: UserKey::from(row.author),
                source_branch: row.source_branch,
                source_commit: row.source_commit,
                destination_branch: row.destination_branch,
                draft: row.draft,
                created_on: stored_time(&row.created_on)?,
                updated_on: stored_time(&row.updated_on)?,
                last_activity_on: stored_time(&row.last_activity_on)?,
                url: row.url,
                reviews,
            })
        })
        .collect()
}

/// Whether a pass already went through `full_name` on `site`.
pub async fn seen(db: &Db, site: &str, full_name: &str) -> anyhow::Result<bool> {
    // Whether a row exists; its column is not read (PostgreSQL's `1` is an INT4, SQLite's an
    // INTEGER: no Rust type decodes both).
    let sql = format!(
        "SELECT 1 FROM reconciled_repositories WHERE site = $1 AND {}",
        db.nocase_eq("full_name", "$2")
    );
    let found = on_pool!(db, pool => sqlx::query(&sql)
    .bind(site)
    .bind(full_name)
    .fetch_optional(pool)
    .await
    .map(|row| row.is_some()))
    .context("reading reconciled repositories")?;
    Ok(found)
}

/// Records a successful pass over `full_name` on `site` at `at`, which used `requests`;
/// `base_url`: the base URL Bitbucket's links named in its answers (Data Center), if any.
pub async fn record_pass(
    db: &Db,
    site: &str,
    full_name: &str,
    at: &Timestamp,
    requests: u64,
    base_url: Option<&str>,
) -> anyhow::Result<()> {
    // One row per repository whatever the case of its name: SQLite's key is NOCASE, PostgreSQL's
    // unique index is on lower(full_name).
    let sql = format!(
        "INSERT INTO reconciled_repositories (site, full_name, first_pass_on, last_pass_on,
                                              last_requests, base_url)
         VALUES ($1, $2, $3, $3, $4, $5)
         ON CONFLICT (site, {}) DO UPDATE SET
             last_pass_on = excluded.last_pass_on, last_requests = excluded.last_requests,
             base_url = coalesce(excluded.base_url, reconciled_repositories.base_url)",
        if db.is_postgres() {
            "lower(full_name)"
        } else {
            "full_name"
        }
    );
    on_pool!(db, pool => sqlx::query(&sql)
    .bind(site)
    .bind(full_name)
    .bind(at.as_str())
    .bind(i64::try_from(requests).unwrap_or(i64::MAX))
    .bind(base_url)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("recording a reconciliation pass")?;
    Ok(())
}

/// Of `hashes` (source commits of `repository`), those whose build statuses must be fetched: never
/// fetched by a pass, or with a build still running (`INPROGRESS`) as stored.
pub async fn commits_to_check(
    db: &Db,
    repository: &RepositoryKey,
    hashes: &[&str],
) -> anyhow::Result<HashSet<String>> {
    if hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let list = serde_json::to_string(hashes)?;
    // Cloud PRs name 12-digit commits and statuses 40-digit ones, hence the prefix range.
    let sql = format!(
        "SELECT j.value FROM ({}) j
          WHERE NOT EXISTS (SELECT 1 FROM reconciled_commits c
                             WHERE c.repository_key = $1 AND c.commit_hash = j.value)
             OR EXISTS (SELECT 1 FROM commit_statuses cs
                         WHERE cs.repository_key = $1
                           AND cs.commit_hash >= lower(j.value)
                           AND cs.commit_hash < lower(j.value) || 'g'
                           AND cs.state = 'INPROGRESS')",
        db.json_texts(2)
    );
    let wanted: Vec<String> = on_pool!(db, pool => sqlx::query_scalar(&sql)
    .bind(repository.as_str())
    .bind(list)
    .fetch_all(pool)
    .await)
    .context("reading reconciled commits")?;
    Ok(wanted.into_iter().collect())
}

/// Remembers that the build statuses of `hashes` were fetched at `at`.
pub async fn mark_commits_checked(
    db: &Db,
    repository: &RepositoryKey,
    hashes: &[&str],
    at: &Timestamp,
) -> anyhow::Result<()> {
    if hashes.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO reconciled_commits (repository_key, commit_hash, checked_on)
         SELECT DISTINCT $1, j.value, $3 FROM ({}) j WHERE true
         ON CONFLICT (repository_key, commit_hash) DO UPDATE SET checked_on = excluded.checked_on",
        db.json_texts(2)
    );
    on_pool!(db, pool => sqlx::query(&sql)
    .bind(repository.as_str())
    .bind(serde_json::to_string(hashes)?)
    .bind(at.as_str())
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("recording reconciled commits")?;
    Ok(())
}

/// A site's reconciliation, held by this process: on PostgreSQL a session advisory lock on one
/// pooled connection, so that however many replicas poll (or are asked to reconcile), one pass
/// runs per site at a time. A replica that dies mid-pass loses the lock with its connection.
/// SQLite holds nothing (one process).
pub struct SiteLock(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

/// Takes the lock of the site called `site` (its configured URL); `None` when another replica
/// holds it.
pub async fn lock_site(db: &Db, site: &str) -> anyhow::Result<Option<SiteLock>> {
    let super::Pool::Postgres(pool) = db.pool() else {
        return Ok(Some(SiteLock(None)));
    };
    let mut conn = pool
        .acquire()
        .await
        .context("a connection for the site's lock")?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("reconcile:{site}"))
        .fetch_one(&mut *conn)
        .await
        .context("locking the site's reconciliation")?;
    Ok(taken.then_some(SiteLock(Some(conn))))
}

impl SiteLock {
    /// Gives the lock back (the connection returns to the pool without it).
    pub async fn release(mut self) {
        if let Some(mut conn) = self.0.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Not known to be unlocked: close the connection, which ends the lock for sure.
                drop(conn.detach());
            }
        }
    }
}

impl Drop for SiteLock {
    /// Not released (a pass cancelled or panicking): the connection is closed rather than
    /// returned to the pool still holding the lock.
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// Records that the pull-request list of `full_name` on `site` answered 404 at `at`; returns
/// since when it has (the first 404 since it last went through).
pub async fn record_not_found(
    db: &Db,
    site: &str,
    full_name: &str,
    at: &Timestamp,
) -> anyhow::Result<Timestamp> {
    let sql = format!(
        "INSERT INTO missing_repositories (site, full_name, since, last_on)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (site, {}) DO UPDATE SET last_on = excluded.last_on
         RETURNING since",
        if db.is_postgres() {
            "lower(full_name)"
        } else {
            "full_name"
        }
    );
    let since: String = on_pool!(db, pool => sqlx::query_scalar(&sql)
        .bind(site)
        .bind(full_name)
        .bind(at.as_str())
        .fetch_one(pool)
        .await)
    .context("recording a repository that answers 404")?;
    stored_time(&since)
}

/// Counts `closed` open PRs closed as deleted because `full_name` on `site` answers 404.
pub async fn record_closed_missing(
    db: &Db,
    site: &str,
    full_name: &str,
    closed: usize,
) -> anyhow::Result<()> {
    let sql = format!(
        "UPDATE missing_repositories SET closed = closed + $3 WHERE site = $1 AND {}",
        db.nocase_eq("full_name", "$2")
    );
    on_pool!(db, pool => sqlx::query(&sql)
        .bind(site)
        .bind(full_name)
        .bind(i64::try_from(closed).unwrap_or(i64::MAX))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
    .context("recording closed pull requests")?;
    Ok(())
}

/// Forgets that `full_name` on `site` answered 404 (a pass went through).
pub async fn clear_not_found(db: &Db, site: &str, full_name: &str) -> anyhow::Result<()> {
    let sql = format!(
        "DELETE FROM missing_repositories WHERE site = $1 AND {}",
        db.nocase_eq("full_name", "$2")
    );
    on_pool!(db, pool => sqlx::query(&sql)
        .bind(site)
        .bind(full_name)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
    .context("clearing a repository's 404")?;
    Ok(())
}

/// The names of the repositories of `owner` (a Cloud workspace or Data Center project, any case)
/// with a PR stored as open, whose key starts with `key_prefix`. By name.
pub async fn owner_repositories_with_open_prs(
    db: &Db,
    key_prefix: &str,
    owner: &str,
) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT DISTINCT r.full_name FROM repositories r
           JOIN pull_requests p ON p.repository_key = r.repository_key
          WHERE p.state = 'OPEN'
            AND substr(r.repository_key, 1, length($1)) = $1
            AND lower(substr(r.full_name, 1, length($2))) = lower($2)
          ORDER BY r.full_name",
    )
    .bind(key_prefix)
    .bind(format!("{owner}/"))
    .fetch_all(pool)
    .await)
    .context("reading a workspace's or project's stored repositories")?;
    Ok(names)
}

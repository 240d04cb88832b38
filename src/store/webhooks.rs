//! Webhook coverage (issue 26): what reconciliation found of pr-reminder's hook per repository,
//! the last delivery per repository, and the open pull requests' last change, for the status
//! page and `pr_reminder_webhooks{state}`.
//!
//! The last delivery per repository is read from `deliveries` without a write on the ingest
//! path and without an index over it: reconciliation summarises the deliveries after the last
//! summarised id into `repository_deliveries` (`summarise_deliveries`, a range of the primary
//! key), and readers add those that arrived since (`last_deliveries`, again a primary-key range).

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::Timestamp;

/// One repository's coverage as reconciliation recorded it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Coverage {
    /// The site's configured URL (`Site::name()`).
    pub site: String,
    /// `workspace/slug` or `PROJECT/slug`, lowercased (the key).
    pub repository: String,
    /// The name as configured or listed.
    pub full_name: String,
    /// `cloud` or `datacenter`.
    pub flavour: String,
    /// `covered`, `incomplete` (active, events missing), `inactive`, `missing` or `unknown`.
    pub state: String,
    /// `workspace`, `project` or `repository`: the hook judged, if there is one.
    pub scope: Option<String>,
    /// Its id.
    pub hook: Option<String>,
    /// Comma-separated event keys it lacks.
    pub events_missing: Option<String>,
    /// Why `unknown` (what the token needs), or a note.
    pub detail: Option<String>,
    /// When it was checked (`Timestamp` text).
    pub checked_on: String,
}

/// Records (replaces) one repository's coverage.
pub async fn record(db: &Db, c: &Coverage) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO webhook_coverage (site, repository, full_name, flavour, state, scope, hook,
                                       events_missing, detail, checked_on)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (site, repository) DO UPDATE SET
             full_name = excluded.full_name, flavour = excluded.flavour, state = excluded.state,
             scope = excluded.scope, hook = excluded.hook,
             events_missing = excluded.events_missing, detail = excluded.detail,
             checked_on = excluded.checked_on",
    )
    .bind(&c.site)
    .bind(c.repository.to_lowercase())
    .bind(&c.full_name)
    .bind(&c.flavour)
    .bind(&c.state)
    .bind(&c.scope)
    .bind(&c.hook)
    .bind(&c.events_missing)
    .bind(&c.detail)
    .bind(&c.checked_on)
    .execute(pool)
    .await
    .map(|_| ()))
    .context("recording a repository's webhook coverage")?;
    Ok(())
}

/// Forgets the coverage of `site`'s repositories not checked at `checked_on` (after a pass over
/// every repository of the site: those are no longer configured or no longer exist).
pub async fn forget_unchecked(db: &Db, site: &str, checked_on: &str) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "DELETE FROM webhook_coverage WHERE site = $1 AND checked_on < $2",
    )
    .bind(site)
    .bind(checked_on)
    .execute(pool)
    .await
    .map(|_| ()))
    .context("forgetting the coverage of repositories no longer checked")
}

/// Every recorded coverage, by site and repository.
pub async fn coverage(db: &Db) -> anyhow::Result<Vec<Coverage>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT site, repository, full_name, flavour, state, scope, hook, events_missing, detail,
                checked_on
           FROM webhook_coverage ORDER BY site, repository",
    )
    .fetch_all(pool)
    .await)
    .context("reading webhook coverage")
}

/// Folds the processed deliveries after the last summarised one, and received before `before`,
/// into `repository_deliveries`. Run by reconciliation with `before` a minute ago: on
/// PostgreSQL ids are taken before their transactions commit, so a delivery with a lower id may
/// become visible after one with a higher id; a minute later every such batch has committed
/// (the writer commits within milliseconds), so the summary never passes over one. Idempotent,
/// and safe to run from two replicas at once.
pub async fn summarise_deliveries(db: &Db, before: &Timestamp) -> anyhow::Result<()> {
    let greatest = if db.is_postgres() { "greatest" } else { "max" };
    let sql = format!(
        "INSERT INTO repository_deliveries (flavour, repository, last_id, received_at)
         SELECT flavour, lower(repository), max(id), max(received_at)
           FROM deliveries
          WHERE id > (SELECT coalesce(max(last_id), 0) FROM repository_deliveries)
            AND outcome = 'processed' AND repository IS NOT NULL AND coalesce(flavour, '') <> ''
            AND received_at < $1
          GROUP BY lower(repository), flavour
         ON CONFLICT (flavour, repository) DO UPDATE SET
             last_id = {greatest}(repository_deliveries.last_id, excluded.last_id),
             received_at = {greatest}(repository_deliveries.received_at, excluded.received_at)"
    );
    on_pool!(db, pool => sqlx::query(&sql).bind(before.as_str()).execute(pool).await.map(|_| ()))
        .context("summarising the last delivery per repository")?;
    Ok(())
}

/// The last processed delivery per repository: (flavour, lowercased name, received_at text).
pub async fn last_deliveries(db: &Db) -> anyhow::Result<Vec<(String, String, String)>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT flavour, repository, max(received_at) AS received_at FROM (
             SELECT flavour, repository, received_at FROM repository_deliveries
             UNION ALL
             SELECT flavour, lower(repository) AS repository, received_at FROM deliveries
              WHERE id > (SELECT coalesce(max(last_id), 0) FROM repository_deliveries)
                AND outcome = 'processed' AND repository IS NOT NULL AND coalesce(flavour, '') <> ''
         ) AS d
         GROUP BY flavour, repository",
    )
    .fetch_all(pool)
    .await)
    .context("reading the last delivery per repository")
}

/// Per repository with open pull requests: (flavour, lowercased name, open PRs, the newest
/// change of one of them). The change is Cloud's `updated_on` and Data Center's activity time
/// (a Data Center snapshot's `updated_on` is the time it was read).
pub async fn open_activity(db: &Db) -> anyhow::Result<Vec<(String, String, i64, String)>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT CASE WHEN substr(p.repository_key, 1, 6) = 'cloud/' THEN 'cloud'
                     ELSE 'datacenter' END AS flavour,
                lower(repo.full_name) AS repository,
                count(*) AS open,
                max(CASE WHEN substr(p.repository_key, 1, 6) = 'cloud/' THEN p.updated_on
                         ELSE p.last_activity_on END) AS changed_on
           FROM pull_requests p
           JOIN repositories repo ON repo.repository_key = p.repository_key
          WHERE p.state = 'OPEN'
          GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await)
    .context("reading the open pull requests' last change per repository")
}

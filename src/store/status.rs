//! What the operator's views read beyond the review queue: the metrics' gauges (`GET /metrics`)
//! and the health and chart of the status page (`GET /status`). Reads only.

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::Timestamp;

/// The gauges `GET /metrics` reads at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Rows of the `pending_reviews` view: open PRs short of their required approvals.
    pub pending_reviews: i64,
    /// (turn, open PRs) for each turn that has any (the `open_pull_requests` view).
    pub turns: Vec<(String, i64)>,
    /// (state, messages) for each outbox state that has any.
    pub outbox: Vec<(String, i64)>,
    /// (site, last successful pass over any of its repositories), per site ever reconciled.
    pub reconciled: Vec<(String, Timestamp)>,
}

/// Reads the gauges.
pub async fn gauges(db: &Db) -> anyhow::Result<Gauges> {
    let pending_reviews: i64 =
        on_pool!(db, pool => sqlx::query_scalar("SELECT count(*) FROM pending_reviews")
        .fetch_one(pool)
        .await)
        .context("counting pending reviews")?;
    let turns: Vec<(String, i64)> = on_pool!(db, pool => sqlx::query_as(
        "SELECT turn, count(*) FROM open_pull_requests GROUP BY turn ORDER BY turn",
    )
    .fetch_all(pool)
    .await)
    .context("counting open pull requests by turn")?;
    let outbox: Vec<(String, i64)> =
        on_pool!(db, pool => sqlx::query_as("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await)
            .context("counting outbox messages")?;
    let reconciled: Vec<(String, String)> = on_pool!(db, pool => sqlx::query_as(
        "SELECT site, max(last_pass_on) FROM reconciled_repositories GROUP BY site ORDER BY site",
    )
    .fetch_all(pool)
    .await)
    .context("reading the last reconciliations")?;
    Ok(Gauges {
        pending_reviews,
        turns,
        outbox,
        reconciled: reconciled
            .into_iter()
            .filter_map(|(site, at)| Timestamp::parse(&at).ok().map(|at| (site, at)))
            .collect(),
    })
}

/// The last delivery from one Bitbucket flavour ("is my webhook arriving?").
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LastDelivery {
    /// `cloud` or `datacenter`.
    pub flavour: String,
    /// When it arrived (`Timestamp` text).
    pub received_at: String,
    /// `X-Event-Key`, if it had one.
    pub event_key: Option<String>,
    /// `processed`, `ignored` or `rejected`.
    pub outcome: String,
    /// Why it was ignored or rejected.
    pub reason: Option<String>,
    /// The repository's name, for a processed one.
    pub repository: Option<String>,
    /// The PR's number, for a processed one about a PR.
    pub pr_number: Option<i64>,
}

/// The last delivery of each flavour that sent any (Cloud first). Deliveries recorded before
/// flavours were (migration `deliveries_flavour`) are not counted.
pub async fn last_deliveries(db: &Db) -> anyhow::Result<Vec<LastDelivery>> {
    const ONE: &str = "SELECT flavour, received_at, event_key, outcome, reason, repository,
                              pr_number
                         FROM deliveries WHERE flavour = {} ORDER BY id DESC LIMIT 1";
    // One text for both databases: `$N` parameters, and every sub-select in FROM named
    // (PostgreSQL requires it).
    let sql = format!(
        "SELECT * FROM ({}) AS cloud UNION ALL SELECT * FROM ({}) AS datacenter",
        ONE.replace("{}", "$1"),
        ONE.replace("{}", "$2")
    );
    on_pool!(db, pool => sqlx::query_as(&sql)
    .bind("cloud")
    .bind("datacenter")
    .fetch_all(pool)
    .await)
    .context("reading the last deliveries")
}

/// Refused deliveries with one reason (and flavour), over a period.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Refusals {
    /// `cloud`, `datacenter`, or empty for deliveries recorded before flavours were.
    pub flavour: String,
    /// The reason the sender was given.
    pub reason: String,
    /// How many.
    pub count: i64,
    /// When the last of them arrived (`Timestamp` text).
    pub last_at: String,
}

/// Refused deliveries since `since`, grouped by flavour and reason, most recent first; at most
/// `limit` groups.
pub async fn refusals_since(
    db: &Db,
    since: &Timestamp,
    limit: i64,
) -> anyhow::Result<Vec<Refusals>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT coalesce(flavour, '') AS flavour, coalesce(reason, '') AS reason,
                count(*) AS count, max(received_at) AS last_at
           FROM deliveries
          WHERE outcome = 'rejected' AND received_at >= $1
          GROUP BY 1, 2
          ORDER BY last_at DESC, reason
          LIMIT $2",
    )
    .bind(since.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await)
    .context("reading refused deliveries")
}

/// A room's last sweep.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LastSweep {
    /// The room's name.
    pub room: String,
    /// When it ran (`Timestamp` text).
    pub at: String,
    /// `http`, `cli` or `schedule`.
    pub trigger: String,
    /// `posted` or `skipped`.
    pub outcome: String,
    /// Why skipped.
    pub reason: Option<String>,
    /// PRs waiting for review then.
    pub waiting_review: i64,
    /// PRs waiting on their author then.
    pub waiting_on_author: i64,
}

/// The last sweep of each room that had one, by room name.
pub async fn last_sweeps(db: &Db) -> anyhow::Result<Vec<LastSweep>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT room, at, trigger, outcome, reason, waiting_review, waiting_on_author
           FROM sweeps WHERE id IN (SELECT max(id) FROM sweeps GROUP BY room)
          ORDER BY room",
    )
    .fetch_all(pool)
    .await)
    .context("reading the last sweeps")
}

/// What reconciliation last did on one site.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SiteReconciliation {
    /// The site's configured URL (`Site::name()`; it never carries credentials).
    pub site: String,
    /// The last successful pass over any of its repositories (`Timestamp` text).
    pub last_pass_on: String,
    /// Repositories ever gone through.
    pub repositories: i64,
    /// Requests the last pass over each used, summed.
    pub last_requests: i64,
}

/// The last reconciliation of each site ever reconciled, by site.
pub async fn reconciliations(db: &Db) -> anyhow::Result<Vec<SiteReconciliation>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT site, max(last_pass_on) AS last_pass_on, count(*) AS repositories,
                CAST(sum(last_requests) AS BIGINT) AS last_requests
           FROM reconciled_repositories GROUP BY site ORDER BY site",
    )
    .fetch_all(pool)
    .await)
    .context("reading reconciliations")
}

/// One repository's open PRs by age.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgeBuckets {
    /// The repository's current name.
    pub repository: String,
    /// Opened less than a day ago.
    pub under_1d: i64,
    /// Opened one to three days ago.
    pub from_1d_to_3d: i64,
    /// Opened more than three days ago.
    pub over_3d: i64,
}

/// Every open PR (drafts too), counted per repository by age at `now`: under 1 day, 1 to 3
/// days, over 3 days. By repository name.
pub async fn open_by_age(db: &Db, now: &Timestamp) -> anyhow::Result<Vec<AgeBuckets>> {
    let sql = format!(
        "SELECT repo.full_name AS repository,
                count(*) FILTER (WHERE p.age < 1) AS under_1d,
                count(*) FILTER (WHERE p.age >= 1 AND p.age <= 3) AS from_1d_to_3d,
                count(*) FILTER (WHERE p.age > 3) AS over_3d
           FROM (SELECT repository_key, {} AS age
                   FROM pull_requests WHERE state = 'OPEN') p
           JOIN repositories repo ON repo.repository_key = p.repository_key
          GROUP BY repo.full_name
          ORDER BY repo.full_name",
        db.days_between("created_on", "$1")
    );
    on_pool!(db, pool => sqlx::query_as(&sql)
    .bind(now.as_str())
    .fetch_all(pool)
    .await)
    .context("counting open pull requests by age")
}

/// Every Data Center repository stored, with its open pull requests: (key, open), by key.
pub async fn datacenter_repositories(db: &Db) -> anyhow::Result<Vec<(String, i64)>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT r.repository_key,
                (SELECT count(*) FROM pull_requests p
                  WHERE p.repository_key = r.repository_key AND p.state = 'OPEN') AS open
           FROM repositories r
          WHERE substr(r.repository_key, 1, 11) = 'datacenter/'
          ORDER BY r.repository_key",
    )
    .fetch_all(pool)
    .await)
    .context("reading Data Center repositories")
}

/// The base URLs Bitbucket's links named in the last passes: (site, base URL), by site.
pub async fn linked_base_urls(db: &Db) -> anyhow::Result<Vec<(String, String)>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT DISTINCT site, base_url FROM reconciled_repositories
          WHERE base_url IS NOT NULL ORDER BY site, base_url",
    )
    .fetch_all(pool)
    .await)
    .context("reading the base URLs of Bitbucket's links")
}

//! Data Center server identities in what is stored: which ones exist, and merging the rows of one
//! repository stored under two identities of the same server into one (`merge`), as the
//! repository-rename migration merged the rows a rename had split: the newest snapshot of each
//! PR wins with its reviews, builds and snoozes move along, and one waiting message per room and
//! PR is left (the other's events join it).
//!
//! The statements read the pairs to merge from a temporary table, `identity_merges`
//! (`from_key`, `into_key`, and the key prefixes `datacenter/{server}/` of each, which also
//! rewrite the user keys of that server). Migration `20261205000000_datacenter_identity` runs the
//! same statements over the pairs it can tell from the data alone.

use anyhow::Context;
use sqlx::Connection;

use super::{Db, Pool};
use crate::domain::RepositoryKey;

/// The merge, statement by statement, over `identity_merges`. Each `into_key` must appear once
/// (PostgreSQL's upserts may not touch a row twice in one statement).
const MERGE: &[&str] = &[
    // The people of the moved rows, under the other identity (names the target has win).
    "INSERT INTO users (user_key, uuid, account_id, nickname, username, display_name, email)
     SELECT DISTINCT m.into_prefix || substr(u.user_key, length(m.from_prefix) + 1),
            u.uuid, u.account_id, u.nickname, u.username, u.display_name, u.email
       FROM identity_merges m
       JOIN users u ON substr(u.user_key, 1, length(m.from_prefix)) = m.from_prefix
      WHERE u.user_key IN (SELECT p.author FROM pull_requests p WHERE p.repository_key = m.from_key
                           UNION SELECT r.user_key FROM reviews r WHERE r.repository_key = m.from_key
                           UNION SELECT s.user_key FROM snoozes s WHERE s.repository_key = m.from_key)
     ON CONFLICT (user_key) DO UPDATE SET
         uuid = coalesce(users.uuid, excluded.uuid),
         account_id = coalesce(users.account_id, excluded.account_id),
         nickname = coalesce(users.nickname, excluded.nickname),
         username = coalesce(users.username, excluded.username),
         display_name = coalesce(users.display_name, excluded.display_name),
         email = coalesce(users.email, excluded.email)",
    // The repository: the name shown last wins.
    "INSERT INTO repositories (repository_key, full_name, uuid, url, required_approvals, named_on)
     SELECT m.into_key, r.full_name, r.uuid, r.url, r.required_approvals, r.named_on
       FROM identity_merges m JOIN repositories r ON r.repository_key = m.from_key
      WHERE true
     ON CONFLICT (repository_key) DO UPDATE SET
         full_name = CASE WHEN coalesce(excluded.named_on, '') > coalesce(repositories.named_on, '')
                          THEN excluded.full_name ELSE repositories.full_name END,
         named_on = CASE WHEN coalesce(excluded.named_on, '') > coalesce(repositories.named_on, '')
                         THEN excluded.named_on ELSE repositories.named_on END,
         uuid = coalesce(repositories.uuid, excluded.uuid),
         url = coalesce(repositories.url, excluded.url)",
    // The reviews of a stored PR that a newer snapshot of the other identity replaces (a
    // deletion is final either way).
    "DELETE FROM reviews WHERE (repository_key, number) IN (
         SELECT t.repository_key, t.number
           FROM identity_merges m
           JOIN pull_requests s ON s.repository_key = m.from_key
           JOIN pull_requests t ON t.repository_key = m.into_key AND t.number = s.number
          WHERE t.state <> 'DELETED' AND (s.state = 'DELETED' OR s.updated_on > t.updated_on))",
    // Each PR: the newest snapshot wins.
    "INSERT INTO pull_requests (repository_key, number, title, author, source_branch, source_commit,
         destination_branch, state, draft, created_on, updated_on, last_activity_on, url, approvals,
         changes_requested, open_tasks, pushed_on)
     SELECT m.into_key, p.number, p.title,
            CASE WHEN substr(p.author, 1, length(m.from_prefix)) = m.from_prefix
                 THEN m.into_prefix || substr(p.author, length(m.from_prefix) + 1)
                 ELSE p.author END,
            p.source_branch, p.source_commit, p.destination_branch, p.state, p.draft,
            p.created_on, p.updated_on, p.last_activity_on, p.url, p.approvals,
            p.changes_requested, p.open_tasks, p.pushed_on
       FROM identity_merges m JOIN pull_requests p ON p.repository_key = m.from_key
      WHERE true
     ON CONFLICT (repository_key, number) DO UPDATE SET
         title = excluded.title, author = excluded.author,
         source_branch = excluded.source_branch, source_commit = excluded.source_commit,
         destination_branch = excluded.destination_branch, state = excluded.state,
         draft = excluded.draft, created_on = excluded.created_on,
         updated_on = excluded.updated_on,
         last_activity_on = CASE WHEN excluded.last_activity_on > pull_requests.last_activity_on
                                 THEN excluded.last_activity_on
                                 ELSE pull_requests.last_activity_on END,
         url = coalesce(excluded.url, pull_requests.url),
         approvals = excluded.approvals, changes_requested = excluded.changes_requested,
         open_tasks = excluded.open_tasks,
         pushed_on = CASE WHEN excluded.source_commit = pull_requests.source_commit
                          THEN coalesce(pull_requests.pushed_on, excluded.pushed_on)
                          ELSE excluded.pushed_on END
     WHERE pull_requests.state <> 'DELETED'
       AND (excluded.state = 'DELETED' OR excluded.updated_on > pull_requests.updated_on)",
    // The reviews of the snapshots that won (or were alone).
    "INSERT INTO reviews (repository_key, number, user_key, role, state, state_on, snapshot_on,
         reviewed_commit)
     SELECT m.into_key, r.number,
            CASE WHEN substr(r.user_key, 1, length(m.from_prefix)) = m.from_prefix
                 THEN m.into_prefix || substr(r.user_key, length(m.from_prefix) + 1)
                 ELSE r.user_key END,
            r.role, r.state, r.state_on, r.snapshot_on, r.reviewed_commit
       FROM identity_merges m
       JOIN reviews r ON r.repository_key = m.from_key
       JOIN pull_requests s ON s.repository_key = r.repository_key AND s.number = r.number
       JOIN pull_requests t ON t.repository_key = m.into_key AND t.number = r.number
      WHERE t.updated_on = s.updated_on AND t.state = s.state
     ON CONFLICT (repository_key, number, user_key) DO NOTHING",
    "UPDATE commit_statuses SET repository_key = (
         SELECT m.into_key FROM identity_merges m WHERE m.from_key = commit_statuses.repository_key)
      WHERE repository_key IN (SELECT from_key FROM identity_merges)",
    "INSERT INTO reconciled_commits (repository_key, commit_hash, checked_on)
     SELECT m.into_key, c.commit_hash, c.checked_on
       FROM identity_merges m JOIN reconciled_commits c ON c.repository_key = m.from_key
      WHERE true
     ON CONFLICT (repository_key, commit_hash) DO UPDATE SET
         checked_on = CASE WHEN excluded.checked_on > reconciled_commits.checked_on
                           THEN excluded.checked_on ELSE reconciled_commits.checked_on END",
    "DELETE FROM reconciled_commits WHERE repository_key IN (SELECT from_key FROM identity_merges)",
    // One waiting message per room and PR: the other's events join the one kept.
    "UPDATE outbox SET events = events || ',' || (
         SELECT s.events FROM identity_merges m JOIN outbox s ON s.repository_key = m.from_key
          WHERE m.into_key = outbox.repository_key AND s.room = outbox.room
            AND s.number = outbox.number AND s.state = 'pending' AND s.kind = 'pull_request')
      WHERE state = 'pending' AND kind = 'pull_request'
        AND EXISTS (SELECT 1 FROM identity_merges m JOIN outbox s ON s.repository_key = m.from_key
                     WHERE m.into_key = outbox.repository_key AND s.room = outbox.room
                       AND s.number = outbox.number AND s.state = 'pending'
                       AND s.kind = 'pull_request')",
    "DELETE FROM outbox
      WHERE state = 'pending' AND kind = 'pull_request'
        AND EXISTS (SELECT 1 FROM identity_merges m JOIN outbox t ON t.repository_key = m.into_key
                     WHERE m.from_key = outbox.repository_key AND t.room = outbox.room
                       AND t.number = outbox.number AND t.state = 'pending'
                       AND t.kind = 'pull_request')",
    "UPDATE outbox SET repository_key = (
         SELECT m.into_key FROM identity_merges m WHERE m.from_key = outbox.repository_key)
      WHERE repository_key IN (SELECT from_key FROM identity_merges)",
    "INSERT INTO snoozes (user_key, repository_key, number, until, created_at, source_commit,
         reviewers, approvers)
     SELECT CASE WHEN substr(s.user_key, 1, length(m.from_prefix)) = m.from_prefix
                 THEN m.into_prefix || substr(s.user_key, length(m.from_prefix) + 1)
                 ELSE s.user_key END,
            m.into_key, s.number, s.until, s.created_at, s.source_commit,
            replace(s.reviewers, '\"' || m.from_prefix, '\"' || m.into_prefix),
            replace(s.approvers, '\"' || m.from_prefix, '\"' || m.into_prefix)
       FROM identity_merges m JOIN snoozes s ON s.repository_key = m.from_key
      WHERE true
     ON CONFLICT (user_key, repository_key, number) DO UPDATE SET
         until = CASE WHEN excluded.until > snoozes.until THEN excluded.until ELSE snoozes.until END",
    "DELETE FROM snoozes WHERE repository_key IN (SELECT from_key FROM identity_merges)",
    // The merged rows (their reviews and default reviewers go with them: the next
    // reconciliation pass reads the latter again, the merged PRs having never been read).
    "DELETE FROM pull_requests WHERE repository_key IN (SELECT from_key FROM identity_merges)",
    "DELETE FROM repositories WHERE repository_key IN (SELECT from_key FROM identity_merges)",
    "DELETE FROM users
      WHERE user_key IN (SELECT u.user_key FROM identity_merges m
                           JOIN users u ON substr(u.user_key, 1, length(m.from_prefix)) = m.from_prefix)
        AND NOT EXISTS (SELECT 1 FROM pull_requests p WHERE p.author = users.user_key)
        AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.user_key = users.user_key)
        AND NOT EXISTS (SELECT 1 FROM snoozes s WHERE s.user_key = users.user_key)
        AND NOT EXISTS (SELECT 1 FROM default_reviewers d WHERE d.user_key = users.user_key)",
];

/// Every Data Center repository stored: (key, current name), by key.
pub async fn datacenter_repositories(db: &Db) -> anyhow::Result<Vec<(RepositoryKey, String)>> {
    let rows: Vec<(String, String)> = super::on_pool!(db, pool => sqlx::query_as(
        "SELECT repository_key, full_name FROM repositories
          WHERE substr(repository_key, 1, 11) = 'datacenter/' ORDER BY repository_key",
    )
    .fetch_all(pool)
    .await)
    .context("reading Data Center repositories")?;
    Ok(rows
        .into_iter()
        .map(|(key, name)| (RepositoryKey::from_stored(key), name))
        .collect())
}

/// What a merge moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Repositories whose rows moved to the other identity.
    pub repositories: u64,
    /// Pull requests that moved (merged into the other identity's copy, or alone).
    pub pull_requests: u64,
}

/// In one transaction, merges what is stored under each `(from, into)` repository key into
/// `into` (two Data Center keys of one repository: `datacenter/{server}/{id}` with the same id).
/// `deliveries` (from server, into server): the identity recorded on deliveries changes too
/// (when a whole server is merged). Keys that are not Data Center keys, or pairs whose `into`
/// repeats, are refused.
pub async fn merge(
    db: &Db,
    pairs: &[(RepositoryKey, RepositoryKey)],
    deliveries: Option<(&str, &str)>,
) -> anyhow::Result<Merged> {
    let mut rows: Vec<(String, String, String, String)> = Vec::with_capacity(pairs.len());
    for (from, into) in pairs {
        let prefix = |key: &RepositoryKey| {
            key.datacenter_parts()
                .map(|(server, _)| format!("datacenter/{server}/"))
                .with_context(|| format!("{key} is not a Data Center repository key"))
        };
        anyhow::ensure!(
            from.datacenter_parts().map(|p| p.1) == into.datacenter_parts().map(|p| p.1),
            "{from} and {into} are not the same repository"
        );
        anyhow::ensure!(
            !rows.iter().any(|r| r.1 == into.as_str()),
            "{into} would be merged into twice at once"
        );
        rows.push((
            from.as_str().to_owned(),
            into.as_str().to_owned(),
            prefix(from)?,
            prefix(into)?,
        ));
    }
    if rows.is_empty() {
        return Ok(Merged::default());
    }
    let pairs_json = serde_json::to_string(&rows)?;
    // The transaction, written once for both databases.
    macro_rules! merge_in {
        ($tx:ident, $create:expr, $fill:expr) => {{
            sqlx::query($create)
                .execute(&mut *$tx)
                .await
                .context("creating identity_merges")?;
            sqlx::query($fill)
                .bind(&pairs_json)
                .execute(&mut *$tx)
                .await
                .context("filling identity_merges")?;
            let moved: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pull_requests
                  WHERE repository_key IN (SELECT from_key FROM identity_merges)",
            )
            .fetch_one(&mut *$tx)
            .await
            .context("counting the pull requests to merge")?;
            for statement in MERGE {
                sqlx::query(statement)
                    .execute(&mut *$tx)
                    .await
                    .with_context(|| format!("merging identities: {}", first_line(statement)))?;
            }
            if let Some((from, into)) = deliveries {
                sqlx::query("UPDATE deliveries SET server = $1 WHERE server = $2")
                    .bind(into)
                    .bind(from)
                    .execute(&mut *$tx)
                    .await
                    .context("renaming the server of deliveries")?;
            }
            moved
        }};
    }
    let moved = match db.pool() {
        Pool::Sqlite(pool) => {
            let mut conn = pool.acquire().await.context("a connection for the merge")?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.context("begin")?;
            let moved = merge_in!(
                tx,
                "CREATE TEMP TABLE identity_merges (from_key TEXT PRIMARY KEY,
                     into_key TEXT NOT NULL, from_prefix TEXT NOT NULL, into_prefix TEXT NOT NULL)",
                "INSERT INTO identity_merges (from_key, into_key, from_prefix, into_prefix)
                 SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3 FROM json_each($1) j
                  WHERE EXISTS (SELECT 1 FROM repositories r WHERE r.repository_key = j.value->>0)"
            );
            sqlx::query("DROP TABLE temp.identity_merges")
                .execute(&mut *tx)
                .await
                .context("dropping identity_merges")?;
            tx.commit().await.context("commit")?;
            moved
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.context("begin")?;
            // Replicas starting together merge one after the other (the second finds nothing).
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('datacenter identities', 0))",
            )
            .execute(&mut *tx)
            .await
            .context("waiting for another replica's merge")?;
            let moved = merge_in!(
                tx,
                "CREATE TEMP TABLE identity_merges (from_key TEXT COLLATE \"C\" PRIMARY KEY,
                     into_key TEXT COLLATE \"C\" NOT NULL, from_prefix TEXT COLLATE \"C\" NOT NULL,
                     into_prefix TEXT COLLATE \"C\" NOT NULL) ON COMMIT DROP",
                "INSERT INTO identity_merges (from_key, into_key, from_prefix, into_prefix)
                 SELECT j->>0, j->>1, j->>2, j->>3
                   FROM jsonb_array_elements(CAST($1 AS jsonb)) j
                  WHERE EXISTS (SELECT 1 FROM repositories r WHERE r.repository_key = j->>0)"
            );
            tx.commit().await.context("commit")?;
            moved
        }
    };
    Ok(Merged {
        repositories: rows.len() as u64,
        pull_requests: u64::try_from(moved).unwrap_or_default(),
    })
}

fn first_line(statement: &str) -> &str {
    statement.lines().next().unwrap_or_default().trim()
}

/// The last delivery stored under one Data Center server identity.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServerDelivery {
    /// When it arrived (`Timestamp` text).
    pub received_at: String,
    /// `X-Event-Key`.
    pub event_key: Option<String>,
    /// The repository's name as the delivery carried it.
    pub repository: Option<String>,
    /// The PR's number.
    pub pr_number: Option<i64>,
}

/// The last processed delivery stored under `server` (`deliveries.server`), if any.
pub async fn last_delivery(db: &Db, server: &str) -> anyhow::Result<Option<ServerDelivery>> {
    super::on_pool!(db, pool => sqlx::query_as(
        "SELECT received_at, event_key, repository, pr_number FROM deliveries
          WHERE server = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(server)
    .fetch_optional(pool)
    .await)
    .context("reading the last delivery of a server")
}

/// The Data Center keys of repository `id` stored under any server, whose name is `full_name`
/// (any case): the identities one repository may have been stored under. By key.
pub async fn twins(db: &Db, id: i64, full_name: &str) -> anyhow::Result<Vec<RepositoryKey>> {
    let sql = format!(
        "SELECT repository_key FROM repositories
          WHERE substr(repository_key, 1, 11) = 'datacenter/'
            AND substr(repository_key, length(repository_key) - length($1)) = '/' || $1
            AND {}
          ORDER BY repository_key",
        db.nocase_eq("full_name", "$2")
    );
    let keys: Vec<String> = super::on_pool!(db, pool => sqlx::query_scalar(&sql)
        .bind(id.to_string())
        .bind(full_name)
        .fetch_all(pool)
        .await)
    .context("reading the identities of a repository")?;
    Ok(keys.into_iter().map(RepositoryKey::from_stored).collect())
}

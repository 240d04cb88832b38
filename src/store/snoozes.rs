//! `snoozes`: a person hides a PR from their `/reviews` and the room's digest for a while. The
//! batch writer ends a snooze when its PR changes (see `writer`).

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::{RepositoryKey, Timestamp};

/// Snoozes the PR for `user_key` until `until`, remembering its commit, requested reviewers and
/// approvers now (a change to them ends the snooze). Returns false when the PR is unknown.
pub async fn snooze(
    db: &Db,
    user_key: &str,
    repository: &RepositoryKey,
    number: i64,
    until: &Timestamp,
    now: &Timestamp,
) -> anyhow::Result<bool> {
    let users = db.json_agg("r.user_key");
    let sql = format!(
        "INSERT INTO snoozes (user_key, repository_key, number, until, created_at, source_commit,
                              reviewers, approvers)
         SELECT $1, p.repository_key, p.number, $2, $3, p.source_commit,
                (SELECT {users} FROM reviews r
                  WHERE r.repository_key = p.repository_key AND r.number = p.number
                    AND r.role = 'REVIEWER'),
                (SELECT {users} FROM reviews r
                  WHERE r.repository_key = p.repository_key AND r.number = p.number
                    AND r.state = 'approved')
           FROM pull_requests p WHERE p.repository_key = $4 AND p.number = $5
         ON CONFLICT (user_key, repository_key, number) DO UPDATE SET
            until = excluded.until, created_at = excluded.created_at,
            source_commit = excluded.source_commit, reviewers = excluded.reviewers,
            approvers = excluded.approvers"
    );
    let inserted = on_pool!(db, pool => sqlx::query(&sql)
    .bind(user_key)
    .bind(until.as_str())
    .bind(now.as_str())
    .bind(repository.as_str())
    .bind(number)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("snoozing")?;
    Ok(inserted > 0)
}

/// Ends `user_key`'s snooze of the PR. Returns whether there was one.
pub async fn unsnooze(
    db: &Db,
    user_key: &str,
    repository: &RepositoryKey,
    number: i64,
) -> anyhow::Result<bool> {
    let removed = on_pool!(db, pool => sqlx::query(
        "DELETE FROM snoozes WHERE user_key = $1 AND repository_key = $2 AND number = $3",
    )
    .bind(user_key)
    .bind(repository.as_str())
    .bind(number)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("unsnoozing")?;
    Ok(removed > 0)
}

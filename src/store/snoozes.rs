//! `snoozes`: a person hides a PR from their `/reviews` and the room's digest for a while. The
//! batch writer ends a snooze when its PR changes (see `writer`).

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::{RepositoryKey, Timestamp};

/// What `/reviews snooze` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnoozeOutcome {
    /// Snoozed (or the snooze moved to the new end).
    Snoozed,
    /// No such pull request is known.
    Unknown,
    /// `user_key` wrote it: an author may not hide their own PR from the room's digest.
    OwnPullRequest,
}

/// Snoozes the PR for `user_key` until `until`, remembering its commit, requested reviewers and
/// approvers now (a change to them ends the snooze). Refused for the PR's own author.
pub async fn snooze(
    db: &Db,
    user_key: &str,
    repository: &RepositoryKey,
    number: i64,
    until: &Timestamp,
    now: &Timestamp,
) -> anyhow::Result<SnoozeOutcome> {
    let author: Option<Option<String>> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT author FROM pull_requests WHERE repository_key = $1 AND number = $2",
    )
    .bind(repository.as_str())
    .bind(number)
    .fetch_optional(pool)
    .await)
    .context("reading the pull request to snooze")?;
    match author {
        None => return Ok(SnoozeOutcome::Unknown),
        Some(Some(author)) if author == user_key => return Ok(SnoozeOutcome::OwnPullRequest),
        Some(_) => {}
    }
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
    Ok(if inserted > 0 {
        SnoozeOutcome::Snoozed
    } else {
        SnoozeOutcome::Unknown
    })
}

/// A snooze in force on an open PR: who snoozed it, and until when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CurrentSnooze {
    /// The PR's repository (`repositories.repository_key`).
    pub repository_key: String,
    /// The repository's current name.
    pub full_name: String,
    /// The PR's number.
    pub number: i64,
    /// Who snoozed it (`users.user_key`).
    pub user_key: String,
    /// Their name as Bitbucket shows it (display name, else nickname or username, else the key).
    pub snoozed_by: String,
    /// When the snooze ends (`Timestamp` text, UTC), unless the PR changes first.
    pub until: String,
}

/// Every snooze in force at `now` on an open PR, the soonest to end first.
pub async fn current(db: &Db, now: &Timestamp) -> anyhow::Result<Vec<CurrentSnooze>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT s.repository_key, repo.full_name, s.number, s.user_key,
                coalesce(u.display_name, u.nickname, u.username, s.user_key) AS snoozed_by,
                s.until
           FROM snoozes s
           JOIN pull_requests p ON p.repository_key = s.repository_key AND p.number = s.number
           JOIN repositories repo ON repo.repository_key = s.repository_key
           LEFT JOIN users u ON u.user_key = s.user_key
          WHERE s.until > $1 AND p.state = 'OPEN'
          ORDER BY s.until, repo.full_name, s.number, s.user_key",
    )
    .bind(now.as_str())
    .fetch_all(pool)
    .await)
    .context("reading the snoozes in force")
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

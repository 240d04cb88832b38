//! Default reviewers per open PR (table `default_reviewers`, issue 23): who Bitbucket would add
//! as reviewers, as a reconciliation pass read them. A PR with fewer requested reviewers than the
//! approvals it needs owes its review to these too (`TurnFacts::owed`).

use std::collections::{HashMap, HashSet};

use anyhow::Context;

use super::{on_pool, Db, REPO_REQUIRED_APPROVALS};
use crate::domain::{RepositoryKey, Timestamp, User};

/// Replaces the default reviewers of PR `number` of `repository` with `users`, in Bitbucket's
/// order (a user listed twice is kept once), read at `checked_on`, and records the read
/// (`pull_requests.default_reviewers_on`; `None`: never read); their names are stored as a delivery's are (a name a
/// snapshot carried is kept where the answer has none). An empty `users` clears them. Nothing
/// is stored for a PR the database does not hold. One transaction.
pub async fn replace(
    db: &Db,
    repository: &RepositoryKey,
    number: i64,
    users: &[User],
    checked_on: Option<&Timestamp>,
) -> anyhow::Result<()> {
    let mut unique: Vec<&User> = Vec::with_capacity(users.len());
    for user in users {
        if !unique.iter().any(|u| u.key == user.key) {
            unique.push(user);
        }
    }
    let rows: Vec<serde_json::Value> = unique
        .iter()
        .enumerate()
        .map(|(position, u)| {
            serde_json::json!([
                u.key.as_str(),
                u.uuid,
                u.account_id,
                u.nickname,
                u.username,
                u.display_name,
                u.email,
                position
            ])
        })
        .collect();
    let rows = serde_json::to_string(&rows).context("encoding default reviewers")?;
    let users_each = db.json_rows(1);
    let rows_each = db.json_rows(4);
    let upsert_users = format!(
        "INSERT INTO users (user_key, uuid, account_id, nickname, username, display_name, email)
         SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5,
                j.value->>6
           FROM {users_each}
          WHERE true
         ON CONFLICT (user_key) DO UPDATE SET
             uuid = coalesce(excluded.uuid, users.uuid),
             account_id = coalesce(excluded.account_id, users.account_id),
             nickname = coalesce(excluded.nickname, users.nickname),
             username = coalesce(excluded.username, users.username),
             display_name = coalesce(excluded.display_name, users.display_name),
             email = coalesce(excluded.email, users.email)"
    );
    let insert = format!(
        "INSERT INTO default_reviewers (repository_key, number, user_key, position, checked_on)
         SELECT $1, $2, j.value->>0, CAST(j.value->>7 AS BIGINT), $3
           FROM {rows_each}
          WHERE EXISTS (SELECT 1 FROM pull_requests p
                         WHERE p.repository_key = $1 AND p.number = $2)"
    );
    on_pool!(db, pool => {
        let mut tx = pool.begin().await.context("begin")?;
        sqlx::query(&upsert_users)
            .bind(&rows)
            .execute(&mut *tx)
            .await
            .context("storing the default reviewers' names")?;
        sqlx::query("DELETE FROM default_reviewers WHERE repository_key = $1 AND number = $2")
            .bind(repository.as_str())
            .bind(number)
            .execute(&mut *tx)
            .await
            .context("clearing the default reviewers")?;
        sqlx::query(&insert)
            .bind(repository.as_str())
            .bind(number)
            .bind(checked_on.map(Timestamp::as_str))
            .bind(&rows)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("storing the default reviewers of #{number}"))?;
        sqlx::query(
            "UPDATE pull_requests SET default_reviewers_on = $3
              WHERE repository_key = $1 AND number = $2",
        )
        .bind(repository.as_str())
        .bind(number)
        .bind(checked_on.map(Timestamp::as_str))
        .execute(&mut *tx)
        .await
        .context("recording the default reviewers' read")?;
        tx.commit().await.context("commit")?;
        Ok(())
    })
}

/// Records that PR `number` of `repository` was asked about at `at` though the answer was a
/// refusal (what is stored stays): it is asked again at the next hourly refresh, not at every
/// pass.
pub async fn mark_read(
    db: &Db,
    repository: &RepositoryKey,
    number: i64,
    at: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "UPDATE pull_requests SET default_reviewers_on = $3
          WHERE repository_key = $1 AND number = $2",
    )
    .bind(repository.as_str())
    .bind(number)
    .bind(at.as_str())
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .context("recording the default reviewers' read")?;
    Ok(())
}

/// Forgets the default reviewers of a closed PR, and that they were read (a reopened PR is read
/// again): `replace` with none and no read.
pub async fn clear(db: &Db, repository: &RepositoryKey, number: i64) -> anyhow::Result<()> {
    replace(db, repository, number, &[], None).await
}

/// The approvals a PR of `repository` needs, as the lists' first pass reads them: the
/// repository's (as routes set them at start), else the configured default; `None` when
/// neither is stored (the caller then uses `DEFAULT_REQUIRED_APPROVALS`, as the first pass does).
pub async fn required_approvals(
    db: &Db,
    repository: &RepositoryKey,
) -> anyhow::Result<Option<u32>> {
    let sql = format!(
        "SELECT {REPO_REQUIRED_APPROVALS} FROM repositories repo WHERE repo.repository_key = $1"
    );
    let row: Option<(Option<i64>,)> = on_pool!(db, pool => sqlx::query_as(&sql)
    .bind(repository.as_str())
    .fetch_optional(pool)
    .await)
    .context("reading the approvals a repository needs")?;
    Ok(row.and_then(|(n,)| n).and_then(|n| u32::try_from(n).ok()))
}

/// What is stored of the default reviewers of one repository's PRs.
#[derive(Debug, Default)]
pub struct Stored {
    /// PR number → user keys, in Bitbucket's order.
    pub users: HashMap<i64, Vec<String>>,
    /// The PRs whose default reviewers were read (even if there were none).
    pub read: HashSet<i64>,
}

/// The stored default reviewers of every PR of `repository`, and which PRs were read.
pub async fn of_repository(db: &Db, repository: &RepositoryKey) -> anyhow::Result<Stored> {
    let rows: Vec<(i64, String)> = on_pool!(db, pool => sqlx::query_as(
        "SELECT number, user_key FROM default_reviewers WHERE repository_key = $1
          ORDER BY number, position",
    )
    .bind(repository.as_str())
    .fetch_all(pool)
    .await)
    .context("reading default reviewers")?;
    let read: Vec<(i64,)> = on_pool!(db, pool => sqlx::query_as(
        "SELECT number FROM pull_requests
          WHERE repository_key = $1 AND default_reviewers_on IS NOT NULL",
    )
    .bind(repository.as_str())
    .fetch_all(pool)
    .await)
    .context("reading which default reviewers were read")?;
    let mut out = Stored {
        read: read.into_iter().map(|(n,)| n).collect(),
        ..Stored::default()
    };
    for (number, user) in rows {
        out.users.entry(number).or_default().push(user);
    }
    Ok(out)
}

/// When a pass last read every default reviewer of `full_name` on `site`
/// (`reconciled_repositories.default_reviewers_on`), if ever.
pub async fn refreshed_on(
    db: &Db,
    site: &str,
    full_name: &str,
) -> anyhow::Result<Option<Timestamp>> {
    let row: Option<(Option<String>,)> = on_pool!(db, pool => sqlx::query_as(
        "SELECT default_reviewers_on FROM reconciled_repositories
          WHERE site = $1 AND lower(full_name) = lower($2)",
    )
    .bind(site)
    .bind(full_name)
    .fetch_optional(pool)
    .await)
    .context("reading when default reviewers were read")?;
    Ok(row
        .and_then(|(at,)| at)
        .and_then(|at| Timestamp::parse(&at).ok()))
}

/// Records that a pass read every default reviewer of `full_name` on `site` at `at` (the
/// repository's row is written by `reconciliations::record_pass`).
pub async fn mark_refreshed(
    db: &Db,
    site: &str,
    full_name: &str,
    at: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "UPDATE reconciled_repositories SET default_reviewers_on = $3
          WHERE site = $1 AND lower(full_name) = lower($2)",
    )
    .bind(site)
    .bind(full_name)
    .bind(at.as_str())
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .context("recording when default reviewers were read")?;
    Ok(())
}

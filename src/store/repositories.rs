//! `repositories`: a repository's lasting key, its current name, and its required approvals.

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::RepositoryKey;

/// Writes each repository's required approvals and `approvals_after_last_push` as the routes
/// say now (routes may have changed since the last start). `policy(key, full_name)` is the
/// route's own required approvals (`None`: "the service default", stored as NULL) and its
/// `approvals_after_last_push`.
pub async fn apply_required_approvals(
    db: &Db,
    policy: impl Fn(&RepositoryKey, &str) -> (Option<u32>, bool),
) -> anyhow::Result<()> {
    let repositories: Vec<(String, String, Option<i64>, bool)> =
        on_pool!(db, pool => sqlx::query_as("SELECT repository_key, full_name, required_approvals, approvals_after_last_push FROM repositories")
            .fetch_all(pool)
            .await)
            .context("reading repositories")?;
    for (key, name, current, current_after_push) in repositories {
        let (wanted, after_push) = policy(&RepositoryKey::from_stored(key.clone()), &name);
        let wanted = wanted.map(i64::from);
        if wanted != current || after_push != current_after_push {
            on_pool!(db, pool => sqlx::query(
                "UPDATE repositories SET required_approvals = $1, approvals_after_last_push = $3
                  WHERE repository_key = $2",
            )
            .bind(wanted)
            .bind(&key)
            .bind(after_push)
            .execute(pool)
            .await.map(|r| r.rows_affected()))
            .context("updating required approvals")?;
        }
    }
    Ok(())
}

/// The repository that is called `full_name` now (any case), as a person types it. Should two
/// share the name (a Cloud workspace and a Data Center project, or a repository deleted and
/// created again), the exact spelling wins, then the one named most recently.
pub async fn find_by_name(db: &Db, full_name: &str) -> anyhow::Result<Option<RepositoryKey>> {
    let sql = format!(
        "SELECT repository_key FROM repositories WHERE {}
          ORDER BY full_name = $1 DESC, named_on DESC, repository_key LIMIT 1",
        db.nocase_eq("full_name", "$1")
    );
    let key: Option<String> = on_pool!(db, pool => sqlx::query_scalar(&sql)
    .bind(full_name)
    .fetch_optional(pool)
    .await)
    .context("looking up a repository")?;
    Ok(key.map(RepositoryKey::from_stored))
}

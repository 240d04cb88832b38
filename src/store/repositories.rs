//! `repositories`: a repository's lasting key, its current name, and its required approvals.

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::RepositoryKey;

/// Writes each repository's required approvals as the routes say now (routes may have changed
/// since the last start). `required(key, full_name)` is the route's own setting; `None` means
/// "the service default", stored as NULL.
pub async fn apply_required_approvals(
    db: &Db,
    required: impl Fn(&RepositoryKey, &str) -> Option<u32>,
) -> anyhow::Result<()> {
    let repositories: Vec<(String, String, Option<i64>)> =
        on_pool!(db, pool => sqlx::query_as("SELECT repository_key, full_name, required_approvals FROM repositories")
            .fetch_all(pool)
            .await)
            .context("reading repositories")?;
    for (key, name, current) in repositories {
        let wanted = required(&RepositoryKey::from_stored(key.clone()), &name).map(i64::from);
        if wanted != current {
            on_pool!(db, pool => sqlx::query(
                "UPDATE repositories SET required_approvals = $1 WHERE repository_key = $2",
            )
            .bind(wanted)
            .bind(&key)
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

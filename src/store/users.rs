//! `users`: Bitbucket accounts as payloads showed them.

use anyhow::Context;

use super::on_pool;
use super::Db;

/// The `user_key` of the account that `id` names: its key, uuid or account id, or its nickname,
/// username or e-mail address in any case (an exact key, uuid or account id first; otherwise the
/// first by key, so the answer never depends on the table's order).
pub async fn find(db: &Db, id: &str) -> anyhow::Result<Option<String>> {
    // An account without a uuid or account id (every Data Center one) compares NULL: last, said
    // outright (SQLite's default in a descending order, not PostgreSQL's).
    on_pool!(db, pool => sqlx::query_scalar(
        "SELECT user_key FROM users
          WHERE user_key = $1 OR uuid = $1 OR account_id = $1
             OR lower(nickname) = lower($1) OR lower(username) = lower($1)
             OR lower(email) = lower($1)
          ORDER BY user_key = $1 DESC, uuid = $1 DESC NULLS LAST,
                   account_id = $1 DESC NULLS LAST, user_key
          LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)
    .context("looking up a user")
}

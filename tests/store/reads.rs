//! Every read of the tests: plain SQL on a connection of its own (read-only on SQLite), or the
//! store's public read functions. The SQL is the same on both databases.

use pr_reminder::domain::{RepositoryKey, Timestamp};
use pr_reminder::store::outbox::{self, Subject};
use pr_reminder::store::{repositories, review_queue, Db};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// The tests' own connection to the database under test.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the tests' pool, whichever the database.
macro_rules! on {
    ($reads:expr, $pool:ident => $body:expr) => {
        match &$reads.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

pub struct Reads {
    pool: Pool,
    db: Db,
}

/// A PR row, with its repository's current name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PrRow {
    pub full_name: String,
    pub title: String,
    pub state: String,
    pub source_commit: Option<String>,
    pub updated_on: String,
    pub approvals: i64,
}

/// A `deliveries` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub request_id: Option<String>,
    pub outcome: String,
    pub repository: Option<String>,
    pub pr_number: Option<i64>,
}

/// A queued chat message about a PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub room: String,
    pub repository: RepositoryKey,
    pub number: i64,
    /// Comma-separated events, in the order they joined the message.
    pub events: String,
    pub state: String,
    /// When the batch that queued it committed (one value per batch).
    pub created_at: String,
}

impl Reads {
    /// Reads the SQLite database at `path`, which `db` has open.
    #[allow(dead_code)]
    pub async fn open(path: &std::path::Path, db: Db) -> Reads {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
            .await
            .expect("read-only connection");
        Reads {
            pool: Pool::Sqlite(pool),
            db,
        }
    }

    /// Reads the PostgreSQL database at `url`, which `db` has open.
    #[allow(dead_code)]
    pub async fn postgres(url: &str, db: Db) -> Reads {
        let pool = PgPool::connect(url).await.expect("a connection");
        Reads {
            pool: Pool::Postgres(pool),
            db,
        }
    }

    pub async fn pr(&self, repository: &RepositoryKey, number: i64) -> Option<PrRow> {
        on!(self, pool => sqlx::query_as(
            "SELECT r.full_name, p.title, p.state, p.source_commit, p.updated_on, p.approvals \
               FROM pull_requests p JOIN repositories r ON r.repository_key = p.repository_key \
              WHERE p.repository_key = $1 AND p.number = $2",
        )
        .bind(repository.as_str())
        .bind(number)
        .fetch_optional(pool)
        .await)
        .unwrap()
    }

    /// (user, state) of everyone attached to a PR, by user.
    pub async fn reviews(&self, repository: &RepositoryKey, number: i64) -> Vec<(String, String)> {
        on!(self, pool => sqlx::query_as(
            "SELECT user_key, state FROM reviews WHERE repository_key = $1 AND number = $2 \
              ORDER BY user_key",
        )
        .bind(repository.as_str())
        .bind(number)
        .fetch_all(pool)
        .await)
        .unwrap()
    }

    pub async fn pull_requests(&self) -> i64 {
        self.count("SELECT count(*) FROM pull_requests").await
    }

    /// (key, current name) of every repository, by key.
    pub async fn repositories(&self) -> Vec<(String, String)> {
        on!(self, pool => sqlx::query_as("SELECT repository_key, full_name FROM repositories ORDER BY 1")
            .fetch_all(pool)
            .await)
            .unwrap()
    }

    /// (commit, build key, state) of every build, by commit.
    pub async fn builds(&self) -> Vec<(String, String, String)> {
        on!(self, pool => sqlx::query_as("SELECT commit_hash, key, state FROM commit_statuses ORDER BY 1, 2")
            .fetch_all(pool)
            .await)
            .unwrap()
    }

    pub async fn deliveries(&self) -> Vec<DeliveryRow> {
        on!(self, pool => sqlx::query_as(
            "SELECT request_id, outcome, repository, pr_number FROM deliveries ORDER BY id",
        )
        .fetch_all(pool)
        .await)
        .unwrap()
    }

    pub async fn snoozes(&self) -> i64 {
        self.count("SELECT count(*) FROM snoozes").await
    }

    async fn count(&self, sql: &str) -> i64 {
        on!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await).unwrap()
    }

    /// Every PR message in the outbox, oldest first (`store::outbox::list`).
    pub async fn messages(&self) -> Vec<Message> {
        let mut rows = outbox::list(&self.db, false, 1000).await.unwrap();
        rows.reverse();
        rows.into_iter()
            .map(|row| {
                let Subject::PullRequest {
                    repository, number, ..
                } = row.subject
                else {
                    panic!("a digest in the outbox: {row:?}");
                };
                Message {
                    room: row.room,
                    repository,
                    number,
                    events: row.events,
                    state: row.state.as_str().to_owned(),
                    created_at: row.created_at,
                }
            })
            .collect()
    }

    /// The repository called `full_name` now (`store::repositories::find_by_name`).
    pub async fn find_by_name(&self, full_name: &str) -> Option<RepositoryKey> {
        repositories::find_by_name(&self.db, full_name)
            .await
            .unwrap()
    }

    /// (name, number) of the open PRs a room's digest lists at `now`, snoozes applied
    /// (`store::review_queue::for_each_open`).
    pub async fn open_prs(&self, now: &Timestamp) -> Vec<(String, i64)> {
        let mut open = Vec::new();
        review_queue::for_each_open(&self.db, now, None, |pr| {
            open.push((pr.full_name, pr.number))
        })
        .await
        .unwrap();
        open
    }
}

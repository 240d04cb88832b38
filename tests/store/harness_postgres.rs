//! The PostgreSQL sibling of `harness`: a fresh database on the server `PR_REMINDER_TEST_POSTGRES`
//! names, with the batch writer running on it. Without a server (and not under `CI=true`) every
//! test passes over (`Store::start` is `None`).

use std::sync::Arc;

use pr_reminder::domain::routing::Routing;
use pr_reminder::domain::Submission;
use pr_reminder::store::{self, Database, Db, WriteOutcome, Writer, WriterConfig};
use tokio::sync::Notify;

use crate::reads::Reads;

pub use crate::harness_sqlite::{route, COALESCE};

pub struct Store {
    pub db: Db,
    pub writer: Writer,
    pub read: Reads,
}

impl Store {
    /// A new database with these routes (first match wins; two approvals by default), or `None`
    /// when this machine has no PostgreSQL server for the tests.
    pub async fn start(routes: &[pr_reminder::domain::routing::Route]) -> Option<Store> {
        let url = crate::postgres::fresh_database("store").await?;
        let db = store::connect(&Database::Postgres(url.clone().into()), "full")
            .await
            .expect("database opens");
        let routing = Routing::new(routes, 2).expect("routes compile");
        let (writer, _task) = db
            .spawn_writer(WriterConfig {
                max_batch: 64,
                queue: 64,
                routing: Arc::new(routing),
                coalesce: COALESCE,
                wake: Arc::new(Notify::new()),
                now: Arc::new(chrono::Utc::now),
                on_commit: None,
            })
            .await
            .expect("writer starts");
        let read = Reads::postgres(&url, db.clone()).await;
        Some(Store { db, writer, read })
    }

    /// Submits one change and waits for its commit.
    pub async fn submit(&self, submission: Submission) -> WriteOutcome {
        self.writer.submit(submission).await.expect("committed")
    }
}

//! The PostgreSQL sibling of `harness`: a fresh database on the server `PR_REMINDER_TEST_POSTGRES`
//! names, with the batch writer running on it. Without a server (and not under `CI=true`) every
//! test passes over (`Store::start` is `None`).

use pr_reminder::domain::Submission;
use pr_reminder::store::{self, Database, Db, WriteOutcome, Writer};

use crate::reads::Reads;

pub use crate::harness_sqlite::{route, writer_config};

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
        let (writer, _task) = db
            .spawn_writer(writer_config(routes))
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

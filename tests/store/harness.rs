//! A fresh database in a temporary folder with the batch writer running on it.

use std::sync::Arc;
use std::time::Duration;

use pr_reminder::domain::routing::{Announce, Route, Routing};
use pr_reminder::domain::Submission;
use pr_reminder::store::{self, Db, WriteOutcome, Writer, WriterConfig};
use tempfile::TempDir;
use tokio::sync::Notify;

use crate::reads::Reads;

/// Long enough that no queued message leaves its coalescing window during a test (nothing
/// sends them anyway): a message is `pending` for as long as the test looks at it.
pub const COALESCE: Duration = Duration::from_secs(3600);

pub struct Store {
    pub db: Db,
    pub writer: Writer,
    pub read: Reads,
    _dir: TempDir,
}

/// A route of `globs` to `room`, announcing what `announce` says, with the usual WIP patterns.
pub fn route(globs: &[&str], room: &str, announce: Announce) -> Route {
    Route {
        repositories: globs.iter().map(|g| g.to_string()).collect(),
        rooms: vec![room.into()],
        required_approvals: None,
        approvals_after_last_push: false,
        room_reminders: true,
        announce,
        ignore_title_patterns: vec!["WIP".into()],
    }
}

/// The writer the tests run: batches of up to 64, these routes (two approvals by default),
/// `COALESCE`, the system clock.
pub fn writer_config(routes: &[Route]) -> WriterConfig {
    WriterConfig {
        max_batch: 64,
        queue: 64,
        routing: Arc::new(Routing::new(routes, 2).expect("routes compile")),
        coalesce: COALESCE,
        wake: Arc::new(Notify::new()),
        now: Arc::new(chrono::Utc::now),
        on_commit: None,
        on_flow: None,
    }
}

impl Store {
    /// A new database with these routes (first match wins; two approvals by default). Always
    /// `Some` (the PostgreSQL sibling, `harness_postgres`, is `None` without a server).
    pub async fn start(routes: &[Route]) -> Option<Store> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.db");
        let db = store::open(&path, "full").await.expect("database opens");
        let (writer, _task) = db
            .spawn_writer(writer_config(routes))
            .await
            .expect("writer starts");
        let read = Reads::open(&path, db.clone()).await;
        Some(Store {
            db,
            writer,
            read,
            _dir: dir,
        })
    }

    /// Submits one change and waits for its commit.
    pub async fn submit(&self, submission: Submission) -> WriteOutcome {
        self.writer.submit(submission).await.expect("committed")
    }
}

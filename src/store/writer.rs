//! The single writer: group commit of deliveries.
//!
//! Request handlers verify and parse on the HTTP workers, then hand a `Delivery` to this task and
//! wait. The task takes whatever is queued (up to `max_batch`), folds all of it into SQLite in ONE
//! transaction with a fixed handful of set-based statements, commits, and only then answers each
//! waiting handler. Throughput therefore grows with load instead of being capped by one fsync per
//! request, while every 2xx still means "committed".
//!
//! Each statement takes the whole batch as one JSON array bound to its one parameter and reads it with
//! `json_each`, so the SQL text never changes (prepared once, cached) whatever the batch size, and
//! no statement runs into SQLite's bound-parameter limit.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use std::sync::LazyLock;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::domain::{Change, CommitStatus, Delivery, Outcome, PullRequest, Repository, User};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most deliveries folded into one transaction.
    pub max_batch: usize,
    /// Deliveries that may wait for the writer before handlers are told to back off (503).
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue: 8192,
        }
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// New, recorded and (if it carried a change) folded into state.
    Committed,
    /// Its request id was already accepted: nothing changed.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the writer is overloaded")]
    Overloaded,
    #[error("the writer has stopped")]
    Stopped,
    #[error("the delivery could not be stored")]
    Failed,
}

type Reply = oneshot::Sender<Result<WriteOutcome, WriteError>>;

struct Job {
    delivery: Delivery,
    reply: Option<Reply>,
}

/// Handle to the writer task; cheap to clone. The task ends when every handle is dropped, after
/// finishing what was queued.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn spawn(conn: SqliteConnection, config: WriterConfig) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let task = tokio::spawn(run(conn, rx, config.max_batch.max(1)));
        (Writer { tx }, task)
    }

    /// Stores a delivery and waits until it is committed.
    pub async fn submit(&self, delivery: Delivery) -> Result<WriteOutcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            delivery,
            reply: Some(reply),
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
        })?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Records a refused delivery without waiting. When the queue is full the record is dropped
    /// (and logged): a flood of bad requests must not push out good ones.
    pub fn record(&self, delivery: Delivery) {
        if self
            .tx
            .try_send(Job {
                delivery,
                reply: None,
            })
            .is_err()
        {
            tracing::warn!("writer queue full or closed: a rejected delivery was not recorded");
        }
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut buffers = Buffers::default();
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let deliveries: Vec<&Delivery> = batch.iter().map(|j| &j.delivery).collect();
        match apply(&mut conn, &deliveries, &mut buffers).await {
            Ok(outcomes) => {
                tracing::trace!(size = batch.len(), "batch committed");
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(err) => {
                // One bad delivery must not sink the others: retry each on its own.
                tracing::error!(error = %format!("{err:#}"), size = batch.len(), "batch failed; retrying one by one");
                for job in batch.drain(..) {
                    let result = apply(&mut conn, &[&job.delivery], &mut buffers).await;
                    let result = match result {
                        Ok(mut outcomes) => Ok(outcomes.pop().unwrap_or(WriteOutcome::Committed)),
                        Err(err) => {
                            tracing::error!(error = %format!("{err:#}"), request_id = ?job.delivery.request_id, "delivery could not be stored");
                            Err(WriteError::Failed)
                        }
                    };
                    if let Some(reply) = job.reply {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }
    if let Err(err) = conn.close().await {
        tracing::warn!(error = %err, "closing the write connection");
    }
    tracing::debug!("writer stopped");
}

/// Reused JSON buffers, one per statement, so a batch allocates little.
#[derive(Default)]
struct Buffers {
    request_ids: String,
    deliveries: String,
    repositories: String,
    users: String,
    pull_requests: String,
    reviews: String,
    statuses: String,
}

// Request ids of this batch that were accepted before. Normally none, so this returns no rows:
// cheaper than `RETURNING` every inserted row through the driver.
const ALREADY_ACCEPTED: &str = "\
SELECT request_id FROM deliveries
WHERE request_id IN (SELECT value FROM json_each(?)) AND outcome <> 'rejected'";

const INSERT_DELIVERIES: &str = "\
INSERT INTO deliveries (request_id, event_key, received_at, outcome, reason, repository, pr_number, attempt)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7
FROM json_each(?)";

const UPSERT_REPOSITORIES: &str = "\
INSERT INTO repositories (full_name, uuid, url)
SELECT value->>0, value->>1, value->>2 FROM json_each(?) WHERE true
ON CONFLICT (full_name) DO UPDATE SET
    uuid = coalesce(excluded.uuid, uuid),
    url = coalesce(excluded.url, url)
WHERE coalesce(excluded.uuid, uuid) IS NOT uuid OR coalesce(excluded.url, url) IS NOT url";

const UPSERT_USERS: &str = "\
INSERT INTO users (user_key, uuid, account_id, nickname, username, display_name)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?) WHERE true
ON CONFLICT (user_key) DO UPDATE SET
    uuid = coalesce(excluded.uuid, uuid),
    account_id = coalesce(excluded.account_id, account_id),
    nickname = coalesce(excluded.nickname, nickname),
    username = coalesce(excluded.username, username),
    display_name = coalesce(excluded.display_name, display_name)
WHERE coalesce(excluded.uuid, uuid) IS NOT uuid
   OR coalesce(excluded.account_id, account_id) IS NOT account_id
   OR coalesce(excluded.nickname, nickname) IS NOT nickname
   OR coalesce(excluded.username, username) IS NOT username
   OR coalesce(excluded.display_name, display_name) IS NOT display_name";

// An older snapshot never overwrites a newer one (events arrive out of order).
const UPSERT_PULL_REQUESTS: &str = "\
INSERT INTO pull_requests (repository, number, title, author, source_branch, source_commit,
    destination_branch, state, draft, created_on, updated_on, last_activity_on, url)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7,
    value->>8, value->>9, value->>10, value->>11, value->>12
FROM json_each(?) WHERE true
ON CONFLICT (repository, number) DO UPDATE SET
    title = excluded.title,
    author = excluded.author,
    source_branch = excluded.source_branch,
    source_commit = excluded.source_commit,
    destination_branch = excluded.destination_branch,
    state = excluded.state,
    draft = excluded.draft,
    created_on = excluded.created_on,
    updated_on = excluded.updated_on,
    last_activity_on = max(last_activity_on, excluded.last_activity_on),
    url = coalesce(excluded.url, url)
WHERE excluded.updated_on >= pull_requests.updated_on";

const UPSERT_REVIEWS: &str = "\
INSERT INTO reviews (repository, number, user_key, role, state, state_on, snapshot_on)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6
FROM json_each(?) WHERE true
ON CONFLICT (repository, number, user_key) DO UPDATE SET
    role = excluded.role,
    state = excluded.state,
    state_on = excluded.state_on,
    snapshot_on = excluded.snapshot_on
WHERE excluded.snapshot_on >= reviews.snapshot_on";

// Whoever is not in the PR's newest snapshot is no longer attached to it. Rows written by an older
// snapshot than the stored PR are exactly those.
const DELETE_STALE_REVIEWS: &str = "\
DELETE FROM reviews
WHERE (repository, number) IN (SELECT value->>0, value->>1 FROM json_each(?))
  AND snapshot_on < (SELECT p.updated_on FROM pull_requests p
                     WHERE p.repository = reviews.repository AND p.number = reviews.number)";

const UPSERT_STATUSES: &str = "\
INSERT INTO commit_statuses (commit_hash, key, repository, state, name, url, updated_on)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6
FROM json_each(?) WHERE true
ON CONFLICT (commit_hash, key) DO UPDATE SET
    repository = excluded.repository,
    state = excluded.state,
    name = excluded.name,
    url = excluded.url,
    updated_on = excluded.updated_on
WHERE excluded.updated_on >= commit_statuses.updated_on";

/// Everything a batch writes, sent to SQLite as ONE multi-statement query: one round trip to the
/// driver's thread instead of one per statement. Each statement has one plain `?`, which sqlx binds
/// in order of appearance across the statements (numbered `?N` would not work: sqlx stops binding
/// a statement at its first unnumbered gap).
static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    [
        INSERT_DELIVERIES,
        UPSERT_REPOSITORIES,
        UPSERT_USERS,
        UPSERT_PULL_REQUESTS,
        UPSERT_REVIEWS,
        DELETE_STALE_REVIEWS,
        UPSERT_STATUSES,
        "COMMIT",
    ]
    .join(";\n")
});

/// The duplicate check opens the transaction, in the same round trip.
static BEGIN_AND_CHECK: LazyLock<String> =
    LazyLock::new(|| format!("BEGIN IMMEDIATE;\n{ALREADY_ACCEPTED}"));

/// Folds a batch into the database in one transaction. Returns one outcome per delivery, in order.
async fn apply(
    conn: &mut SqliteConnection,
    batch: &[&Delivery],
    buf: &mut Buffers,
) -> anyhow::Result<Vec<WriteOutcome>> {
    // Which deliveries are new: not accepted before, and the first of their id in this batch.
    let ids: Vec<&str> = batch
        .iter()
        .filter(|d| !matches!(d.outcome, Outcome::Rejected { .. }))
        .filter_map(|d| d.request_id.as_deref())
        .collect();
    write_json(&mut buf.request_ids, &ids)?;

    let result = write(conn, batch, buf).await;
    if result.is_err() {
        // Whatever failed, leave no transaction open (an error if none is open is fine).
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    result
}

async fn write(
    conn: &mut SqliteConnection,
    batch: &[&Delivery],
    buf: &mut Buffers,
) -> anyhow::Result<Vec<WriteOutcome>> {
    let accepted_before: Vec<String> = sqlx::query_scalar(BEGIN_AND_CHECK.as_str())
        .bind(buf.request_ids.as_str())
        .fetch_all(&mut *conn)
        .await
        .context("looking up request ids")?;
    let mut taken: HashSet<&str> = accepted_before.iter().map(String::as_str).collect();

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stored: Vec<&Delivery> = Vec::with_capacity(batch.len());
    let mut changes: Vec<&Change> = Vec::new();
    for &delivery in batch {
        let outcome = match (&delivery.outcome, delivery.request_id.as_deref()) {
            (Outcome::Rejected { .. }, _) => WriteOutcome::Committed,
            (outcome, Some(id)) if taken.insert(id) => {
                if let Outcome::Processed(change) = outcome {
                    changes.push(change);
                }
                WriteOutcome::Committed
            }
            _ => WriteOutcome::Duplicate,
        };
        if outcome == WriteOutcome::Committed {
            stored.push(delivery);
        }
        outcomes.push(outcome);
    }
    encode_deliveries(&stored, &mut buf.deliveries)?;
    Plan::new(&changes).encode(buf)?;
    sqlx::query(WRITE_BATCH.as_str())
        .bind(buf.deliveries.as_str())
        .bind(buf.repositories.as_str())
        .bind(buf.users.as_str())
        .bind(buf.pull_requests.as_str())
        .bind(buf.reviews.as_str())
        .bind(buf.pull_requests.as_str()) // DELETE_STALE_REVIEWS
        .bind(buf.statuses.as_str())
        .execute(&mut *conn)
        .await
        .context("writing the batch")?;
    Ok(outcomes)
}

fn encode_deliveries(batch: &[&Delivery], out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<_> = batch
        .iter()
        .map(|d| {
            let (reason, change) = match &d.outcome {
                Outcome::Processed(change) => (None, Some(change)),
                Outcome::Ignored { reason } | Outcome::Rejected { reason } => {
                    (Some(reason.as_str()), None)
                }
            };
            (
                d.request_id.as_deref(),
                d.event_key.as_deref(),
                d.received_at.as_str(),
                d.outcome.label(),
                reason,
                change.map(|c| c.repository()),
                change.and_then(|c| c.pr_number()),
                d.attempt,
            )
        })
        .collect();
    write_json(out, &rows)
}

fn write_json<T: serde::Serialize>(out: &mut String, value: &T) -> anyhow::Result<()> {
    out.clear();
    let mut bytes = std::mem::take(out).into_bytes();
    serde_json::to_writer(&mut bytes, value).context("encoding a batch")?;
    // serde_json writes UTF-8 only.
    *out = String::from_utf8(bytes).context("encoding a batch")?;
    Ok(())
}

/// The rows one batch writes, with repeats folded: the newest snapshot per PR and per build.
struct Plan<'a> {
    repositories: HashMap<&'a str, &'a Repository>,
    users: HashMap<&'a str, &'a User>,
    pull_requests: HashMap<(&'a str, i64), &'a PullRequest>,
    statuses: HashMap<(&'a str, &'a str), &'a CommitStatus>,
}

impl<'a> Plan<'a> {
    fn new(changes: &[&'a Change]) -> Self {
        let mut plan = Plan {
            repositories: HashMap::new(),
            users: HashMap::new(),
            pull_requests: HashMap::new(),
            statuses: HashMap::new(),
        };
        for change in changes {
            match change {
                Change::PullRequest(pr) => {
                    let pr: &PullRequest = pr;
                    let key = (pr.repository.full_name.as_str(), pr.number);
                    match plan.pull_requests.get(&key) {
                        Some(kept) if kept.updated_on > pr.updated_on => continue,
                        _ => {}
                    }
                    plan.pull_requests.insert(key, pr);
                }
                Change::CommitStatus(status) => {
                    let status: &CommitStatus = status;
                    plan.repositories
                        .insert(&status.repository.full_name, &status.repository);
                    let key = (status.commit_hash.as_str(), status.key.as_str());
                    match plan.statuses.get(&key) {
                        Some(kept) if kept.updated_on > status.updated_on => continue,
                        _ => {}
                    }
                    plan.statuses.insert(key, status);
                }
            }
        }
        for pr in plan.pull_requests.values() {
            plan.repositories
                .insert(&pr.repository.full_name, &pr.repository);
            plan.users.insert(&pr.author.key, &pr.author);
            for p in &pr.participants {
                plan.users.insert(&p.user.key, &p.user);
            }
        }
        plan
    }

    fn encode(&self, buf: &mut Buffers) -> anyhow::Result<()> {
        let repositories: Vec<_> = self
            .repositories
            .values()
            .map(|r| (&r.full_name, &r.uuid, &r.url))
            .collect();
        write_json(&mut buf.repositories, &repositories)?;

        let users: Vec<_> = self
            .users
            .values()
            .map(|u| {
                (
                    &u.key,
                    &u.uuid,
                    &u.account_id,
                    &u.nickname,
                    &u.username,
                    &u.display_name,
                )
            })
            .collect();
        write_json(&mut buf.users, &users)?;

        let pull_requests: Vec<_> = self
            .pull_requests
            .values()
            .map(|pr| {
                (
                    &pr.repository.full_name,
                    pr.number,
                    &pr.title,
                    &pr.author.key,
                    &pr.source_branch,
                    &pr.source_commit,
                    &pr.destination_branch,
                    pr.state.as_str(),
                    u8::from(pr.draft),
                    &pr.created_on,
                    &pr.updated_on,
                    &pr.activity_on,
                    &pr.url,
                )
            })
            .collect();
        write_json(&mut buf.pull_requests, &pull_requests)?;

        let reviews: Vec<_> = self
            .pull_requests
            .values()
            .flat_map(|pr| {
                pr.participants.iter().map(move |p| {
                    (
                        &pr.repository.full_name,
                        pr.number,
                        &p.user.key,
                        p.role.as_str(),
                        p.state.as_str(),
                        &p.state_on,
                        &pr.updated_on,
                    )
                })
            })
            .collect();
        write_json(&mut buf.reviews, &reviews)?;

        let statuses: Vec<_> = self
            .statuses
            .values()
            .map(|s| {
                (
                    &s.commit_hash,
                    &s.key,
                    &s.repository.full_name,
                    s.state.as_str(),
                    &s.name,
                    &s.url,
                    &s.updated_on,
                )
            })
            .collect();
        write_json(&mut buf.statuses, &statuses)?;
        Ok(())
    }
}

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
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::domain::routing::Router;
use crate::domain::{
    build_event, pr_events, BuildState, Change, CommitStatus, Delivery, NotifyEvent, Outcome,
    PrState, PullRequest, Repository, ReviewState, ReviewSummary, StoredPr, Timestamp, User,
};

#[derive(Clone)]
pub struct WriterConfig {
    /// Most deliveries folded into one transaction.
    pub max_batch: usize,
    /// Deliveries that may wait for the writer before handlers are told to back off (503).
    pub queue: usize,
    /// Which room hears about which repository, and what it announces.
    pub router: Arc<Router>,
    /// How long a new notification waits for more events on the same PR.
    pub coalesce: Duration,
    /// Woken after a commit that queued notifications.
    pub wake: Arc<Notify>,
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
        let task = tokio::spawn(run(conn, rx, config));
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

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, config: WriterConfig) {
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut buffers = Buffers::default();
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let deliveries: Vec<&Delivery> = batch.iter().map(|j| &j.delivery).collect();
        match apply(&mut conn, &deliveries, &mut buffers, &config).await {
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
                    let result = apply(&mut conn, &[&job.delivery], &mut buffers, &config).await;
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
    pr_keys: String,
    status_keys: String,
    hashes: String,
    outbox: String,
    withdrawn: String,
    deliveries: String,
    repositories: String,
    users: String,
    pull_requests: String,
    reviews: String,
    statuses: String,
}

// What the batch must know before it writes, as ONE row holding one JSON object (each row
// returned would be one more message between sqlx's SQLite thread and the writer):
// - "dup": request ids of this batch that were accepted before (normally none);
// - "pr": the stored state of the batch's PRs, to tell what changed;
// - "status": the stored state of the batch's builds;
// - "status_pr": open PRs whose source commit a build of this batch is on.
const BEFORE_BATCH: &str = "\
SELECT json_object(
 'dup', (SELECT json_group_array(request_id) FROM deliveries
          WHERE request_id IN (SELECT value FROM json_each(?)) AND outcome <> 'rejected'),
 'pr', (SELECT json_group_array(json_array(p.repository, p.number, p.state, p.draft, p.title,
                p.updated_on, p.author,
                json((SELECT json_group_array(json_array(r.user_key, r.state)) FROM reviews r
                       WHERE r.repository = p.repository AND r.number = p.number
                         AND r.state <> 'none'))))
          FROM json_each(?) j
          JOIN pull_requests p ON p.repository = j.value->>0 AND p.number = j.value->>1),
 'status', (SELECT json_group_array(json_array(c.commit_hash, c.key, c.state, c.updated_on))
              FROM json_each(?) j
              JOIN commit_statuses c ON c.commit_hash = j.value->>0 AND c.key = j.value->>1),
 'status_pr', (SELECT json_group_array(json_array(p.repository, p.number, lower(p.source_commit),
                       p.title, p.draft))
                 FROM json_each(?) j
                CROSS JOIN pull_requests p ON p.source_commit IN (substr(j.value, 1, 12), j.value)
                WHERE +p.state = 'OPEN'))";

const INSERT_DELIVERIES: &str = "\
INSERT INTO deliveries (request_id, event_key, received_at, outcome, reason, repository, pr_number, attempt)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7
FROM json_each(?)";

const UPSERT_REPOSITORIES: &str = "\
INSERT INTO repositories (full_name, uuid, url, required_approvals)
SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?) WHERE true
ON CONFLICT (full_name) DO UPDATE SET
    uuid = coalesce(excluded.uuid, uuid),
    url = coalesce(excluded.url, url),
    required_approvals = excluded.required_approvals
WHERE coalesce(excluded.uuid, uuid) IS NOT uuid OR coalesce(excluded.url, url) IS NOT url
   OR excluded.required_approvals IS NOT required_approvals";

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
    destination_branch, state, draft, created_on, updated_on, last_activity_on, url, approvals,
    changes_requested)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7,
    value->>8, value->>9, value->>10, value->>11, value->>12, value->>13, value->>14
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
    url = coalesce(excluded.url, url),
    approvals = excluded.approvals,
    changes_requested = excluded.changes_requested
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
// (Written as a join over table columns so that SQLite looks rows up by the whole key.)
const DELETE_STALE_REVIEWS: &str = "\
DELETE FROM reviews
WHERE (repository, number, user_key) IN (
    SELECT r.repository, r.number, r.user_key
      FROM json_each(?) j
      JOIN pull_requests p ON p.repository = j.value->>0 AND p.number = j.value->>1
      JOIN reviews r ON r.repository = p.repository AND r.number = p.number
     WHERE r.snapshot_on < p.updated_on)";

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

// A message still waiting in its window for a PR that has since stopped being reviewable (merged
// or declined where the route does not announce that, or back to draft / WIP) would announce a
// state that no longer exists: it is withdrawn with the change. Rows already tried are left alone.
const WITHDRAW_NOTIFICATIONS: &str = "\
DELETE FROM outbox
WHERE state = 'pending'
  AND (room, repository, number) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(?))";

// Snoozes end when their PR changes: a new commit, a new requested reviewer, or an approval
// that was there when snoozed is gone. (Runs after the batch's PR and reviews rows are written;
// snoozes are looked up first, so a batch without any costs one index probe per PR.)
const WAKE_SNOOZES: &str = "\
DELETE FROM snoozes
WHERE (user_key, repository, number) IN (
    SELECT s.user_key, s.repository, s.number
      FROM json_each(?) j
     CROSS JOIN snoozes s ON s.repository = j.value->>0 AND s.number = j.value->>1
     CROSS JOIN pull_requests p ON p.repository = s.repository AND p.number = s.number
     WHERE p.source_commit IS NOT s.source_commit
        OR EXISTS (SELECT 1 FROM reviews r
                    WHERE r.repository = p.repository AND r.number = p.number
                      AND r.role = 'REVIEWER'
                      AND r.user_key NOT IN (SELECT value FROM json_each(s.reviewers)))
        OR EXISTS (SELECT 1 FROM json_each(s.approvers) a
                    WHERE NOT EXISTS (SELECT 1 FROM reviews r
                                       WHERE r.repository = p.repository AND r.number = p.number
                                         AND r.user_key = a.value AND r.state = 'approved')))";

// One row per (room, PR, event). Events for a PR whose message is still waiting join it.
const QUEUE_NOTIFICATIONS: &str = "\
INSERT INTO outbox (room, repository, number, events, created_at, not_before)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?) WHERE true
ON CONFLICT (room, repository, number) WHERE state = 'pending' DO UPDATE SET
    events = outbox.events || ',' || excluded.events
WHERE instr(',' || outbox.events || ',', ',' || excluded.events || ',') = 0";

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
        WAKE_SNOOZES,
        WITHDRAW_NOTIFICATIONS,
        QUEUE_NOTIFICATIONS,
        "COMMIT",
    ]
    .join(";\n")
});

/// The transaction opens with the look-up, in the same round trip.
static BEGIN_AND_CHECK: LazyLock<String> =
    LazyLock::new(|| format!("BEGIN IMMEDIATE;\n{BEFORE_BATCH}"));

/// Folds a batch into the database in one transaction. Returns one outcome per delivery, in order.
async fn apply(
    conn: &mut SqliteConnection,
    batch: &[&Delivery],
    buf: &mut Buffers,
    config: &WriterConfig,
) -> anyhow::Result<Vec<WriteOutcome>> {
    encode_lookups(batch, buf)?;
    let result = write(conn, batch, buf, config).await;
    match result {
        Ok((outcomes, notified)) => {
            if notified {
                config.wake.notify_waiters();
            }
            Ok(outcomes)
        }
        Err(err) => {
            // Whatever failed, leave no transaction open (an error if none is open is fine).
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(err)
        }
    }
}

/// The keys the look-up before the batch needs: request ids, PRs, builds and their commits.
fn encode_lookups(batch: &[&Delivery], buf: &mut Buffers) -> anyhow::Result<()> {
    let mut ids = Vec::with_capacity(batch.len());
    let mut prs = Vec::new();
    let mut statuses = Vec::new();
    let mut hashes = Vec::new();
    for delivery in batch {
        if matches!(delivery.outcome, Outcome::Rejected { .. }) {
            continue;
        }
        ids.extend(delivery.request_id.as_deref());
        match &delivery.outcome {
            Outcome::Processed(Change::PullRequest(pr)) => {
                prs.push((pr.repository.full_name.as_str(), pr.number));
            }
            Outcome::Processed(Change::CommitStatus(status)) => {
                statuses.push((status.commit_hash.as_str(), status.key.as_str()));
                hashes.push(status.commit_hash.as_str());
            }
            _ => {}
        }
    }
    write_json(&mut buf.request_ids, &ids)?;
    write_json(&mut buf.pr_keys, &prs)?;
    write_json(&mut buf.status_keys, &statuses)?;
    write_json(&mut buf.hashes, &hashes)
}

/// What was stored before the batch.
#[derive(Default)]
struct Before {
    duplicates: HashSet<String>,
    prs: HashMap<(String, i64), StoredPr>,
    statuses: HashMap<(String, String), (BuildState, String)>,
    /// (repository, number, source commit, title, draft) of open PRs on the batch's commits.
    status_prs: Vec<(String, i64, String, String, bool)>,
}

/// A stored PR as `BEFORE_BATCH` lists it: repository, number, state, draft, title,
/// updated_on, author, [(user, review state)].
type StoredPrRow = (
    String,
    i64,
    String,
    i64,
    String,
    String,
    String,
    Vec<(String, String)>,
);

/// The JSON object `BEFORE_BATCH` returns.
#[derive(serde::Deserialize)]
struct BeforeRow {
    dup: Vec<String>,
    pr: Vec<StoredPrRow>,
    status: Vec<(String, String, String, String)>,
    status_pr: Vec<(String, i64, String, String, i64)>,
}

impl Before {
    fn read(json: &str) -> anyhow::Result<Before> {
        let row: BeforeRow = serde_json::from_str(json).context("state before the batch")?;
        let mut before = Before {
            duplicates: row.dup.into_iter().collect(),
            ..Before::default()
        };
        for (repo, number, state, draft, title, updated_on, author, reviews) in row.pr {
            let stored = StoredPr {
                state: PrState::parse(&state).unwrap_or(PrState::Open),
                draft: draft != 0,
                title,
                updated_on,
                author,
                reviews: reviews
                    .into_iter()
                    .map(|(user, state)| {
                        let state = match state.as_str() {
                            "approved" => ReviewState::Approved,
                            "changes_requested" => ReviewState::ChangesRequested,
                            _ => ReviewState::None,
                        };
                        (user, state)
                    })
                    .collect(),
            };
            before.prs.insert((repo, number), stored);
        }
        for (hash, key, state, updated_on) in row.status {
            if let Some(state) = BuildState::parse(&state) {
                before.statuses.insert((hash, key), (state, updated_on));
            }
        }
        before.status_prs = row
            .status_pr
            .into_iter()
            .map(|(repo, number, commit, title, draft)| (repo, number, commit, title, draft != 0))
            .collect();
        Ok(before)
    }
}

async fn write(
    conn: &mut SqliteConnection,
    batch: &[&Delivery],
    buf: &mut Buffers,
    config: &WriterConfig,
) -> anyhow::Result<(Vec<WriteOutcome>, bool)> {
    let json: String = sqlx::query_scalar(BEGIN_AND_CHECK.as_str())
        .bind(buf.request_ids.as_str())
        .bind(buf.pr_keys.as_str())
        .bind(buf.status_keys.as_str())
        .bind(buf.hashes.as_str())
        .fetch_one(&mut *conn)
        .await
        .context("reading state before the batch")?;
    let before = Before::read(&json)?;
    let mut taken: HashSet<&str> = before.duplicates.iter().map(String::as_str).collect();

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
    let plan = Plan::new(&changes);
    plan.encode(buf, &config.router)?;
    let queued = plan.notifications(&before, config, &mut buf.outbox, &mut buf.withdrawn)?;
    sqlx::query(WRITE_BATCH.as_str())
        .bind(buf.deliveries.as_str())
        .bind(buf.repositories.as_str())
        .bind(buf.users.as_str())
        .bind(buf.pull_requests.as_str())
        .bind(buf.reviews.as_str())
        .bind(buf.pull_requests.as_str()) // DELETE_STALE_REVIEWS
        .bind(buf.statuses.as_str())
        .bind(buf.pull_requests.as_str()) // WAKE_SNOOZES
        .bind(buf.withdrawn.as_str())
        .bind(buf.outbox.as_str())
        .execute(&mut *conn)
        .await
        .context("writing the batch")?;
    Ok((outcomes, queued))
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

    fn encode(&self, buf: &mut Buffers, router: &Router) -> anyhow::Result<()> {
        let repositories: Vec<_> = self
            .repositories
            .values()
            .map(|r| {
                let required = router
                    .route(&r.full_name)
                    .and_then(|route| route.required_override);
                (&r.full_name, &r.uuid, &r.url, required)
            })
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
                let summary = ReviewSummary::new(&pr.author, &pr.participants, 0);
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
                    summary.approvals(),
                    summary.changes_requested_by.len(),
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

    /// The chat messages this batch causes, as outbox rows (`out`), and the waiting messages it
    /// makes moot (`withdrawn_out`). Returns whether any row is queued.
    fn notifications(
        &self,
        before: &Before,
        config: &WriterConfig,
        out: &mut String,
        withdrawn_out: &mut String,
    ) -> anyhow::Result<bool> {
        let mut events: Vec<(&str, &str, i64, NotifyEvent)> = Vec::new();
        // (room, repository, number) of PRs that stopped being reviewable with nothing announced.
        let mut withdrawn: Vec<(&str, &str, i64)> = Vec::new();
        for pr in self.pull_requests.values() {
            let key = (pr.repository.full_name.clone(), pr.number);
            let stored = before.prs.get(&key);
            if stored.is_some_and(|s| pr.updated_on.as_str() < s.updated_on.as_str()) {
                continue; // older than what we have: not applied, nothing happened
            }
            let Some(route) = config.router.route(&pr.repository.full_name) else {
                continue;
            };
            let quiet = |title: &str, draft: bool| draft || route.ignores_title(title);
            let mut announced = false;
            for event in pr_events(stored, pr, quiet) {
                let wanted = match event {
                    NotifyEvent::Opened => route.announce.opened,
                    NotifyEvent::Approvals => route.announce.approvals,
                    NotifyEvent::ChangesRequested => route.announce.changes_requested,
                    NotifyEvent::BuildFailed | NotifyEvent::BuildRecovered => route.announce.builds,
                    NotifyEvent::Merged => route.announce.merged,
                    NotifyEvent::Declined => route.announce.declined,
                };
                if wanted {
                    events.push((&route.room, &pr.repository.full_name, pr.number, event));
                    announced = true;
                }
            }
            let was_reviewable =
                stored.is_some_and(|s| s.state == PrState::Open && !quiet(&s.title, s.draft));
            let reviewable = pr.state == PrState::Open && !quiet(&pr.title, pr.draft);
            if was_reviewable && !reviewable && !announced {
                withdrawn.push((&route.room, &pr.repository.full_name, pr.number));
            }
        }
        for status in self.statuses.values() {
            let stored = before
                .statuses
                .get(&(status.commit_hash.clone(), status.key.clone()));
            if stored.is_some_and(|(_, at)| status.updated_on.as_str() < at.as_str()) {
                continue;
            }
            let Some(event) = build_event(stored.map(|(state, _)| *state), status.state) else {
                continue;
            };
            for (repo, number, commit, title, draft) in &before.status_prs {
                if commit.is_empty() || !status.commit_hash.starts_with(commit.as_str()) {
                    continue;
                }
                let Some(route) = config.router.route(repo) else {
                    continue;
                };
                if withdrawn.iter().any(|(_, r, n)| *r == repo && n == number) {
                    continue; // closed (or back to draft) in this very batch
                }
                if route.announce.builds && !*draft && !route.ignores_title(title) {
                    events.push((&route.room, repo, *number, event));
                }
            }
        }
        let now = Timestamp::now();
        let not_before = Timestamp::from_datetime(
            now.to_datetime() + chrono::Duration::from_std(config.coalesce).unwrap_or_default(),
        );
        let rows: Vec<_> = events
            .iter()
            .map(|(room, repo, number, event)| {
                (
                    room,
                    repo,
                    number,
                    event.as_str(),
                    now.as_str(),
                    not_before.as_str(),
                )
            })
            .collect();
        write_json(out, &rows)?;
        write_json(withdrawn_out, &withdrawn)?;
        Ok(!rows.is_empty())
    }
}

//! The single writer: group commit of changes, whatever their origin.
//!
//! Webhook handlers (and, next, reconciliation passes) hand a `Submission` to this task and wait.
//! The task takes whatever is queued (up to `max_batch`), folds all of it into SQLite in ONE
//! transaction with a fixed handful of set-based statements, commits, and only then answers each
//! waiting caller. Throughput therefore grows with load instead of being capped by one fsync per
//! request, while every 2xx still means "committed".
//!
//! Each statement takes the whole batch as one JSON array bound to its one parameter and reads it
//! with `json_each`, so the SQL text never changes (prepared once, cached) whatever the batch
//! size, and no statement runs into SQLite's bound-parameter limit. Each array holds one typed
//! row struct per element (`RepositoryRow`, `PullRequestRow`, ...), read by field name. The
//! writes first turn each element into JSONB once (`WITH batch(v) AS MATERIALIZED (SELECT
//! jsonb(value) ...)`): `json_each` hands out every element as text, and each `->>` would
//! otherwise convert and parse it again.
//!
//! Who hears about a batch is decided by pure code (`domain::plan`) from the state read at the
//! start of the transaction; this module only reads that state and writes the plan's rows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::{Connection as _, PgPool, SqliteConnection};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

mod facts;
mod postgres;

pub use facts::FlowPoint;

use crate::domain::routing::Routing;
use crate::domain::{
    plan, Before, BuildState, Change, CommitStatus, Delivery, NotificationPlan, Now, Origin,
    Outcome, PrOnCommit, PrState, PullRequest, Repository, RepositoryKey, ReviewState,
    ReviewSummary, StoredBuild, StoredPr, Submission, Timestamp, User,
};

/// How the writer task batches and whom it wakes; from `Settings` and the routes.
#[derive(Clone)]
pub struct WriterConfig {
    /// Most submissions folded into one transaction.
    pub max_batch: usize,
    /// Submissions that may wait for the writer before callers are told to back off (503).
    pub queue: usize,
    /// Which room hears about which repository, and what it announces.
    pub routing: Arc<Routing>,
    /// How long a new notification waits for more events on the same PR.
    pub coalesce: Duration,
    /// Woken after a commit that queued notifications.
    pub wake: Arc<Notify>,
    /// The service's clock: when a new notification's coalescing window starts.
    pub now: Now,
    /// Told the size and the duration (fold and commit) of every committed batch (metrics).
    pub on_commit: Option<CommitObserver>,
    /// Told each point a PR reached (its first review, its merge) once its batch committed
    /// (the review-flow histograms).
    pub on_flow: Option<FlowObserver>,
}

/// Hears of each committed batch: how many submissions it held, and how long folding and
/// committing them took.
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

/// Hears of each point a PR reached in a committed batch (`FlowPoint`: seconds from ready to
/// its first review, or to its merge), once per PR and point.
pub type FlowObserver = Arc<dyn Fn(FlowPoint) + Send + Sync>;

/// What became of one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// New, recorded and (if it carried a change) folded into state.
    Committed,
    /// A delivery whose request id was already accepted: nothing changed.
    Duplicate,
}

/// Why a submission was not committed. Each makes the webhook answer 503 with `Retry-After: 1`,
/// so Bitbucket delivers again later; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The queue is full (`queue` submissions already wait): back off and retry.
    #[error("the writer is overloaded")]
    Overloaded,
    /// The writer task has ended (shutting down, or it died).
    #[error("the writer has stopped")]
    Stopped,
    /// This submission could not be stored even on its own (a SQLite error, logged); the
    /// others in its batch are unaffected.
    #[error("the change could not be stored")]
    Failed,
    /// Another process holds a lock on the database (past the write connection's 2 s busy
    /// timeout), or no commit came within `ANSWER_WITHIN`: not stored, try again shortly.
    #[error("the database is busy")]
    Busy,
}

/// The longest a caller waits for its commit. Bitbucket gives up after 10 s and retries, so an
/// answer after that is wasted; a submission still queued then may yet be committed, which a
/// redelivery then finds as a duplicate.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(7);

type Reply = oneshot::Sender<Result<WriteOutcome, WriteError>>;

struct Job {
    submission: Submission,
    reply: Option<Reply>,
}

/// Handle to the writer task; cheap to clone. The task ends when every handle is dropped, after
/// finishing what was queued.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// `gate`: held around each batch (SQLite; the pruner takes turns through it).
    pub(super) fn spawn(
        conn: Connection,
        config: WriterConfig,
        gate: Option<Arc<tokio::sync::Mutex<()>>>,
    ) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let task = tokio::spawn(run(conn, rx, config, gate));
        (Writer { tx }, task)
    }

    /// Stores a submission and waits until it is committed.
    pub async fn submit(&self, submission: Submission) -> Result<WriteOutcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            submission,
            reply: Some(reply),
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
        })?;
        match tokio::time::timeout(ANSWER_WITHIN, answer).await {
            Ok(reply) => reply.map_err(|_| WriteError::Stopped)?,
            Err(_) => Err(WriteError::Busy),
        }
    }

    /// Records a refused delivery without waiting. When the queue is full the record is dropped
    /// (and logged): a flood of bad requests must not push out good ones.
    pub fn record(&self, delivery: Delivery) {
        let job = Job {
            submission: Submission::delivery(delivery),
            reply: None,
        };
        if self.tx.try_send(job).is_err() {
            tracing::warn!("writer queue full or closed: a rejected delivery was not recorded");
        }
    }
}

/// The writer's own connection: SQLite's single write connection, or a PostgreSQL pool of one
/// (which reconnects after the server restarts).
pub(super) enum Connection {
    Sqlite(SqliteConnection),
    Postgres(PgPool),
}

impl Connection {
    async fn close(self) -> Result<(), sqlx::Error> {
        match self {
            Connection::Sqlite(conn) => conn.close().await,
            Connection::Postgres(pool) => {
                pool.close().await;
                Ok(())
            }
        }
    }
}

async fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    config: WriterConfig,
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
) {
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut buffers = Buffers::default();
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let submissions: Vec<&Submission> = batch.iter().map(|j| &j.submission).collect();
        let _turn = match &gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        // A measurement, not a time decision: the real clock.
        let started = std::time::Instant::now();
        match apply(&mut conn, &submissions, &mut buffers, &config).await {
            Ok(outcomes) => {
                tracing::trace!(size = batch.len(), "batch committed");
                if let Some(observe) = &config.on_commit {
                    observe(batch.len(), started.elapsed());
                }
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(err) if is_busy(&conn, &err) => {
                // Another process holds the database (a long `sqlite3` session, a backup): every
                // submission of the batch would wait out the busy timeout again. Refuse them all
                // at once (503); Bitbucket delivers again, and the next batch tries afresh.
                let why = match conn {
                    Connection::Sqlite(_) => "database locked by another process; batch refused",
                    Connection::Postgres(_) => {
                        "database unreachable (no connection within 2 s); batch refused"
                    }
                };
                tracing::warn!(error = %format!("{err:#}"), size = batch.len(), "{why}");
                for job in batch.drain(..) {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(Err(WriteError::Busy));
                    }
                }
            }
            Err(err) => {
                // One bad submission must not sink the others: retry each on its own.
                tracing::error!(error = %format!("{err:#}"), size = batch.len(), "batch failed; retrying one by one");
                for job in batch.drain(..) {
                    let result = apply(&mut conn, &[&job.submission], &mut buffers, &config).await;
                    let result = match result {
                        Ok(mut outcomes) => Ok(outcomes.pop().unwrap_or(WriteOutcome::Committed)),
                        Err(err) => {
                            let request_id = match &job.submission.origin {
                                Origin::Delivery(d) => d.request_id.as_deref(),
                                Origin::Reconciliation(_) => None,
                            };
                            tracing::error!(error = %format!("{err:#}"), ?request_id, "change could not be stored");
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

/// Whether SQLite said another connection holds the database (`SQLITE_BUSY`, `SQLITE_LOCKED`
/// and their extended codes), or PostgreSQL could not be reached in time (the pool's
/// `acquire_timeout`: the server is down or every connection is taken).
fn is_busy(conn: &Connection, err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let Some(err) = cause.downcast_ref::<sqlx::Error>() else {
            return false;
        };
        match conn {
            Connection::Sqlite(_) => err
                .as_database_error()
                .and_then(|e| e.code())
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
            Connection::Postgres(_) => matches!(err, sqlx::Error::PoolTimedOut),
        }
    })
}

/// Reused JSON buffers, one per statement parameter, so a batch allocates little.
#[derive(Default)]
struct Buffers {
    request_ids: String,
    pr_keys: String,
    build_keys: String,
    hashes: String,
    deliveries: String,
    repositories: String,
    users: String,
    pull_requests: String,
    reviews: String,
    statuses: String,
    withdrawn: String,
    outbox: String,
    /// PostgreSQL: the advisory-lock keys of the batch.
    locks: String,
    /// The review flow's facts, turn spans and review requests (`facts`).
    facts: String,
    turns: String,
    review_requests: String,
    /// The points PRs of the batch reached, observed once it commits.
    reached: Vec<FlowPoint>,
}

// What the batch must know before it writes, as ONE row holding one JSON object (each row
// returned would be one more message between sqlx's SQLite thread and the writer). Its shape is
// `BeforeRow`:
// - "duplicates": request ids of this batch that were accepted before (normally none);
// - "prs": the stored state of the batch's PRs, to tell what changed;
// - "builds": the stored state of the batch's builds;
// - "prs_on_commits": open PRs whose source commit a build of this batch is on.
const BEFORE_BATCH: &str = "\
SELECT json_object(
 'duplicates', (SELECT json_group_array(request_id) FROM deliveries
                 WHERE request_id IN (SELECT value FROM json_each(?)) AND outcome <> 'rejected'),
 'prs', (SELECT json_group_array(json_object(
                'repository_key', p.repository_key, 'number', p.number, 'state', p.state,
                'draft', p.draft, 'title', p.title, 'updated_on', p.updated_on,
                'author', p.author,
                'reviews', json((SELECT json_group_array(json_array(r.user_key, r.state))
                                   FROM reviews r
                                  WHERE r.repository_key = p.repository_key
                                    AND r.number = p.number AND r.state <> 'none'))))
          FROM json_each(?) j
          JOIN pull_requests p ON p.repository_key = j.value->>0 AND p.number = j.value->>1),
 'builds', (SELECT json_group_array(json_object('commit_hash', c.commit_hash, 'key', c.key,
                   'state', c.state, 'updated_on', c.updated_on))
              FROM json_each(?) j
              JOIN commit_statuses c ON c.commit_hash = j.value->>0 AND c.key = j.value->>1),
 'prs_on_commits', (SELECT json_group_array(json_object('repository_key', p.repository_key,
                    'full_name', repo.full_name, 'number', p.number,
                    'source_commit', lower(p.source_commit), 'title', p.title, 'draft', p.draft))
                 FROM json_each(?) j
                CROSS JOIN pull_requests p ON p.source_commit IN (substr(j.value, 1, 12), j.value)
                 JOIN repositories repo ON repo.repository_key = p.repository_key
                WHERE +p.state = 'OPEN')";

const INSERT_DELIVERIES: &str = "\
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO deliveries (request_id, event_key, received_at, outcome, reason, repository, pr_number,
    attempt, flavour, server)
SELECT v->>'request_id', v->>'event_key', v->>'received_at', v->>'outcome',
    v->>'reason', v->>'repository', v->>'pr_number', v->>'attempt', v->>'flavour', v->>'server'
FROM batch";

// A repository's name changes with a rename: the name of the newest change wins, whatever the
// arrival order (`named_on`). Rows are rewritten only when something differs.
const UPSERT_REPOSITORIES: &str = "\
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO repositories (repository_key, full_name, uuid, url, required_approvals, named_on,
    approvals_after_last_push)
SELECT v->>'repository_key', v->>'full_name', v->>'uuid', v->>'url',
    v->>'required_approvals', v->>'named_on', v->>'approvals_after_last_push'
FROM batch WHERE true
ON CONFLICT (repository_key) DO UPDATE SET
    full_name = excluded.full_name,
    named_on = excluded.named_on,
    uuid = coalesce(excluded.uuid, uuid),
    url = coalesce(excluded.url, url),
    required_approvals = excluded.required_approvals,
    approvals_after_last_push = excluded.approvals_after_last_push
WHERE excluded.named_on >= coalesce(repositories.named_on, '')
  AND (excluded.full_name IS NOT repositories.full_name
       OR coalesce(excluded.uuid, repositories.uuid) IS NOT repositories.uuid
       OR coalesce(excluded.url, repositories.url) IS NOT repositories.url
       OR excluded.required_approvals IS NOT repositories.required_approvals
       OR excluded.approvals_after_last_push IS NOT repositories.approvals_after_last_push)";

const UPSERT_USERS: &str = "\
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO users (user_key, uuid, account_id, nickname, username, display_name, email)
SELECT v->>'user_key', v->>'uuid', v->>'account_id', v->>'nickname',
    v->>'username', v->>'display_name', v->>'email'
FROM batch WHERE true
ON CONFLICT (user_key) DO UPDATE SET
    uuid = coalesce(excluded.uuid, uuid),
    account_id = coalesce(excluded.account_id, account_id),
    nickname = coalesce(excluded.nickname, nickname),
    username = coalesce(excluded.username, username),
    display_name = coalesce(excluded.display_name, display_name),
    email = coalesce(excluded.email, email)
WHERE coalesce(excluded.uuid, uuid) IS NOT uuid
   OR coalesce(excluded.account_id, account_id) IS NOT account_id
   OR coalesce(excluded.nickname, nickname) IS NOT nickname
   OR coalesce(excluded.username, username) IS NOT username
   OR coalesce(excluded.display_name, display_name) IS NOT display_name
   OR coalesce(excluded.email, email) IS NOT email";

// An older snapshot never overwrites a newer one (events arrive out of order).
const UPSERT_PULL_REQUESTS: &str = "\
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO pull_requests (repository_key, number, title, author, source_branch, source_commit,
    destination_branch, state, draft, created_on, updated_on, last_activity_on, url, approvals,
    changes_requested, open_tasks, pushed_on)
SELECT v->>'repository_key', v->>'number', v->>'title', v->>'author',
    v->>'source_branch', v->>'source_commit', v->>'destination_branch',
    v->>'state', v->>'draft', v->>'created_on', v->>'updated_on',
    v->>'last_activity_on', v->>'url', v->>'approvals', v->>'changes_requested',
    v->>'open_tasks', v->>'created_on'
FROM batch WHERE true
ON CONFLICT (repository_key, number) DO UPDATE SET
    -- A new source commit is dated by the snapshot that first shows it (issue 23: verdicts
    -- given before it are on an older state of the PR).
    pushed_on = CASE WHEN excluded.source_commit IS NOT pull_requests.source_commit
                     THEN excluded.updated_on ELSE pull_requests.pushed_on END,
    open_tasks = coalesce(excluded.open_tasks, pull_requests.open_tasks),
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
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO reviews (repository_key, number, user_key, role, state, state_on, snapshot_on,
    reviewed_commit)
SELECT v->>'repository_key', v->>'number', v->>'user_key', v->>'role',
    v->>'state', v->>'state_on', v->>'snapshot_on', v->>'reviewed_commit'
FROM batch WHERE true
ON CONFLICT (repository_key, number, user_key) DO UPDATE SET
    reviewed_commit = excluded.reviewed_commit,
    role = excluded.role,
    state = excluded.state,
    state_on = excluded.state_on,
    snapshot_on = excluded.snapshot_on
WHERE excluded.snapshot_on >= reviews.snapshot_on";

// Whoever is not in the PR's newest snapshot is no longer attached to it: rows an older snapshot
// wrote (this batch may hold one), and, once a batch's snapshot is the stored one, everyone it
// does not list. (Comparing times alone would keep them when two snapshots share an
// `updated_on`.) Written as a join over table columns so that SQLite looks rows up by the whole
// key.
const DELETE_STALE_REVIEWS: &str = "\
DELETE FROM reviews
WHERE (repository_key, number, user_key) IN (
    SELECT r.repository_key, r.number, r.user_key
      FROM json_each(?) j
      JOIN pull_requests p ON p.repository_key = j.value->>'repository_key'
                          AND p.number = j.value->>'number'
      JOIN reviews r ON r.repository_key = p.repository_key AND r.number = p.number
     WHERE r.snapshot_on < p.updated_on
        OR (p.updated_on = j.value->>'updated_on'
            AND r.user_key NOT IN (SELECT value FROM json_each(j.value->'participants'))))";

const UPSERT_STATUSES: &str = "\
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO commit_statuses (commit_hash, key, repository_key, state, name, url, updated_on)
SELECT v->>'commit_hash', v->>'key', v->>'repository_key', v->>'state',
    v->>'name', v->>'url', v->>'updated_on'
FROM batch WHERE true
ON CONFLICT (commit_hash, key) DO UPDATE SET
    repository_key = excluded.repository_key,
    state = excluded.state,
    name = excluded.name,
    url = excluded.url,
    updated_on = excluded.updated_on
WHERE excluded.updated_on >= commit_statuses.updated_on";

// Snoozes end when their PR changes: a new commit, a new requested reviewer, or an approval
// that was there when snoozed is gone. (Runs after the batch's PR and reviews rows are written;
// snoozes are looked up first, so a batch without any costs one index probe per PR.)
const WAKE_SNOOZES: &str = "\
DELETE FROM snoozes
WHERE (user_key, repository_key, number) IN (
    SELECT s.user_key, s.repository_key, s.number
      FROM json_each(?) j
     CROSS JOIN snoozes s ON s.repository_key = j.value->>'repository_key'
                         AND s.number = j.value->>'number'
     CROSS JOIN pull_requests p ON p.repository_key = s.repository_key AND p.number = s.number
     WHERE p.source_commit IS NOT s.source_commit
        OR EXISTS (SELECT 1 FROM reviews r
                    WHERE r.repository_key = p.repository_key AND r.number = p.number
                      AND r.role = 'REVIEWER'
                      AND r.user_key NOT IN (SELECT value FROM json_each(s.reviewers)))
        OR EXISTS (SELECT 1 FROM json_each(s.approvers) a
                    WHERE NOT EXISTS (SELECT 1 FROM reviews r
                                       WHERE r.repository_key = p.repository_key
                                         AND r.number = p.number
                                         AND r.user_key = a.value AND r.state = 'approved')))";

// A message still waiting in its window for a PR that has since stopped being reviewable would
// announce a state that no longer exists: it is withdrawn with the change. Rows already tried
// are left alone.
const WITHDRAW_NOTIFICATIONS: &str = "\
DELETE FROM outbox
WHERE state = 'pending' AND kind = 'pull_request'
  AND (room, repository_key, number) IN (
      SELECT value->>'room', value->>'repository_key', value->>'number' FROM json_each(?))";

// One row per (room, PR, event). Events for a PR whose message is still waiting join it.
const QUEUE_NOTIFICATIONS: &str = "\
WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO outbox (room, kind, repository_key, number, events, created_at, not_before)
SELECT v->>'room', 'pull_request', v->>'repository_key', v->>'number',
    v->>'event', v->>'created_at', v->>'not_before'
FROM batch WHERE true
ON CONFLICT (room, repository_key, number) WHERE state = 'pending' AND kind = 'pull_request'
DO UPDATE SET events = outbox.events || ',' || excluded.events
WHERE instr(',' || outbox.events || ',', ',' || excluded.events || ',') = 0";

/// Everything a batch writes, sent to SQLite as ONE multi-statement query: one round trip to the
/// driver's thread instead of one per statement. Each statement has one plain `?`, which sqlx
/// binds in order of appearance across the statements (numbered `?N` would not work: sqlx stops
/// binding a statement at its first unnumbered gap).
static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    let facts = facts::sqlite_writes();
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
        &facts[0],
        &facts[1],
        &facts[2],
        "COMMIT",
    ]
    .join(";\n")
});

/// The transaction opens with the look-up, in the same round trip.
static BEGIN_AND_CHECK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "BEGIN IMMEDIATE;\n{BEFORE_BATCH},\n{}\n)",
        facts::SQLITE_BEFORE_FACTS
    )
});

/// Folds a batch into the database in one transaction. Returns one outcome per submission, in
/// order.
async fn apply(
    conn: &mut Connection,
    batch: &[&Submission],
    buf: &mut Buffers,
    config: &WriterConfig,
) -> anyhow::Result<Vec<WriteOutcome>> {
    encode_lookups(batch, buf)?;
    let written = match conn {
        Connection::Sqlite(conn) => match write(conn, batch, buf, config).await {
            Ok(written) => Ok(written),
            Err(err) => {
                // Whatever failed, leave no transaction open (an error if none is open is fine).
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(err)
            }
        },
        // The transaction rolls back when dropped.
        Connection::Postgres(pool) => postgres::write(pool, batch, buf, config).await,
    };
    let (outcomes, notified) = written?;
    if let Some(observe) = &config.on_flow {
        for point in buf.reached.drain(..) {
            observe(point);
        }
    }
    if notified {
        config.wake.notify_waiters();
    }
    Ok(outcomes)
}

/// The keys the look-up before the batch needs: request ids, PRs, builds and their commits.
fn encode_lookups(batch: &[&Submission], buf: &mut Buffers) -> anyhow::Result<()> {
    let mut ids = Vec::with_capacity(batch.len());
    let mut prs: Vec<(&str, i64, Option<&str>)> = Vec::new();
    let mut newest: HashMap<(&str, i64), (usize, &Timestamp)> = HashMap::new();
    let mut builds = Vec::new();
    let mut hashes = Vec::new();
    for submission in batch {
        if let Origin::Delivery(delivery) = &submission.origin {
            if matches!(delivery.outcome, Outcome::Rejected { .. }) {
                continue;
            }
            ids.extend(delivery.request_id.as_deref());
        }
        match submission.change() {
            // Each PR once, with its newest snapshot's commit (whose builds the facts read).
            Some(Change::PullRequest(pr)) => {
                let row = (
                    pr.repository.key.as_str(),
                    pr.number,
                    pr.source_commit.as_deref(),
                );
                match newest.get(&(row.0, row.1)) {
                    Some(&(_, on)) if *on > pr.updated_on => {}
                    Some(&(i, _)) => {
                        prs[i] = row;
                        newest.insert((row.0, row.1), (i, &pr.updated_on));
                    }
                    None => {
                        newest.insert((row.0, row.1), (prs.len(), &pr.updated_on));
                        prs.push(row);
                    }
                }
            }
            Some(Change::CommitStatus(status)) => {
                builds.push((status.commit_hash.as_str(), status.key.as_str()));
                hashes.push(status.commit_hash.as_str());
            }
            Some(Change::Repository(_)) | None => {}
        }
    }
    write_json(&mut buf.request_ids, &ids)?;
    write_json(&mut buf.pr_keys, &prs)?;
    write_json(&mut buf.build_keys, &builds)?;
    write_json(&mut buf.hashes, &hashes)
}

/// The JSON object `BEFORE_BATCH` returns.
#[derive(Deserialize)]
struct BeforeRow {
    duplicates: Vec<String>,
    prs: Vec<StoredPrRow>,
    builds: Vec<StoredBuildRow>,
    prs_on_commits: Vec<PrOnCommitRow>,
    /// The review flow's stored facts of the batch's PRs.
    #[serde(flatten)]
    flow: facts::StoredFacts,
}

#[derive(Deserialize)]
struct StoredPrRow {
    repository_key: String,
    number: i64,
    state: String,
    draft: i64,
    title: String,
    updated_on: String,
    author: String,
    /// (user key, review state) of everyone with a verdict.
    reviews: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct StoredBuildRow {
    commit_hash: String,
    key: String,
    state: String,
    updated_on: String,
}

#[derive(Deserialize)]
struct PrOnCommitRow {
    repository_key: String,
    full_name: String,
    number: i64,
    source_commit: String,
    title: String,
    draft: i64,
}

impl BeforeRow {
    fn into_domain(self) -> (HashSet<String>, Before) {
        let mut before = Before::default();
        for pr in self.prs {
            let stored = StoredPr {
                state: PrState::parse(&pr.state).unwrap_or(PrState::Open),
                draft: pr.draft != 0,
                title: pr.title,
                updated_on: pr.updated_on,
                author: pr.author.into(),
                reviews: pr
                    .reviews
                    .into_iter()
                    .map(|(user, state)| {
                        let state = match state.as_str() {
                            "approved" => ReviewState::Approved,
                            "changes_requested" => ReviewState::ChangesRequested,
                            _ => ReviewState::None,
                        };
                        (user.into(), state)
                    })
                    .collect(),
            };
            before.prs.insert(
                (RepositoryKey::from_stored(pr.repository_key), pr.number),
                stored,
            );
        }
        for build in self.builds {
            if let Some(state) = BuildState::parse(&build.state) {
                before.builds.insert(
                    (build.commit_hash, build.key),
                    StoredBuild {
                        state,
                        updated_on: build.updated_on,
                    },
                );
            }
        }
        before.prs_on_commits = self
            .prs_on_commits
            .into_iter()
            .map(|p| PrOnCommit {
                repository: RepositoryKey::from_stored(p.repository_key),
                full_name: p.full_name,
                number: p.number,
                source_commit: p.source_commit,
                title: p.title,
                draft: p.draft != 0,
            })
            .collect();
        (self.duplicates.into_iter().collect(), before)
    }
}

async fn write(
    conn: &mut SqliteConnection,
    batch: &[&Submission],
    buf: &mut Buffers,
    config: &WriterConfig,
) -> anyhow::Result<(Vec<WriteOutcome>, bool)> {
    let json: String = sqlx::query_scalar(BEGIN_AND_CHECK.as_str())
        .bind(buf.request_ids.as_str())
        .bind(buf.pr_keys.as_str())
        .bind(buf.build_keys.as_str())
        .bind(buf.hashes.as_str())
        .bind(buf.pr_keys.as_str())
        .bind(buf.pr_keys.as_str())
        .bind(buf.pr_keys.as_str())
        .fetch_one(&mut *conn)
        .await
        .context("reading state before the batch")?;
    let (outcomes, queued) = prepare(batch, &json, buf, config, false)?;
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
        .bind(buf.facts.as_str())
        .bind(buf.turns.as_str())
        .bind(buf.review_requests.as_str())
        .execute(&mut *conn)
        .await
        .context("writing the batch")?;
    Ok((outcomes, queued))
}

/// What both databases do between the look-up and the writes: tells duplicates apart, plans
/// who hears about what (`domain::plan`) and encodes every row of the batch into `buf`.
/// `before` is the look-up's JSON object (`BeforeRow`). `group_events`: one outbox row per
/// (room, PR) with its events joined by commas (PostgreSQL's upsert may not touch a row twice),
/// instead of one per event. Returns the outcomes and whether a message is queued.
fn prepare(
    batch: &[&Submission],
    before: &str,
    buf: &mut Buffers,
    config: &WriterConfig,
    group_events: bool,
) -> anyhow::Result<(Vec<WriteOutcome>, bool)> {
    let mut row: BeforeRow = serde_json::from_str(before).context("state before the batch")?;
    let flow = std::mem::take(&mut row.flow);
    let (duplicates, before) = row.into_domain();
    let mut taken: HashSet<&str> = duplicates.iter().map(String::as_str).collect();

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut recorded: Vec<&Delivery> = Vec::with_capacity(batch.len());
    let mut changes: Vec<(&Change, bool)> = Vec::new();
    for &submission in batch {
        let outcome = match &submission.origin {
            Origin::Delivery(delivery) => {
                let fresh = match (&delivery.outcome, delivery.request_id.as_deref()) {
                    (Outcome::Rejected { .. }, _) | (_, None) => true,
                    (_, Some(id)) => taken.insert(id),
                };
                if fresh {
                    recorded.push(delivery);
                }
                fresh
            }
            Origin::Reconciliation(_) => true,
        };
        if outcome {
            match submission.change() {
                // A deleted PR (Data Center's `pr:deleted`) is final: nothing dated after it,
                // from a node whose clock runs ahead say, brings it back.
                Some(Change::PullRequest(pr))
                    if before
                        .prs
                        .get(&(pr.repository.key.clone(), pr.number))
                        .is_some_and(|stored| stored.state == PrState::Deleted) => {}
                Some(change) => changes.push((change, submission.announce)),
                None => {}
            }
            outcomes.push(WriteOutcome::Committed);
        } else {
            outcomes.push(WriteOutcome::Duplicate);
        }
    }
    encode_deliveries(&recorded, &mut buf.deliveries)?;
    let rows = Rows::new(&changes);
    rows.encode(buf, &config.routing)?;
    let snapshots: Vec<&PullRequest> = changes
        .iter()
        .filter_map(|(change, _)| match change {
            Change::PullRequest(pr) => Some(&**pr),
            _ => None,
        })
        .collect();
    let statuses: Vec<&CommitStatus> = rows.statuses.values().map(|s| s.0).collect();
    buf.reached = facts::encode(
        flow,
        &snapshots,
        &statuses,
        &config.routing,
        (&mut buf.facts, &mut buf.turns, &mut buf.review_requests),
    )?;
    let prs: Vec<(&PullRequest, bool)> = rows.pull_requests.values().copied().collect();
    let builds: Vec<(&CommitStatus, bool)> = rows.statuses.values().copied().collect();
    let planned = plan(&prs, &builds, &before, &config.routing);
    let now = Timestamp::from_datetime((config.now)());
    let queued = encode_plan(&planned, &now, config.coalesce, buf, group_events)?;
    Ok((outcomes, queued))
}

#[derive(Serialize)]
struct DeliveryRow<'a> {
    request_id: Option<&'a str>,
    event_key: Option<&'a str>,
    received_at: &'a str,
    outcome: &'static str,
    reason: Option<&'a str>,
    /// The repository's name as the delivery carried it.
    repository: Option<&'a str>,
    pr_number: Option<i64>,
    attempt: Option<i64>,
    flavour: &'static str,
    /// The Data Center server identity the change was stored under.
    server: Option<&'a str>,
}

fn encode_deliveries(deliveries: &[&Delivery], out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<DeliveryRow> = deliveries
        .iter()
        .map(|d| {
            let (reason, change) = match &d.outcome {
                Outcome::Processed(change) => (None, Some(change)),
                Outcome::Ignored { reason } | Outcome::Rejected { reason } => {
                    (Some(reason.as_str()), None)
                }
            };
            DeliveryRow {
                request_id: d.request_id.as_deref(),
                event_key: d.event_key.as_deref(),
                received_at: d.received_at.as_str(),
                outcome: d.outcome.label(),
                reason,
                repository: change.map(|c| c.repository().full_name.as_str()),
                pr_number: change.and_then(Change::pr_number),
                attempt: d.attempt,
                flavour: d.flavour.as_str(),
                server: change
                    .and_then(|c| c.repository().key.datacenter_parts())
                    .map(|(server, _)| server),
            }
        })
        .collect();
    write_json(out, &rows)
}

fn write_json<T: Serialize>(out: &mut String, value: &T) -> anyhow::Result<()> {
    out.clear();
    let mut bytes = std::mem::take(out).into_bytes();
    serde_json::to_writer(&mut bytes, value).context("encoding a batch")?;
    // serde_json writes UTF-8 only.
    *out = String::from_utf8(bytes).context("encoding a batch")?;
    Ok(())
}

#[derive(Serialize)]
struct RepositoryRow<'a> {
    repository_key: &'a RepositoryKey,
    full_name: &'a str,
    uuid: Option<&'a str>,
    url: Option<&'a str>,
    /// The route's own setting, else NULL (the service default).
    required_approvals: Option<u32>,
    named_on: &'a Timestamp,
    /// The route's `approvals_after_last_push` (false without a route).
    approvals_after_last_push: bool,
}

#[derive(Serialize)]
struct UserRow<'a> {
    user_key: &'a str,
    uuid: Option<&'a str>,
    account_id: Option<&'a str>,
    nickname: Option<&'a str>,
    username: Option<&'a str>,
    display_name: Option<&'a str>,
    email: Option<&'a str>,
}

#[derive(Serialize)]
struct PullRequestRow<'a> {
    repository_key: &'a RepositoryKey,
    number: i64,
    title: &'a str,
    author: &'a str,
    source_branch: Option<&'a str>,
    source_commit: Option<&'a str>,
    destination_branch: Option<&'a str>,
    state: &'static str,
    draft: bool,
    created_on: &'a Timestamp,
    updated_on: &'a Timestamp,
    last_activity_on: &'a Timestamp,
    url: Option<&'a str>,
    approvals: u32,
    changes_requested: usize,
    /// Open tasks, when the snapshot says (else the stored count is kept).
    open_tasks: Option<u32>,
    /// Everyone attached in this snapshot (user keys): the others are detached.
    participants: Vec<&'a str>,
}

#[derive(Serialize)]
struct ReviewRow<'a> {
    repository_key: &'a RepositoryKey,
    number: i64,
    user_key: &'a str,
    role: &'static str,
    state: &'static str,
    state_on: Option<&'a Timestamp>,
    /// `updated_on` of the PR snapshot that writes the row.
    snapshot_on: &'a Timestamp,
    /// Data Center's `lastReviewedCommit`.
    reviewed_commit: Option<&'a str>,
}

#[derive(Serialize)]
struct StatusRow<'a> {
    commit_hash: &'a str,
    key: &'a str,
    repository_key: &'a RepositoryKey,
    state: &'static str,
    name: Option<&'a str>,
    url: Option<&'a str>,
    updated_on: &'a Timestamp,
}

#[derive(Serialize)]
struct WithdrawalRow<'a> {
    room: &'a str,
    repository_key: &'a RepositoryKey,
    number: i64,
}

#[derive(Serialize)]
struct OutboxRow<'a> {
    room: &'a str,
    repository_key: &'a RepositoryKey,
    number: i64,
    /// One event, or (grouped) several joined by commas in the plan's order.
    event: std::borrow::Cow<'static, str>,
    created_at: &'a str,
    not_before: &'a str,
}

/// The plan's rows: withdrawals and new messages (due at the end of the coalescing window).
/// Returns whether any message is queued.
fn encode_plan(
    plan: &NotificationPlan,
    now: &Timestamp,
    coalesce: Duration,
    buf: &mut Buffers,
    group_events: bool,
) -> anyhow::Result<bool> {
    let not_before = Timestamp::from_datetime(
        now.to_datetime() + chrono::Duration::from_std(coalesce).unwrap_or_default(),
    );
    let withdrawn: Vec<WithdrawalRow> = plan
        .withdrawals
        .iter()
        .map(|w| WithdrawalRow {
            room: &w.room,
            repository_key: &w.repository,
            number: w.number,
        })
        .collect();
    write_json(&mut buf.withdrawn, &withdrawn)?;
    let mut queued: Vec<OutboxRow> = Vec::with_capacity(plan.notifications.len());
    let mut grouped: HashMap<(&str, &RepositoryKey, i64), usize> = HashMap::new();
    for n in &plan.notifications {
        let key = (n.room.as_str(), &n.repository, n.number);
        match grouped.get(&key) {
            Some(&i) if group_events => {
                let row: &mut OutboxRow = &mut queued[i];
                if !row.event.split(',').any(|e| e == n.event.as_str()) {
                    row.event = format!("{},{}", row.event, n.event.as_str()).into();
                }
            }
            _ => {
                grouped.insert(key, queued.len());
                queued.push(OutboxRow {
                    room: &n.room,
                    repository_key: &n.repository,
                    number: n.number,
                    event: n.event.as_str().into(),
                    created_at: now.as_str(),
                    not_before: not_before.as_str(),
                });
            }
        }
    }
    write_json(&mut buf.outbox, &queued)?;
    Ok(!queued.is_empty())
}

/// The rows one batch writes, with repeats folded: the newest snapshot per PR and per build, the
/// newest name per repository. A PR or build announces if any submission of it may.
struct Rows<'a> {
    repositories: HashMap<&'a RepositoryKey, (&'a Repository, &'a Timestamp)>,
    users: HashMap<&'a str, &'a User>,
    pull_requests: HashMap<(&'a RepositoryKey, i64), (&'a PullRequest, bool)>,
    statuses: HashMap<(&'a str, &'a str), (&'a CommitStatus, bool)>,
}

impl<'a> Rows<'a> {
    fn new(changes: &[(&'a Change, bool)]) -> Self {
        let mut rows = Rows {
            repositories: HashMap::new(),
            users: HashMap::new(),
            pull_requests: HashMap::new(),
            statuses: HashMap::new(),
        };
        for &(change, announce) in changes {
            let repository = change.repository();
            let at = change.updated_on();
            match rows.repositories.get(&repository.key) {
                Some((_, kept)) if *kept > at => {}
                _ => {
                    rows.repositories.insert(&repository.key, (repository, at));
                }
            }
            match change {
                Change::PullRequest(pr) => {
                    let pr: &PullRequest = pr;
                    let key = (&pr.repository.key, pr.number);
                    let kept = rows.pull_requests.get(&key).copied();
                    let announce = announce || kept.is_some_and(|k| k.1);
                    let newest = match kept {
                        Some((kept, _)) if kept.updated_on > pr.updated_on => kept,
                        _ => pr,
                    };
                    rows.pull_requests.insert(key, (newest, announce));
                }
                Change::CommitStatus(status) => {
                    let status: &CommitStatus = status;
                    let key = (status.commit_hash.as_str(), status.key.as_str());
                    let kept = rows.statuses.get(&key).copied();
                    let announce = announce || kept.is_some_and(|k| k.1);
                    let newest = match kept {
                        Some((kept, _)) if kept.updated_on > status.updated_on => kept,
                        _ => status,
                    };
                    rows.statuses.insert(key, (newest, announce));
                }
                Change::Repository(_) => {}
            }
        }
        for (pr, _) in rows.pull_requests.values() {
            rows.users.insert(pr.author.key.as_str(), &pr.author);
            for p in &pr.participants {
                rows.users.insert(p.user.key.as_str(), &p.user);
            }
        }
        rows
    }

    fn encode(&self, buf: &mut Buffers, routing: &Routing) -> anyhow::Result<()> {
        let repositories: Vec<RepositoryRow> = self
            .repositories
            .values()
            .map(|(r, at)| {
                // One glob scan per repository: the route gives both of its settings.
                let route = routing.route(r.key.flavour(), &r.full_name);
                RepositoryRow {
                    repository_key: &r.key,
                    full_name: &r.full_name,
                    uuid: r.uuid.as_deref(),
                    url: r.url.as_deref(),
                    required_approvals: route.and_then(|route| route.required_override),
                    named_on: at,
                    approvals_after_last_push: route
                        .is_some_and(|route| route.approvals_after_last_push),
                }
            })
            .collect();
        write_json(&mut buf.repositories, &repositories)?;

        let users: Vec<UserRow> = self
            .users
            .values()
            .map(|u| UserRow {
                user_key: u.key.as_str(),
                uuid: u.uuid.as_deref(),
                account_id: u.account_id.as_deref(),
                nickname: u.nickname.as_deref(),
                username: u.username.as_deref(),
                display_name: u.display_name.as_deref(),
                email: u.email.as_deref(),
            })
            .collect();
        write_json(&mut buf.users, &users)?;

        let pull_requests: Vec<PullRequestRow> = self
            .pull_requests
            .values()
            .map(|(pr, _)| {
                let summary = ReviewSummary::new(&pr.author, &pr.participants);
                PullRequestRow {
                    repository_key: &pr.repository.key,
                    number: pr.number,
                    title: &pr.title,
                    author: pr.author.key.as_str(),
                    source_branch: pr.source_branch.as_deref(),
                    source_commit: pr.source_commit.as_deref(),
                    destination_branch: pr.destination_branch.as_deref(),
                    state: pr.state.as_str(),
                    draft: pr.draft,
                    created_on: &pr.created_on,
                    updated_on: &pr.updated_on,
                    last_activity_on: &pr.activity_on,
                    url: pr.url.as_deref(),
                    approvals: summary.approvals(),
                    changes_requested: summary.changes_requested_by.len(),
                    open_tasks: pr.open_tasks,
                    participants: pr
                        .participants
                        .iter()
                        .map(|p| p.user.key.as_str())
                        .collect(),
                }
            })
            .collect();
        write_json(&mut buf.pull_requests, &pull_requests)?;

        let reviews: Vec<ReviewRow> = self
            .pull_requests
            .values()
            .flat_map(|(pr, _)| {
                pr.participants.iter().map(move |p| ReviewRow {
                    repository_key: &pr.repository.key,
                    number: pr.number,
                    user_key: p.user.key.as_str(),
                    role: p.role.as_str(),
                    state: p.state.as_str(),
                    state_on: p.state_on.as_ref(),
                    snapshot_on: &pr.updated_on,
                    reviewed_commit: p.reviewed_commit.as_deref(),
                })
            })
            .collect();
        write_json(&mut buf.reviews, &reviews)?;

        let statuses: Vec<StatusRow> = self
            .statuses
            .values()
            .map(|(s, _)| StatusRow {
                commit_hash: &s.commit_hash,
                key: &s.key,
                repository_key: &s.repository.key,
                state: s.state.as_str(),
                name: s.name.as_deref(),
                url: s.url.as_deref(),
                updated_on: &s.updated_on,
            })
            .collect();
        write_json(&mut buf.statuses, &statuses)
    }
}

//! `outbox`: chat messages waiting to be sent, and what became of them. Rows are written by the
//! batch writer (per-PR news) and the sweep (digests), in the same transaction as their cause;
//! the dispatcher claims, sends and finishes them through the functions here.

use std::fmt;

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::{RepositoryKey, Timestamp};

/// Where a message is in its life. Stored as the lower-case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting for its coalescing window to end; later events of the same PR join it.
    Pending,
    /// Sending failed; tried again at `not_before`, holding the room's queue in order.
    Retrying,
    /// Claimed by a room's dispatcher (after a crash: put back as `Retrying` at start).
    Sending,
    /// The chat server said yes.
    Sent,
    /// Refused, or out of attempts; `outbox retry` puts it back.
    Failed,
}

impl OutboxState {
    /// The word stored in `outbox.state`: `pending`, `retrying`, `sending`, `sent` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Retrying => "retrying",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "pending" => OutboxState::Pending,
            "retrying" => OutboxState::Retrying,
            "sending" => OutboxState::Sending,
            "sent" => OutboxState::Sent,
            "failed" => OutboxState::Failed,
            other => anyhow::bail!("unknown outbox state `{other}`"),
        })
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<9}` in `outbox list` lines the columns up.
        f.pad(self.as_str())
    }
}

/// What a message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// News of one PR, rendered from its state when sent.
    PullRequest {
        /// The repository's lasting key (`outbox.repository_key`).
        repository: RepositoryKey,
        /// The repository's current name (for people reading `outbox list`).
        full_name: String,
        /// The PR's number in that repository.
        number: i64,
    },
    /// A sweep's digest, rendered when the sweep ran (`OutboxRow::payload`).
    Digest,
    /// A room's weekly report (issue 28), rendered when it was queued (`OutboxRow::payload`;
    /// `weekly_reports` says which week).
    Report,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// `outbox.id`, the number `outbox retry <id>` takes; rising in order of creation.
    pub id: i64,
    /// The name of the room it goes to.
    pub room: String,
    /// One PR's news, or a digest.
    pub subject: Subject,
    /// Comma-separated `NotifyEvent` names (`digest` for a digest).
    pub events: String,
    /// Where it is in its life.
    pub state: OutboxState,
    /// When it was queued (UTC RFC 3339, as `Timestamp` writes it).
    pub created_at: String,
    /// When it may be sent next: the end of its coalescing window, or of its retry delay.
    pub not_before: String,
    /// Sending attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed, as the chat server or the network said.
    pub last_error: Option<String>,
    /// When the chat server accepted it (`None` until sent).
    pub sent_at: Option<String>,
    /// When its first attempt failed (`None` until one did; cleared by `outbox retry`).
    pub first_failed_at: Option<String>,
    /// The pre-rendered message of a digest or a report, as JSON.
    pub payload: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RawRow {
    id: i64,
    room: String,
    kind: String,
    repository_key: Option<String>,
    full_name: Option<String>,
    number: Option<i64>,
    events: String,
    state: String,
    created_at: String,
    not_before: String,
    attempts: i64,
    last_error: Option<String>,
    sent_at: Option<String>,
    first_failed_at: Option<String>,
    payload: Option<String>,
}

impl RawRow {
    fn into_row(self) -> anyhow::Result<OutboxRow> {
        let subject = match (self.kind.as_str(), self.repository_key, self.number) {
            ("digest", _, _) => Subject::Digest,
            ("report", _, _) => Subject::Report,
            (_, Some(key), Some(number)) => Subject::PullRequest {
                full_name: self.full_name.unwrap_or_else(|| key.clone()),
                repository: RepositoryKey::from_stored(key),
                number,
            },
            _ => anyhow::bail!("outbox row {} names no pull request", self.id),
        };
        Ok(OutboxRow {
            id: self.id,
            room: self.room,
            subject,
            events: self.events,
            state: OutboxState::parse(&self.state)?,
            created_at: self.created_at,
            not_before: self.not_before,
            attempts: self.attempts,
            last_error: self.last_error,
            sent_at: self.sent_at,
            first_failed_at: self.first_failed_at,
            payload: self.payload,
        })
    }
}

const SELECT_ROWS: &str = "SELECT o.id, o.room, o.kind, o.repository_key, repo.full_name, o.number,
        o.events, o.state, o.created_at, o.not_before, o.attempts, o.last_error, o.sent_at,
        o.first_failed_at, o.payload
   FROM outbox o LEFT JOIN repositories repo ON repo.repository_key = o.repository_key";

fn into_rows(rows: Vec<RawRow>) -> anyhow::Result<Vec<OutboxRow>> {
    rows.into_iter().map(RawRow::into_row).collect()
}

/// Rows in the outbox, newest first (`failed_only`: failed ones only).
pub async fn list(db: &Db, failed_only: bool, limit: i64) -> anyhow::Result<Vec<OutboxRow>> {
    let rows: Vec<RawRow> = on_pool!(db, pool => sqlx::query_as(&format!(
        "{SELECT_ROWS} WHERE (NOT $1 OR o.state = 'failed') ORDER BY o.id DESC LIMIT $2"
    ))
    .bind(failed_only)
    .bind(limit)
    .fetch_all(pool)
    .await)
    .context("listing the outbox")?;
    into_rows(rows)
}

/// Puts failed rows back in the queue, due at `now` (all of them, or one by id). Returns how many.
pub async fn retry(db: &Db, id: Option<i64>, now: &Timestamp) -> anyhow::Result<u64> {
    let result = on_pool!(db, pool => sqlx::query(
        "UPDATE outbox SET state = 'retrying', attempts = 0, not_before = $1, last_error = NULL, \
         first_failed_at = NULL \
         WHERE state = 'failed' AND ($2 IS NULL OR id = $2)",
    )
    .bind(now.as_str())
    .bind(id)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("requeueing failed messages")?;
    Ok(result)
}

/// Deletes failed rows for good (all of them, or one by id): messages nobody will retry, which
/// retention keeps until then (`[retention] outbox_days` prunes sent messages only). Returns how
/// many went.
pub async fn dismiss(db: &Db, id: Option<i64>) -> anyhow::Result<u64> {
    let result = on_pool!(db, pool => sqlx::query(
        "DELETE FROM outbox WHERE state = 'failed' AND ($1 IS NULL OR id = $1)",
    )
    .bind(id)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("dismissing failed messages")?;
    Ok(result)
}

/// Rows that were being sent when the process died go back in the queue (at-least-once).
pub async fn recover_in_flight(db: &Db) -> anyhow::Result<u64> {
    let result = on_pool!(db, pool => sqlx::query("UPDATE outbox SET state = 'retrying' WHERE state = 'sending'")
        .execute(pool)
        .await.map(|r| r.rows_affected()))
        .context("recovering messages in flight")?;
    Ok(result)
}

/// The room's next message at `now`: the oldest that is either being retried or past its
/// coalescing window. A message still in its window does not hold up the ones behind it (a
/// digest, another PR's news); one being retried does (order is kept while the chat server has
/// trouble).
pub async fn next_for_room(
    db: &Db,
    room: &str,
    now: &Timestamp,
) -> anyhow::Result<Option<OutboxRow>> {
    let row: Option<RawRow> = on_pool!(db, pool => sqlx::query_as(&format!(
        "{SELECT_ROWS} WHERE o.room = $1 \
         AND (o.state = 'retrying' OR (o.state = 'pending' AND o.not_before <= $2)) \
         ORDER BY o.id LIMIT 1"
    ))
    .bind(room)
    .bind(now.as_str())
    .fetch_optional(pool)
    .await)
    .context("reading the outbox")?;
    row.map(RawRow::into_row).transpose()
}

/// The room's per-PR messages that are due at `now` (being retried, or past their window), oldest
/// first, at most `limit`: the backlog a room back from an outage is sent as one summary.
pub async fn due_news(
    db: &Db,
    room: &str,
    now: &Timestamp,
    limit: i64,
) -> anyhow::Result<Vec<OutboxRow>> {
    let rows: Vec<RawRow> = on_pool!(db, pool => sqlx::query_as(&format!(
        "{SELECT_ROWS} WHERE o.room = $1 AND o.kind = 'pull_request' \
         AND (o.state = 'retrying' OR (o.state = 'pending' AND o.not_before <= $2)) \
         ORDER BY o.id LIMIT $3"
    ))
    .bind(room)
    .bind(now.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await)
    .context("reading the room's backlog")?;
    into_rows(rows)
}

/// How many of the room's messages are due at `now` (being retried, or past their window).
pub async fn due_count(db: &Db, room: &str, now: &Timestamp) -> anyhow::Result<i64> {
    on_pool!(db, pool => sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE room = $1 \
         AND (state = 'retrying' OR (state = 'pending' AND not_before <= $2))",
    )
    .bind(room)
    .bind(now.as_str())
    .fetch_one(pool)
    .await)
    .context("counting the room's backlog")
}

/// When the room's next coalescing window ends, if a message is waiting in one.
pub async fn next_window_end(db: &Db, room: &str) -> anyhow::Result<Option<Timestamp>> {
    let end: Option<String> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT min(not_before) FROM outbox WHERE room = $1 AND state = 'pending'",
    )
    .bind(room)
    .fetch_one(pool)
    .await)
    .context("reading the outbox")?;
    Ok(end.and_then(|t| Timestamp::parse(&t).ok()))
}

/// Claims a row for sending; false if another claimed it first. From here on new events for
/// its PR start a new row instead of joining this one.
pub async fn claim(db: &Db, id: i64) -> anyhow::Result<bool> {
    let result = on_pool!(db, pool => sqlx::query(
        if db.is_postgres() {
            // A row another transaction holds (a writer adding news to it) is not waited for:
            // the claim fails and the dispatcher comes back to it.
            "UPDATE outbox SET state = 'sending' WHERE id = (SELECT id FROM outbox \
             WHERE id = $1 AND state IN ('pending', 'retrying') FOR UPDATE SKIP LOCKED)"
        } else {
            "UPDATE outbox SET state = 'sending' WHERE id = $1 AND state IN ('pending', 'retrying')"
        },
    )
    .bind(id)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("claiming an outbox row")?;
    Ok(result == 1)
}

/// Claims several rows at once (a backlog summary), in one statement; returns the ids claimed
/// (those another claimed first are left out).
pub async fn claim_all(db: &Db, ids: &[i64]) -> anyhow::Result<Vec<i64>> {
    // PostgreSQL: rows another transaction holds are skipped, not waited for (SKIP LOCKED).
    let sql = format!(
        "UPDATE outbox SET state = 'sending' \
         WHERE id IN (SELECT id FROM outbox WHERE id IN ({}) AND state IN ('pending', 'retrying') \
                      ORDER BY id{}) \
         RETURNING id",
        db.json_ints(1),
        if db.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    );
    let claimed: Vec<i64> = on_pool!(db, pool => sqlx::query_scalar(&sql)
    .bind(serde_json::to_string(ids)?)
    .fetch_all(pool)
    .await)
    .context("claiming outbox rows")?;
    Ok(claimed)
}

/// Records claimed rows as delivered at `now` by one message (a backlog summary), whose plain
/// text is `message`; one statement, as `finish` with `Attempt::Sent` would each.
pub async fn sent_all(db: &Db, ids: &[i64], message: &str, now: &Timestamp) -> anyhow::Result<()> {
    let sql = format!(
        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, last_error = NULL, \
         sent_at = $2, message = $3 WHERE id IN ({})",
        db.json_ints(1)
    );
    on_pool!(db, pool => sqlx::query(&sql)
    .bind(serde_json::to_string(ids)?)
    .bind(now.as_str())
    .bind(message)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("recording delivered outbox rows")?;
    Ok(())
}

/// Claimed rows go back in the queue unchanged, in one statement (see `release`).
pub async fn release_all(db: &Db, ids: &[i64]) -> anyhow::Result<()> {
    let sql = format!(
        "UPDATE outbox SET state = 'retrying' WHERE id IN ({}) AND state = 'sending'",
        db.json_ints(1)
    );
    on_pool!(db, pool => sqlx::query(&sql)
    .bind(serde_json::to_string(ids)?)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("releasing outbox rows")?;
    Ok(())
}

/// A claimed row goes back in the queue unchanged (a database error interrupted its delivery).
pub async fn release(db: &Db, id: i64) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query("UPDATE outbox SET state = 'retrying' WHERE id = $1 AND state = 'sending'")
        .bind(id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))
        .context("releasing an outbox row")?;
    Ok(())
}

/// How one attempt at a claimed row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// Delivered; `message` is the plain text that was sent.
    Sent { message: &'a str },
    /// Not delivered; tried again at `next`.
    Retry { next: Timestamp, error: &'a str },
    /// Given up; `message` is what would have been sent, if it was rendered.
    Failed {
        /// What went wrong, for `outbox.last_error`.
        error: &'a str,
        /// The rendered plain text, if the message got that far.
        message: Option<&'a str>,
    },
}

/// Records an attempt at a claimed row at `now`.
pub async fn finish(db: &Db, id: i64, attempt: Attempt<'_>, now: &Timestamp) -> anyhow::Result<()> {
    let (state, not_before, error, message) = match &attempt {
        Attempt::Sent { message } => (OutboxState::Sent, None, None, Some(*message)),
        Attempt::Retry { next, error } => (OutboxState::Retrying, Some(next), Some(*error), None),
        Attempt::Failed { error, message } => (OutboxState::Failed, None, Some(*error), *message),
    };
    on_pool!(db, pool => sqlx::query(
        "UPDATE outbox SET state = $2, attempts = attempts + 1, \
         not_before = coalesce($3, not_before), last_error = $4, \
         sent_at = CASE WHEN $2 = 'sent' THEN $5 END, message = coalesce($6, message), \
         first_failed_at = CASE WHEN $2 = 'sent' THEN first_failed_at \
                                ELSE coalesce(first_failed_at, $5) END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(not_before.map(Timestamp::as_str))
    .bind(error)
    .bind(now.as_str())
    .bind(message)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("updating an outbox row")?;
    Ok(())
}

//! `sweeps`: one row per room per sweep, posted or skipped (and why). The check against the last
//! posted digest and the record are one transaction, so two sweeps at once (the service and
//! `pr-reminder sweep` beside it, or several replicas hit by one scheduler) never both post:
//! SQLite's `BEGIN IMMEDIATE`, or on PostgreSQL an advisory lock per room held to the commit.

use anyhow::Context;
use sqlx::Connection;

use super::{Db, Pool};
use crate::domain::Timestamp;

/// What a sweep decided for one room, given when the room last got a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Queue this digest (the rendered message, as JSON).
    Post { payload: String },
    /// Post nothing, for this reason.
    Skip { reason: String },
}

/// The `sweeps` row of one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRecord<'a> {
    /// The room's name.
    pub room: &'a str,
    /// When the sweep ran.
    pub at: &'a Timestamp,
    /// `http`, `cli` or `schedule`.
    pub trigger: &'a str,
    /// Whether `force` overrode quiet hours and `min_interval`.
    pub forced: bool,
    /// PRs waiting for review.
    pub waiting_review: usize,
    /// PRs waiting on their author.
    pub waiting_on_author: usize,
}

/// In one transaction: reads when the room last got a digest, lets `decide` choose, queues the
/// digest (due at `due`, replacing one still waiting) and records the sweep. Returns the
/// decision.
pub async fn record(
    db: &Db,
    record: &SweepRecord<'_>,
    due: &Timestamp,
    decide: impl FnOnce(Option<Timestamp>) -> anyhow::Result<Decision>,
) -> anyhow::Result<Decision> {
    // The look-up and the record, written once for both databases' transactions.
    macro_rules! decide_and_record {
        ($tx:ident) => {{
            let last: Option<String> = sqlx::query_scalar(
                "SELECT max(at) FROM sweeps WHERE room = $1 AND outcome = 'posted'",
            )
            .bind(record.room)
            .fetch_one(&mut *$tx)
            .await
            .context("reading the last digest")?;
            let decision = decide(last.and_then(|t| Timestamp::parse(&t).ok()))?;
            let (outcome, reason, outbox_id) = match &decision {
                Decision::Post { payload } => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO outbox (room, kind, events, created_at, not_before, payload)
                 VALUES ($1, 'digest', 'digest', $2, $3, $4)
                 ON CONFLICT (room) WHERE state = 'pending' AND kind = 'digest'
                 DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at
                 RETURNING id",
                    )
                    .bind(record.room)
                    .bind(record.at.as_str())
                    .bind(due.as_str())
                    .bind(payload)
                    .fetch_one(&mut *$tx)
                    .await
                    .context("queueing the digest")?;
                    ("posted", None, Some(id))
                }
                Decision::Skip { reason } => ("skipped", Some(reason.as_str()), None),
            };
            sqlx::query(
                "INSERT INTO sweeps (room, at, trigger, forced, outcome, reason, waiting_review,
                             waiting_on_author, outbox_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(record.room)
            .bind(record.at.as_str())
            .bind(record.trigger)
            .bind(record.forced)
            .bind(outcome)
            .bind(reason)
            .bind(i64::try_from(record.waiting_review).unwrap_or(i64::MAX))
            .bind(i64::try_from(record.waiting_on_author).unwrap_or(i64::MAX))
            .bind(outbox_id)
            .execute(&mut *$tx)
            .await
            .context("recording the sweep")?;
            $tx.commit().await.context("commit")?;
            decision
        }};
    }
    let decision = match db.pool() {
        Pool::Sqlite(pool) => {
            let mut conn = pool
                .acquire()
                .await
                .context("a database connection for the sweep")?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.context("begin")?;
            decide_and_record!(tx)
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.context("begin")?;
            // Replicas hit by the same scheduler run: one at a time per room, and the next sees
            // the digest the first queued.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("sweep:{}", record.room))
                .execute(&mut *tx)
                .await
                .context("waiting for another replica's sweep of the room")?;
            decide_and_record!(tx)
        }
    };
    Ok(decision)
}

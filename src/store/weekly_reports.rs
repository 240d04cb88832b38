//! `weekly_reports`: which room got its weekly team report for which week (issue 28). The
//! report is queued in the outbox (kind `report`) in the same transaction as its row here, whose
//! key (room, week) makes a second run of the same week queue nothing: a restart, a second
//! replica, or `pr-reminder` beside the service.

use anyhow::Context;
use sqlx::Connection;

use super::{on_pool, Db, Pool};
use crate::domain::Timestamp;

/// Whether `room` has its report for the week starting `week_starts_on` (`YYYY-MM-DD`) queued
/// already (a cheap look before the figures are computed; `queue` decides).
pub async fn queued(db: &Db, room: &str, week_starts_on: &str) -> anyhow::Result<bool> {
    let found: Option<i64> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT outbox_id FROM weekly_reports WHERE room = $1 AND week_starts_on = $2",
    )
    .bind(room)
    .bind(week_starts_on)
    .fetch_optional(pool)
    .await)
    .context("reading the weekly reports")?;
    Ok(found.is_some())
}

/// In one transaction: queues `payload` (a rendered `Doc`, as JSON) for `room`, due at `at`,
/// and records it as the room's report of the week starting `week_starts_on`. Returns the
/// outbox row's id, or `None` (and queues nothing) when that week's report was queued already.
pub async fn queue(
    db: &Db,
    room: &str,
    week_starts_on: &str,
    at: &Timestamp,
    payload: &str,
) -> anyhow::Result<Option<i64>> {
    macro_rules! queue_in {
        ($tx:ident) => {{
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (room, kind, events, created_at, not_before, payload)
                 VALUES ($1, 'report', 'report', $2, $2, $3) RETURNING id",
            )
            .bind(room)
            .bind(at.as_str())
            .bind(payload)
            .fetch_one(&mut *$tx)
            .await
            .context("queueing the weekly report")?;
            let recorded = sqlx::query(
                "INSERT INTO weekly_reports (room, week_starts_on, queued_at, outbox_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (room, week_starts_on) DO NOTHING",
            )
            .bind(room)
            .bind(week_starts_on)
            .bind(at.as_str())
            .bind(id)
            .execute(&mut *$tx)
            .await
            .context("recording the weekly report")?
            .rows_affected();
            if recorded == 0 {
                // Queued by another run meanwhile: this one's message goes with the rollback.
                $tx.rollback().await.context("rollback")?;
                None
            } else {
                $tx.commit().await.context("commit")?;
                Some(id)
            }
        }};
    }
    Ok(match db.pool() {
        Pool::Sqlite(pool) => {
            let mut conn = pool
                .acquire()
                .await
                .context("a database connection for the weekly report")?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.context("begin")?;
            queue_in!(tx)
        }
        Pool::Postgres(pool) => {
            // A second replica's insert of the same key waits for this commit, then does nothing.
            let mut tx = pool.begin().await.context("begin")?;
            queue_in!(tx)
        }
    })
}

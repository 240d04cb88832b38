//! Room leases: with several replicas on one PostgreSQL database, one replica at a time sends a
//! room's messages, so that the room's order and rate hold across replicas. A lease names its
//! holder and the database session it took it on (each replica keeps one connection for its
//! leases), and runs until `expires_at` on the database's clock (never a replica's, which may
//! disagree). Its holder renews it while it runs. Another replica takes it over as soon as the
//! holder's session is gone (PostgreSQL closes the session of a killed process at once), or once
//! it has expired (a holder alive but stuck).
//!
//! SQLite has one process by construction: every room is always held, and no table is kept.

use std::time::Duration;

use anyhow::Context;

use super::{on_pool, Db, Pool};
use crate::domain::Timestamp;

/// Takes the room's lease for `holder` until `ttl` from now (database clock), or renews it if
/// `holder` has it. Returns whether `holder` holds it now. SQLite: always `true`.
pub async fn hold(db: &Db, room: &str, holder: &str, ttl: Duration) -> anyhow::Result<bool> {
    let (Pool::Postgres(_), Some(pool)) = (db.pool(), db.lease_pool()) else {
        return Ok(true);
    };
    let held: Option<String> = sqlx::query_scalar(
        "INSERT INTO room_leases AS l (room, holder, expires_at, backend_pid)
         VALUES ($1, $2, now() + make_interval(secs => $3), pg_backend_pid())
         ON CONFLICT (room) DO UPDATE SET holder = excluded.holder,
             expires_at = excluded.expires_at, backend_pid = excluded.backend_pid
         WHERE l.holder = excluded.holder OR l.expires_at < now()
            OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid)
         RETURNING holder",
    )
    .bind(room)
    .bind(holder)
    .bind(ttl.as_secs_f64())
    .fetch_optional(pool)
    .await
    .context("taking the room's lease")?;
    Ok(held.is_some())
}

/// Gives up every lease `holder` has (a replica stopping): another replica takes its rooms at
/// once instead of when the leases expire.
pub async fn release(db: &Db, holder: &str) -> anyhow::Result<()> {
    if !db.is_postgres() {
        return Ok(());
    }
    on_pool!(db, pool => sqlx::query("DELETE FROM room_leases WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
    .context("releasing the room leases")?;
    Ok(())
}

/// A room's messages that a previous holder claimed but never finished (it died mid-send) go
/// back in the queue, for the new holder of the room's lease to send. Returns how many.
pub async fn recover_room(db: &Db, room: &str) -> anyhow::Result<u64> {
    on_pool!(db, pool => sqlx::query(
        "UPDATE outbox SET state = 'retrying' WHERE room = $1 AND state = 'sending'",
    )
    .bind(room)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .context("recovering the room's messages in flight")
}

/// When the room's last message was sent (by whichever replica), for the rate of a room taken
/// over.
pub async fn last_sent(db: &Db, room: &str) -> anyhow::Result<Option<Timestamp>> {
    let at: Option<String> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT max(sent_at) FROM outbox WHERE room = $1 AND state = 'sent'",
    )
    .bind(room)
    .fetch_one(pool)
    .await)
    .context("reading the room's last message")?;
    Ok(at.and_then(|t| Timestamp::parse(&t).ok()))
}

/// A room's lease as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Lease {
    /// The room's name.
    pub room: String,
    /// The replica sending its messages: host, process id, start time (milliseconds).
    pub holder: String,
    /// Until when, unless renewed (`Timestamp` text, the database's clock).
    pub expires_at: String,
    /// Whether the holder's database session is still there (a replica killed a moment ago
    /// shows `false` until another takes the room).
    pub alive: bool,
}

/// Every room's lease, by room. SQLite: `None` (one process sends every room).
pub async fn list(db: &Db) -> anyhow::Result<Option<Vec<Lease>>> {
    let Pool::Postgres(pool) = db.pool() else {
        return Ok(None);
    };
    let leases = sqlx::query_as(
        "SELECT l.room, l.holder,
                to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                    AS expires_at,
                EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid) AS alive
           FROM room_leases l ORDER BY l.room",
    )
    .fetch_all(pool)
    .await
    .context("reading the room leases")?;
    Ok(Some(leases))
}

//! The durable outbox: rows written by the webhook writer, sent by one task per room, in order,
//! within the room's rate, with backoff on failure. A row leaves only when the chat server said
//! yes; what finally fails stays visible (`state = 'failed'`, `last_error`) and can be retried.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use governor::{Quota, RateLimiter};
use sqlx::SqlitePool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::message::{render, PrView};
use super::sink::{self, SendError};
use crate::config::{NotifySettings, Room, Sink};
use crate::domain::{NotifyEvent, Timestamp};
use crate::store::PR_BUILD_STATE;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub room: String,
    pub repository: String,
    pub number: i64,
    pub events: String,
    pub state: String,
    pub created_at: String,
    pub not_before: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
    /// A pre-rendered message (digests); `None` for per-PR notifications.
    pub payload: Option<String>,
}

const ROW_COLUMNS: &str = "id, room, repository, number, events, state, created_at, not_before, \
                           attempts, last_error, sent_at, payload";

pub fn parse_events(events: &str) -> BTreeSet<NotifyEvent> {
    events.split(',').filter_map(NotifyEvent::parse).collect()
}

/// Rows in the outbox, newest first (`--failed`: failed ones only).
pub async fn list(
    pool: &SqlitePool,
    failed_only: bool,
    limit: i64,
) -> anyhow::Result<Vec<OutboxRow>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM outbox {} ORDER BY id DESC LIMIT ?",
        if failed_only {
            "WHERE state = 'failed'"
        } else {
            ""
        }
    );
    sqlx::query_as(&sql)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("listing the outbox")
}

/// Puts failed rows back in the queue (all of them, or one by id). Returns how many.
pub async fn retry(pool: &SqlitePool, id: Option<i64>) -> anyhow::Result<u64> {
    let now = Timestamp::now();
    let result = sqlx::query(
        "UPDATE outbox SET state = 'retrying', attempts = 0, not_before = ?1, last_error = NULL \
         WHERE state = 'failed' AND (?2 IS NULL OR id = ?2)",
    )
    .bind(now.as_str())
    .bind(id)
    .execute(pool)
    .await
    .context("requeueing failed messages")?;
    Ok(result.rows_affected())
}

/// Rows that were being sent when the process died go back in the queue (at-least-once).
pub async fn recover_in_flight(pool: &SqlitePool) -> anyhow::Result<u64> {
    let result = sqlx::query("UPDATE outbox SET state = 'retrying' WHERE state = 'sending'")
        .execute(pool)
        .await
        .context("recovering messages in flight")?;
    Ok(result.rows_affected())
}

/// The room's next message: the oldest that is either being retried or past its coalescing
/// window. A message still in its window does not hold up the ones behind it (a digest, another
/// PR's news); one being retried does (order is kept while the chat server has trouble).
async fn next_for_room(
    pool: &SqlitePool,
    room: &str,
    now: &Timestamp,
) -> anyhow::Result<Option<OutboxRow>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE room = ?1 \
         AND (state = 'retrying' OR (state = 'pending' AND not_before <= ?2)) \
         ORDER BY id LIMIT 1"
    );
    sqlx::query_as(&sql)
        .bind(room)
        .bind(now.as_str())
        .fetch_optional(pool)
        .await
        .context("reading the outbox")
}

/// When the room's next coalescing window ends, if a message is waiting in one.
async fn next_window_end(pool: &SqlitePool, room: &str) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT min(not_before) FROM outbox WHERE room = ?1 AND state = 'pending'")
        .bind(room)
        .fetch_one(pool)
        .await
        .context("reading the outbox")
}

/// From here on new events for this PR start a new row instead of joining this one.
async fn claim(pool: &SqlitePool, id: i64) -> anyhow::Result<bool> {
    let result = sqlx::query(
        "UPDATE outbox SET state = 'sending' WHERE id = ?1 AND state IN ('pending', 'retrying')",
    )
    .bind(id)
    .execute(pool)
    .await
    .context("claiming an outbox row")?;
    Ok(result.rows_affected() == 1)
}

/// A claimed row goes back in the queue unchanged (a database error interrupted its delivery).
async fn release(pool: &SqlitePool, id: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET state = 'retrying' WHERE id = ?1 AND state = 'sending'")
        .bind(id)
        .execute(pool)
        .await
        .context("releasing an outbox row")?;
    Ok(())
}

async fn finish(
    pool: &SqlitePool,
    id: i64,
    state: &str,
    not_before: Option<&Timestamp>,
    error: Option<&str>,
    message: Option<&str>,
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    sqlx::query(
        "UPDATE outbox SET state = ?2, attempts = attempts + 1, \
         not_before = coalesce(?3, not_before), last_error = ?4, \
         sent_at = CASE WHEN ?2 = 'sent' THEN ?5 END, message = coalesce(?6, message) \
         WHERE id = ?1",
    )
    .bind(id)
    .bind(state)
    .bind(not_before.map(Timestamp::as_str))
    .bind(error)
    .bind(now.as_str())
    .bind(message)
    .execute(pool)
    .await
    .context("updating an outbox row")?;
    Ok(())
}

fn names(list: Option<String>) -> Vec<String> {
    list.map(|l| l.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The PR as it is now, for rendering.
pub async fn load_view(
    pool: &SqlitePool,
    repository: &str,
    number: i64,
) -> anyhow::Result<Option<PrView>> {
    type Row = (
        String,
        i64,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
    );
    // Names are joined with U+001F, which no display name contains.
    let row: Option<Row> = sqlx::query_as(
        &format!(
        "SELECT p.repository, p.number, p.title, p.url,
                coalesce(a.display_name, a.nickname, a.username, p.author),
                (SELECT group_concat(coalesce(u.display_name, u.nickname, u.username, r.user_key), char(31))
                   FROM reviews r LEFT JOIN users u ON u.user_key = r.user_key
                  WHERE r.repository = p.repository AND r.number = p.number
                    AND r.user_key <> p.author AND r.state = 'approved'),
                (SELECT group_concat(coalesce(u.display_name, u.nickname, u.username, r.user_key), char(31))
                   FROM reviews r LEFT JOIN users u ON u.user_key = r.user_key
                  WHERE r.repository = p.repository AND r.number = p.number
                    AND r.user_key <> p.author AND r.state = 'changes_requested'),
                coalesce(repo.required_approvals,
                         (SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'required_approvals')),
                {PR_BUILD_STATE},
                (SELECT json_group_array(json_array(coalesce(cs.name, cs.key), cs.url))
                   FROM commit_statuses cs
                  WHERE cs.state = 'FAILED' AND cs.commit_hash >= lower(p.source_commit)
                    AND cs.commit_hash < lower(p.source_commit) || 'g')
           FROM pull_requests p
           JOIN repositories repo ON repo.full_name = p.repository
           LEFT JOIN users a ON a.user_key = p.author
          WHERE p.repository = ?1 AND p.number = ?2"
    ),
    )
    .bind(repository)
    .bind(number)
    .fetch_optional(pool)
    .await
    .context("reading the pull request to announce")?;
    let Some((repository, number, title, url, author, approved, changes, required, build, failed)) =
        row
    else {
        return Ok(None);
    };
    let failed_builds: Vec<(String, Option<String>)> = failed
        .and_then(|f| serde_json::from_str(&f).ok())
        .unwrap_or_default();
    Ok(Some(PrView {
        repository,
        number,
        title,
        url,
        author,
        approved_by: names(approved),
        required_approvals: u32::try_from(required).unwrap_or(2),
        changes_requested_by: names(changes),
        build_state: build,
        failed_builds,
    }))
}

type RoomLimiter = governor::DefaultDirectRateLimiter;

/// Shortest time between two looks at an idle room's queue.
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// Sends the outbox: one task per room.
pub struct Dispatcher {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Dispatcher {
    pub fn spawn(
        pool: SqlitePool,
        settings: &NotifySettings,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Dispatcher> {
        let client = sink::client(settings.timeout)?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for room in &settings.rooms {
            let worker = RoomWorker {
                pool: pool.clone(),
                client: client.clone(),
                room: room.clone(),
                settings: settings.clone(),
                wake: wake.clone(),
                stopped: stopped.clone(),
            };
            let span = tracing::info_span!("room", room = %room.name);
            tasks.spawn(worker.run().instrument(span));
        }
        Ok(Dispatcher { tasks, stop })
    }

    /// Lets each room finish the message in hand, then stops.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

struct RoomWorker {
    pool: SqlitePool,
    client: reqwest::Client,
    room: Room,
    settings: NotifySettings,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

impl RoomWorker {
    async fn run(mut self) {
        let period = Duration::from_secs_f64(60.0 / f64::from(self.settings.room_rate_per_minute));
        // One message per period, no burst: never more than the room's rate in any minute.
        let limiter: Option<RoomLimiter> = Quota::with_period(period)
            .map(|q| q.allow_burst(NonZeroU32::MIN))
            .map(RateLimiter::direct);
        loop {
            if *self.stopped.borrow() {
                break;
            }
            // Registered before reading the queue: the writer's `notify_waiters` reaches only
            // futures that exist, so a commit between the read and the wait would otherwise
            // go unnoticed until the 5 s poll.
            let wake = self.wake.clone();
            let woken = wake.notified();
            let row = match next_for_room(&self.pool, &self.room.name, &Timestamp::now()).await {
                Ok(row) => row,
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "outbox unreadable; retrying in 1 s");
                    self.pause(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(row) = row else {
                // Nothing due: sleep until a window ends, the writer adds something, or a while
                // passes (`outbox retry` from another process cannot wake us).
                let window = next_window_end(&self.pool, &self.room.name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|t| Timestamp::parse(&t).ok())
                    .map(|t| (t.to_datetime() - Utc::now()).to_std().unwrap_or_default());
                let nap = window
                    .unwrap_or(Duration::from_secs(5))
                    .min(Duration::from_secs(5));
                tokio::select! {
                    _ = woken => {
                        // Under a webhook burst the writer wakes us after every batch, mostly
                        // with rows still in their window: look again at most ten times a second.
                        self.pause(IDLE_RECHECK.min(nap)).await;
                    }
                    _ = tokio::time::sleep(nap) => {}
                    _ = self.stopped.changed() => {}
                }
                continue;
            };
            let due = Timestamp::parse(&row.not_before)
                .map(|t| t.to_datetime())
                .unwrap_or_else(|_| Utc::now());
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            if !wait.is_zero() {
                // Re-read after at most a second: `outbox retry` may have changed the queue.
                self.pause(wait.min(Duration::from_secs(1))).await;
                continue;
            }
            // The console has no flood limit.
            let limiter = limiter
                .as_ref()
                .filter(|_| !matches!(self.room.sink, Sink::Console));
            let id = row.id;
            if let Err(err) = self.deliver(row, limiter).await {
                tracing::error!(error = %format!("{err:#}"), id, "outbox update failed; will try again");
                // Do not leave a claimed row behind until the next restart.
                if let Err(err) = release(&self.pool, id).await {
                    tracing::error!(error = %format!("{err:#}"), id, "could not release the outbox row");
                }
                self.pause(Duration::from_secs(1)).await;
            }
        }
    }

    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.stopped.changed() => {}
        }
    }

    async fn deliver(&self, row: OutboxRow, limiter: Option<&RoomLimiter>) -> anyhow::Result<()> {
        if !claim(&self.pool, row.id).await? {
            return Ok(());
        }
        let message = match &row.payload {
            Some(payload) => serde_json::from_str(payload).context("a stored digest")?,
            None => {
                let events = parse_events(&row.events);
                let Some(view) = load_view(&self.pool, &row.repository, row.number).await? else {
                    finish(
                        &self.pool,
                        row.id,
                        "failed",
                        None,
                        Some("pull request not found"),
                        None,
                    )
                    .await?;
                    return Ok(());
                };
                render(&events, &view)
            }
        };
        let attempt = row.attempts + 1;
        // The permit is taken right before the request, so that the time spent claiming and
        // rendering cannot bunch two requests closer than the room's rate allows.
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
        match sink::send(&self.client, &self.room.sink, &self.room.name, &message).await {
            Ok(()) => {
                tracing::info!(id = row.id, repository = %row.repository, pr = row.number, attempt, "message delivered");
                finish(&self.pool, row.id, "sent", None, None, Some(&message.text)).await
            }
            Err(SendError::Retry { after, reason })
                if attempt < i64::from(self.settings.max_attempts) =>
            {
                let delay = backoff(&self.settings, attempt).max(after.unwrap_or_default());
                let next = Timestamp::from_datetime(
                    Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                );
                tracing::warn!(id = row.id, %reason, attempt, retry_in_ms = delay.as_millis() as u64, "message not delivered; will retry");
                finish(
                    &self.pool,
                    row.id,
                    "retrying",
                    Some(&next),
                    Some(&reason),
                    None,
                )
                .await
            }
            Err(err) => {
                // Refused (wrong token, unknown room), or out of attempts.
                let reason = err.reason().to_owned();
                if matches!(err, SendError::Permanent(_)) {
                    tracing::error!(id = row.id, repository = %row.repository, pr = row.number, %reason,
                        "the chat server refused the message; marked failed (check the room's URL and token)");
                } else {
                    tracing::error!(id = row.id, %reason, attempt, "giving up on a message; marked failed");
                }
                finish(
                    &self.pool,
                    row.id,
                    "failed",
                    None,
                    Some(&reason),
                    Some(&message.text),
                )
                .await
            }
        }
    }
}

/// Exponential backoff with jitter for the `attempt`-th failure (1-based).
fn backoff(settings: &NotifySettings, attempt: i64) -> Duration {
    let n = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
    ExponentialBuilder::default()
        .with_min_delay(settings.retry_min)
        .with_max_delay(settings.retry_max)
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(n + 1)
        .build()
        .nth(n)
        .unwrap_or(settings.retry_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let settings = NotifySettings {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..NotifySettings::default()
        };
        let first = backoff(&settings, 1);
        assert!(
            first >= Duration::from_millis(100) && first <= Duration::from_millis(200),
            "{first:?}"
        );
        let third = backoff(&settings, 3);
        assert!(third >= Duration::from_millis(400), "{third:?}");
        assert!(backoff(&settings, 30) <= Duration::from_secs(4));
    }

    #[test]
    fn events_round_trip() {
        let set = parse_events("approvals,opened,approvals,bogus");
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec![NotifyEvent::Opened, NotifyEvent::Approvals]
        );
    }
}

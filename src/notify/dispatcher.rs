//! Sending the durable outbox: one task per room, in order, within the room's rate, with backoff
//! on failure. A row leaves only when the chat server said yes; what finally fails stays visible
//! (`state = 'failed'`, `last_error`) and can be retried. The rows are read and written through
//! `store::outbox`; a per-PR message is rendered from the PR's state when it is sent.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::doc::{self, Doc, Stored};
use super::message::{news, render};
use super::sink::{self, SendError};
use super::slack_api;
use crate::clock::{Clock, RateClock};
use crate::config::{NotifySettings, Room, Sink, UserMapping};
use crate::domain::{NotifyEvent, Timestamp};
use crate::metrics::Metrics;
use crate::store::outbox::{self, Attempt, OutboxRow, Subject};
use crate::store::{leases, review_queue, Db};

mod living;

/// The events of a per-PR outbox row (`opened,approvals`); unknown words are skipped.
pub fn parse_events(events: &str) -> BTreeSet<NotifyEvent> {
    events.split(',').filter_map(NotifyEvent::parse).collect()
}

/// A room's rate limit, on the service's clock.
type RoomLimiter = RateLimiter<NotKeyed, InMemoryState, RateClock, NoOpMiddleware<Duration>>;

/// Shortest time between two looks at an idle room's queue (real time: it bounds the work a
/// webhook burst causes here, it decides nothing about when a message is due).
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// Longest real time between two looks at a room's queue: `outbox retry` from another process
/// cannot wake us.
const POLL: Duration = Duration::from_secs(5);

/// Longest retry delay while other messages wait behind a failing one (unless the chat server
/// asks for longer): a room back from an outage is noticed within this.
const PROBE: Duration = Duration::from_secs(5);

/// PostgreSQL, several replicas: how long a room's lease lasts without renewal (the database's
/// clock), beyond one chat request (`notify.timeout_seconds`), the longest time between two
/// renewals. A killed holder's lease is taken over at once (its database session is gone); this
/// is for a holder alive but stuck.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// How often the holder renews a room's lease (real time), well within its length (`RoomWorker::lease_ttl`).
const LEASE_RENEW: Duration = Duration::from_secs(3);

/// How often a replica without a room's lease looks whether it is free.
const LEASE_STANDBY: Duration = Duration::from_secs(2);

/// A room with more than this many PRs' news due at once gets one summary.
pub const BACKLOG_SUMMARY_AFTER: usize = 10;

/// Most rows one summary pass takes (the rest follow in the next).
const BACKLOG_MOST: i64 = 5_000;

/// Sends the outbox: one task per room.
pub struct Dispatcher {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    db: Db,
    holder: Arc<str>,
}

/// This process's name in room leases: host, process id and start time (milliseconds since the
/// epoch), so that a restarted replica is a new holder.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_owned());
    format!(
        "{host}/{}/{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    )
}

impl Dispatcher {
    /// Starts one task per configured room, each sending its queue in order at no more than
    /// `room_rate_per_minute`; `wake` prompts them after new rows are committed; every wait and
    /// due time is read on `clock`; every attempt is counted in `metrics`; every Slack Web API
    /// call keeps within `slack` (the process's one, shared with other Web API callers). Fails
    /// only if the HTTP client cannot be built.
    pub fn spawn(
        db: Db,
        settings: &NotifySettings,
        wake: Arc<Notify>,
        clock: Clock,
        metrics: Metrics,
        users: &[UserMapping],
        slack: &slack_api::Limits,
    ) -> anyhow::Result<Dispatcher> {
        let users: Arc<[UserMapping]> = users.into();
        let client = sink::client(settings.timeout)?;
        let holder: Arc<str> = holder_name().into();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for room in &settings.rooms {
            let worker = RoomWorker {
                db: db.clone(),
                client: client.clone(),
                room: room.clone(),
                settings: settings.clone(),
                wake: wake.clone(),
                stopped: stopped.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
                holder: holder.clone(),
                users: users.clone(),
                lease: std::sync::Mutex::new(None),
                period: None,
                slack: slack.clone(),
            };
            let span = tracing::info_span!("room", room = %room.name);
            tasks.spawn(worker.run().instrument(span));
        }
        Ok(Dispatcher {
            tasks,
            stop,
            db,
            holder,
        })
    }

    /// Lets each room finish the message in hand, then stops, handing this replica's rooms to
    /// the others at once (PostgreSQL).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Err(err) = crate::store::leases::release(&self.db, &self.holder).await {
            tracing::warn!(error = %format!("{err:#}"), "room leases not released; they expire on their own");
        }
    }
}

struct RoomWorker {
    db: Db,
    client: reqwest::Client,
    room: Room,
    settings: NotifySettings,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
    clock: Clock,
    metrics: Metrics,
    /// This replica's name in room leases.
    holder: Arc<str>,
    /// `[[users]]`: whom a message names as a chat mention.
    users: Arc<[UserMapping]>,
    /// When this replica last took or renewed the room's lease (real time); `None`: not held.
    lease: std::sync::Mutex<Option<std::time::Instant>>,
    /// The room's spacing between two messages, if it has a rate.
    period: Option<Duration>,
    /// The Slack Web API's per-channel limits, shared by every room and caller.
    slack: slack_api::Limits,
}

impl RoomWorker {
    /// When this replica last took or renewed the room's lease (`None`: not held).
    fn lease_at(&self) -> Option<std::time::Instant> {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_lease(&self, at: Option<std::time::Instant>) {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Whether the lease was taken or renewed within `LEASE_RENEW`.
    fn lease_fresh(&self) -> bool {
        self.lease_at().is_some_and(|at| at.elapsed() < LEASE_RENEW)
    }

    /// Right before a chat request: PostgreSQL renews the room's lease when its last renewal is
    /// `LEASE_RENEW` old, so that a long run of requests (a summary of many parts, a slow chat
    /// server) never outlasts it; `false` when it was lost (another replica sends the room's
    /// messages now: send nothing). SQLite: always `true`.
    async fn keep_lease(&self) -> bool {
        if !self.db.is_postgres() || self.lease_fresh() {
            return true;
        }
        match leases::hold(&self.db, &self.room.name, &self.holder, self.lease_ttl()).await {
            Ok(true) => {
                self.set_lease(Some(std::time::Instant::now()));
                true
            }
            held => {
                if let Err(err) = held {
                    tracing::error!(error = %format!("{err:#}"), "room lease unreadable");
                }
                tracing::info!("another replica sends the room's messages now");
                self.set_lease(None);
                false
            }
        }
    }

    /// Whether a message may go out now: the room's rate allows it (waiting for that) and this
    /// replica still holds the room (`keep_lease`).
    async fn ready_to_send(&self, limiter: Option<&RoomLimiter>) -> bool {
        if let Some(limiter) = limiter {
            if !self.permit(limiter).await {
                return false;
            }
        }
        self.keep_lease().await
    }

    /// How long a renewal of the room's lease lasts: one chat request and `LEASE_MARGIN`.
    fn lease_ttl(&self) -> Duration {
        self.settings.timeout + LEASE_MARGIN
    }

    /// Whether this replica may send the room's messages now. SQLite: always. PostgreSQL: while
    /// it holds the room's lease, renewed every `LEASE_RENEW`. A lease just taken first sends
    /// again what a previous holder left half-sent, and waits out the room's rate after the last
    /// message any replica sent. Without the lease, waits `LEASE_STANDBY` and says no.
    async fn hold_lease(&mut self) -> bool {
        if !self.db.is_postgres() {
            return true;
        }
        if self.lease_fresh() {
            return true;
        }
        let taken = self.lease_at().is_none();
        match leases::hold(&self.db, &self.room.name, &self.holder, self.lease_ttl()).await {
            Ok(true) => {
                self.set_lease(Some(std::time::Instant::now()));
                if taken {
                    tracing::info!("this replica sends the room's messages now");
                    match leases::recover_room(&self.db, &self.room.name).await {
                        Ok(0) => {}
                        Ok(recovered) => tracing::warn!(
                            recovered,
                            "messages another replica had in flight will be sent again"
                        ),
                        Err(err) => {
                            tracing::error!(error = %format!("{err:#}"), "outbox unreadable; retrying in 1 s");
                            self.set_lease(None);
                            self.pause(Duration::from_secs(1)).await;
                            return false;
                        }
                    }
                    if let (Some(period), Ok(Some(last))) = (
                        self.period,
                        leases::last_sent(&self.db, &self.room.name).await,
                    ) {
                        let next = last.to_datetime()
                            + chrono::Duration::from_std(period).unwrap_or_default();
                        while next > self.clock.now() && !*self.stopped.borrow() {
                            self.until(Some(next), POLL).await;
                        }
                    }
                }
                true
            }
            Ok(false) => {
                if !taken {
                    tracing::info!("another replica sends the room's messages now");
                }
                self.set_lease(None);
                self.pause(LEASE_STANDBY).await;
                false
            }
            Err(err) => {
                // Not knowing is not holding: another replica may have it by now.
                tracing::error!(error = %format!("{err:#}"), "room lease unreadable; retrying in 1 s");
                self.set_lease(None);
                self.pause(Duration::from_secs(1)).await;
                false
            }
        }
    }

    async fn run(mut self) {
        // The configured rate for every room, else this kind of room's own (none: the console).
        let rate = self
            .settings
            .room_rate_per_minute
            .or_else(|| self.room.sink.default_rate_per_minute());
        // One message per period, no burst: never more than the room's rate in any minute.
        let limiter: Option<RoomLimiter> = rate
            .map(room_period)
            .and_then(Quota::with_period)
            .map(|q| q.allow_burst(NonZeroU32::MIN))
            .map(|q| RateLimiter::direct_with_clock(q, RateClock(self.clock.clone())));
        self.period = rate.map(room_period);
        loop {
            if *self.stopped.borrow() {
                break;
            }
            if !self.hold_lease().await {
                continue;
            }
            // Registered before reading the queue: the writer's `notify_waiters` reaches only
            // futures that exist, so a commit between the read and the wait would otherwise
            // go unnoticed until the 5 s poll.
            let wake = self.wake.clone();
            let woken = wake.notified();
            let row = match outbox::next_for_room(
                &self.db,
                &self.room.name,
                &self.clock.timestamp(),
            )
            .await
            {
                Ok(row) => row,
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "outbox unreadable; retrying in 1 s");
                    self.pause(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(row) = row else {
                // Nothing due: sleep until a window ends (by the clock), the writer adds
                // something, or the poll interval passes.
                let window = outbox::next_window_end(&self.db, &self.room.name)
                    .await
                    .ok()
                    .flatten();
                tokio::select! {
                    _ = woken => {
                        // Under a webhook burst the writer wakes us after every batch, mostly
                        // with rows still in their window: look again at most ten times a second.
                        self.pause(IDLE_RECHECK).await;
                    }
                    _ = self.until(window.map(|t| t.to_datetime()), POLL) => {}
                }
                continue;
            };
            let due = Timestamp::parse(&row.not_before)
                .ok()
                .map(|t| t.to_datetime());
            if due.is_some_and(|due| due > self.clock.now()) {
                // A retry not yet due holds the room's queue; re-read after at most a second,
                // as `outbox retry` may have changed it.
                self.until(due, Duration::from_secs(1)).await;
                continue;
            }
            // The console has no flood limit.
            let limiter = limiter
                .as_ref()
                .filter(|_| !matches!(self.room.sink, Sink::Console));
            let id = row.id;
            // A Web-API room edits each PR's own message: a backlog is so many edits, never a
            // flood of posts, and a summary would be a message outside them.
            let living = matches!(self.room.sink, Sink::SlackApi { .. });
            if matches!(row.subject, Subject::PullRequest { .. }) && !living {
                match self.backlog().await {
                    Ok(Some(backlog)) => {
                        let ids: Vec<i64> = backlog.iter().map(|r| r.id).collect();
                        if let Err(err) = self.deliver_summary(backlog, limiter).await {
                            tracing::error!(error = %format!("{err:#}"), "backlog summary failed; will try again");
                            let _ = outbox::release_all(&self.db, &ids).await;
                            self.pause(Duration::from_secs(1)).await;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(error = %format!("{err:#}"), "outbox unreadable; retrying in 1 s");
                        self.pause(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            if let Err(err) = self.deliver(row, limiter).await {
                tracing::error!(error = %format!("{err:#}"), id, "outbox update failed; will try again");
                // Do not leave a claimed row behind until the next restart.
                if let Err(err) = outbox::release(&self.db, id).await {
                    tracing::error!(error = %format!("{err:#}"), id, "could not release the outbox row");
                }
                self.pause(Duration::from_secs(1)).await;
            }
        }
    }

    /// Waits `duration` of real time (a back-off from our own trouble), or until stopped.
    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.stopped.changed() => {}
        }
    }

    /// Waits until the clock reads `at` (if given), but at most `poll` of real time, or until
    /// stopped.
    async fn until(&mut self, at: Option<chrono::DateTime<chrono::Utc>>, poll: Duration) {
        let clock = self.clock.clone();
        let due = async move {
            match at {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = due => {}
            _ = tokio::time::sleep(poll) => {}
            _ = self.stopped.changed() => {}
        }
    }

    async fn deliver(&self, row: OutboxRow, limiter: Option<&RoomLimiter>) -> anyhow::Result<()> {
        if !outbox::claim(&self.db, row.id).await? {
            // PostgreSQL: a writer holds the row for a moment (adding news to it); look again
            // shortly rather than at once.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Ok(());
        }
        let (message, repository, number, view) = match &row.subject {
            Subject::Digest => {
                // A chat document, or what a release before it stored (each chat's rendering).
                let payload = row.payload.as_deref().unwrap_or_default();
                let stored: Stored = serde_json::from_str(payload).context("a stored digest")?;
                (Doc::from(stored), "(digest)", 0, None)
            }
            Subject::Report => {
                let payload = row.payload.as_deref().unwrap_or_default();
                let doc: Doc = serde_json::from_str(payload).context("a stored weekly report")?;
                (doc, "(weekly report)", 0, None)
            }
            Subject::PullRequest {
                repository,
                full_name,
                number,
            } => {
                let events = parse_events(&row.events);
                let Some(mut view) = review_queue::load(&self.db, repository, *number).await?
                else {
                    let failed = Attempt::Failed {
                        error: "pull request not found",
                        message: None,
                    };
                    return outbox::finish(&self.db, row.id, failed, &self.clock.timestamp()).await;
                };
                crate::review_queue::mention_people(&mut view, &self.users);
                (
                    render(&events, &view),
                    full_name.as_str(),
                    *number,
                    Some(view),
                )
            }
        };
        let attempt = row.attempts + 1;
        // The permit is taken right before the request, so that the time spent claiming and
        // rendering cannot bunch two requests closer than the room's rate allows.
        if !self.ready_to_send(limiter).await {
            // Another replica sends the room's messages now: this one goes back unsent.
            return outbox::release(&self.db, row.id).await;
        }
        // One chat thread per PR where the chat has threads (Google Chat): keyed by what never
        // changes, so a rename keeps the thread.
        let thread = match &row.subject {
            Subject::PullRequest {
                repository, number, ..
            } => Some(format!("{repository}#{number}")),
            Subject::Digest | Subject::Report => None,
        };
        let sent = match (&self.room.sink, &row.subject) {
            (
                Sink::SlackApi { .. },
                Subject::PullRequest {
                    repository, number, ..
                },
            ) => {
                let view = view.as_ref().context("a PR's message without its PR")?;
                self.deliver_living(&row, repository, *number, view, &message, limiter)
                    .await?
            }
            (Sink::SlackApi { .. }, Subject::Digest) => {
                self.deliver_living_digest(&message, limiter).await?
            }
            (Sink::SlackApi { .. }, Subject::Report) => self.deliver_new_message(&message).await?,
            _ => {
                sink::send(
                    &self.client,
                    &self.room.sink,
                    &self.room.name,
                    &message,
                    thread.as_deref(),
                )
                .await
            }
        };
        // The record of what was said (`outbox.message`): plain text, of what the chat showed.
        let text = sink::format(&self.room.sink).plain(&message);
        self.metrics.notification(&self.room.sink, sent.is_ok());
        let result = match sent {
            Ok(()) => {
                tracing::info!(
                    id = row.id,
                    repository,
                    pr = number,
                    attempt,
                    "message delivered"
                );
                // HipChat pings `@mentions` only in text messages: name the people the digest
                // asks to act in a short one after it, within the room's rate, a few tries on
                // 429/5xx. Not a row of its own: the digest is delivered, and sending it again
                // would post it twice.
                if sink::ping_body(&self.room.sink, &message).is_some() {
                    self.ping_mentions(&message, limiter).await;
                }
                Attempt::Sent { message: &text }
            }
            Err(err) => return self.not_delivered(&row, attempt, err, Some(&text)).await,
        };
        outbox::finish(&self.db, row.id, result, &self.clock.timestamp()).await
    }

    /// Records a failed `attempt` (1-based) at a claimed row: tried again later, or given up.
    ///
    /// While other messages wait behind it, a retry comes within `PROBE` (unless the server asked
    /// for longer), so a room back from an outage is noticed within seconds. It gives up only
    /// once `max_attempts` tries *and* the whole backoff schedule since its first failure have
    /// passed, so probing faster never gives up sooner than backing off would.
    async fn not_delivered(
        &self,
        row: &OutboxRow,
        attempt: i64,
        err: SendError,
        text: Option<&str>,
    ) -> anyhow::Result<()> {
        let now = self.clock.now();
        let stamp = Timestamp::from_datetime(now);
        match err {
            SendError::Retry { after, reason } if !self.gives_up(row, attempt, now) => {
                let mut delay = backoff(&self.settings, attempt);
                let waiting = outbox::due_count(&self.db, &self.room.name, &stamp).await?;
                if waiting > 0 {
                    delay = delay.min(PROBE);
                }
                let delay = delay.max(after.unwrap_or_default());
                let next = Timestamp::from_datetime(
                    now + chrono::Duration::from_std(delay).unwrap_or_default(),
                );
                tracing::warn!(id = row.id, %reason, attempt, waiting, retry_in_ms = delay.as_millis() as u64, "message not delivered; will retry");
                let retry = Attempt::Retry {
                    next,
                    error: &reason,
                };
                outbox::finish(&self.db, row.id, retry, &stamp).await
            }
            err => {
                // Refused (wrong token, unknown room), or out of attempts.
                let reason = err.reason().to_owned();
                if matches!(err, SendError::Permanent(_)) {
                    tracing::error!(id = row.id, %reason,
                        "the chat server refused the message; marked failed (check the room's URL and token)");
                } else {
                    tracing::error!(id = row.id, %reason, attempt, "giving up on a message; marked failed");
                }
                let failed = Attempt::Failed {
                    error: &reason,
                    message: text,
                };
                outbox::finish(&self.db, row.id, failed, &stamp).await
            }
        }
    }

    /// Whether a row whose `attempt`-th try just failed has had all its chances.
    fn gives_up(&self, row: &OutboxRow, attempt: i64, now: chrono::DateTime<chrono::Utc>) -> bool {
        if attempt < i64::from(self.settings.max_attempts) {
            return false;
        }
        let first_failed = row
            .first_failed_at
            .as_deref()
            .and_then(|t| Timestamp::parse(t).ok())
            .map_or(now, |t| t.to_datetime());
        let failing_for = (now - first_failed).to_std().unwrap_or_default();
        failing_for >= schedule(&self.settings)
    }

    /// The room's due PR news when there is more of it than `BACKLOG_SUMMARY_AFTER` (a summary is
    /// due), else `None`. Looks at no more rows than it takes to tell, so the usual case (a few
    /// due) costs a short read per message.
    async fn backlog(&self) -> anyhow::Result<Option<Vec<OutboxRow>>> {
        let now = self.clock.timestamp();
        let over = i64::try_from(BACKLOG_SUMMARY_AFTER + 1).unwrap_or(i64::MAX);
        let some = outbox::due_news(&self.db, &self.room.name, &now, over).await?;
        if some.len() <= BACKLOG_SUMMARY_AFTER {
            return Ok(None);
        }
        let all = outbox::due_news(&self.db, &self.room.name, &now, BACKLOG_MOST).await?;
        Ok(Some(all))
    }

    /// More than `BACKLOG_SUMMARY_AFTER` PRs' news due at once in a room (it is back from an
    /// outage, or news comes faster than its rate): one summary listing every one of them (as
    /// few messages as fit the chat's limit) instead of a post per PR, which at the room's rate
    /// would flood it for minutes. Each part, once delivered, marks the rows it lists sent; a
    /// part not delivered leaves its rows and those after it queued, the first of them recorded
    /// as the failed attempt.
    async fn deliver_summary(
        &self,
        backlog: Vec<OutboxRow>,
        limiter: Option<&RoomLimiter>,
    ) -> anyhow::Result<()> {
        // Said so when the room has been refusing (the oldest has failed before).
        let unreachable = backlog.iter().any(|row| row.attempts > 0);
        // Claimed, and later finished, in one statement each: a write per row would hold off
        // the webhook writer for a whole backlog of commits.
        let ids: Vec<i64> = backlog.iter().map(|row| row.id).collect();
        let taken: std::collections::HashSet<i64> = outbox::claim_all(&self.db, &ids)
            .await?
            .into_iter()
            .collect();
        let claimed: Vec<OutboxRow> = backlog
            .into_iter()
            .filter(|row| taken.contains(&row.id))
            .collect();
        // One item per PR (its news can be in two rows: one claimed before the outage, one
        // queued since), with the union of their events, in the order of its oldest row.
        let mut items: Vec<(Vec<OutboxRow>, BTreeSet<NotifyEvent>)> = Vec::new();
        for row in claimed {
            let Subject::PullRequest {
                repository, number, ..
            } = &row.subject
            else {
                outbox::release(&self.db, row.id).await?;
                continue;
            };
            let same = items.iter_mut().find(|(rows, _)| {
                matches!(&rows[0].subject, Subject::PullRequest { repository: r, number: n, .. }
                    if r == repository && n == number)
            });
            let events = parse_events(&row.events);
            match same {
                Some((rows, all)) => {
                    all.extend(events);
                    rows.push(row);
                }
                None => items.push((vec![row], events)),
            }
        }
        let mut rendered = Vec::with_capacity(items.len());
        for (rows, events) in items {
            let Subject::PullRequest {
                repository, number, ..
            } = &rows[0].subject
            else {
                continue;
            };
            match review_queue::load(&self.db, repository, *number).await? {
                Some(mut view) => {
                    crate::review_queue::mention_people(&mut view, &self.users);
                    rendered.push((rows, news(&events, &view).1));
                }
                None => {
                    for row in &rows {
                        let failed = Attempt::Failed {
                            error: "pull request not found",
                            message: None,
                        };
                        outbox::finish(&self.db, row.id, failed, &self.clock.timestamp()).await?;
                    }
                }
            }
        }
        let count = rendered.len();
        let prs = format!("{count} pull request{}", if count == 1 { "" } else { "s" });
        let heading = if unreachable {
            format!("While this room was unreachable, {prs} changed:")
        } else {
            format!("{prs} changed:")
        };
        // Split to the room's chat: its formatter measures each PR's news and says its limit.
        let format = sink::format(&self.room.sink);
        let items: Vec<doc::Block> = rendered.iter().map(|(_, b)| b.clone()).collect();
        let parts = doc::summary(&heading, items, |b| format.size(b), format.limit());
        let mut next = 0;
        for (part, listed) in parts {
            let rows: Vec<&OutboxRow> = rendered[next..next + listed]
                .iter()
                .flat_map(|(rows, _)| rows)
                .collect();
            if !self.ready_to_send(limiter).await {
                anyhow::bail!("another replica took the room's lease during the summary");
            }
            let sent =
                sink::send(&self.client, &self.room.sink, &self.room.name, &part, None).await;
            self.metrics.notification(&self.room.sink, sent.is_ok());
            match sent {
                Ok(()) => {
                    tracing::info!(prs = listed, rows = rows.len(), "backlog summary delivered");
                    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
                    let text = format.plain(&part);
                    outbox::sent_all(&self.db, &ids, &text, &self.clock.timestamp()).await?;
                    next += listed;
                }
                Err(err) => {
                    // The others back in the queue first: they are what makes the first one's
                    // retry a quick probe.
                    let mut left = rendered[next..].iter().flat_map(|(rows, _)| rows);
                    let first = left.next();
                    let others: Vec<i64> = left.map(|row| row.id).collect();
                    outbox::release_all(&self.db, &others).await?;
                    if let Some(first) = first {
                        self.not_delivered(first, first.attempts + 1, err, None)
                            .await?;
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Waits for the room's next permit, on the service's clock.
    /// PostgreSQL: renews the room's lease while waiting longer than `LEASE_RENEW` (a slow
    /// room's rate outlasts the lease), and says `false` when it was lost meanwhile: another
    /// replica sends the room's messages now, so this one must send nothing.
    async fn permit(&self, limiter: &RoomLimiter) -> bool {
        while let Err(not_until) = limiter.check() {
            let now = RateClock(self.clock.clone()).now();
            let wait = not_until.wait_time_from(now);
            if self.db.is_postgres() && wait > LEASE_RENEW {
                self.clock.sleep(LEASE_RENEW).await;
                if !self.keep_lease().await {
                    return false;
                }
            } else {
                self.clock.sleep(wait).await;
            }
        }
        true
    }
}

impl RoomWorker {
    /// The mention ping after a HipChat digest: up to 3 tries, each within the room's rate,
    /// waiting what the server asks (or the backoff) between them.
    async fn ping_mentions(&self, message: &Doc, limiter: Option<&RoomLimiter>) {
        for attempt in 1..=3 {
            if !self.ready_to_send(limiter).await {
                return;
            }
            match sink::ping(&self.client, &self.room.sink, message).await {
                Ok(()) => return,
                Err(SendError::Retry { after, reason }) if attempt < 3 => {
                    let delay = backoff(&self.settings, attempt).max(after.unwrap_or_default());
                    tracing::warn!(%reason, attempt, "mention ping not delivered; will retry");
                    self.clock.sleep(delay).await;
                }
                Err(err) => {
                    tracing::warn!(reason = err.reason(), "mention ping not delivered");
                    return;
                }
            }
        }
    }
}

/// The time between two messages to a room allowed `rate` a minute: 60 s / `rate`, plus 2 %.
/// The permit is taken just before each request, and one request can reach the chat server a
/// little later after its permit than the next one does (network, TLS): with the margin,
/// `rate + 1` permits span 61.2 s, so even then the server never counts more than `rate` in any
/// 60 s unless a request is held up for over a second more than the next.
pub fn room_period(rate: u32) -> Duration {
    Duration::from_secs_f64(60.0 / f64::from(rate.max(1)) * 1.02)
}

/// How long backing off takes in all, without jitter, before the last of `max_attempts` tries.
pub(crate) fn schedule(settings: &NotifySettings) -> Duration {
    (1..i64::from(settings.max_attempts))
        .map(|attempt| {
            let doubled = 2f64.powi(i32::try_from(attempt - 1).unwrap_or(i32::MAX));
            let delay = settings.retry_min.as_secs_f64() * doubled;
            Duration::from_secs_f64(delay.min(settings.retry_max.as_secs_f64()))
        })
        .sum()
}

/// Exponential backoff with jitter for the `attempt`-th failure (1-based).
pub(crate) fn backoff(settings: &NotifySettings, attempt: i64) -> Duration {
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

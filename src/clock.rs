//! The one clock every time decision reads: when a delivery arrived, when a coalescing window
//! ends, when a message is due or may be retried, the room's rate limit, the sweep and its
//! schedule, `/reviews` and Slack's replay window.
//!
//! In production it is the system clock and waits are `tokio` timers. Tests (and simulations)
//! use a [`ManualClock`]: its time moves only when they move it, or at real speed from a chosen
//! instant, and every wait through it ends exactly at the virtual instant it asked for. Network
//! timeouts (a chat server that does not answer, a slow request body, the writer's answer
//! deadline) are not decisions about the product's time and stay on real timers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::Timestamp;

/// The service's clock: the system's, or a [`ManualClock`]'s. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.manual.is_some() {
            "Clock(manual)"
        } else {
            "Clock(system)"
        })
    }
}

impl Clock {
    /// The system clock (`Utc::now`, `tokio` timers).
    pub fn system() -> Self {
        Clock::default()
    }

    /// Whether this is a [`ManualClock`]'s clock (`false`: the system clock).
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(manual) => manual.now(),
        }
    }

    /// `now` as a plain function, for code that only reads the time (the store's writer).
    pub fn reader(&self) -> crate::domain::Now {
        let clock = self.clone();
        Arc::new(move || clock.now())
    }

    /// The current instant as stored text (microseconds).
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_datetime(self.now())
    }

    /// Waits `duration` by this clock.
    pub async fn sleep(&self, duration: Duration) {
        let at = self.now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        self.sleep_until(at).await;
    }

    /// Waits until this clock reads `at` or later (at once if it already does).
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        match &self.manual {
            None => {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
            Some(manual) => {
                Sleep {
                    manual: manual.clone(),
                    at,
                    id: None,
                    real: None,
                }
                .await
            }
        }
    }
}

/// A clock that tests move. `frozen` stands still until `set`/`advance`; `running` moves at real
/// speed from its start (and `set` moves it). A wait through it ends when the clock reaches the
/// waited-for instant, never before, so intervals measured on it are exact.
///
/// For tests and simulations: the service itself runs on [`Clock::system`].
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Manual>,
}

struct Manual {
    state: Mutex<ManualState>,
    /// Signalled whenever a wait starts (tests wait for the service to be idle).
    sleeping: tokio::sync::Notify,
}

struct ManualState {
    /// Virtual time at `since` (or for good, when frozen).
    base: DateTime<Utc>,
    /// Real instant the base was taken at, when the clock runs at real speed.
    since: Option<std::time::Instant>,
    /// The waits that have not ended, by (instant, id).
    waits: BTreeMap<(DateTime<Utc>, u64), Waker>,
    next_id: u64,
}

impl ManualState {
    fn now(&self) -> DateTime<Utc> {
        match self.since {
            None => self.base,
            Some(since) => {
                self.base + chrono::Duration::from_std(since.elapsed()).unwrap_or_default()
            }
        }
    }
}

impl Manual {
    fn lock(&self) -> MutexGuard<'_, ManualState> {
        // A panic elsewhere never leaves the state half-updated: every update is one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    /// Wakes every wait that has ended by now and forgets it (so it no longer counts as waiting).
    fn wake_due(&self, state: &mut ManualState) {
        let now = state.now();
        while let Some(entry) = state.waits.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
        }
    }
}

impl ManualClock {
    /// A clock standing still at `at`.
    pub fn frozen(at: DateTime<Utc>) -> Self {
        Self::new(at, None)
    }

    /// A clock at `at` now, moving at real speed from here.
    pub fn running(at: DateTime<Utc>) -> Self {
        Self::new(at, Some(std::time::Instant::now()))
    }

    fn new(at: DateTime<Utc>, since: Option<std::time::Instant>) -> Self {
        ManualClock {
            inner: Arc::new(Manual {
                state: Mutex::new(ManualState {
                    base: at,
                    since,
                    waits: BTreeMap::new(),
                    next_id: 0,
                }),
                sleeping: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The [`Clock`] to hand the service.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.inner.clone()),
        }
    }

    /// The current virtual instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// Moves the clock to `at` (backwards too) and ends the waits due by then.
    pub fn set(&self, at: DateTime<Utc>) {
        let mut state = self.inner.lock();
        state.base = at;
        if state.since.is_some() {
            state.since = Some(std::time::Instant::now());
        }
        self.inner.wake_due(&mut state);
    }

    /// Moves the clock forward by `by` and ends the waits due by then.
    pub fn advance(&self, by: Duration) {
        let now = self.now();
        self.set(now + chrono::Duration::from_std(by).unwrap_or_default());
    }

    /// The instants the current waits end at, earliest first.
    pub fn waits(&self) -> Vec<DateTime<Utc>> {
        self.inner.lock().waits.keys().map(|(at, _)| *at).collect()
    }

    /// Waits (in real time, at most `patience`) until at least `n` waits are pending, i.e. the
    /// service's timed tasks have finished what they were doing and gone to sleep. Returns
    /// false when `patience` ran out first.
    pub async fn until_waiting(&self, n: usize, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let started = self.inner.sleeping.notified();
            if self.inner.lock().waits.len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, started).await.is_err() {
                return self.inner.lock().waits.len() >= n;
            }
        }
    }

    /// Moves the clock to the earliest pending wait's end and returns that instant (None, and
    /// no move, when nothing waits).
    pub fn advance_to_next(&self) -> Option<DateTime<Utc>> {
        let next = self.inner.lock().waits.keys().next().map(|(at, _)| *at)?;
        if next > self.now() {
            self.set(next);
        } else {
            let mut state = self.inner.lock();
            self.inner.wake_due(&mut state);
        }
        Some(next)
    }
}

/// A wait on a manual clock: registered while pending, forgotten when it ends or is dropped.
struct Sleep {
    manual: Arc<Manual>,
    at: DateTime<Utc>,
    id: Option<u64>,
    /// On a running clock, a real timer for the time left (reset whenever the clock is moved).
    real: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut state = this.manual.lock();
        let now = state.now();
        if now >= this.at {
            if let Some(id) = this.id.take() {
                state.waits.remove(&(this.at, id));
            }
            return Poll::Ready(());
        }
        let id = *this.id.get_or_insert_with(|| {
            state.next_id += 1;
            state.next_id
        });
        let fresh = state
            .waits
            .insert((this.at, id), cx.waker().clone())
            .is_none();
        let running = state.since.is_some();
        drop(state);
        if running {
            // Time left by the real clock; the clock may have been moved since the last poll.
            let left = (this.at - now).to_std().unwrap_or_default();
            let deadline = tokio::time::Instant::now() + left;
            let real = this
                .real
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            real.as_mut().reset(deadline);
            if real.as_mut().poll(cx).is_ready() {
                // The real time is up: wake ourselves to find the clock past `at`.
                cx.waker().wake_by_ref();
            }
        }
        if fresh {
            this.manual.sleeping.notify_waiters();
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.manual.lock().waits.remove(&(self.at, id));
        }
    }
}

/// The clock as `governor` reads it: time since the Unix epoch, to the nanosecond.
#[derive(Clone, Debug)]
pub struct RateClock(pub Clock);

impl governor::clock::Clock for RateClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let now = self.0.now();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        Duration::from_nanos(u64::try_from(nanos).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn a_frozen_clock_ends_waits_exactly_when_moved() {
        let manual = ManualClock::frozen(t0());
        let clock = manual.clock();
        let task = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock.sleep(Duration::from_millis(250)).await;
                clock.now()
            }
        });
        assert!(manual.until_waiting(1, Duration::from_secs(5)).await);
        assert_eq!(
            manual.waits(),
            vec![t0() + chrono::Duration::milliseconds(250)]
        );
        manual.advance(Duration::from_millis(249));
        assert_eq!(manual.waits().len(), 1, "not yet");
        assert_eq!(
            manual.advance_to_next(),
            Some(t0() + chrono::Duration::milliseconds(250))
        );
        assert!(manual.waits().is_empty(), "an ended wait no longer counts");
        let woke_at = task.await.unwrap();
        assert_eq!(woke_at, t0() + chrono::Duration::milliseconds(250));
    }

    #[tokio::test]
    async fn a_dropped_wait_is_forgotten() {
        let manual = ManualClock::frozen(t0());
        let clock = manual.clock();
        let result = tokio::time::timeout(
            Duration::from_millis(20),
            clock.sleep(Duration::from_secs(60)),
        )
        .await;
        assert!(result.is_err());
        assert!(manual.waits().is_empty());
        assert_eq!(manual.advance_to_next(), None);
    }

    #[tokio::test]
    async fn a_running_clock_ends_waits_by_itself() {
        let manual = ManualClock::running(t0());
        let clock = manual.clock();
        let started = std::time::Instant::now();
        clock.sleep(Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(clock.now() >= t0() + chrono::Duration::milliseconds(30));
        // Moving it ends a long wait at once.
        let task = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(3600)).await }
        });
        assert!(manual.until_waiting(1, Duration::from_secs(5)).await);
        manual.advance(Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("ended by the move")
            .unwrap();
    }

    #[test]
    fn the_rate_clock_reads_nanoseconds_since_the_epoch() {
        use governor::clock::Clock as _;
        let manual = ManualClock::frozen(t0() + chrono::Duration::nanoseconds(7));
        let now = RateClock(manual.clock()).now();
        assert_eq!(
            now,
            Duration::from_secs(t0().timestamp() as u64) + Duration::from_nanos(7)
        );
    }
}

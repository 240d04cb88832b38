//! When a person's queue is due (issue 24): their reminder times in their time zone, on their
//! working days, not while they are away. Pure: every function takes `now`.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How late a reminder may still go out after its time: a service down over 09:30 sends the
/// 09:30 reminder when it is back within this long, and skips it after.
pub const CATCH_UP: Duration = Duration::hours(1);

/// One person's reminder schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Their time zone.
    pub tz: Tz,
    /// Local times of day, earliest first; empty: no scheduled reminder.
    pub times: Vec<NaiveTime>,
    /// Monday first.
    pub working_days: [bool; 7],
    /// No personal messages on days before this one (their zone).
    pub away_until: Option<NaiveDate>,
    /// Local times between which nothing personal is sent (`[sweep] quiet_hours`, read in their
    /// zone); may wrap midnight. Real-time messages wait for their end.
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
}

impl Schedule {
    /// The instant `time` falls on `day` in their zone. In a daylight-saving gap (a time that
    /// does not exist that day) the instant an hour later; when it happens twice, the first.
    fn instant(&self, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let local = day.and_time(time);
        self.tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                self.tz
                    .from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether `day` (in their zone) is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        self.working_days[day.weekday().num_days_from_monday() as usize]
    }

    /// Whether they are away on `day` (in their zone).
    pub fn away_on(&self, day: NaiveDate) -> bool {
        self.away_until.is_some_and(|until| day < until)
    }

    /// Whether they are away at `now`.
    pub fn away(&self, now: DateTime<Utc>) -> bool {
        self.away_on(now.with_timezone(&self.tz).date_naive())
    }

    /// The reminder due at `now`: the latest of their times that has come (at most `CATCH_UP`
    /// ago) on a working day they are not away. `None`: nothing is due.
    pub fn due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut due = None;
        for day in [today.pred_opt()?, today] {
            if !self.is_working_day(day) || self.away_on(day) {
                continue;
            }
            for time in &self.times {
                let Some(at) = self.instant(day, *time) else {
                    continue;
                };
                if at <= now && now - at < CATCH_UP {
                    due = due.max(Some(at));
                }
            }
        }
        due
    }

    /// The first instant at or after `at` within their working hours: a working day of theirs,
    /// outside quiet hours. (Away is the caller's: news is dropped, not held, while away.)
    pub fn next_working(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = at;
        // Each step ends a non-working day or a quiet stretch; a fortnight of steps is plenty.
        for _ in 0..32 {
            let local = at.with_timezone(&self.tz);
            let day = local.date_naive();
            if !self.is_working_day(day) {
                let Some(next) = day.succ_opt().and_then(|d| self.instant(d, NaiveTime::MIN))
                else {
                    return at;
                };
                at = next;
                continue;
            }
            let Some((from, to)) = self.quiet_hours else {
                return at;
            };
            let t = local.time();
            let quiet = if from <= to {
                t >= from && t < to
            } else {
                t >= from || t < to
            };
            if !quiet {
                return at;
            }
            // The quiet stretch ends at `to`: today if it is still ahead, else tomorrow.
            let end_day = if t < to { Some(day) } else { day.succ_opt() };
            match end_day.and_then(|d| self.instant(d, to)) {
                Some(end) if end > at => at = end,
                _ => return at,
            }
        }
        at
    }

    /// Their next reminder after `now` (within four weeks), if any.
    pub fn next(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&self.tz).date_naive();
        (0..28)
            .filter_map(|n| today.checked_add_signed(Duration::days(n)))
            .filter(|day| self.is_working_day(*day) && !self.away_on(*day))
            .flat_map(|day| self.times.iter().map(move |t| (day, *t)))
            .filter_map(|(day, time)| self.instant(day, time))
            .find(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin(times: &[&str]) -> Schedule {
        Schedule {
            tz: "Europe/Berlin".parse().unwrap(),
            times: times
                .iter()
                .map(|t| NaiveTime::parse_from_str(t, "%H:%M").unwrap())
                .collect(),
            working_days: [true, true, true, true, true, false, false],
            away_until: None,
            quiet_hours: None,
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn due_at_the_local_time_on_working_days_only() {
        let s = berlin(&["09:30"]);
        // Tuesday 24 Nov 2026: Berlin is UTC+1, so 09:30 there is 08:30 UTC.
        assert_eq!(s.due(utc("2026-11-24T08:29:59Z")), None);
        assert_eq!(
            s.due(utc("2026-11-24T08:30:00Z")),
            Some(utc("2026-11-24T08:30:00Z"))
        );
        assert_eq!(
            s.due(utc("2026-11-24T09:29:00Z")),
            Some(utc("2026-11-24T08:30:00Z"))
        );
        // Past the catch-up window: skipped.
        assert_eq!(s.due(utc("2026-11-24T09:30:00Z")), None);
        // Saturday 28 Nov.
        assert_eq!(s.due(utc("2026-11-28T08:30:00Z")), None);
        // Summer time: UTC+2.
        assert_eq!(
            s.due(utc("2026-06-02T07:30:00Z")),
            Some(utc("2026-06-02T07:30:00Z"))
        );
    }

    #[test]
    fn nothing_while_away_and_the_next_reminder_after() {
        let mut s = berlin(&["09:30", "14:00"]);
        s.away_until = NaiveDate::from_ymd_opt(2026, 11, 26);
        assert_eq!(s.due(utc("2026-11-24T08:30:00Z")), None);
        assert!(s.away(utc("2026-11-25T12:00:00Z")));
        assert!(!s.away(utc("2026-11-26T00:00:00Z")));
        assert_eq!(
            s.next(utc("2026-11-24T08:30:00Z")),
            Some(utc("2026-11-26T08:30:00Z"))
        );
        s.away_until = None;
        assert_eq!(
            s.next(utc("2026-11-24T08:30:00Z")),
            Some(utc("2026-11-24T13:00:00Z"))
        );
        // Friday after the last time: Monday.
        assert_eq!(
            s.next(utc("2026-11-27T14:00:00Z")),
            Some(utc("2026-11-30T08:30:00Z"))
        );
        assert_eq!(berlin(&[]).next(utc("2026-11-27T14:00:00Z")), None);
    }

    #[test]
    fn news_waits_for_the_next_working_hour() {
        let mut s = berlin(&[]);
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        s.quiet_hours = Some((t(19, 0), t(8, 0)));
        // Tuesday 10:00 in Berlin: at once.
        assert_eq!(
            s.next_working(utc("2026-11-24T09:00:00Z")),
            utc("2026-11-24T09:00:00Z")
        );
        // Tuesday 20:00 in Berlin: Wednesday 08:00.
        assert_eq!(
            s.next_working(utc("2026-11-24T19:00:00Z")),
            utc("2026-11-25T07:00:00Z")
        );
        // Tuesday 03:00 in Berlin: 08:00 the same day.
        assert_eq!(
            s.next_working(utc("2026-11-24T02:00:00Z")),
            utc("2026-11-24T07:00:00Z")
        );
        // Friday 20:00: Monday 08:00.
        assert_eq!(
            s.next_working(utc("2026-11-27T19:00:00Z")),
            utc("2026-11-30T07:00:00Z")
        );
        s.quiet_hours = None;
        // Saturday noon without quiet hours: Monday 00:00 in Berlin.
        assert_eq!(
            s.next_working(utc("2026-11-28T11:00:00Z")),
            utc("2026-11-29T23:00:00Z")
        );
    }
}

//! Working days and quiet hours in the team's time zone. Pure: every function takes `now`.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// The team's working week and quiet hours in its time zone (`[sweep]` `timezone`,
/// `working_days`, `quiet_hours`); by default UTC, Monday to Friday, no quiet hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The IANA time zone that working days and quiet hours are read in (`Europe/Berlin`).
    pub tz: Tz,
    /// Monday first.
    pub working_days: [bool; 7],
    /// Local times between which a scheduled sweep posts nothing; may wrap midnight
    /// (`19:00`-`08:00`). `None`: no quiet hours.
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            tz: Tz::UTC,
            working_days: [true, true, true, true, true, false, false],
            quiet_hours: None,
        }
    }
}

impl Calendar {
    /// `at` as people here read it: `Tue 24 Nov 12:00 CET`, in the calendar's time zone.
    pub fn show(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.tz)
            .format("%a %-d %b %H:%M %Z")
            .to_string()
    }

    fn is_working_day(&self, day: NaiveDate) -> bool {
        self.working_days[day.weekday().num_days_from_monday() as usize]
    }

    /// Why a scheduled sweep should stay silent now, if it should.
    pub fn quiet_reason(&self, now: DateTime<Utc>) -> Option<String> {
        let local = now.with_timezone(&self.tz);
        if !self.is_working_day(local.date_naive()) {
            return Some(format!(
                "{} is not a working day in {}",
                local.format("%A"),
                self.tz
            ));
        }
        let (from, to) = self.quiet_hours?;
        let t = local.time();
        let quiet = if from <= to {
            t >= from && t < to
        } else {
            t >= from || t < to
        };
        quiet.then(|| {
            format!(
                "{} is within quiet hours {}-{} ({})",
                local.format("%H:%M"),
                from.format("%H:%M"),
                to.format("%H:%M"),
                self.tz
            )
        })
    }

    /// How much of [start, end) falls on working days, in local time.
    pub fn working_time(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Duration {
        if end <= start {
            return Duration::zero();
        }
        let s = start.with_timezone(&self.tz).naive_local();
        let e = end.with_timezone(&self.tz).naive_local();
        let (sd, ed) = (s.date(), e.date());
        let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
        if sd == ed {
            return if self.is_working_day(sd) {
                e - s
            } else {
                Duration::zero()
            };
        }
        let mut total = Duration::zero();
        if self.is_working_day(sd) {
            total += midnight(sd + Duration::days(1)) - s;
        }
        if self.is_working_day(ed) {
            total += e - midnight(ed);
        }
        // Whole days in between: whole weeks, then the few days left.
        let between = (ed - sd).num_days() - 1;
        let per_week = self.working_days.iter().filter(|w| **w).count() as i64;
        let mut days = between / 7 * per_week;
        let mut day = sd + Duration::days(1 + between / 7 * 7);
        while day < ed {
            days += i64::from(self.is_working_day(day));
            day += Duration::days(1);
        }
        total + Duration::days(days)
    }
}

/// `mon,tue,...` → the working-day mask; errors name the bad word.
pub fn parse_working_days(list: &[String]) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for word in list {
        let day: Weekday = word
            .trim()
            .parse()
            .map_err(|_| format!("`{word}` is not a weekday (mon, tue, ...)"))?;
        days[day.num_days_from_monday() as usize] = true;
    }
    if !days.contains(&true) {
        // No working day: a scheduled sweep would never post, silently.
        return Err("must name at least one weekday (mon, tue, ...)".into());
    }
    Ok(days)
}

/// `HH:MM-HH:MM`.
pub fn parse_hours(text: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("`{text}` is not HH:MM-HH:MM"))?;
    let t = |s: &str| {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("`{text}` is not HH:MM-HH:MM"))
    };
    Ok((t(a)?, t(b)?))
}

/// A local wall-clock time in `tz`, as UTC (for tests and examples).
pub fn local(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .expect("valid local time")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Calendar {
        Calendar {
            tz: "Europe/Berlin".parse().unwrap(),
            quiet_hours: Some(parse_hours("19:00-08:00").unwrap()),
            ..Calendar::default()
        }
    }

    #[test]
    fn quiet_hours_wrap_midnight_in_the_zone() {
        let cal = berlin();
        let tz = cal.tz;
        // 2026-11-27 is a Friday. 07:30 Berlin is quiet, 08:00 is not, 19:00 is again.
        assert!(cal.quiet_reason(local(tz, 2026, 11, 27, 7, 30)).is_some());
        assert!(cal.quiet_reason(local(tz, 2026, 11, 27, 8, 0)).is_none());
        assert!(cal.quiet_reason(local(tz, 2026, 11, 27, 18, 59)).is_none());
        assert!(cal.quiet_reason(local(tz, 2026, 11, 27, 19, 0)).is_some());
        // 07:30 UTC is 08:30 in Berlin (winter): not quiet, although UTC says so.
        let utc = Utc.with_ymd_and_hms(2026, 11, 27, 7, 30, 0).unwrap();
        assert!(cal.quiet_reason(utc).is_none());
        // Saturday noon.
        let reason = cal.quiet_reason(local(tz, 2026, 11, 28, 12, 0)).unwrap();
        assert_eq!(reason, "Saturday is not a working day in Europe/Berlin");
    }

    #[test]
    fn working_time_skips_weekends() {
        let cal = Calendar::default();
        let tz = cal.tz;
        // Friday 12:00 to Monday 12:00: 12 h on Friday + 12 h on Monday.
        let fri = local(tz, 2026, 11, 27, 12, 0);
        let mon = local(tz, 2026, 11, 30, 12, 0);
        assert_eq!(cal.working_time(fri, mon), Duration::hours(24));
        assert_eq!(mon - fri, Duration::hours(72));
        // Two full weeks plus a day: 11 working days.
        let start = local(tz, 2026, 11, 2, 0, 0); // Monday
        let end = local(tz, 2026, 11, 17, 0, 0); // Tuesday two weeks later
        assert_eq!(cal.working_time(start, end), Duration::days(11));
        // Within one weekend day: nothing.
        let sat = local(tz, 2026, 11, 28, 9, 0);
        assert_eq!(
            cal.working_time(sat, sat + Duration::hours(5)),
            Duration::zero()
        );
        assert_eq!(cal.working_time(mon, fri), Duration::zero());
    }

    #[test]
    fn parsing() {
        assert_eq!(
            parse_working_days(&["mon".into(), "Sun".into()]).unwrap(),
            [true, false, false, false, false, false, true]
        );
        assert!(parse_working_days(&["funday".into()]).is_err());
        assert!(parse_hours("8-19").is_err());
        assert!(parse_hours("08:00-19:30").is_ok());
    }
}

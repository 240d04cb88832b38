//! The weekly team report (issue 28, `[analytics] weekly_report = "mon 09:00"`): each room gets
//! last week's figures of its own pull requests (those of the repositories its route sends to
//! it), through the same job path as the sweep (`Job::WeeklyReport`, run by
//! `jobs::run_weekly_reports`) and the room's durable outbox (kind `report`).
//!
//! When: the configured weekday and time in `[sweep] timezone`. A run at or after that instant,
//! within a day of it, queues the report of the calendar week (Monday to Sunday, same zone)
//! before the one the instant falls in; before it, nothing. A report is queued once per room and
//! week (`store::weekly_reports`, in the transaction that queues it): a second run, a restart, a
//! second replica queue nothing more. A run more than a day late queues nothing: a report days
//! late is news no more, and the next week's comes on time.
//!
//! Figures (`ReviewFlow::compute` over the room's PRs, from one read of the dated facts): the
//! reported week's medians and reviewers, the four weeks before it as one sample, and the PRs
//! waiting on their reviewers now.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::Settings;
use crate::domain::analytics::FlowRows;
use crate::domain::routing::Routing;
use crate::domain::{RepositoryKey, Timestamp};
use crate::notify::sink;
use crate::notify::weekly::{self, WeeklyFigures};
use crate::report;
use crate::store::{self, Db};

/// How late a report may still be queued after its instant.
pub const GRACE: Duration = Duration::days(1);

/// What a run did in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomReport {
    /// The room's name.
    pub room: String,
    /// `queued` or `skipped`.
    pub status: &'static str,
    /// Why nothing was queued; absent when queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a run of the weekly report did: the week it reports on (`None` when no report was due)
/// and each room's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeeklyReport {
    /// When it ran (UTC RFC 3339).
    pub at: String,
    /// The first day of the week reported on (`YYYY-MM-DD`, `[sweep] timezone`), if one was due.
    pub week_starts_on: Option<String>,
    /// Why no report was due, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One line per configured room, when a report was due.
    pub rooms: Vec<RoomReport>,
}

impl WeeklyReport {
    /// The report as a few lines for a terminal or a log.
    pub fn to_text(&self) -> String {
        let mut out = format!("weekly report at {}", self.at);
        match (&self.week_starts_on, &self.reason) {
            (Some(week), _) => out.push_str(&format!(" (week of {week})\n")),
            (None, Some(reason)) => out.push_str(&format!(": {reason}\n")),
            (None, None) => out.push('\n'),
        }
        for r in &self.rooms {
            out.push_str(&format!(
                "  {:<16} {:<8}{}\n",
                r.room,
                r.status,
                r.reason
                    .as_deref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            ));
        }
        out
    }
}

/// The latest instant at or before `now` that is `weekday` at `time` in `tz`.
pub fn last_due(now: DateTime<Utc>, weekday: Weekday, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let local = now.with_timezone(&tz).date_naive();
    let back = (7 + local.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
    let mut day = local - Duration::days(i64::from(back));
    loop {
        let at = local_instant(tz, day, time);
        if at <= now {
            return at;
        }
        day -= Duration::days(7);
    }
}

/// The first instant after `now` that is `weekday` at `time` in `tz`.
pub fn next_due(now: DateTime<Utc>, weekday: Weekday, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let last = last_due(now, weekday, time, tz);
    let day = last.with_timezone(&tz).date_naive() + Duration::days(7);
    local_instant(tz, day, time)
}

/// `day` at `time` in `tz`: the earlier of two in an autumn fold, the first instant after a
/// spring gap.
fn local_instant(tz: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut at = day.and_time(time);
    for _ in 0..4 {
        if let Some(instant) = tz.from_local_datetime(&at).earliest() {
            return instant.with_timezone(&Utc);
        }
        at += Duration::minutes(30);
    }
    day.and_time(time).and_utc()
}

/// Monday of the calendar week before the one `due` falls in, in `tz`.
pub fn reported_week(due: DateTime<Utc>, tz: Tz) -> NaiveDate {
    let day = due.with_timezone(&tz).date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()) + 7)
}

/// The rows of the PRs `keep` admits.
fn only(rows: &FlowRows, keep: impl Fn(&RepositoryKey, &str) -> bool) -> FlowRows {
    let facts: Vec<_> = rows
        .facts
        .iter()
        .filter(|f| keep(&f.repository, &f.repository_name))
        .cloned()
        .collect();
    let chosen: HashSet<(&str, i64)> = facts
        .iter()
        .map(|f| (f.repository.as_str(), f.number))
        .collect();
    FlowRows {
        turns: rows
            .turns
            .iter()
            .filter(|t| chosen.contains(&(t.repository.as_str(), t.number)))
            .cloned()
            .collect(),
        requests: rows
            .requests
            .iter()
            .filter(|r| chosen.contains(&(r.repository.as_str(), r.number)))
            .cloned()
            .collect(),
        facts,
    }
}

/// Queues each room's weekly report if one is due at `now` (see the module).
pub async fn run(
    db: &Db,
    routing: &Routing,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<WeeklyReport> {
    let at = Timestamp::from_datetime(now);
    let none = |reason: String| WeeklyReport {
        at: at.to_string(),
        week_starts_on: None,
        reason: Some(reason),
        rooms: Vec::new(),
    };
    let Some((weekday, time)) = settings.analytics.weekly_report else {
        return Ok(none(
            "no weekly report is configured ([analytics] weekly_report)".into(),
        ));
    };
    let calendar = &settings.sweep.calendar;
    let tz = calendar.tz;
    let due = last_due(now, weekday, time, tz);
    if now - due >= GRACE {
        return Ok(none(format!(
            "not due: the next is at {}",
            calendar.show(next_due(now, weekday, time, tz))
        )));
    }
    let week = reported_week(due, tz);
    let week_text = week.format("%Y-%m-%d").to_string();
    let starts = local_instant(tz, week, NaiveTime::MIN);
    let ends = local_instant(tz, week + Duration::days(7), NaiveTime::MIN);
    let before = local_instant(tz, week - Duration::days(28), NaiveTime::MIN);

    let mut rooms = Vec::with_capacity(settings.notify.rooms.len());
    let mut rows: Option<FlowRows> = None;
    let rooms_of = report::rooms_of(routing);
    for room in &settings.notify.rooms {
        let skipped = |reason: &str| RoomReport {
            room: room.name.clone(),
            status: "skipped",
            reason: Some(reason.to_owned()),
        };
        if store::weekly_reports::queued(db, &room.name, &week_text).await? {
            rooms.push(skipped("queued already this week"));
            continue;
        }
        if rows.is_none() {
            rows = Some(
                store::analytics::read(db, &Timestamp::from_datetime(before), None)
                    .await
                    .map_err(|err| err.context("reading the figures of the weekly report"))?,
            );
        }
        let all = rows.as_ref().expect("read above");
        let mine = only(all, |key, name| rooms_of(key, name).contains(&room.name));
        if mine.facts.is_empty() {
            rooms.push(skipped(
                "no pull request of its repositories open now or in the last five weeks",
            ));
            continue;
        }
        let figures = |since, until| report::compute(&mine, settings, routing, since, until);
        let last_week = figures(starts, ends);
        let earlier = figures(before, starts);
        let current = figures(now - settings.analytics.window, now);
        let doc = weekly::render(&WeeklyFigures {
            room: &room.name,
            week_starts_on: week,
            last_week: &last_week.overall,
            before: &earlier.overall,
            waiting: &current.waiting,
            reviewers: &last_week.reviewers,
            page_url: settings.analytics.page_url.as_deref(),
        });
        // Stored as the room's chat will show it (as the sweep stores a digest).
        let shown = sink::format(&room.sink).shown(&doc);
        let doc = if shown.is_empty() {
            doc
        } else {
            doc.cut(&shown)
        };
        let payload = serde_json::to_string(&doc)?;
        let queued = store::weekly_reports::queue(db, &room.name, &week_text, &at, &payload)
            .await
            .map_err(|err| err.context(format!("queueing the weekly report of {}", room.name)))?;
        rooms.push(match queued {
            Some(_) => RoomReport {
                room: room.name.clone(),
                status: "queued",
                reason: None,
            },
            None => skipped("queued already this week"),
        });
    }
    Ok(WeeklyReport {
        at: at.to_string(),
        week_starts_on: Some(week_text),
        reason: None,
        rooms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_instants_are_the_weekday_and_time_in_the_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        // Mon 7 Dec 2026 09:00 in Berlin is 08:00 UTC.
        let monday = utc("2026-12-07T08:00:00Z");
        assert_eq!(last_due(monday, Weekday::Mon, nine, berlin), monday);
        assert_eq!(
            last_due(monday - Duration::seconds(1), Weekday::Mon, nine, berlin),
            utc("2026-11-30T08:00:00Z")
        );
        assert_eq!(
            next_due(monday, Weekday::Mon, nine, berlin),
            utc("2026-12-14T08:00:00Z")
        );
        assert_eq!(
            next_due(monday - Duration::seconds(1), Weekday::Mon, nine, berlin),
            monday
        );
        // Across the change to summer time: Mon 29 Mar 2027 09:00 CEST is 07:00 UTC.
        assert_eq!(
            next_due(utc("2027-03-23T00:00:00Z"), Weekday::Mon, nine, berlin),
            utc("2027-03-29T07:00:00Z")
        );
        // The week reported on is the calendar week before.
        assert_eq!(
            reported_week(monday, berlin),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
        );
        let friday = utc("2026-12-11T16:00:00Z");
        assert_eq!(
            reported_week(friday, berlin),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
        );
        // Far from UTC: Mon 09:00 in Kiritimati (UTC+14) is Sunday 19:00 UTC.
        let kiritimati: Tz = "Pacific/Kiritimati".parse().unwrap();
        let due = last_due(utc("2026-12-06T19:30:00Z"), Weekday::Mon, nine, kiritimati);
        assert_eq!(due, utc("2026-12-06T19:00:00Z"));
        assert_eq!(
            reported_week(due, kiritimati),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
        );
    }
}

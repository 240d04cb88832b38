//! `pr-reminder report`: the review flow's figures (`domain::analytics::ReviewFlow`) as a
//! terminal table, and the parsing of `--since`.
//!
//! The JSON form is `ReviewFlow`'s serde shape; its field names are documented in
//! docs/analytics.md and stable.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use crate::config::Settings;
use crate::domain::analytics::{earliest, FlowOptions, Group, ReviewFlow, Rounds, Stat, Summary};
use crate::domain::routing::Routing;
use crate::domain::RepositoryKey;
use crate::domain::Timestamp;
use crate::store::{self, Db};

/// The figures over [`since`, `now`) of every repository, or of `repository` (full name, any
/// case): one read of the dated facts (`store::analytics::read`) and `ReviewFlow::compute`,
/// with the rooms of the configured routes and, under `[analytics] working_hours_only`, the
/// `[sweep]` calendar. Errors: the database's, or routes that do not compile.
pub async fn flow(
    db: &Db,
    settings: &Settings,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    repository: Option<&str>,
) -> anyhow::Result<ReviewFlow> {
    let from = Timestamp::from_datetime(earliest(since, now));
    let rows = store::analytics::read(db, &from, repository).await?;
    let routing = Routing::new(&settings.notify.routes, settings.required_approvals)?;
    let rooms_of = |key: &RepositoryKey, name: &str| {
        routing
            .route(key.flavour(), name)
            .map(|r| r.rooms.clone())
            .unwrap_or_default()
    };
    let room_order: Vec<String> = settings
        .notify
        .rooms
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let options = FlowOptions {
        since,
        until: now,
        calendar: settings
            .analytics
            .working_hours_only
            .then_some(&settings.sweep.calendar),
        rooms_of: &rooms_of,
        room_order: &room_order,
    };
    Ok(ReviewFlow::compute(&rows, &options))
}

/// Reads `--since`: a span back from `now` (`28d`, `12h`, `2w`, `90m`: a whole number and one
/// of `m`, `h`, `d`, `w`) or an RFC 3339 date-time (`2026-11-01T00:00:00Z`). The error says
/// what is accepted (clap names the flag).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    let expected = "expected a span such as 28d, 12h or 2w, or an RFC 3339 date-time such as \
                    2026-11-01T00:00:00Z";
    if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic) {
        let number = &text[..text.len() - unit.len_utf8()];
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = number
                .parse()
                .map_err(|_| format!("`{text}` is too large; {expected}"))?;
            let span = match unit {
                'm' => Duration::try_minutes(n),
                'h' => Duration::try_hours(n),
                'd' => Duration::try_days(n),
                'w' => Duration::try_weeks(n),
                _ => return Err(format!("`{text}`: unknown unit `{unit}`; {expected}")),
            }
            .ok_or_else(|| format!("`{text}` is too large; {expected}"))?;
            return now
                .checked_sub_signed(span)
                .ok_or_else(|| format!("`{text}` is too large; {expected}"));
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| format!("`{text}` is neither a span nor a date; {expected}"))
}

/// A duration as people read it: `45s`, `12m`, `3h 20m`, `2d 4h`, `3w 2d` (the two largest
/// units, rounded down).
pub fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    let (w, d, h, m) = (s / 604_800, s / 86_400 % 7, s / 3600 % 24, s / 60 % 60);
    match () {
        _ if w > 0 && d > 0 => format!("{w}w {d}d"),
        _ if w > 0 => format!("{w}w"),
        _ if s >= 86_400 && h > 0 => format!("{}d {h}h", s / 86_400),
        _ if s >= 86_400 => format!("{}d", s / 86_400),
        _ if s >= 3600 && m > 0 => format!("{}h {m}m", s / 3600),
        _ if s >= 3600 => format!("{}h", s / 3600),
        _ if s >= 60 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

fn opt(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), human)
}

fn stat(s: &Stat) -> String {
    if s.count == 0 {
        return "-".to_owned();
    }
    format!(
        "{} / {} ({})",
        opt(s.median_seconds),
        opt(s.p90_seconds),
        s.count
    )
}

fn rounds(r: &Rounds) -> String {
    match (r.median, r.p90) {
        (Some(median), Some(p90)) if r.count > 0 => format!("{median} / {p90} ({})", r.count),
        _ => "-".to_owned(),
    }
}

/// Lays out rows of cells in columns: the first left-aligned, the others right-aligned, two
/// spaces apart.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = w - cell.chars().count();
            if i == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(
        out,
        &header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
    );
    for row in rows {
        line(out, row);
    }
}

const SUMMARY_HEADER: [&str; 12] = [
    "",
    "opened",
    "merged",
    "declined",
    "under-approved",
    "first review",
    "approval",
    "merge",
    "rounds",
    "with reviewers",
    "with author",
    "to merge",
];

fn summary_row(name: &str, s: &Summary) -> Vec<String> {
    vec![
        name.to_owned(),
        s.opened.to_string(),
        s.merged.to_string(),
        s.declined.to_string(),
        s.merged_under_approved.to_string(),
        stat(&s.time_to_first_review),
        stat(&s.time_to_approval),
        stat(&s.time_to_merge),
        rounds(&s.rounds),
        stat(&s.reviewers_turn),
        stat(&s.author_turn),
        stat(&s.merge_turn),
    ]
}

fn groups(out: &mut String, title: &str, list: &[Group]) {
    let _ = writeln!(out, "\n{title}");
    if list.is_empty() {
        let _ = writeln!(out, "  none");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|g| summary_row(&g.name, &g.summary))
        .collect();
    table(out, &SUMMARY_HEADER, &rows);
}

/// The report as terminal text: the window, then the overall figures, per repository, per
/// room, per reviewer and the PRs waiting on reviewers now. Times read `median / p90 (count)`.
pub fn to_text(flow: &ReviewFlow) -> String {
    let mut out = String::new();
    let clock = if flow.working_hours_only {
        "working hours only"
    } else {
        "wall-clock time"
    };
    let _ = writeln!(
        out,
        "Review flow from {} to {} ({clock}); times are median / p90 (count)\n",
        flow.since, flow.until
    );
    table(
        &mut out,
        &SUMMARY_HEADER,
        &[summary_row("overall", &flow.overall)],
    );
    groups(&mut out, "Per repository", &flow.repositories);
    groups(&mut out, "Per room", &flow.rooms);
    let _ = writeln!(out, "\nPer reviewer");
    if flow.reviewers.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let rows: Vec<Vec<String>> = flow
            .reviewers
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.reviews.to_string(),
                    opt(r.median_response_seconds),
                    r.waiting.to_string(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["", "reviews", "median response", "waiting on them"],
            &rows,
        );
    }
    let _ = writeln!(out, "\nWaiting on reviewers now");
    if flow.waiting.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let rows: Vec<Vec<String>> = flow
            .waiting
            .iter()
            .map(|w| {
                vec![
                    format!("{} #{} {}", w.repository, w.number, w.title),
                    human(w.seconds),
                ]
            })
            .collect();
        table(&mut out, &["", "waiting"], &rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        for (seconds, text) in [
            (0, "0s"),
            (45, "45s"),
            (12 * 60 + 5, "12m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 20 * 60 + 59, "3h 20m"),
            (2 * 86_400 + 4 * 3600 + 60, "2d 4h"),
            (86_400, "1d"),
            (9 * 86_400, "1w 2d"),
            (14 * 86_400 + 3600, "2w"),
            (-5, "0s"),
        ] {
            assert_eq!(human(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn since_takes_spans_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        assert_eq!(parse_since("28d", now), Ok(at("2026-11-09T12:00:00Z")));
        assert_eq!(parse_since("12h", now), Ok(at("2026-12-07T00:00:00Z")));
        assert_eq!(parse_since("2w", now), Ok(at("2026-11-23T12:00:00Z")));
        assert_eq!(parse_since("90m", now), Ok(at("2026-12-07T10:30:00Z")));
        assert_eq!(
            parse_since("2026-11-01T00:00:00+01:00", now),
            Ok(at("2026-10-31T23:00:00Z"))
        );
        for bad in [
            "",
            "d",
            "28",
            "28x",
            "-3d",
            "yesterday",
            "99999999999999999999d",
        ] {
            let err = parse_since(bad, now).unwrap_err();
            assert!(err.contains("expected a span such as 28d"), "{bad}: {err}");
        }
    }
}

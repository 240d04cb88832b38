//! The weekly team report (issue 28, `[analytics] weekly_report`): one room's last week in
//! numbers, as a chat document (`notify::doc`). Pure: the figures are computed before
//! (`ReviewFlow::compute` over the room's own pull requests), this only says them.
//!
//! What it says: last week's median time to first review and to merge against the four weeks
//! before (`first review 4h 10m (4 weeks before: 6h 0m)`), how many PRs were opened, merged and
//! declined, the slowest current waits (up to `SLOWEST`), who reviewed most (up to
//! `TOP_REVIEWERS`), and a link to the review-flow page when its address is known. Never
//! alerts and never mentions anyone: it informs, nobody has to act on it.

use chrono::NaiveDate;

use super::doc::{clip, format_span, Block, Color, Doc, Headline, Inline, List};
use crate::domain::analytics::{ReviewerLoad, Summary, Waiting};

/// Current waits listed (the longest first).
pub const SLOWEST: usize = 5;
/// Reviewers listed (the most reviews first).
pub const TOP_REVIEWERS: usize = 3;

/// One room's figures for its weekly report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyFigures<'a> {
    /// The room's configured name.
    pub room: &'a str,
    /// The first day of the week reported on (in `[sweep] timezone`).
    pub week_starts_on: NaiveDate,
    /// That week's figures (the room's PRs).
    pub last_week: &'a Summary,
    /// The four weeks before it, as one sample.
    pub before: &'a Summary,
    /// The room's PRs waiting on their reviewers now, the longest wait first.
    pub waiting: &'a [Waiting],
    /// The reviewers of the room's PRs in the week reported on, the most reviews first.
    pub reviewers: &'a [ReviewerLoad],
    /// The review-flow page's address, if one is known.
    pub page_url: Option<&'a str>,
}

/// `first review 4h 10m (4 weeks before: 6h 0m)`; `none` for a span without one.
fn compared(what: &str, last: Option<i64>, before: Option<i64>) -> String {
    let show = |s: Option<i64>| s.map_or_else(|| "none".to_owned(), format_span);
    format!("{what} {} (4 weeks before: {})", show(last), show(before))
}

/// The report for one room (grey, not alerting).
pub fn render(figures: &WeeklyFigures<'_>) -> Doc {
    let (last, before) = (figures.last_week, figures.before);
    let week_ends_on = figures.week_starts_on + chrono::Days::new(6);
    let heading = format!(
        "Review flow, week of {} to {}",
        figures.week_starts_on.format("%a %-d %b"),
        week_ends_on.format("%a %-d %b %Y")
    );
    let medians = format!(
        "Median times: {}, {}.",
        compared(
            "first review",
            last.time_to_first_review.median_seconds,
            before.time_to_first_review.median_seconds
        ),
        compared(
            "merge",
            last.time_to_merge.median_seconds,
            before.time_to_merge.median_seconds
        ),
    );
    let counts = format!(
        "{} opened, {} merged, {} declined{}.",
        last.opened,
        last.merged,
        last.declined,
        match last.merged_under_approved {
            0 => String::new(),
            n => format!(", {n} merged with fewer approvals than required"),
        }
    );
    let mut blocks = vec![
        Block::Paragraph(vec![Inline::text(medians)]),
        Block::Paragraph(vec![Inline::text(counts)]),
    ];
    if figures.waiting.is_empty() {
        blocks.push(Block::Paragraph(vec![Inline::fixed(
            "Nothing waits for review now.",
        )]));
    } else {
        blocks.push(Block::List(List {
            title: Some("Waiting longest for review".into()),
            items: figures
                .waiting
                .iter()
                .take(SLOWEST)
                .map(|w| {
                    vec![
                        Inline::link(clip(&w.title), w.url.as_deref()),
                        Inline::fixed(" ("),
                        Inline::text(format!("{} #{}", w.repository, w.number)),
                        Inline::fixed(") · "),
                        Inline::text(format!("waiting {}", format_span(w.seconds))),
                    ]
                })
                .collect(),
            total: figures.waiting.len(),
        }));
    }
    let reviewed: Vec<&ReviewerLoad> = figures
        .reviewers
        .iter()
        .filter(|r| r.reviews > 0)
        .take(TOP_REVIEWERS)
        .collect();
    if !reviewed.is_empty() {
        blocks.push(Block::List(List {
            title: Some("Reviewed most".into()),
            items: reviewed
                .iter()
                .map(|r| {
                    vec![
                        Inline::text(clip(&r.name)),
                        Inline::fixed(" · "),
                        Inline::text(format!(
                            "{} review{}{}",
                            r.reviews,
                            if r.reviews == 1 { "" } else { "s" },
                            r.median_response_seconds
                                .map(|s| format!(", median response {}", format_span(s)))
                                .unwrap_or_default()
                        )),
                    ]
                })
                .collect(),
            total: reviewed.len(),
        }));
    }
    if let Some(url) = figures.page_url {
        blocks.push(Block::Paragraph(vec![Inline::link(
            "All the figures",
            Some(url),
        )]));
    }
    Doc {
        color: Color::Gray,
        notify: false,
        headline: Some(Headline {
            text: heading,
            room: Some(figures.room.to_owned()),
        }),
        blocks,
        ping: Vec::new(),
    }
}

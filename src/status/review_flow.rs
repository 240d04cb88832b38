//! The review-flow page (`GET /status/review-flow`, issue 28) as HTML: the figures of a
//! `ReviewFlow` (overall, per repository, per room, per reviewer, the PRs waiting on their
//! reviewers) and three charts drawn by `plotters` into inline SVG: the weekly medians of the
//! last 12 weeks, a histogram of the current waits, and the reviewers' load as bars.
//!
//! Pure: the same `ReviewFlow` always gives the same bytes. Every value is HTML-encoded (maud
//! for the page, plotters' SVG backend for the charts' labels), so titles and names stay text.
//! No JavaScript; the page's one stylesheet is inline; the charts scale down to a phone's width.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::domain::analytics::{Group, ReviewFlow, ReviewerLoad, Stat, Summary, Waiting, Week};
use crate::notify::doc::format_span;

/// Reviewers drawn in the load chart (the most reviews first); the table lists them all.
pub const REVIEWERS_CHARTED: usize = 15;
/// Waiting PRs listed in the table (the longest waits first).
pub const WAITING_LISTED: usize = 50;

/// The buckets of the waiting-time histogram: (label, upper bound in seconds, exclusive).
pub const WAIT_BUCKETS: [(&str, i64); 6] = [
    ("< 4h", 4 * 3600),
    ("4h-1d", 86_400),
    ("1-2d", 2 * 86_400),
    ("2-3d", 3 * 86_400),
    ("3-7d", 7 * 86_400),
    ("> 7d", i64::MAX),
];

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 12px 32px;color:#1b1f23;line-height:1.4}
h1{font-size:1.5em}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.2em 0 .8em}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-size:.85em;color:#57606a;font-weight:600}
td{overflow-wrap:break-word}
.muted{color:#57606a}.clear{color:#2e7d32}.empty{font-size:1.1em;color:#57606a}
figure.chart{margin:.4em 0 1em}figure.chart svg{display:block;width:100%;height:auto;max-width:720px}
figcaption{font-size:.85em;color:#57606a}
@media (max-width:700px){
 table thead{display:none}
 table tr{display:block;border-bottom:1px solid #d0d7de;padding:6px 0}
 table td{display:block;border:0;padding:1px 0}
 td[data-label]::before{content:attr(data-label) ': ';color:#57606a;font-size:.85em}
}
";

/// What the page was asked for, as it says it at the top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// `?since=`, as given (`28d`); `None`: the configured window.
    pub since: Option<String>,
    /// `?repository=`, as given; `None`: every repository.
    pub repository: Option<String>,
}

/// Whether `flow` has no figure at all (nothing opened, reviewed or closed in the window or
/// the 12 weeks, nobody waited on): the page then says "no data yet".
pub fn is_empty(flow: &ReviewFlow) -> bool {
    flow.overall == Summary::default()
        && flow.repositories.is_empty()
        && flow.rooms.is_empty()
        && flow.reviewers.is_empty()
        && flow.waiting.is_empty()
        && flow.weeks.iter().all(|w| {
            w.time_to_first_review == Stat::default() && w.time_to_merge == Stat::default()
        })
}

/// The whole page.
pub fn render(flow: &ReviewFlow, asked: &Asked) -> String {
    let (since, until) = (flow.since.to_datetime(), flow.until.to_datetime());
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "pr-reminder review flow" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Review flow" }
                p.muted {
                    "From " time datetime=(since.to_rfc3339()) { (day(since)) }
                    " to " time datetime=(until.to_rfc3339()) { (when(until)) }
                    @if let Some(repository) = &asked.repository {
                        ", repository " strong { (repository) }
                    } @else {
                        ", every repository"
                    }
                    @if flow.working_hours_only { ", counting working hours only" }
                    ". Times run from when a pull request was ready for review. "
                    a href="../status" { "Back to the status page" }
                }
                @if is_empty(flow) {
                    p.empty id="no-data" {
                        "No data yet: no pull request was opened, reviewed or closed in this window, \
                         and none waits for review. The figures appear as pull requests move."
                    }
                } @else {
                    h2 id="overall" { "Overall" }
                    (summary_table(&flow.overall))
                    h2 id="trend" { "Weekly medians" }
                    (chart_or("trend-chart", "Median time to first review and to merge, per week (UTC), the last 12 weeks",
                        "No review or merge in the last 12 weeks.", weeks_chart(&flow.weeks)))
                    h2 id="waiting" { "Waiting for review now" }
                    (chart_or("waiting-chart", "Open pull requests waiting on their reviewers, by how long",
                        "Nothing waits for review.", waiting_chart(&flow.waiting)))
                    (waiting_table(&flow.waiting))
                    h2 id="reviewers" { "Reviewers" }
                    (chart_or("reviewers-chart", "Reviews given in the window, and pull requests waiting on each reviewer now",
                        "Nobody reviewed in this window, and nobody is waited on.", reviewers_chart(&flow.reviewers)))
                    (reviewers_table(&flow.reviewers))
                    h2 id="repositories" { "Per repository" }
                    (groups_table("repositories", "Repository", &flow.repositories))
                    h2 id="rooms" { "Per room" }
                    (groups_table("rooms", "Room", &flow.rooms))
                }
            }
        }
    };
    markup.into_string()
}

/// A chart in a figure with its caption, or `empty` when there is nothing to draw (or, never
/// expected, when plotters failed: logged, and said).
fn chart_or(id: &str, caption: &str, empty: &str, svg: Option<anyhow::Result<String>>) -> Markup {
    match svg {
        None => html! { p.clear id=(id) { (empty) } },
        Some(Err(err)) => {
            tracing::error!(error = %format!("{err:#}"), chart = id, "a review-flow chart failed");
            html! { p.muted id=(id) { "This chart could not be drawn; see the service log." } }
        }
        Some(Ok(svg)) => html! {
            figure.chart id=(id) role="img" aria-label=(caption) {
                (PreEscaped(svg))
                figcaption { (caption) }
            }
        },
    }
}

fn span(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), format_span)
}

fn summary_table(s: &Summary) -> Markup {
    let row = |name: &str, stat: &Stat| {
        html! {
            tr {
                td data-label="Time" { (name) }
                td data-label="Median" { (span(stat.median_seconds)) }
                td data-label="90th percentile" { (span(stat.p90_seconds)) }
                td data-label="Pull requests" { (stat.count) }
            }
        }
    };
    html! {
        p.counts {
            (s.opened) " opened, " (s.merged) " merged, " (s.declined) " declined"
            @if s.merged_under_approved > 0 {
                ", " strong { (s.merged_under_approved) " merged with fewer approvals than required" }
            }
            "."
        }
        table.figures {
            thead { tr { th { "Time" } th { "Median" } th { "90th percentile" } th { "Pull requests" } } }
            tbody {
                (row("To first review", &s.time_to_first_review))
                (row("To the approvals required", &s.time_to_approval))
                (row("To merge", &s.time_to_merge))
                (row("With the reviewers (in all)", &s.reviewers_turn))
                (row("With the author (in all)", &s.author_turn))
                (row("Waiting to be merged", &s.merge_turn))
                tr {
                    td data-label="Time" { "Review rounds" }
                    td data-label="Median" { (s.rounds.median.map_or_else(|| "–".to_owned(), |n| n.to_string())) }
                    td data-label="90th percentile" { (s.rounds.p90.map_or_else(|| "–".to_owned(), |n| n.to_string())) }
                    td data-label="Pull requests" { (s.rounds.count) }
                }
            }
        }
    }
}

fn groups_table(id: &str, what: &str, groups: &[Group]) -> Markup {
    if groups.is_empty() {
        return html! { p.clear { "None with figures in this window." } };
    }
    html! {
        table id=(id) {
            thead { tr {
                th { (what) } th { "Opened" } th { "Merged" } th { "Declined" }
                th { "First review (median / p90)" } th { "Merge (median / p90)" }
            } }
            tbody {
                @for g in groups {
                    tr.group {
                        td data-label=(what) { (g.name) }
                        td data-label="Opened" { (g.summary.opened) }
                        td data-label="Merged" { (g.summary.merged) }
                        td data-label="Declined" { (g.summary.declined) }
                        td data-label="First review (median / p90)" {
                            (span(g.summary.time_to_first_review.median_seconds)) " / "
                            (span(g.summary.time_to_first_review.p90_seconds))
                        }
                        td data-label="Merge (median / p90)" {
                            (span(g.summary.time_to_merge.median_seconds)) " / "
                            (span(g.summary.time_to_merge.p90_seconds))
                        }
                    }
                }
            }
        }
    }
}

fn reviewers_table(reviewers: &[ReviewerLoad]) -> Markup {
    if reviewers.is_empty() {
        return html! {};
    }
    html! {
        table id="reviewer-table" {
            thead { tr { th { "Reviewer" } th { "Reviews given" } th { "Median response" } th { "Waiting on them now" } } }
            tbody {
                @for r in reviewers {
                    tr.reviewer {
                        td data-label="Reviewer" { (r.name) }
                        td data-label="Reviews given" { (r.reviews) }
                        td data-label="Median response" { (span(r.median_response_seconds)) }
                        td data-label="Waiting on them now" { (r.waiting) }
                    }
                }
            }
        }
    }
}

fn waiting_table(waiting: &[Waiting]) -> Markup {
    if waiting.is_empty() {
        return html! {};
    }
    html! {
        table id="waiting-table" {
            caption style="text-align:left;font-weight:600" {
                "The longest waits"
                @if waiting.len() > WAITING_LISTED { " (" (WAITING_LISTED) " of " (waiting.len()) ")" }
            }
            thead { tr { th { "Pull request" } th { "Repository" } th { "Waiting for" } } }
            tbody {
                @for w in waiting.iter().take(WAITING_LISTED) {
                    @let href = w.url.as_deref().filter(|u| u.starts_with("https://") || u.starts_with("http://"));
                    tr.waiting {
                        td data-label="Pull request" {
                            @if let Some(href) = href {
                                a href=(href) { "#" (w.number) " " (w.title) }
                            } @else {
                                "#" (w.number) " " (w.title)
                            }
                        }
                        td data-label="Repository" { (w.repository) }
                        td data-label="Waiting for" { (format_span(w.seconds)) }
                    }
                }
            }
        }
    }
}

/// `2026-11-30`.
fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// `2026-11-30 07:25 UTC`.
fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// At most `most` characters, with an ellipsis when cut.
fn shorten(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(most - 1).collect();
    out.push('…');
    out
}

const BLUE: RGBColor = RGBColor(0x1f, 0x6f, 0xeb);
const GREEN: RGBColor = RGBColor(0x2e, 0x7d, 0x32);
const AMBER: RGBColor = RGBColor(0xf9, 0xa8, 0x25);
const INK: RGBColor = RGBColor(0x1b, 0x1f, 0x23);
const FONT: &str = "sans-serif";
/// The charts' drawing width in SVG units (scaled to the page's width by CSS).
const WIDTH: u32 = 560;

/// Hours, for the trend chart's axis.
fn hours(seconds: i64) -> f64 {
    seconds as f64 / 3600.0
}

/// The weekly medians as two lines (first review, merge) in hours over the weeks, or `None`
/// when no week has either.
fn weeks_chart(weeks: &[Week]) -> Option<anyhow::Result<String>> {
    let series = |pick: fn(&Week) -> &Stat| -> Vec<(i32, f64)> {
        weeks
            .iter()
            .enumerate()
            .filter_map(|(i, w)| Some((i as i32, hours(pick(w).median_seconds?))))
            .collect()
    };
    let first = series(|w| &w.time_to_first_review);
    let merge = series(|w| &w.time_to_merge);
    if first.is_empty() && merge.is_empty() {
        return None;
    }
    let top = first
        .iter()
        .chain(&merge)
        .map(|(_, h)| *h)
        .fold(1.0_f64, f64::max)
        * 1.15;
    let labels: Vec<String> = weeks
        .iter()
        .map(|w| w.starts_on.to_datetime().format("%b %-d").to_string())
        .collect();
    let last = weeks.len().saturating_sub(1) as i32;
    Some(draw(WIDTH, 320, |root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0..last.max(1), 0.0..top)?;
        chart
            .configure_mesh()
            .x_labels(weeks.len())
            // Every other week named, so that the dates fit a phone's width.
            .x_label_formatter(&|i| {
                let from_last = last - *i;
                match labels.get(*i as usize) {
                    Some(label) if from_last % 2 == 0 => label.clone(),
                    _ => String::new(),
                }
            })
            .y_desc("hours")
            .y_label_formatter(&|h| format!("{h:.0}"))
            .label_style((FONT, 16).into_font().color(&INK))
            .axis_desc_style((FONT, 16).into_font().color(&INK))
            .light_line_style(WHITE)
            .draw()?;
        for (points, colour, name) in [(&first, BLUE, "first review"), (&merge, GREEN, "merge")] {
            // A dot per week with a median; lines only between consecutive weeks, so that a
            // week without one is a gap, not a slope.
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
            for run in points.chunk_by(|a, b| b.0 == a.0 + 1) {
                if run.len() > 1 {
                    chart.draw_series(LineSeries::new(
                        run.iter().copied(),
                        colour.stroke_width(3),
                    ))?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 16).into_font().color(&INK))
            .background_style(WHITE.mix(0.85))
            .border_style(INK.mix(0.3))
            .draw()?;
        Ok(())
    }))
}

/// How many waits fall in each of `WAIT_BUCKETS`.
pub fn wait_counts(waiting: &[Waiting]) -> [u32; WAIT_BUCKETS.len()] {
    let mut counts = [0; WAIT_BUCKETS.len()];
    for w in waiting {
        let i = WAIT_BUCKETS
            .iter()
            .position(|(_, below)| w.seconds < *below)
            .unwrap_or(WAIT_BUCKETS.len() - 1);
        counts[i] += 1;
    }
    counts
}

/// The current waits as a histogram over `WAIT_BUCKETS`, or `None` when nothing waits.
fn waiting_chart(waiting: &[Waiting]) -> Option<anyhow::Result<String>> {
    if waiting.is_empty() {
        return None;
    }
    let counts = wait_counts(waiting);
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let buckets = WAIT_BUCKETS.len() as u32;
    Some(draw(WIDTH, 280, |root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d((0..buckets - 1).into_segmented(), 0..most + most / 5 + 1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(WAIT_BUCKETS.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => WAIT_BUCKETS
                    .get(*i as usize)
                    .map(|(l, _)| (*l).to_owned())
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .y_desc("pull requests")
            .label_style((FONT, 16).into_font().color(&INK))
            .axis_desc_style((FONT, 16).into_font().color(&INK))
            .draw()?;
        // One series per bar: a histogram keeps its bars in a hash map, so several in one
        // series come out in no fixed order (and the page would not be the same bytes twice).
        for (i, n) in counts.iter().enumerate() {
            chart.draw_series(
                Histogram::vertical(&chart)
                    .style(AMBER.filled())
                    .margin(10)
                    .data([(i as u32, *n)]),
            )?;
        }
        Ok(())
    }))
}

/// The reviewers' load (the first `REVIEWERS_CHARTED`): reviews given (left) and PRs waiting on
/// them now (right) as horizontal bars, one row each, the most reviews at the top; `None` when
/// there is nobody.
fn reviewers_chart(reviewers: &[ReviewerLoad]) -> Option<anyhow::Result<String>> {
    if reviewers.is_empty() {
        return None;
    }
    let shown = &reviewers[..reviewers.len().min(REVIEWERS_CHARTED)];
    let n = shown.len() as u32;
    let names: Vec<String> = shown.iter().map(|r| shorten(&r.name, 18)).collect();
    // Row `i` (the i-th reviewer) is drawn at `n - 1 - i`, so the first is at the top.
    let row = move |i: usize| n - 1 - i as u32;
    let name_of = move |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(y) | SegmentValue::Exact(y) if *y < n => {
            names[(n - 1 - y) as usize].clone()
        }
        _ => String::new(),
    };
    let most_reviews = shown.iter().map(|r| r.reviews).max().unwrap_or(0).max(1);
    let most_waiting = shown.iter().map(|r| r.waiting).max().unwrap_or(0).max(1);
    let height = 70 + 30 * n;
    Some(draw(WIDTH, height, |root| {
        let (left, right) = root.split_horizontally(WIDTH * 62 / 100);
        let mut given = ChartBuilder::on(&left)
            .margin(8)
            .caption("reviews given", (FONT, 16).into_font().color(&INK))
            .x_label_area_size(30)
            .y_label_area_size(150)
            .build_cartesian_2d(0..most_reviews + 1, (0..n - 1).into_segmented())?;
        given
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(n as usize)
            .y_label_formatter(&name_of)
            .x_labels(4)
            .label_style((FONT, 16).into_font().color(&INK))
            .draw()?;
        // One series per bar, in order (see `waiting_chart`).
        for (i, r) in shown.iter().enumerate() {
            given.draw_series(
                Histogram::horizontal(&given)
                    .style(BLUE.filled())
                    .margin(5)
                    .data([(row(i), r.reviews)]),
            )?;
        }
        let mut waiting = ChartBuilder::on(&right)
            .margin(8)
            .caption("waiting on them now", (FONT, 16).into_font().color(&INK))
            .x_label_area_size(30)
            .y_label_area_size(8)
            .build_cartesian_2d(0..most_waiting + 1, (0..n - 1).into_segmented())?;
        waiting
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(n as usize)
            .y_label_formatter(&|_| String::new())
            .x_labels(4)
            .label_style((FONT, 16).into_font().color(&INK))
            .draw()?;
        for (i, r) in shown.iter().enumerate() {
            waiting.draw_series(
                Histogram::horizontal(&waiting)
                    .style(AMBER.filled())
                    .margin(5)
                    .data([(row(i), r.waiting)]),
            )?;
        }
        Ok(())
    }))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// An SVG of `width` × `height` units drawn by `paint` on a white background, as a string.
fn draw(
    width: u32,
    height: u32,
    paint: impl FnOnce(Area<'_>) -> Result<(), Box<dyn std::error::Error + '_>>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("filling the chart: {e}"))?;
        paint(root.clone()).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("finishing the chart: {e}"))?;
    }
    Ok(svg)
}

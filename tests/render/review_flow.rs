//! Issue 28, pinned: the weekly team report in every chat format, and the review-flow page's
//! HTML with its three charts, each from a fixed, hand-built `ReviewFlow` (a hostile title and a
//! hostile reviewer name in it), and both "no data" states.

use chrono::NaiveDate;
use pr_reminder::domain::analytics::{
    Group, ReviewFlow, ReviewerLoad, Rounds, Stat, Summary, Waiting, Week,
};
use pr_reminder::domain::Timestamp;
use pr_reminder::notify::weekly::{self, WeeklyFigures};
use pr_reminder::status::review_flow::{self, Asked};

use super::{pin, HOSTILE};

const H: i64 = 3600;
const D: i64 = 86_400;

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn stat(count: u32, median: i64, p90: i64) -> Stat {
    Stat {
        count,
        median_seconds: Some(median),
        p90_seconds: Some(p90),
    }
}

fn last_week() -> Summary {
    Summary {
        opened: 9,
        merged: 7,
        declined: 1,
        merged_under_approved: 1,
        time_to_first_review: stat(8, 4 * H + 10 * 60, 20 * H),
        time_to_approval: stat(7, 9 * H, 2 * D),
        time_to_merge: stat(7, D + 2 * H, 3 * D),
        rounds: Rounds {
            count: 8,
            median: Some(1),
            p90: Some(3),
        },
        reviewers_turn: stat(8, 10 * H, 2 * D),
        author_turn: stat(8, 5 * H, D),
        merge_turn: stat(8, H, 6 * H),
    }
}

fn four_weeks_before() -> Summary {
    Summary {
        opened: 31,
        merged: 25,
        declined: 3,
        time_to_first_review: stat(30, 6 * H, D),
        time_to_merge: stat(25, 2 * D, 5 * D),
        ..Summary::default()
    }
}

fn waiting() -> Vec<Waiting> {
    let w = |repository: &str, number: i64, title: &str, seconds: i64| Waiting {
        repository: repository.into(),
        number,
        title: title.into(),
        url: Some(format!(
            "https://bitbucket.org/{repository}/pull-requests/{number}"
        )),
        seconds,
    };
    vec![
        w("acme/api", 41, HOSTILE, 9 * D + 3 * H),
        w("acme/api", 57, "Retry the payment webhook", 4 * D + 6 * H),
        Waiting {
            url: None,
            ..w("PROJ/web", 12, "Dark mode", 2 * D + 5 * H)
        },
        w("acme/api", 60, "Bump serde", 26 * H),
        w("acme/api", 61, "Typo in README", 5 * H + 30 * 60),
        w("acme/api", 62, "Add a metric", 40 * 60),
    ]
}

fn reviewers() -> Vec<ReviewerLoad> {
    let r = |name: &str, reviews: u32, median: Option<i64>, waiting: u32| ReviewerLoad {
        reviewer: name.to_lowercase(),
        name: name.into(),
        reviews,
        median_response_seconds: median,
        waiting,
    };
    vec![
        r("Carol Reviewer", 7, Some(2 * H + 5 * 60), 3),
        r("<b>Bob</b> & @channel", 4, Some(5 * H), 1),
        r("Dee Dev", 1, Some(26 * H), 0),
        r("Eve Late", 1, Some(3 * D), 2),
        r("Frank Waited", 0, None, 4),
    ]
}

/// A flow over 28 days to Mon 7 Dec 2026 09:00 UTC with everything in it.
pub fn sample_flow() -> ReviewFlow {
    let weeks = (0..12)
        .map(|i| {
            let starts = NaiveDate::from_ymd_opt(2026, 9, 21).unwrap() + chrono::Days::new(7 * i);
            let quiet = i == 3;
            Week {
                starts_on: Timestamp::from_datetime(starts.and_hms_opt(0, 0, 0).unwrap().and_utc()),
                time_to_first_review: if quiet {
                    Stat::default()
                } else {
                    stat(5, (3 + (i as i64 * 7) % 9) * H, 30 * H)
                },
                time_to_merge: if quiet {
                    Stat::default()
                } else {
                    stat(4, (20 + (i as i64 * 13) % 40) * H, 4 * D)
                },
            }
        })
        .collect();
    ReviewFlow {
        since: at("2026-11-09T09:00:00Z"),
        until: at("2026-12-07T09:00:00Z"),
        working_hours_only: false,
        overall: last_week(),
        repositories: vec![
            Group {
                name: "PROJ/web".into(),
                summary: four_weeks_before(),
            },
            Group {
                name: "acme/api".into(),
                summary: last_week(),
            },
        ],
        rooms: vec![Group {
            name: "backend".into(),
            summary: last_week(),
        }],
        reviewers: reviewers(),
        weeks,
        waiting: waiting(),
    }
}

/// A flow with nothing in it (a fresh database).
pub fn empty_flow() -> ReviewFlow {
    ReviewFlow {
        since: at("2026-11-09T09:00:00Z"),
        until: at("2026-12-07T09:00:00Z"),
        working_hours_only: true,
        overall: Summary::default(),
        repositories: Vec::new(),
        rooms: Vec::new(),
        reviewers: Vec::new(),
        weeks: (0..12)
            .map(|i| Week {
                starts_on: Timestamp::from_datetime(
                    (NaiveDate::from_ymd_opt(2026, 9, 21).unwrap() + chrono::Days::new(7 * i))
                        .and_hms_opt(0, 0, 0)
                        .unwrap()
                        .and_utc(),
                ),
                time_to_first_review: Stat::default(),
                time_to_merge: Stat::default(),
            })
            .collect(),
        waiting: Vec::new(),
    }
}

#[test]
fn the_weekly_report_in_every_chat() {
    let (last, before, waiting, reviewers) =
        (last_week(), four_weeks_before(), waiting(), reviewers());
    let figures = WeeklyFigures {
        room: "backend",
        week_starts_on: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        last_week: &last,
        before: &before,
        waiting: &waiting,
        reviewers: &reviewers,
        page_url: Some("https://reminder.example.com/status/review-flow"),
    };
    pin("weekly_report", &weekly::render(&figures));

    // A quiet week in a room whose page address is not known: no median, nothing waits,
    // nobody reviewed; no link.
    let quiet = Summary::default();
    let figures = WeeklyFigures {
        last_week: &quiet,
        waiting: &[],
        reviewers: &[],
        page_url: None,
        ..figures
    };
    pin("weekly_report_quiet", &weekly::render(&figures));
}

#[test]
fn the_review_flow_page() {
    let html = review_flow::render(
        &sample_flow(),
        &Asked {
            since: Some("28d".into()),
            repository: None,
        },
    );
    assert!(!html.contains("<script"), "no script, hostile text inert");
    assert!(!html.contains("<b>Bob"), "the reviewer's name is text");
    for id in ["trend-chart", "waiting-chart", "reviewers-chart"] {
        let at = html
            .find(&format!("<figure class=\"chart\" id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}"));
        assert!(html[at..].contains("<svg"), "{id} is an SVG");
    }
    // The histogram's counts per bucket: < 4h 1, 4h-1d 1, 1-2d 1, 2-3d 1, 3-7d 1, > 7d 1.
    assert_eq!(review_flow::wait_counts(&waiting()), [1, 1, 1, 1, 1, 1]);
    // The same flow, the same bytes (the charts' bars in a fixed order).
    let again = review_flow::render(
        &sample_flow(),
        &Asked {
            since: Some("28d".into()),
            repository: None,
        },
    );
    assert_eq!(html, again);
    insta::assert_snapshot!("render__review_flow_page", html);

    let empty = review_flow::render(
        &empty_flow(),
        &Asked {
            since: None,
            repository: Some("acme/<none>".into()),
        },
    );
    assert!(empty.contains("<p class=\"empty\" id=\"no-data\">No data yet"));
    assert!(!empty.contains("<svg"), "no chart without data");
    assert!(empty.contains("acme/&lt;none&gt;"));
    insta::assert_snapshot!("render__review_flow_page_empty", empty);
}

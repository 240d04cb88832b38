//! Issue 28 where users see it: `GET /status/review-flow` (access as `GET /status`, its query,
//! the figures of real deliveries) and the weekly team report (posted once per room and week,
//! at the configured weekday and time in the configured zone, through the outbox), on both
//! databases.
//!
//! The histories (chosen dates; the clock stands at Mon 7 Dec 2026 07:59:59 UTC, 08:59:59 in
//! Berlin, one second before the report is due):
//! Bob and Carol are asked on each (the payload's `reviewers`).
//! - acme/api #1: opened Tue 1 Dec 09:00 UTC; Bob approves 13:00 (first review
//!   4h); merged Wed 2 Dec 09:00 (1d).
//! - acme/api #2: opened Tue 3 Nov 09:00; Carol asks for changes 15:00 (6h);
//!   merged Thu 5 Nov 09:00 (2d).
//! - acme/api #3: opened Fri 4 Dec 09:00; waits on them.
//! - web/site #4: opened Tue 1 Dec 10:00; Carol asks for changes 12:00 (2h).

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc, Weekday};
use pr_reminder::config::{SecretToken, Settings};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::MockServer;

use crate::helpers::{on_both, set_repository, spawn_on, App, ManualClock, On, Served};
use crate::lifecycle::pr_event;
use crate::sweep::{digests, fake_room, notify, utc};

pub const STATUS_TOKEN: &str = "review-flow-token-0123456789";

/// `[analytics] page_url`: where the weekly report links.
const PAGE: &str = "https://pr-reminder.example.com/status/review-flow";

/// Mon 7 Dec 2026 07:59:59 UTC: one second before the weekly report (Mon 09:00 in Berlin).
pub fn before_the_report() -> DateTime<Utc> {
    utc(2026, 12, 7, 7, 59) + Duration::seconds(59)
}

/// A snapshot of `repository` #`number`, opened at `created`, as of `updated`, with
/// `participants` (user, role, review state as of `updated`).
fn snapshot(
    repository: &str,
    number: i64,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    state: &str,
    participants: &[(&str, &str, Option<&str>)],
) -> Value {
    let mut body = pr_event(
        number,
        &updated.to_rfc3339(),
        state,
        &format!("Change {number}"),
        &format!("{number:012}"),
        participants,
    );
    body["pullrequest"]["created_on"] = json!(created.to_rfc3339());
    set_repository(&mut body, repository);
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{repository}/pull-requests/{number}"
    ));
    body
}

/// Delivers the four histories of the module's header, in order.
pub(crate) async fn seed(app: &impl Served) {
    let h = |d: u32, m: u32, hour: u32| utc(2026, m, d, hour, 0);
    let steps: Vec<(&str, Value)> = vec![
        // #2, in November.
        (
            "pullrequest:created",
            snapshot(
                "acme/api",
                2,
                h(3, 11, 9),
                h(3, 11, 9),
                "OPEN",
                &[("carol", "REVIEWER", None)],
            ),
        ),
        (
            "pullrequest:changes_request_created",
            snapshot(
                "acme/api",
                2,
                h(3, 11, 9),
                h(3, 11, 15),
                "OPEN",
                &[("carol", "REVIEWER", Some("changes_requested"))],
            ),
        ),
        (
            "pullrequest:fulfilled",
            snapshot(
                "acme/api",
                2,
                h(3, 11, 9),
                h(5, 11, 9),
                "MERGED",
                &[("carol", "REVIEWER", Some("changes_requested"))],
            ),
        ),
        // #1 and #4, in the week reported on.
        (
            "pullrequest:created",
            snapshot(
                "acme/api",
                1,
                h(1, 12, 9),
                h(1, 12, 9),
                "OPEN",
                &[("bob", "REVIEWER", None)],
            ),
        ),
        (
            "pullrequest:created",
            snapshot(
                "web/site",
                4,
                h(1, 12, 10),
                h(1, 12, 10),
                "OPEN",
                &[("carol", "REVIEWER", None)],
            ),
        ),
        (
            "pullrequest:changes_request_created",
            snapshot(
                "web/site",
                4,
                h(1, 12, 10),
                h(1, 12, 12),
                "OPEN",
                &[("carol", "REVIEWER", Some("changes_requested"))],
            ),
        ),
        (
            "pullrequest:approved",
            snapshot(
                "acme/api",
                1,
                h(1, 12, 9),
                h(1, 12, 13),
                "OPEN",
                &[("bob", "REVIEWER", Some("approved"))],
            ),
        ),
        (
            "pullrequest:fulfilled",
            snapshot(
                "acme/api",
                1,
                h(1, 12, 9),
                h(2, 12, 9),
                "MERGED",
                &[("bob", "REVIEWER", Some("approved"))],
            ),
        ),
        // #3 waits on Bob.
        (
            "pullrequest:created",
            snapshot(
                "acme/api",
                3,
                h(4, 12, 9),
                h(4, 12, 9),
                "OPEN",
                &[("bob", "REVIEWER", None)],
            ),
        ),
    ];
    for (key, body) in &steps {
        app.processed(key, body).await;
    }
}

/// Rooms backend (acme/*) and web (web/*) on `fake` (HipChat), the weekly report on Mondays
/// at 09:00 in Berlin linking to `PAGE`, the status token; `adjust` after.
fn settings(fake: &MockServer, adjust: impl FnOnce(&mut Settings)) -> impl FnOnce(&mut Settings) {
    let notify = notify(fake);
    move |s| {
        s.notify = notify;
        s.sweep.calendar.tz = "Europe/Berlin".parse().unwrap();
        s.analytics.weekly_report = Some((Weekday::Mon, NaiveTime::from_hms_opt(9, 0, 0).unwrap()));
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN)));
        s.analytics.page_url = Some(PAGE.to_owned());
        adjust(s);
    }
}

/// The app on `on`'s database at `before_the_report()` (frozen), with the histories delivered.
pub(crate) async fn flow_app(on: On, fake: &MockServer, clock: &ManualClock) -> Option<App> {
    let app = spawn_on(on, "review_flow", settings(fake, |_| {}), clock.clock()).await?;
    seed(&app).await;
    Some(app)
}

/// `GET /status/review-flow{query}` with `authorization`: (status, body).
async fn page(app: &impl Served, query: &str, authorization: Option<&str>) -> (u16, String) {
    let mut request = app
        .client()
        .get(format!("{}/status/review-flow{query}", app.address()));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The table that starts with `opening` (`<table id="rooms">`), to its end.
fn table<'a>(html: &'a str, opening: &str) -> &'a str {
    crate::status::between(html, opening, "</table>")
}

/// The cells of the table row whose first cell is `first`, as text.
fn row(html: &str, first: &str) -> Vec<String> {
    let at = html
        .find(&format!("\">{first}</td>"))
        .unwrap_or_else(|| panic!("no row {first} in:\n{html}"));
    let start = html[..at].rfind("<tr").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    html[start..end]
        .split("<td")
        .skip(1)
        .map(|cell| {
            let text = &cell[cell.find('>').unwrap() + 1..];
            text[..text.find("</td>").unwrap()].to_owned()
        })
        .collect()
}

on_both!(
    the_page_needs_the_token_reads_its_query_and_shows_the_figures,
    the_weekly_report_is_posted_once_per_room_and_week_at_its_time,
    the_cli_queues_the_weekly_report_once_beside_the_service,
);

async fn the_page_needs_the_token_reads_its_query_and_shows_the_figures(on: On) {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(before_the_report());
    let Some(app) = flow_app(on, &fake, &clock).await else {
        return;
    };
    let bearer = format!("Bearer {STATUS_TOKEN}");
    // As /status: 401 with a Basic challenge without the token, or with a wrong one.
    let response = app
        .client()
        .get(format!("{}/status/review-flow", app.address()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"pr-reminder status\", charset=\"UTF-8\""
    );
    assert_eq!(
        page(&app, "", Some("Bearer nope-nope-nope-nope")).await.0,
        401
    );

    // A query it does not read: 400, saying what it reads.
    for (query, says) in [
        ("?since=yesterday", "since: `yesterday` is neither a span nor a date; expected a span such as 28d"),
        ("?since=28x", "since: `28x`: unknown unit `x`"),
        ("?sinse=28d", "unknown parameter \"sinse\": this page reads since (28d, 12h, 2w, or an RFC 3339 date-time) and repository"),
        ("?since=28d&since=4w", "since is given twice"),
        ("?repository=", "repository must be a repository's full name"),
    ] {
        let (status, body) = page(&app, query, Some(&bearer)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.starts_with(says), "{query}: {body}");
    }

    // The default window (28 days to now): #1, #3 and #4; #2 is older.
    let (status, html) = page(&app, "", Some(&bearer)).await;
    assert_eq!(status, 200, "{html}");
    // #1 was merged with Bob's approval alone, of the 2 required.
    assert!(
        html.contains(
            "<p class=\"counts\">3 opened, 1 merged, 0 declined, <strong>1 merged with fewer \
             approvals than required</strong>.</p>"
        ),
        "{html}"
    );
    let figures = table(&html, "<table class=\"figures\">");
    assert_eq!(
        row(figures, "To first review"),
        ["To first review", "3h 0m", "4h 0m", "2"]
    );
    assert_eq!(
        row(figures, "To merge"),
        ["To merge", "1d 0h", "1d 0h", "1"]
    );
    // Per room and repository: each its own PRs.
    let repositories = table(&html, "<table id=\"repositories\">");
    let rooms = table(&html, "<table id=\"rooms\">");
    let (api, web) = (
        ["2", "1", "0", "4h 0m / 4h 0m", "1d 0h / 1d 0h"],
        ["1", "0", "0", "2h 0m / 2h 0m", "– / –"],
    );
    assert_eq!(row(repositories, "acme/api")[1..], api);
    assert_eq!(row(repositories, "web/site")[1..], web);
    assert_eq!(row(rooms, "backend")[1..], api);
    assert_eq!(row(rooms, "web")[1..], web);
    // Bob reviewed #1 in 4h; Carol #4 in 2h. Both are asked on #3 (the payload's reviewers),
    // which waits on them.
    let reviewers = table(&html, "<table id=\"reviewer-table\">");
    assert_eq!(
        row(reviewers, "Bob Reviewer"),
        ["Bob Reviewer", "1", "4h 0m", "1"]
    );
    assert_eq!(
        row(reviewers, "Carol Reviewer"),
        ["Carol Reviewer", "1", "2h 0m", "1"]
    );
    // #3 has waited since Fri 09:00: 2 days 22 h 59 min.
    assert!(
        html.contains("<a href=\"https://bitbucket.org/acme/api/pull-requests/3\">#3 Change 3</a>"),
        "{html}"
    );
    assert!(
        html.contains("<td data-label=\"Waiting for\">2d 22h</td>"),
        "{html}"
    );
    for chart in ["trend-chart", "waiting-chart", "reviewers-chart"] {
        assert!(
            html.contains(&format!(
                "<figure class=\"chart\" id=\"{chart}\" role=\"img\""
            )),
            "{chart}"
        );
    }

    // Five weeks back take #2 in: first reviews 2h, 4h, 6h; merges 1d and 2d.
    let (_, html) = page(&app, "?since=5w", Some(&bearer)).await;
    let figures = table(&html, "<table class=\"figures\">");
    assert_eq!(
        row(figures, "To first review"),
        ["To first review", "4h 0m", "6h 0m", "3"]
    );
    assert_eq!(
        row(figures, "To merge"),
        ["To merge", "1d 12h", "2d 0h", "2"]
    );

    // One repository.
    let (_, html) = page(&app, "?repository=web/site", Some(&bearer)).await;
    assert!(
        html.contains(", repository <strong>web/site</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<p class=\"counts\">1 opened, 0 merged, 0 declined.</p>"),
        "{html}"
    );
    assert!(!html.contains("acme/api"), "{html}");

    // A repository with nothing: no data yet, no chart.
    let (status, html) = page(&app, "?repository=%3Cnone%3E/x", Some(&bearer)).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"no-data\">No data yet"), "{html}");
    assert!(html.contains("<strong>&lt;none&gt;/x</strong>"), "{html}");
    assert!(!html.contains("<svg"), "{html}");

    // The status page links to it.
    let (_, status_page) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert!(
        status_page.contains("<a href=\"status/review-flow\">The review flow in numbers</a>"),
        "{status_page}"
    );
}

/// With no status token the page does not exist (404), as /status.
#[tokio::test]
async fn without_a_status_token_the_page_does_not_exist() {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(before_the_report());
    let Some(app) = spawn_on(
        On::Sqlite,
        "review_flow_off",
        settings(&fake, |s| s.monitoring.status_token = None),
        clock.clock(),
    )
    .await
    else {
        unreachable!("SQLite always runs");
    };
    assert_eq!(page(&app, "", None).await.0, 404);
    assert_eq!(page(&app, "?since=nonsense", None).await.0, 404);
}

/// The reports' messages (HipChat HTML) per room, in order of arrival.
fn reports(messages: &[(String, Value)]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|(room, body)| (room.clone(), body["message"].as_str().unwrap().to_owned()))
        .collect()
}

async fn the_weekly_report_is_posted_once_per_room_and_week_at_its_time(on: On) {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(before_the_report());
    let Some(app) = flow_app(on, &fake, &clock).await else {
        return;
    };
    // Not before: the schedule waits for Mon 09:00 in Berlin, 08:00 UTC.
    let due = utc(2026, 12, 7, 8, 0);
    let started = std::time::Instant::now();
    while !clock.waits().contains(&due) {
        assert!(
            started.elapsed() < crate::fake_chat::PATIENCE,
            "{:?}",
            clock.waits()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.count_rows("SELECT count(*) FROM weekly_reports").await,
        0
    );
    assert!(
        fake.received_requests().await.unwrap().is_empty(),
        "nothing before 09:00"
    );

    // At 09:00 each room gets last week's figures of its own PRs.
    clock.set(due);
    let messages = reports(&digests(&fake, 2).await);
    let backend = messages.iter().find(|(room, _)| room == "backend").unwrap();
    let web = messages.iter().find(|(room, _)| room == "web").unwrap();
    assert_eq!(
        backend.1,
        "<b>Review flow, week of Mon 30 Nov to Sun 6 Dec 2026</b> (backend)<br>\
         Median times: first review 4h 0m (4 weeks before: 6h 0m), merge 1d 0h (4 weeks before: 2d 0h).<br>\
         2 opened, 1 merged, 0 declined, 1 merged with fewer approvals than required.<br>\
         <b>Waiting longest for review</b><br>\
         • <a href=\"https://bitbucket.org/acme/api/pull-requests/3\">Change 3</a> (acme/api #3) · waiting 2d 23h<br>\
         <b>Reviewed most</b><br>\
         • Bob Reviewer · 1 review, median response 4h 0m<br>\
         <a href=\"https://pr-reminder.example.com/status/review-flow\">All the figures</a>",
    );
    assert_eq!(
        web.1,
        "<b>Review flow, week of Mon 30 Nov to Sun 6 Dec 2026</b> (web)<br>\
         Median times: first review 2h 0m (4 weeks before: none), merge none (4 weeks before: none).<br>\
         1 opened, 0 merged, 0 declined.<br>\
         Nothing waits for review now.<br>\
         <b>Reviewed most</b><br>\
         • Carol Reviewer · 1 review, median response 2h 0m<br>\
         <a href=\"https://pr-reminder.example.com/status/review-flow\">All the figures</a>",
    );
    let rows: Vec<(String, String)> = app
        .query_rows("SELECT room, week_starts_on FROM weekly_reports ORDER BY room")
        .await;
    let week = |room: &str, day: &str| (room.to_owned(), day.to_owned());
    assert_eq!(
        rows,
        [week("backend", "2026-11-30"), week("web", "2026-11-30")]
    );

    // Run again in the same week (a restart at 10:00, beside the running one): nothing more.
    let later = ManualClock::frozen(utc(2026, 12, 7, 9, 0));
    let again = app.again(settings(&fake, |_| {}), later.clock()).await;
    let next = utc(2026, 12, 14, 8, 0);
    let started = std::time::Instant::now();
    while !later.waits().contains(&next) {
        assert!(
            started.elapsed() < crate::fake_chat::PATIENCE,
            "{:?}",
            later.waits()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        fake.received_requests().await.unwrap().len(),
        2,
        "still two messages"
    );
    assert_eq!(
        again
            .count_rows("SELECT count(*) FROM outbox WHERE kind = 'report'")
            .await,
        2
    );

    // The next Monday at 09:00 in Berlin: the week of 7 December, once more per room.
    assert!(clock.waits().contains(&next), "{:?}", clock.waits());
    clock.set(next);
    let messages = reports(&digests(&fake, 4).await);
    assert!(
        messages[2..]
            .iter()
            .all(|(_, m)| m.starts_with("<b>Review flow, week of Mon 7 Dec to Sun 13 Dec 2026</b>")),
        "{messages:?}"
    );
    assert_eq!(
        app.count_rows("SELECT count(*) FROM weekly_reports").await,
        4
    );
}

/// `pr-reminder weekly-report` beside the running service, on the same database and rooms: the
/// CLI queues the report of each room with pull requests, which the service sends; a second run
/// in the same week queues nothing and says why. The CLI reads the wall clock, so the report is
/// due two minutes before now (in UTC) and the history is dated from now.
async fn the_cli_queues_the_weekly_report_once_beside_the_service(on: On) {
    let fake = fake_room().await;
    let rooms = notify(&fake);
    let Some(app) = spawn_on(
        on,
        "review_flow_cli",
        move |s| s.notify = rooms,
        pr_reminder::clock::Clock::system(),
    )
    .await
    else {
        return;
    };
    // acme/api #1, asked of Bob three days ago, approved two hours later: backend has figures,
    // web none.
    let now = Utc::now();
    let opened = now - Duration::days(3);
    for (key, updated, review) in [
        ("pullrequest:created", opened, None),
        (
            "pullrequest:approved",
            opened + Duration::hours(2),
            Some("approved"),
        ),
    ] {
        let body = snapshot(
            "acme/api",
            1,
            opened,
            updated,
            "OPEN",
            &[("bob", "REVIEWER", review)],
        );
        app.processed(key, &body).await;
    }

    let due = now - Duration::minutes(2);
    let week =
        due.date_naive() - Duration::days(i64::from(due.weekday().num_days_from_monday()) + 7);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pr-reminder.toml");
    let url = |name: &str| {
        format!(
            "{}/v2/room/{name}/notification?auth_token=t0k3n",
            fake.uri()
        )
    };
    std::fs::write(
        &config,
        format!(
            r#"[sweep]
timezone = "UTC"

[analytics]
weekly_report = "{}"

[[rooms]]
name = "backend"
hipchat_url = "{}"

[[rooms]]
name = "web"
hipchat_url = "{}"

[[routes]]
repositories = ["acme/*"]
room = "backend"

[[routes]]
repositories = ["web/*"]
room = "web"
"#,
            due.format("%a %H:%M").to_string().to_lowercase(),
            url("backend"),
            url("web"),
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let database = app.database();
    let run_cli = || async {
        let (code, stdout, stderr) = crate::helpers::run_binary(
            &database,
            &["--config", &config, "weekly-report", "--json"],
        )
        .await;
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(stderr, "", "nothing on stderr");
        let report: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(
            report["week_starts_on"],
            week.format("%Y-%m-%d").to_string(),
            "{report}"
        );
        report["rooms"].clone()
    };

    assert_eq!(
        run_cli().await,
        json!([
            {"room": "backend", "status": "queued"},
            {
                "room": "web",
                "status": "skipped",
                "reason": "no pull request of its repositories open now or in the last five weeks"
            },
        ])
    );
    let messages = reports(&digests(&fake, 1).await);
    assert_eq!(messages[0].0, "backend");
    let heading = format!("<b>Review flow, week of {}", week.format("%a %-d %b"));
    assert!(messages[0].1.starts_with(&heading), "{messages:?}");
    // No [analytics] page_url in this configuration: no link.
    assert!(
        !messages[0].1.contains("<a href=\"https://pr-reminder"),
        "{messages:?}"
    );

    // Again in the same week: nothing more.
    assert_eq!(
        run_cli().await,
        json!([
            {"room": "backend", "status": "skipped", "reason": "queued already this week"},
            {
                "room": "web",
                "status": "skipped",
                "reason": "no pull request of its repositories open now or in the last five weeks"
            },
        ])
    );
    assert_eq!(digests(&fake, 1).await.len(), 1, "nothing more was posted");
    let rows: Vec<(String, String)> = app
        .query_rows("SELECT room, week_starts_on FROM weekly_reports")
        .await;
    assert_eq!(
        rows,
        [("backend".to_owned(), week.format("%Y-%m-%d").to_string())]
    );
}

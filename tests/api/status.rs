//! `GET /status`: the page's content and order (per room and repository, oldest first; drafts,
//! snoozed and waiting-on-author apart; ages red past the threshold), hostile titles escaped, the
//! chart's counts, the health tables, and the three ways in (demo mode open, token as Bearer or
//! Basic password, no token 404).

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use pr_reminder::config::{NotifySettings, Room, SecretToken, Settings, SignaturePolicy, Sink};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

use crate::fake_chat::Fake;
use crate::helpers::{
    on_both, post_webhook, route, set_repository, spawn_app_with, spawn_on, uuid_like, App,
    ManualClock, On, Served, SECRET,
};
use crate::lifecycle::{key_of, pr_event};
use pr_reminder::signature::sign;

pub const STATUS_TOKEN: &str = "status-token-0123456789";
pub const HOSTILE: &str = "<script>alert(1)</script> & \"co\"";
const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;";
/// The web room's chat refuses, with markup in its answer.
const REFUSAL: &str = "<b>no such room</b>";

/// The instant the seeded app's clock starts at (it then runs).
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// A PR event of `repository` opened at `created_on`.
fn pr(repository: &str, number: i64, created_on: &str, title: &str) -> Value {
    let mut body = pr_event(
        number,
        "2026-11-24T08:59:00.000000+00:00",
        "OPEN",
        title,
        &format!("{number:012}"),
        &[],
    );
    set_repository(&mut body, repository);
    body["pullrequest"]["created_on"] = json!(created_on);
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{repository}/pull-requests/{number}"
    ));
    body
}

fn with_participants(mut body: Value, participants: &[(&str, &str)]) -> Value {
    let users = crate::helpers::own_fixture("users.json");
    body["pullrequest"]["participants"] = participants
        .iter()
        .map(|(user, state)| {
            json!({
                "type": "participant", "user": users[*user], "role": "REVIEWER",
                "approved": *state == "approved", "state": state,
                "participated_on": "2026-11-24T08:00:00.000000+00:00",
            })
        })
        .collect();
    body
}

/// The seeded app's settings: rooms `payments` (console) and `web` (Slack at `web_url`), each
/// with its repository, and the status token.
fn seeded_settings(web_url: String) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.notify = NotifySettings {
            rooms: vec![
                Room {
                    name: "payments".into(),
                    sink: Sink::Console,
                },
                Room {
                    name: "web".into(),
                    sink: Sink::Slack(SecretString::from(web_url)),
                },
            ],
            routes: vec![
                route(&["acme/payments-api"], "payments"),
                route(&["acme/web"], "web"),
            ],
            coalesce: Duration::from_millis(50),
            max_attempts: 1,
            timeout: Duration::from_secs(2),
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            room_rate_per_minute: Some(6000),
        };
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN)));
    }
}

/// The fake chat of the web room, which refuses every message, and the room's URL on it.
async fn refusing_chat() -> (Fake, String) {
    let fake = Fake::start(vec![ResponseTemplate::new(404).set_body_string(REFUSAL)]).await;
    let web_url = fake.url("/services/T/B/web-secret");
    (fake, web_url)
}

/// Delivers the seeded PRs (see `seeded_app`) and one delivery refused for its missing event key.
pub(crate) async fn seed(app: &impl Served) {
    let repo = "acme/payments-api";
    let mut draft = pr(repo, 4, "2026-11-24T03:00:00+00:00", "Draft one");
    draft["pullrequest"]["draft"] = json!(true);
    let bodies = [
        pr(repo, 1, "2026-11-23T09:00:00+00:00", "Newer one"),
        with_participants(
            pr(repo, 2, "2026-11-19T09:00:00+00:00", HOSTILE),
            &[("bob", "approved")],
        ),
        with_participants(
            pr(repo, 3, "2026-11-22T09:00:00+00:00", "Needs work"),
            &[("carol", "changes_requested")],
        ),
        draft,
        pr(repo, 5, "2026-11-21T10:00:00+00:00", "WIP: later"),
        pr(repo, 6, "2026-11-18T09:00:00+00:00", "Snoozed one"),
        pr("acme/web", 7, "2026-11-24T08:00:00+00:00", "Web one"),
    ];
    for body in &bodies {
        app.processed("pullrequest:created", body).await;
    }
    // Signed, so that it is refused for its missing event key.
    let refused = post_webhook(
        app.client(),
        app.address(),
        &[
            ("X-Request-UUID", &uuid_like("status")),
            ("X-Hub-Signature", &sign(SECRET, b"{}")),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
}

/// The app the page tests and the browser test read: rooms `payments` (console) and `web` (a
/// chat that refuses), a status token, and these PRs at `start()`:
/// - acme/payments-api #1 (1 day), #2 hostile title, approved by Bob (5 days: red), #3 Carol
///   asks for changes (2 days), #4 a draft (6 h), #5 "WIP: ..." (2 d 23 h), #6 snoozed (6 days);
/// - acme/web #7 (1 h), whose message the web room refuses;
/// - one refused delivery (no `X-Event-Key`).
///
/// On `on`'s database (a fresh one on PostgreSQL); `None` on PostgreSQL without a test server.
pub async fn seeded_app(on: On) -> Option<(App, Fake)> {
    let (fake, web_url) = refusing_chat().await;
    let clock = ManualClock::running(start());
    let app = spawn_on(on, "status", seeded_settings(web_url), clock.clock()).await?;
    seed(&app).await;
    app.wait_for_count("SELECT count(*) FROM deliveries", 8)
        .await;

    // Bob snoozes #6 for a day (as `/reviews snooze` records it).
    app.execute(&format!(
        "INSERT INTO snoozes (user_key, repository_key, number, until, created_at)
         SELECT '{}', repository_key, 6, '2026-11-25T09:00:00.000000Z', '2026-11-24T09:00:00.000000Z'
           FROM repositories WHERE full_name = 'acme/payments-api'",
        key_of("bob").replace('\'', "''")
    ))
    .await;

    // The web room refused #7's message for good.
    fake.wait_for_hits(1).await;
    app.wait_for_count("SELECT count(*) FROM outbox WHERE state = 'failed'", 1)
        .await;
    Some((app, fake))
}

async fn get_status(app: &impl Served, authorization: Option<String>) -> reqwest::Response {
    let mut request = app.client().get(format!("{}/status", app.address()));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap()
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The text between the first `from` and the next `to` after it.
pub(crate) fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in:\n{text}"));
    let rest = &text[start..];
    let end = rest[from.len()..]
        .find(to)
        .map_or(rest.len(), |i| i + from.len());
    &rest[..end]
}

/// The PR numbers of the rows in `html`, in order.
pub(crate) fn rows(html: &str) -> Vec<i64> {
    html.split("<tr class=\"pr\" data-number=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

on_both!(the_page_lists_what_waits_oldest_first_with_everything_apart_and_escaped);

/// The seeded app's page (see `seeded_app`), read from either database: its headers, no script,
/// the lists and their order, the chart's age buckets, the health tables, rooms by name.
async fn the_page_lists_what_waits_oldest_first_with_everything_apart_and_escaped(on: On) {
    let Some((app, _fake)) = seeded_app(on).await else {
        return;
    };
    let response = get_status(&app, Some(format!("Bearer {STATUS_TOKEN}"))).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    );
    let html = response.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        !html.contains("<script"),
        "no script, and the hostile title is text: {html}"
    );

    assert_seeded_page(&html);
    // Which replica sends each room (room leases) is PostgreSQL's alone: on SQLite one process
    // sends every room (`postgres::status_page` reads that table).
    assert_eq!(
        html.contains("<table id=\"leases\">"),
        on == On::Postgres,
        "the leases table on {on:?}"
    );

    // Rooms by name; in each, repositories by name.
    let payments = between(&html, "<h3>Room payments</h3>", "<h3>Room ");
    assert!(html.find("Room payments").unwrap() < html.find("Room web").unwrap());
    assert!(
        payments.contains("<h4>acme/payments-api</h4>"),
        "{payments}"
    );
    assert!(!payments.contains("acme/web"), "{payments}");
}

/// The seeded app's page (see `seeded_app`): its lists and their order, the rows' cells, the
/// chart's age buckets, and the health tables.
fn assert_seeded_page(html: &str) {
    let payments = between(html, "<h3>Room payments</h3>", "<h3>Room ");
    let web = between(html, "<h3>Room web</h3>", "<h2 id=\"chart\">");

    // Waiting for review, oldest first; then on the author; then drafts; then snoozed.
    let review = between(payments, "<table class=\"prs waiting-review\">", "</table>");
    let author = between(payments, "<table class=\"prs waiting-author\">", "</table>");
    let drafts = between(payments, "<table class=\"prs drafts\">", "</table>");
    let snoozed = between(payments, "<table class=\"prs snoozed\">", "</table>");
    assert_eq!(rows(review), [2, 1]);
    assert_eq!(rows(author), [3]);
    assert_eq!(rows(drafts), [5, 4]);
    assert_eq!(rows(snoozed), [6]);
    assert_eq!(rows(payments), [2, 1, 3, 5, 4, 6], "the order of the lists");
    assert_eq!(rows(web), [7]);

    // Whose turn (issue 23): each row's turn, and who the waiting PRs wait on.
    let people = between(html, "<h2 id=\"people\">", "<h2 id=\"chart\">");
    let person = |name: &str, waiting: usize, oldest: &str| {
        format!(
            "<tr><td data-label=\"Person\">{name}</td>\
             <td data-label=\"Waiting on them\">{waiting}</td>\
             <td data-label=\"Oldest\">{oldest}</td></tr>"
        )
    };
    assert_eq!(
        between(people, "<tbody>", "</tbody>"),
        format!(
            "<tbody>{}{}{}",
            person("Carol Reviewer", 3, "5d"),
            person("Bob Reviewer", 2, "1d"),
            person("Alice Author", 1, "1h")
        ),
        "Carol owes #1, #2 and #7; Bob #1 and #7 (he approved #2); #3 waits on Alice"
    );
    let turn = |table: &str, n: i64| {
        let row = between(table, &format!("data-number=\"{n}\""), "</tr>");
        between(row, "<td data-label=\"Turn\">", "</td>").to_owned()
    };
    assert_eq!(
        turn(review, 2),
        "<td data-label=\"Turn\">reviewers: Carol Reviewer <span class=\"muted\">for 5d</span>"
    );
    assert_eq!(
        turn(review, 1),
        "<td data-label=\"Turn\">reviewers: Bob Reviewer, Carol Reviewer \
         <span class=\"muted\">for 1d</span>"
    );
    assert!(
        turn(author, 3).starts_with(
            "<td data-label=\"Turn\">author <span class=\"muted\">(changes requested)</span>"
        ),
        "{}",
        turn(author, 3)
    );

    // #2: link, escaped title, author, 1/2 approvals by Bob, no changes requested, red age.
    let two = between(review, "data-number=\"2\"", "</tr>");
    assert!(
        two.contains(&format!(
            "<a href=\"https://bitbucket.org/acme/payments-api/pull-requests/2\">#2 {HOSTILE_ESCAPED}</a>"
        )),
        "{two}"
    );
    assert!(
        two.contains("<td data-label=\"Author\">Alice Author</td>"),
        "{two}"
    );
    assert!(
        two.contains(
            "<td data-label=\"Approvals\">1/2 <span class=\"muted\">by Bob Reviewer</span></td>"
        ),
        "{two}"
    );
    assert!(
        two.contains("<td data-label=\"Age\" class=\"age late\">5d</td>"),
        "{two}"
    );
    // #1 is a day old: under the 3-day threshold, not red.
    let one = between(review, "data-number=\"1\"", "</tr>");
    assert!(
        one.contains("<td data-label=\"Age\" class=\"age\">1d</td>"),
        "{one}"
    );
    assert!(
        one.contains("<td data-label=\"Approvals\">0/2</td>"),
        "{one}"
    );
    // #3: Carol asks for changes.
    let three = between(author, "data-number=\"3\"", "</tr>");
    assert!(
        three.contains("<td data-label=\"Changes requested\">Carol Reviewer</td>"),
        "{three}"
    );
    // #5 is 2 d 23 h old: not red.
    assert!(drafts.contains("class=\"age\">2d 23h</td>"), "{drafts}");

    // The chart: open PRs per repository by age (every open PR, drafts and snoozed too).
    let chart = between(html, "<svg id=\"age-chart\"", "</svg>");
    for title in [
        "<title>acme/payments-api: 1 under 1 day</title>",
        "<title>acme/payments-api: 3 1-3 days</title>",
        "<title>acme/payments-api: 2 over 3 days</title>",
        "<title>acme/web: 1 under 1 day</title>",
    ] {
        assert!(chart.contains(title), "{title} in {chart}");
    }
    assert_eq!(chart.matches("<g class=\"bar\">").count(), 2, "{chart}");

    // Health: the last Cloud delivery (the refused one, which came last), refusals of the day
    // with their reason, the failed message with its (escaped) error.
    let deliveries = between(html, "<table id=\"deliveries\">", "</table>");
    assert!(
        deliveries.contains("<td>Bitbucket Cloud</td>"),
        "{deliveries}"
    );
    assert!(
        deliveries.contains("<td class=\"rejected\">rejected</td>"),
        "{deliveries}"
    );
    assert!(!deliveries.contains("Data Center"), "{deliveries}");
    let refusals = between(html, "<table id=\"refusals\">", "</table>");
    assert!(
        refusals.contains(
            "<td class=\"rejected\">missing or unreadable X-Event-Key header</td><td>1</td>"
        ),
        "{refusals}"
    );
    let failed = between(html, "<table id=\"failed\">", "</table>");
    assert!(
        failed.contains("<td>web</td><td>acme/web #7</td><td>1</td>"),
        "{failed}"
    );
    assert!(
        failed.contains("HTTP 404 Not Found: &lt;b&gt;no such room&lt;/b&gt;"),
        "{failed}"
    );
    assert!(!html.contains("web-secret"), "no chat URL on the page");
    assert!(html.contains("No sweep has run yet."), "{html}");
    assert!(html.contains("No Bitbucket site is configured"), "{html}");
}

#[tokio::test]
async fn the_token_opens_the_page_as_bearer_or_basic_password_and_nothing_else_does() {
    let app = spawn_app_with(|s| {
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN)));
    })
    .await;
    let challenge = "Basic realm=\"pr-reminder status\", charset=\"UTF-8\"";
    for refused in [
        None,
        Some("Bearer wrong-token-0123456789".to_owned()),
        Some(basic("status", "wrong-token-0123456789")),
        Some(basic(STATUS_TOKEN, "")),
        Some(format!("Token {STATUS_TOKEN}")),
        Some("Basic not-base64!".to_owned()),
    ] {
        let response = get_status(&app, refused.clone()).await;
        assert_eq!(response.status(), 401, "{refused:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            challenge,
            "{refused:?}"
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains("pr-reminder status</title>"), "{body}");
    }
    for accepted in [
        format!("Bearer {STATUS_TOKEN}"),
        basic("status", STATUS_TOKEN),
        basic("anyone", STATUS_TOKEN),
    ] {
        let response = get_status(&app, Some(accepted.clone())).await;
        assert_eq!(response.status(), 200, "{accepted}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("<h1>pr-reminder status</h1>"));
    }
}

/// Without a token the page is off (404), and says how to turn it on.
#[tokio::test]
async fn without_a_token_the_page_is_off_and_says_how_to_turn_it_on() {
    let app = spawn_app_with(|_| {}).await;
    let response = get_status(&app, Some(format!("Bearer {STATUS_TOKEN}"))).await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = response.text().await.unwrap();
    for says in [
        "<h1>The status page is off</h1>",
        "<code>openssl rand -hex 32</code>",
        "<code>PR_REMINDER_STATUS_TOKEN</code>",
        "<code>status_token</code> under <code>[monitoring]</code>",
        "a password (the token)",
    ] {
        assert!(html.contains(says), "{says}: {html}");
    }
}

#[tokio::test]
async fn demo_mode_shows_the_page_without_a_token() {
    let app = spawn_app_with(|s| s.signature = SignaturePolicy::Demo).await;
    let response = get_status(&app, None).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<h3>Room console</h3><p class=\"clear\">Nothing waits.</p>"),
        "{html}"
    );
    assert!(html.contains("No open pull requests."), "{html}");
    assert!(html.contains("No delivery has arrived yet."), "{html}");
}

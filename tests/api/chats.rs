//! Microsoft Teams and Google Chat rooms, and HipChat and Slack finished, against fake servers.
//!
//! Every fake (wiremock) records each request with its headers and the instant it arrived, and
//! answers from a script (the last answer repeats), so a test can say "429, then 200" and measure
//! the gap. Durations are small (coalescing 200 ms, first retry 50 ms, a high room rate) and
//! every wait is a bounded poll.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, TimeZone, Utc};
use pr_reminder::config::{NotifySettings, Room, Route, SecretToken, Settings, Sink, UserMapping};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

use crate::fake_chat::{hipchat_ok, Answer, Fake, Hit, PATIENCE};
use crate::helpers::{
    digest_only_route, route, set_repository, spawn_app_with, spawn_app_with_clock, uuid_like,
    ManualClock, Served, TestApp,
};
use crate::lifecycle::{pr_event, REPO};

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");
/// A Teams Workflows trigger URL: the secret is `sig`.
const TEAMS_PATH: &str = "/workflows/0a1b2c/triggers/manual/paths/invoke";
const TEAMS_QUERY: &str =
    "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETSIG";
/// A Google Chat incoming webhook: the secrets are `key` and `token`.
const CHAT_PATH: &str = "/v1/spaces/AAAAbcd/messages";
const CHAT_QUERY: &str = "key=SECRETKEY&token=SECRETTOKEN";
const HIPCHAT_PATH: &str = "/v2/room/Payments/notification";
const SLACK_PATH: &str = "/services/T000/B000/XXXX";
/// The fixtures' repository uuid: the repository key is `cloud/{uuid}`.
const REPO_KEY: &str = "cloud/{5e1f0a77-9d0b-4c1e-8f53-0123456789ab}";
/// `REPO_KEY` percent-encoded as a query value.
const REPO_KEY_ENCODED: &str = "cloud%2F%7B5e1f0a77-9d0b-4c1e-8f53-0123456789ab%7D";
const REPLY: &str = "messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD";
const SWEEP_TOKEN: &str = "sweep-token-0123456789abcdef";

/// What a Teams workflow answers: 202 Accepted, no body at all.
fn teams_ok() -> ResponseTemplate {
    ResponseTemplate::new(202)
}

/// What Google Chat answers: the created message.
fn chat_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"name": "spaces/AAAAbcd/messages/x.y"}))
}

// ---------------------------------------------------------------------------------------------
// Settings.

fn teams(name: &str, fake: &Fake) -> Room {
    Room {
        name: name.into(),
        sink: Sink::Teams(SecretString::from(fake.url_with(TEAMS_PATH, TEAMS_QUERY))),
    }
}

fn google_chat(name: &str, fake: &Fake) -> Room {
    Room {
        name: name.into(),
        sink: Sink::GoogleChat(SecretString::from(fake.url_with(CHAT_PATH, CHAT_QUERY))),
    }
}

fn hipchat(name: &str, fake: &Fake) -> Room {
    Room {
        name: name.into(),
        sink: Sink::HipChat(SecretString::from(
            fake.url_with(HIPCHAT_PATH, "auth_token=hipchat-room-token"),
        )),
    }
}

fn slack(name: &str, fake: &Fake) -> Room {
    Room {
        name: name.into(),
        sink: Sink::Slack(SecretString::from(format!(
            "{}{SLACK_PATH}",
            fake.server.uri()
        ))),
    }
}

/// Quick settings for tests: short window, fast retries, no rate limit to speak of.
fn notify(rooms: Vec<Room>, routes: Vec<Route>) -> NotifySettings {
    NotifySettings {
        rooms,
        routes,
        coalesce: Duration::from_millis(200),
        max_attempts: 10,
        timeout: Duration::from_secs(2),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        room_rate_per_minute: Some(6000),
    }
}

/// Every repository announced in all of `rooms`.
fn to_all(rooms: Vec<Room>) -> NotifySettings {
    let mut everywhere = route(&["*"], "unused");
    everywhere.rooms = rooms.iter().map(|r| r.name.clone()).collect();
    notify(rooms, vec![everywhere])
}

async fn app_with(settings: NotifySettings) -> TestApp {
    spawn_app_with(move |s| s.notify = settings).await
}

// ---------------------------------------------------------------------------------------------
// Events.

/// `10:mm:ss` on the fixtures' day: every event gets its own, increasing `updated_on`.
fn at(second: u32) -> String {
    format!(
        "2026-11-20T10:{:02}:{:02}.000000+00:00",
        second / 60,
        second % 60
    )
}

fn link(number: i64) -> String {
    format!("https://bitbucket.org/{REPO}/pull-requests/{number}")
}

/// An open PR in acme/payments-api by Alice Author, approved by `approvers`.
fn open_pr(number: i64, updated_on: &str, title: &str, approvers: &[&str]) -> Value {
    let participants: Vec<(&str, &str, Option<&str>)> = approvers
        .iter()
        .map(|u| (*u, "REVIEWER", Some("approved")))
        .collect();
    pr_event(
        number,
        updated_on,
        "OPEN",
        title,
        "9b2c4e6f8a10",
        &participants,
    )
}

async fn deliver(app: &TestApp, event_key: &str, body: &Value) {
    let answer = app.deliver_json(event_key, &uuid_like("chat"), body).await;
    assert_eq!(answer.status, 200, "{event_key}: {}", answer.body);
    assert_eq!(
        answer.body["status"], "processed",
        "{event_key}: {}",
        answer.body
    );
}

// ---------------------------------------------------------------------------------------------
// The outbox as an operator reads it.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outbox {
    room: String,
    repository_key: Option<String>,
    number: Option<i64>,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    message: Option<String>,
}

type OutboxTuple = (
    String,
    Option<String>,
    Option<i64>,
    String,
    i64,
    Option<String>,
    Option<String>,
);

async fn outbox(app: &TestApp) -> Vec<Outbox> {
    let rows: Vec<OutboxTuple> = sqlx::query_as(
        "SELECT room, repository_key, number, state, attempts, last_error, message \
         FROM outbox ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter()
        .map(
            |(room, repository_key, number, state, attempts, last_error, message)| Outbox {
                room,
                repository_key,
                number,
                state,
                attempts,
                last_error,
                message,
            },
        )
        .collect()
}

/// Polls the outbox until `count` rows are all `sent`.
async fn all_sent(app: &TestApp, count: usize) -> Vec<Outbox> {
    let started = Instant::now();
    loop {
        let rows = outbox(app).await;
        if rows.len() == count && rows.iter().all(|r| r.state == "sent") {
            return rows;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "outbox never had {count} sent rows; it holds {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The Teams body for a card of these TextBlocks: the first one the coloured bold heading.
fn card(color: &str, texts: &[&str]) -> Value {
    let mut blocks = vec![json!({
        "type": "TextBlock", "text": texts[0], "wrap": true, "weight": "bolder", "color": color,
    })];
    blocks.extend(
        texts[1..]
            .iter()
            .map(|t| json!({"type": "TextBlock", "text": t, "wrap": true})),
    );
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": blocks,
            },
        }],
    })
}

/// What every chat request carries: a JSON POST from us, and no credentials of ours beyond the
/// URL's own.
fn assert_plain_json_post(hit: &Hit) {
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.header("content-type"), Some("application/json"));
    let agent = hit.header("user-agent").unwrap_or_default();
    assert!(agent.starts_with("pr-reminder/"), "user agent: {agent}");
    assert_eq!(hit.header("authorization"), None, "{hit:#?}");
}

// ---------------------------------------------------------------------------------------------
// Microsoft Teams.

/// A state change as a Teams Workflows Adaptive Card, byte for byte; the 202 with no body that
/// a workflow answers counts as delivered.
#[tokio::test]
async fn teams_gets_exactly_the_adaptive_card_and_202_is_delivered() {
    let fake = Fake::start(vec![teams_ok()]).await;
    let app = app_with(to_all(vec![teams("backend-teams", &fake)])).await;
    deliver(
        &app,
        "pullrequest:created",
        &open_pr(7, &at(0), "Add retries to the payments client", &[]),
    )
    .await;

    let rows = all_sent(&app, 1).await;
    assert_eq!(rows[0].attempts, 1, "one request, taken at once");
    assert_eq!(rows[0].last_error, None);
    let hits = fake.exactly(1).await;
    let hit = &hits[0];
    assert_plain_json_post(hit);
    assert_eq!(hit.path, TEAMS_PATH);
    assert_eq!(
        hit.query.as_deref(),
        Some(TEAMS_QUERY),
        "the trigger URL's query, byte for byte as pasted"
    );
    assert_eq!(
        hit.body,
        card(
            "warning",
            &[
                "Needs review from Bob Reviewer, Carol Reviewer",
                &format!(
                    "[Add retries to the payments client]({}) (acme/payments-api \\#7) by Alice Author",
                    link(7)
                ),
                "0/2 approvals",
            ]
        )
    );
    assert_eq!(
        rows[0].message.as_deref(),
        Some(
            format!(
                "Needs review from Bob Reviewer, Carol Reviewer: Add retries to the payments client (acme/payments-api #7) by \
                 Alice Author <{}> — 0/2 approvals",
                link(7)
            )
            .as_str()
        )
    );
}

/// 500 and 502 from the workflow are retried; the message arrives once, unchanged.
#[tokio::test]
async fn teams_5xx_is_retried_then_delivered() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(500).set_body_string("flow failed"),
        ResponseTemplate::new(502),
        teams_ok(),
    ])
    .await;
    let app = app_with(to_all(vec![teams("t", &fake)])).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = all_sent(&app, 1).await;
    assert_eq!(rows[0].attempts, 3);
    assert_eq!(rows[0].last_error, None, "cleared once delivered");
    let hits = fake.exactly(3).await;
    assert!(hits.iter().all(|h| h.body == hits[0].body), "{hits:#?}");
    assert_eq!(
        hits[0].card_texts()[0],
        "Needs review from Bob Reviewer, Carol Reviewer"
    );
}

// ---------------------------------------------------------------------------------------------
// Google Chat.

/// A state change as Google Chat text, in the PR's thread; a later update of the same PR lands
/// in the same thread, another PR in its own.
#[tokio::test]
async fn google_chat_gets_exactly_the_text_in_one_thread_per_pr() {
    let fake = Fake::start(vec![chat_ok()]).await;
    let app = app_with(to_all(vec![google_chat("backend-chat", &fake)])).await;
    let title = "Add retries to the payments client";
    deliver(&app, "pullrequest:created", &open_pr(7, &at(0), title, &[])).await;
    all_sent(&app, 1).await;
    // The approval comes after the first message went out: a second message, same thread.
    deliver(
        &app,
        "pullrequest:approved",
        &open_pr(7, &at(10), title, &["bob"]),
    )
    .await;
    all_sent(&app, 2).await;
    deliver(
        &app,
        "pullrequest:created",
        &open_pr(8, &at(20), "Other", &[]),
    )
    .await;
    let rows = all_sent(&app, 3).await;
    assert_eq!(rows[0].repository_key.as_deref(), Some(REPO_KEY));

    let hits = fake.exactly(3).await;
    for hit in &hits {
        assert_plain_json_post(hit);
        assert_eq!(hit.path, CHAT_PATH);
    }
    let thread_of =
        |number: i64| format!("{CHAT_QUERY}&threadKey={REPO_KEY_ENCODED}%23{number}&{REPLY}");
    assert_eq!(
        hits[0].query.as_deref(),
        Some(thread_of(7).as_str()),
        "key and token kept, the thread `{REPO_KEY}#7` added"
    );
    assert_eq!(
        hits[0].body,
        json!({"text": format!(
            "🟡 *Needs review from Bob Reviewer, Carol Reviewer*: <{}|{title}> (acme/payments-api #7) by Alice Author\n0/2 approvals",
            link(7)
        )})
    );
    assert_eq!(
        hits[1].query, hits[0].query,
        "the update is in the same thread"
    );
    assert_eq!(
        hits[1].body,
        json!({"text": format!(
            "🟡 *1/2 approvals, needs review from Carol Reviewer*: <{}|{title}> (acme/payments-api #7) by Alice Author\n\
             1/2 approvals: Bob Reviewer",
            link(7)
        )})
    );
    assert_eq!(
        hits[2].query.as_deref(),
        Some(thread_of(8).as_str()),
        "another PR, another thread"
    );
}

/// Google Chat's 429 says how long to wait (`Retry-After`), a 503 is retried too; both
/// messages arrive, each once.
#[tokio::test]
async fn google_chat_429_and_503_are_retried_then_delivered() {
    let fake = Fake::start(vec![
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}})),
        chat_ok(),
        ResponseTemplate::new(503).set_body_string("unavailable"),
        chat_ok(),
    ])
    .await;
    let app = app_with(to_all(vec![google_chat("c", &fake)])).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;
    all_sent(&app, 1).await;
    deliver(&app, "pullrequest:created", &open_pr(2, &at(1), "Two", &[])).await;
    let rows = all_sent(&app, 2).await;
    assert_eq!(
        rows.iter().map(|r| r.attempts).collect::<Vec<_>>(),
        vec![2, 2]
    );
    assert!(rows.iter().all(|r| r.last_error.is_none()), "{rows:#?}");

    let hits = fake.exactly(4).await;
    assert!(hits[0].is_about(1) && hits[1].is_about(1), "{hits:#?}");
    assert_eq!(hits[0].body, hits[1].body);
    assert_eq!(hits[0].query, hits[1].query, "same thread on the retry");
    assert!(hits[2].is_about(2) && hits[3].is_about(2), "{hits:#?}");
    // The own backoff is 50-100 ms: only the header explains a second.
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(2500), "far too long: {gap:?}");
}

// ---------------------------------------------------------------------------------------------
// A 2xx is not always a yes.

/// What a Teams connector (or a workflow with a Response action) answers when Teams refused the
/// message: 200 with the failure as text (MicrosoftDocs/msteams-docs#402, #1810).
const TEAMS_FAILED: &str = "Webhook message delivery failed with error: Microsoft \
     Teams endpoint returned HTTP error 429 with ContextId \
     tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0..";

/// The four chats of `a_2xx_that_is_not_the_chats_yes_*`: each answers its first request with a
/// 2xx that is not its documented success; Teams keeps doing so, the others then say yes.
async fn two_hundred_fakes() -> [Fake; 4] {
    [
        Fake::start(vec![
            ResponseTemplate::new(200).set_body_string(TEAMS_FAILED)
        ])
        .await,
        Fake::start(vec![
            ResponseTemplate::new(200).set_body_string("<html><title>Sign in</title></html>"),
            ResponseTemplate::new(200).set_body_string("ok"),
        ])
        .await,
        Fake::start(vec![
            ResponseTemplate::new(200).set_body_json(json!({})),
            chat_ok(),
        ])
        .await,
        Fake::start(vec![
            ResponseTemplate::new(200)
                .set_body_json(json!({"error": {"code": 400, "message": "Bad room"}})),
            hipchat_ok(),
        ])
        .await,
    ]
}

/// Rooms `a-teams`, `b-slack`, `c-chat` and `d-hipchat` at the `two_hundred_fakes`, every
/// repository announced in each, two attempts at most, quick retries.
fn two_hundred_settings(fakes: &[Fake; 4]) -> impl FnOnce(&mut Settings) {
    let mut settings = to_all(vec![
        teams("a-teams", &fakes[0]),
        slack("b-slack", &fakes[1]),
        google_chat("c-chat", &fakes[2]),
        hipchat("d-hipchat", &fakes[3]),
    ]);
    settings.max_attempts = 2;
    settings.retry_min = Duration::from_millis(20);
    settings.retry_max = Duration::from_millis(50);
    move |s| s.notify = settings
}

/// Each chat's documented success body is checked, not only the status: a 2xx with any other
/// body is retried with backoff like a 5xx; Teams' `200 Webhook message delivery failed ...`
/// ends `failed` after `max_attempts` with that text as its last error, the others are sent on
/// their second try.
async fn a_2xx_that_is_not_the_chats_yes(app: &impl Served, fakes: &[Fake; 4]) {
    app.processed(
        "pullrequest:created",
        &open_pr(1, &at(0), "Add retries", &[]),
    )
    .await;
    type Row = (String, String, i64, Option<String>);
    let sql = "SELECT room, state, attempts, last_error FROM outbox ORDER BY room";
    let started = Instant::now();
    let rows = loop {
        let rows: Vec<Row> = app.query_rows(sql).await;
        if rows.len() == 4 && rows.iter().all(|r| r.1 == "sent" || r.1 == "failed") {
            break rows;
        }
        assert!(started.elapsed() < PATIENCE, "{rows:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        rows,
        vec![
            (
                "a-teams".to_owned(),
                "failed".to_owned(),
                2,
                Some(format!(
                    "HTTP 200 OK but not a success (Teams answers 202 (a workflow) or 1 (a \
                     connector)): {}",
                    TEAMS_FAILED
                ))
            ),
            ("b-slack".to_owned(), "sent".to_owned(), 2, None),
            ("c-chat".to_owned(), "sent".to_owned(), 2, None),
            ("d-hipchat".to_owned(), "sent".to_owned(), 2, None),
        ]
    );
    for fake in fakes {
        let hits = fake.exactly(2).await;
        assert_eq!(hits[0].body, hits[1].body, "the same message again");
    }
}

crate::helpers::on_both!(a_2xx_that_is_not_the_chats_yes_is_retried_then_failed);

async fn a_2xx_that_is_not_the_chats_yes_is_retried_then_failed(on: crate::helpers::On) {
    let fakes = two_hundred_fakes().await;
    let Some(app) = crate::helpers::spawn_on(
        on,
        "twohundred",
        two_hundred_settings(&fakes),
        pr_reminder::clock::Clock::system(),
    )
    .await
    else {
        return;
    };
    a_2xx_that_is_not_the_chats_yes(&app, &fakes).await;
}

// ---------------------------------------------------------------------------------------------
// The digest in Teams and Google Chat.

/// The app of the digest tests, on Tuesday 2026-11-24 10:00: `rooms` hear digests of acme/*
/// through one route; #1 (30 h old, the fixture asks Bob and Carol to review) waits for review,
/// #2 (25 h old, Carol
/// asked for changes) on its author.
async fn digest_scenario(rooms: Vec<Room>) -> TestApp {
    digest_scenario_with(rooms, |_| {}).await
}

/// `digest_scenario`, with other settings adjusted too.
async fn digest_scenario_with(rooms: Vec<Room>, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
    // Running from `now`: the room's rate and a ping's retry are waited out at real speed.
    let clock = ManualClock::running(now);
    let mut digests = digest_only_route(&["acme/*"], "unused");
    digests.rooms = rooms.iter().map(|r| r.name.clone()).collect();
    let notify = notify(rooms, vec![digests]);
    let app = spawn_app_with_clock(
        move |s| {
            s.notify = notify;
            s.sweep.token = Some(SecretToken(SecretString::from(SWEEP_TOKEN.to_owned())));
            adjust(s);
        },
        clock.clock(),
    )
    .await;
    let opened = |number: i64, created: DateTime<Utc>, title: &str, review: Option<&str>| {
        let who = if review.is_some() { "carol" } else { "bob" };
        let mut body = pr_event(
            number,
            &(created + chrono::Duration::minutes(1)).to_rfc3339(),
            "OPEN",
            title,
            "abcdef012345",
            &[(who, "REVIEWER", review)],
        );
        body["pullrequest"]["created_on"] = json!(created.to_rfc3339());
        set_repository(&mut body, REPO);
        body
    };
    let hours = |h: i64| now - chrono::Duration::hours(h);
    deliver(
        &app,
        "pullrequest:updated",
        &opened(1, hours(30), "Oldest", None),
    )
    .await;
    let changes = opened(2, hours(25), "Asked to change", Some("changes_requested"));
    deliver(&app, "pullrequest:updated", &changes).await;

    let response = app
        .client
        .post(format!("{}/sweep?force=true", app.address))
        .bearer_auth(SWEEP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    app
}

/// The digest for a Teams room, byte for byte.
#[tokio::test]
async fn the_digest_as_a_teams_card() {
    let fake = Fake::start(vec![teams_ok()]).await;
    let app = digest_scenario(vec![teams("backend-teams", &fake)]).await;
    all_sent(&app, 1).await;
    let hits = fake.exactly(1).await;
    assert_plain_json_post(&hits[0]);
    assert_eq!(hits[0].path, TEAMS_PATH);
    assert_eq!(hits[0].query.as_deref(), Some(TEAMS_QUERY));
    assert_eq!(hits[0].body, teams_digest("backend-teams"));
}

fn teams_digest(room: &str) -> Value {
    card(
        "warning",
        &[
            &format!("1 pull request waiting for review, 1 waiting on their author \\({room}\\)"),
            &format!(
                "- [Oldest]({}) (acme/payments-api \\#1) by Alice Author · 0/2 approvals · \
                 1d 6h old · waiting for Bob Reviewer, Carol Reviewer",
                link(1)
            ),
            "**Waiting on the author**",
            &format!(
                "- [Asked to change]({}) (acme/payments-api \\#2) by Alice Author · \
                 0/2 approvals · changes requested by Carol Reviewer · 1d 1h old",
                link(2)
            ),
        ],
    )
}

fn google_chat_digest(room: &str) -> Value {
    json!({"text": format!(
        "🟡 *1 pull request waiting for review, 1 waiting on their author* ({room})\n\
         • <{}|Oldest> (acme/payments-api #1) by Alice Author · 0/2 approvals · 1d 6h old · \
         waiting for Bob Reviewer, Carol Reviewer\n\
         *Waiting on the author*\n\
         • <{}|Asked to change> (acme/payments-api #2) by Alice Author · 0/2 approvals · \
         changes requested by Carol Reviewer · 1d 1h old",
        link(1),
        link(2)
    )})
}

/// The digest for a Google Chat room, byte for byte: about no one PR, so in no thread.
#[tokio::test]
async fn the_digest_as_google_chat_text() {
    let fake = Fake::start(vec![chat_ok()]).await;
    let app = digest_scenario(vec![google_chat("backend-chat", &fake)]).await;
    all_sent(&app, 1).await;
    let hits = fake.exactly(1).await;
    assert_plain_json_post(&hits[0]);
    assert_eq!(hits[0].path, CHAT_PATH);
    assert_eq!(
        hits[0].query.as_deref(),
        Some(CHAT_QUERY),
        "a digest is about no one PR: no thread"
    );
    assert_eq!(hits[0].body, google_chat_digest("backend-chat"));
}

/// A route to a Teams and a Google Chat room: each room's digest lists the PRs in full.
#[tokio::test]
async fn a_route_to_two_rooms_gets_the_full_digest_in_both() {
    let teams_fake = Fake::start(vec![teams_ok()]).await;
    let chat_fake = Fake::start(vec![chat_ok()]).await;
    let app = digest_scenario(vec![
        teams("backend-teams", &teams_fake),
        google_chat("backend-chat", &chat_fake),
    ])
    .await;
    all_sent(&app, 2).await;
    assert_eq!(
        teams_fake.exactly(1).await[0].body,
        teams_digest("backend-teams")
    );
    assert_eq!(
        chat_fake.exactly(1).await[0].body,
        google_chat_digest("backend-chat")
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile titles, in every format.

/// Titles that would be a link, a mention, markup or an entity arrive as text in HipChat, Slack
/// (text and fallback), Teams and Google Chat.
#[tokio::test]
async fn hostile_titles_arrive_inert_in_every_format() {
    // (title, HipChat HTML, Slack, Teams, Google Chat)
    let cases: [(&str, &str, &str, &str, &str); 5] = [
        (
            "[x](https://evil)",
            "[x](https://evil)",
            "[x](https://evil)",
            "\\[x\\]\\(https://evil\\)",
            "[x](https://evil)",
        ),
        (
            "<users/all>",
            "&lt;users/all&gt;",
            "&lt;users/all&gt;",
            "\\<users/all\\>",
            "‹users/all›",
        ),
        ("*bold*", "*bold*", "*bold*", "\\*bold\\*", "∗bold∗"),
        (
            "<!channel>",
            "&lt;!channel&gt;",
            "&lt;!channel&gt;",
            "\\<\\!channel\\>",
            "‹!channel›",
        ),
        (
            "&amp;",
            "&amp;amp;",
            "&amp;amp;",
            "\\&amp;",
            "&\u{2060}amp;",
        ),
    ];
    let hipchat_fake = Fake::start(vec![hipchat_ok()]).await;
    let slack_fake = Fake::start(vec![ResponseTemplate::new(200).set_body_string("ok")]).await;
    let teams_fake = Fake::start(vec![teams_ok()]).await;
    let chat_fake = Fake::start(vec![chat_ok()]).await;
    let app = app_with(to_all(vec![
        hipchat("h", &hipchat_fake),
        slack("s", &slack_fake),
        teams("t", &teams_fake),
        google_chat("g", &chat_fake),
    ]))
    .await;
    for (i, (title, ..)) in cases.iter().enumerate() {
        let n = i as i64 + 1;
        deliver(
            &app,
            "pullrequest:created",
            &open_pr(n, &at(n as u32), title, &[]),
        )
        .await;
    }
    all_sent(&app, 4 * cases.len()).await;
    let (h, s, t, g) = (
        hipchat_fake.exactly(cases.len()).await,
        slack_fake.exactly(cases.len()).await,
        teams_fake.exactly(cases.len()).await,
        chat_fake.exactly(cases.len()).await,
    );
    let about = |hits: &[Hit], n: i64| -> Hit {
        let found: Vec<&Hit> = hits.iter().filter(|h| h.is_about(n)).collect();
        assert_eq!(found.len(), 1, "#{n}: {hits:#?}");
        found[0].clone()
    };
    for (i, (title, html, slack_text, teams_text, chat_text)) in cases.iter().enumerate() {
        let n = i as i64 + 1;
        let url = link(n);
        assert_eq!(
            about(&h, n).body["message"],
            format!(
                "<b>Needs review from Bob Reviewer, Carol Reviewer</b>: <a href=\"{url}\">{html}</a> (acme/payments-api #{n}) by \
                 Alice Author<br>0/2 approvals"
            ),
            "HipChat, {title}"
        );
        let slack_hit = about(&s, n);
        assert_eq!(
            slack_hit.body["text"],
            format!(
                "*Needs review from Bob Reviewer, Carol Reviewer*: <{url}|{slack_text}> (acme/payments-api #{n}) by Alice \
                 Author\n0/2 approvals"
            ),
            "Slack, {title}"
        );
        assert_eq!(
            slack_hit.body["attachments"][0]["fallback"],
            format!(
                "Needs review from Bob Reviewer, Carol Reviewer: {slack_text} (acme/payments-api #{n}) by Alice Author \
                 &lt;{url}&gt; — 0/2 approvals"
            ),
            "Slack fallback, {title}"
        );
        assert_eq!(
            about(&t, n).card_texts()[1],
            format!("[{teams_text}]({url}) (acme/payments-api \\#{n}) by Alice Author"),
            "Teams, {title}"
        );
        assert_eq!(
            about(&g, n).body["text"],
            format!(
                "🟡 *Needs review from Bob Reviewer, Carol Reviewer*: <{url}|{chat_text}> (acme/payments-api #{n}) by Alice \
                 Author\n0/2 approvals"
            ),
            "Google Chat, {title}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Several rooms of different kinds.

/// Teams moving from HipChat to Teams run both: a route to both rooms gets the same news in each.
#[tokio::test]
async fn a_route_to_a_hipchat_and_a_teams_room_tells_both_the_same() {
    let hipchat_fake = Fake::start(vec![hipchat_ok()]).await;
    let teams_fake = Fake::start(vec![teams_ok()]).await;
    let unrelated = Fake::start(vec![chat_ok()]).await;
    let mut both = route(&["acme/*"], "unused");
    both.rooms = vec!["backend".into(), "backend-teams".into()];
    let app = app_with(notify(
        vec![
            hipchat("backend", &hipchat_fake),
            teams("backend-teams", &teams_fake),
            google_chat("elsewhere", &unrelated),
        ],
        vec![both, route(&["web/*"], "elsewhere")],
    ))
    .await;
    deliver(
        &app,
        "pullrequest:created",
        &open_pr(7, &at(0), "Shared news", &["bob"]),
    )
    .await;

    let rows = all_sent(&app, 2).await;
    let mut rooms: Vec<&str> = rows.iter().map(|r| r.room.as_str()).collect();
    rooms.sort();
    assert_eq!(rooms, vec!["backend", "backend-teams"]);
    assert_eq!(rows[0].message, rows[1].message, "the same news");
    assert_eq!(
        (rows[0].repository_key.as_deref(), rows[0].number),
        (rows[1].repository_key.as_deref(), rows[1].number)
    );
    let h = hipchat_fake.exactly(1).await;
    assert_eq!(
        h[0].body,
        json!({
            "message": format!(
                "<b>Needs review from Carol Reviewer</b>: <a href=\"{}\">Shared news</a> (acme/payments-api #7) by \
                 Alice Author<br>1/2 approvals: Bob Reviewer",
                link(7)
            ),
            "message_format": "html",
            "color": "yellow",
            "notify": true,
            "from": "pr-reminder",
        })
    );
    let t = teams_fake.exactly(1).await;
    assert_eq!(
        t[0].body,
        card(
            "warning",
            &[
                "Needs review from Carol Reviewer",
                &format!(
                    "[Shared news]({}) (acme/payments-api \\#7) by Alice Author",
                    link(7)
                ),
                "1/2 approvals: Bob Reviewer",
            ]
        )
    );
    assert!(unrelated.hits().is_empty(), "{:#?}", unrelated.hits());
}

// ---------------------------------------------------------------------------------------------
// HipChat finished.

/// A room URL without `auth_token` plus a `hipchat_token`: the token goes in
/// `Authorization: Bearer`, never in the URL.
#[tokio::test]
async fn hipchat_bearer_form_sends_the_token_as_a_header() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let token = "room-notification-token-0123456789";
    let room = Room {
        name: "bearer".into(),
        sink: Sink::HipChatBearer {
            url: SecretString::from(format!("{}{HIPCHAT_PATH}", fake.server.uri())),
            token: SecretString::from(token.to_owned()),
        },
    };
    let app = app_with(to_all(vec![room])).await;
    deliver(
        &app,
        "pullrequest:created",
        &open_pr(3, &at(0), "Three", &[]),
    )
    .await;

    all_sent(&app, 1).await;
    let hits = fake.exactly(1).await;
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.path, HIPCHAT_PATH);
    assert_eq!(hit.query, None, "no auth_token in the URL");
    let bearer = format!("Bearer {token}");
    assert_eq!(hit.header("authorization"), Some(bearer.as_str()));
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(
        hit.body,
        json!({
            "message": format!(
                "<b>Needs review from Bob Reviewer, Carol Reviewer</b>: <a href=\"{}\">Three</a> (acme/payments-api #3) by Alice \
                 Author<br>0/2 approvals",
                link(3)
            ),
            "message_format": "html",
            "color": "yellow",
            "notify": true,
            "from": "pr-reminder",
        })
    );
}

/// `Retry-After` as an HTTP date about 2 s ahead: the retry comes no sooner than that date.
#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let promised: Arc<Mutex<Vec<SystemTime>>> = Arc::default();
    let record = promised.clone();
    let busy = Answer::Made(Arc::new(move || {
        // HTTP dates have whole seconds: 2 to 3 s ahead, truncated to 1 to 3 s.
        let date = SystemTime::now() + Duration::from_secs(2);
        let text = httpdate::fmt_http_date(date);
        record
            .lock()
            .unwrap()
            .push(httpdate::parse_http_date(&text).unwrap());
        ResponseTemplate::new(429).insert_header("Retry-After", text.as_str())
    }));
    let fake = Fake::start_with(vec![busy, chat_ok().into()]).await;
    let app = app_with(to_all(vec![google_chat("c", &fake)])).await;
    deliver(&app, "pullrequest:created", &open_pr(1, &at(0), "One", &[])).await;

    let rows = all_sent(&app, 1).await;
    assert_eq!(rows[0].attempts, 2);
    let hits = fake.exactly(2).await;
    let date = promised.lock().unwrap()[0];
    assert!(
        hits[1].wall >= date,
        "retried {:?} before the date it was given",
        date.duration_since(hits[1].wall).unwrap_or_default()
    );
    // The own backoff is 50-100 ms; the date, at least a second.
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(4), "waited far too long: {gap:?}");
}

// ---------------------------------------------------------------------------------------------
// The HipChat mention ping after a digest.

/// Bob and Carol have HipChat mention names.
fn mention_names(s: &mut Settings) {
    s.commands.users = vec![
        UserMapping {
            bitbucket: "bob".into(),
            hipchat: Some("bob.r".into()),
            slack: None,
            ..UserMapping::default()
        },
        UserMapping {
            bitbucket: "carol".into(),
            hipchat: Some("@carol".into()),
            slack: None,
            ..UserMapping::default()
        },
    ];
}

fn ping(text: &str) -> Value {
    json!({
        "message": text,
        "message_format": "text",
        "color": "yellow",
        "notify": true,
        "from": "pr-reminder",
    })
}

/// HipChat pings an `@mention` only in a text message: after the HTML digest naming them, the
/// reviewers it waits for get a short text message with their mentions, in the same room.
#[tokio::test]
async fn a_hipchat_digest_is_followed_by_a_text_ping_of_the_reviewers() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let app = digest_scenario_with(vec![hipchat("backend", &fake)], mention_names).await;
    let rows = all_sent(&app, 1).await;
    assert_eq!(rows[0].attempts, 1);
    let hits = fake.exactly(2).await;
    let (digest, ping_hit) = (&hits[0], &hits[1]);
    assert_eq!(digest.body["message_format"], "html");
    let html = digest.body["message"].as_str().unwrap();
    assert!(html.contains("waiting for @bob.r, @carol"), "{html}");
    assert!(ping_hit.at >= digest.at, "the ping follows the digest");
    assert_eq!(ping_hit.path, HIPCHAT_PATH, "the same room");
    assert_eq!(
        ping_hit.query.as_deref(),
        Some("auth_token=hipchat-room-token")
    );
    assert_eq!(ping_hit.header("content-type"), Some("application/json"));
    // Each reviewer #1 waits for, once; Carol is not pinged for #2, where the author acts next.
    assert_eq!(
        ping_hit.body,
        ping("@bob.r @carol: pull requests are waiting for your review (see above)")
    );
}

/// A ping the room refuses for a moment (429) is tried again, within the room's rate, and the
/// digest is not posted twice.
#[tokio::test]
async fn a_refused_mention_ping_is_tried_again() {
    let fake = Fake::start(vec![
        hipchat_ok(),
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        hipchat_ok(),
    ])
    .await;
    let app = digest_scenario_with(vec![hipchat("backend", &fake)], mention_names).await;
    all_sent(&app, 1).await;
    let hits = fake.exactly(3).await;
    assert_eq!(hits[0].body["message_format"], "html");
    assert_eq!(hits[1].body, hits[2].body, "the same ping again");
    assert_eq!(hits[2].body["message_format"], "text");
    assert!(
        hits[2].at - hits[1].at >= Duration::from_millis(990),
        "waited what Retry-After asked"
    );
}

/// The Bearer form pings with the same header as its digest.
#[tokio::test]
async fn the_mention_ping_in_the_bearer_form_carries_the_token() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let room = Room {
        name: "backend".into(),
        sink: Sink::HipChatBearer {
            url: SecretString::from(format!("{}{HIPCHAT_PATH}", fake.server.uri())),
            token: SecretString::from("room-notification-token-0123456789".to_owned()),
        },
    };
    let app = digest_scenario_with(vec![room], mention_names).await;
    all_sent(&app, 1).await;
    let hits = fake.exactly(2).await;
    for hit in &hits {
        assert_eq!(hit.query, None);
        assert_eq!(
            hit.header("authorization"),
            Some("Bearer room-notification-token-0123456789")
        );
    }
    assert_eq!(hits[1].body["message_format"], "text");
}

/// `hipchat_mention_ping = false`: the digest alone.
#[tokio::test]
async fn no_mention_ping_when_switched_off() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let app = digest_scenario_with(vec![hipchat("backend", &fake)], |s| {
        mention_names(s);
        s.sweep.hipchat_mention_ping = false;
    })
    .await;
    all_sent(&app, 1).await;
    let hits = fake.exactly(1).await;
    assert_eq!(hits[0].body["message_format"], "html");
    assert!(
        hits[0].body["message"]
            .as_str()
            .unwrap()
            .contains("waiting for @bob.r, @carol"),
        "{}",
        hits[0].body
    );
}

/// No one with a HipChat mention name is waited for: no ping.
#[tokio::test]
async fn no_mention_ping_without_mention_names() {
    let fake = Fake::start(vec![hipchat_ok()]).await;
    let app = digest_scenario(vec![hipchat("backend", &fake)]).await;
    all_sent(&app, 1).await;
    let hits = fake.exactly(1).await;
    assert_eq!(hits[0].body["message_format"], "html");
}

/// Teams and Google Chat rooms get the digest only: the ping is HipChat's.
#[tokio::test]
async fn teams_and_google_chat_get_no_mention_ping() {
    let teams_fake = Fake::start(vec![teams_ok()]).await;
    let app = digest_scenario_with(vec![teams("t", &teams_fake)], mention_names).await;
    all_sent(&app, 1).await;
    assert_eq!(teams_fake.exactly(1).await[0].card_texts().len(), 4);
    let chat_fake = Fake::start(vec![chat_ok()]).await;
    let app = digest_scenario_with(vec![google_chat("g", &chat_fake)], mention_names).await;
    all_sent(&app, 1).await;
    let hits = chat_fake.exactly(1).await;
    assert!(hits[0].body["text"]
        .as_str()
        .unwrap()
        .starts_with("🟡 *1 pull request"));
}

// ---------------------------------------------------------------------------------------------
// check-config.

#[test]
fn check_config_hides_the_teams_and_google_chat_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pr-reminder.toml");
    std::fs::write(
        &config,
        r#"webhook_secret = "s3cret-for-the-test"

[[rooms]]
name = "backend-teams"
teams_webhook_url = "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b2c/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETSIG"

[[rooms]]
name = "backend-chat"
google_chat_webhook_url = "https://chat.googleapis.com/v1/spaces/AAAAbcd/messages?key=SECRETKEY&token=SECRETTOKEN"

[[routes]]
repositories = ["acme/*"]
rooms = ["backend-teams", "backend-chat"]
"#,
    )
    .unwrap();
    let out = crate::helpers::clean_command(BIN)
        .current_dir(dir.path())
        .args(["--config", config.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for secret in ["SECRETSIG", "SECRETKEY", "SECRETTOKEN", "s3cret"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("name = \"backend-teams\"\nteams_webhook_url = \"https://prod-12.westeurope.logic.azure.com/[redacted]\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "name = \"backend-chat\"\ngoogle_chat_webhook_url = \"https://chat.googleapis.com/[redacted]\""
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("rooms = [\"backend-teams\", \"backend-chat\"]"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// Digests queued by the release before the chat document.

/// A digest as the release before the chat document stored it in `outbox.payload`: every chat's
/// rendering made when it was queued, its colour, `notify` and HipChat mention names.
const STORED_DIGEST: &str = r##"{"color":"red","notify":true,"html":"<b>2 pull requests waiting for review</b> (backend)<br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/1\">Fix &lt;b&gt;</a> (acme/api #1) by Ann · 0/2 approvals · <b>3d 2h old</b> · waiting for @bob<br>and 1 more","slack":"*2 pull requests waiting for review* (backend)\n• <https://bitbucket.org/acme/api/pull-requests/1|Fix &lt;b&gt;> (acme/api #1) by Ann · 0/2 approvals · *3d 2h old* · waiting for <@UBOB>\nand 1 more","text":"2 pull requests waiting for review (backend)\n  - Fix <b> (acme/api #1) by Ann · 0/2 approvals · 3d 2h old · waiting for Bob <https://bitbucket.org/acme/api/pull-requests/1>\n  and 1 more","teams":"2 pull requests waiting for review \\(backend\\)\n\n- [Fix \\<b\\>](https://bitbucket.org/acme/api/pull-requests/1) (acme/api \\#1) by Ann · 0/2 approvals · **3d 2h old** · waiting for Bob\n\nand 1 more","google_chat":"*2 pull requests waiting for review* (backend)\n• <https://bitbucket.org/acme/api/pull-requests/1|Fix ‹b›> (acme/api #1) by Ann · 0/2 approvals · *3d 2h old* · waiting for Bob\nand 1 more","mentions":["bob"]}"##;

/// A digest stored before Teams and Google Chat existed: HipChat, Slack and plain text only.
const STORED_BEFORE_TEAMS: &str = r##"{"color":"yellow","notify":true,"html":"<b>1 pull request waiting for review</b> (backend)","slack":"*1 pull request waiting for review* (backend)","text":"1 pull request waiting for review (backend)\n  - Add *x* (acme/api #2) by Ann · 0/2 approvals · 5h old <https://bitbucket.org/acme/api/pull-requests/2>"}"##;

/// Digests queued by the previous release (stored renderings, some from before Teams and Google
/// Chat) are sent after the upgrade, to every kind of room, exactly as that release would have
/// sent them; HipChat's mention ping follows the one that names someone, and each row is
/// recorded sent with its plain text.
#[tokio::test]
async fn digests_queued_by_the_previous_release_still_send() {
    let (hip, slk, tms, gch) = (
        Fake::start(vec![hipchat_ok()]).await,
        Fake::start(vec![ResponseTemplate::new(200).set_body_string("ok")]).await,
        Fake::start(vec![teams_ok()]).await,
        Fake::start(vec![chat_ok()]).await,
    );
    let mut rooms = Vec::new();
    for suffix in ["new", "old"] {
        rooms.push(hipchat(&format!("hipchat-{suffix}"), &hip));
        rooms.push(slack(&format!("slack-{suffix}"), &slk));
        rooms.push(teams(&format!("teams-{suffix}"), &tms));
        rooms.push(google_chat(&format!("chat-{suffix}"), &gch));
    }
    let names: Vec<String> = rooms.iter().map(|r| r.name.clone()).collect();
    // Queued straight into the database, as the previous release left them at an upgrade.
    let app = spawn_app_with(|s| s.notify = notify(rooms, vec![])).await;
    let writer = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path.display()))
        .await
        .unwrap();
    for name in &names {
        let payload = if name.ends_with("new") {
            STORED_DIGEST
        } else {
            STORED_BEFORE_TEAMS
        };
        sqlx::query(
            "INSERT INTO outbox (room, kind, events, created_at, not_before, payload) \
             VALUES ($1, 'digest', 'digest', '2026-11-24T09:00:00.000000Z', \
                     '2026-11-24T09:00:00.000000Z', $2)",
        )
        .bind(name)
        .bind(payload)
        .execute(&writer)
        .await
        .unwrap();
    }
    writer.close().await;

    let stored: Value = serde_json::from_str(STORED_DIGEST).unwrap();
    let before: Value = serde_json::from_str(STORED_BEFORE_TEAMS).unwrap();
    let html = |v: &Value, color: &str| json!({"message": v["html"], "message_format": "html", "color": color, "notify": true, "from": "pr-reminder"});
    let mut hipchat_hits: Vec<Value> = hip.exactly(3).await.into_iter().map(|h| h.body).collect();
    hipchat_hits.sort_by_key(|b| b.to_string());
    let mut want = vec![
        html(&stored, "red"),
        html(&before, "yellow"),
        json!({"message": "@bob: pull requests are waiting for your review (see above)",
               "message_format": "text", "color": "yellow", "notify": true, "from": "pr-reminder"}),
    ];
    want.sort_by_key(|b| b.to_string());
    assert_eq!(hipchat_hits, want);
    // The ping follows the digest that names someone (the other HipChat room's digest, sent by
    // its own task to the same fake, may come in between).
    let order: Vec<String> = hip
        .hits()
        .iter()
        .map(|h| h.body["message"].to_string())
        .collect();
    let at = |needle: &str| order.iter().position(|m| m.contains(needle)).unwrap();
    assert!(at("@bob:") > at("waiting for @bob"), "{order:#?}");

    let slack_body = |v: &Value, color: &str| {
        let fallback = v["text"]
            .as_str()
            .unwrap()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        json!({"text": v["slack"], "attachments": [{"color": color, "fallback": fallback}]})
    };
    let mut got: Vec<Value> = slk.exactly(2).await.into_iter().map(|h| h.body).collect();
    got.sort_by_key(|b| b.to_string());
    let mut want = vec![
        slack_body(&stored, "#e01e5a"),
        slack_body(&before, "#f2c744"),
    ];
    want.sort_by_key(|b| b.to_string());
    assert_eq!(got, want);

    let mut cards: Vec<(String, Vec<String>)> = tms
        .exactly(2)
        .await
        .iter()
        .map(|h| {
            let first = &h.body["attachments"][0]["content"]["body"][0];
            (first["color"].as_str().unwrap().to_owned(), h.card_texts())
        })
        .collect();
    cards.sort();
    assert_eq!(
        cards,
        [
            (
                "attention".to_owned(),
                vec![
                    "2 pull requests waiting for review \\(backend\\)".to_owned(),
                    "- [Fix \\<b\\>](https://bitbucket.org/acme/api/pull-requests/1) (acme/api \\#1) by Ann · 0/2 approvals · **3d 2h old** · waiting for Bob".to_owned(),
                    "and 1 more".to_owned(),
                ]
            ),
            (
                // No Teams rendering stored: the plain text, one paragraph a line, made inert.
                "warning".to_owned(),
                vec![
                    "1 pull request waiting for review \\(backend\\)".to_owned(),
                    "  \\- Add \\*x\\* \\(acme/api \\#2\\) by Ann · 0/2 approvals · 5h old \\<https://bitbucket.org/acme/api/pull-requests/2\\>".to_owned(),
                ]
            ),
        ]
    );

    let mut texts: Vec<Value> = gch.exactly(2).await.into_iter().map(|h| h.body).collect();
    texts.sort_by_key(|b| b.to_string());
    let mut want = vec![
        json!({"text": format!("🔴 {}", stored["google_chat"].as_str().unwrap())}),
        json!({"text": "🟡 1 pull request waiting for review (backend)\n  - Add ∗x∗ (acme/api #2) by Ann · 0/2 approvals · 5h old ‹https://bitbucket.org/acme/api/pull-requests/2›"}),
    ];
    want.sort_by_key(|b| b.to_string());
    assert_eq!(texts, want);
    assert!(
        gch.hits()
            .iter()
            .all(|h| h.query.as_deref() == Some(CHAT_QUERY)),
        "a digest is about no one PR: no thread"
    );

    // Every row recorded sent, with the plain text it stored.
    let mut rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT room, state, message FROM outbox ORDER BY room")
            .fetch_all(&app.db)
            .await
            .unwrap();
    rows.sort();
    assert_eq!(rows.len(), 8);
    for (room, state, message) in rows {
        let text = if room.ends_with("new") {
            &stored["text"]
        } else {
            &before["text"]
        };
        assert_eq!(
            (state.as_str(), message.as_deref()),
            ("sent", text.as_str()),
            "{room}"
        );
    }
}

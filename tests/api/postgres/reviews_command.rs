//! `/reviews` and `/reviews snooze` on PostgreSQL.

use super::*;
use crate::helpers::{digest_only_route, own_fixture, set_repository, uuid_like, ManualClock};
use crate::lifecycle::{key_of, pr_event};
use chrono::Duration as Span;
use hmac::{Hmac, Mac};
use pr_reminder::config::{
    CommandSettings, NotifySettings, Room, SecretToken, Sink, SweepSettings, UserMapping,
};
use sha2::Sha256;

const HIPCHAT_TOKEN: &str = "hipchat-command-token-0123456789";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SWEEP_TOKEN: &str = "sweep-token-0123456789abcdef";
const REPO: &str = "acme/payments-api";

fn now() -> DateTime<Utc> {
    utc(2026, 11, 24, 10, 0) // a Tuesday
}

/// `commands::app` on PostgreSQL: rooms backend (acme/*) and web (web/*), Carol mapped to
/// carol_r and UCAROL, and PRs #1 (5 h, Bob and Carol asked), #2 (6 h, Carol approved),
/// #3 (7 h, Carol's own, Dave asks for changes), #4 (30 h, Bob asked), web/site #5.
async fn app(clock: &ManualClock) -> Option<PgApp> {
    let notify = NotifySettings {
        rooms: vec![
            Room {
                name: "backend".into(),
                sink: Sink::HipChat(SecretString::from(
                    "http://127.0.0.1:9/v2/room/4242/notification?auth_token=x".to_owned(),
                )),
            },
            Room {
                name: "web".into(),
                sink: Sink::Slack(SecretString::from("http://127.0.0.1:9/hook".to_owned())),
            },
        ],
        routes: vec![
            digest_only_route(&["acme/*"], "backend"),
            digest_only_route(&["web/*"], "web"),
        ],
        ..NotifySettings::default()
    };
    let commands = CommandSettings {
        hipchat_token: Some(SecretToken(SecretString::from(HIPCHAT_TOKEN.to_owned()))),
        slack_signing_secret: Some(SecretToken(SecretString::from(SLACK_SECRET.to_owned()))),
        users: vec![UserMapping {
            bitbucket: "carol".into(),
            hipchat: Some("carol_r".into()),
            slack: Some("UCAROL".into()),
        }],
        ..CommandSettings::default()
    };
    let sweep = SweepSettings {
        token: Some(SecretToken(SecretString::from(SWEEP_TOKEN.to_owned()))),
        ..SweepSettings::default()
    };
    let app = spawn_pg(
        "reviews",
        move |s| {
            s.notify = notify;
            s.commands = commands;
            s.sweep = sweep;
        },
        clock.clock(),
    )
    .await?;
    let users = own_fixture("users.json");
    let mut bodies = vec![
        pr(
            1,
            5,
            &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
        ),
        pr(2, 6, &[("carol", "REVIEWER", Some("approved"))]),
        pr(3, 7, &[("dave", "PARTICIPANT", Some("changes_requested"))]),
        pr(4, 30, &[("bob", "REVIEWER", None)]),
        pr(5, 2, &[]),
    ];
    bodies[2]["pullrequest"]["author"] = users["carol"].clone();
    set_repository(&mut bodies[4], "web/site");
    for body in &bodies {
        processed(&app, "pullrequest:updated", body).await;
    }
    Some(app)
}

/// PR `n` of acme/payments-api opened `hours` before `now()`.
fn pr(n: i64, hours: i64, participants: &[(&str, &str, Option<&str>)]) -> Value {
    let created = now() - Span::hours(hours);
    let mut body = pr_event(
        n,
        &(created + Span::minutes(1)).to_rfc3339(),
        "OPEN",
        &format!("Change {n}"),
        "abcdef012345",
        participants,
    );
    body["pullrequest"]["created_on"] = json!(created.to_rfc3339());
    body["pullrequest"]["reviewers"] = json!([]);
    body
}

/// `/reviews ...` from HipChat by `mention` in `room` (4242 is backend's id).
async fn hipchat(app: &PgApp, text: &str, mention: &str, room: &str) -> String {
    let id = if room == "random" { 777 } else { 4242 };
    let body = json!({
        "event": "room_message",
        "webhook_id": 7,
        "item": {
            "message": {"message": text, "from": {"id": 99, "name": "Some One", "mention_name": mention}},
            "room": {"id": id, "name": room},
        }
    });
    let response = app
        .client
        .post(format!("{}/commands/hipchat/{HIPCHAT_TOKEN}", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{text}: {answer}");
    assert_eq!(answer["message_format"], "html");
    answer["message"].as_str().unwrap().to_owned()
}

fn link(n: i64) -> String {
    format!("/pull-requests/{n}\">Change {n}</a>")
}

async fn snoozes(app: &PgApp) -> i64 {
    app.count("SELECT count(*) FROM snoozes").await
}

/// The room's lists read from PostgreSQL as from SQLite: Carol's (asked first, her own and
/// the approved left out), the whole room's, her own PRs, a stranger's (with the mapping
/// hint), Bob's by nickname, a room with nothing routed; and Slack's signed command.
#[tokio::test]
async fn reviews_lists_what_each_person_can_review() {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(&clock).await else { return };
    let text = hipchat(&app, "/reviews", "carol_r", "backend").await;
    assert!(
        text.starts_with("<b>2 pull requests you can review</b> (backend)"),
        "{text}"
    );
    let (one, four) = (text.find(&link(1)).unwrap(), text.find(&link(4)).unwrap());
    assert!(
        one < four,
        "asked to review first, although #4 is older: {text}"
    );
    for absent in [link(2), link(3), "web/site".to_owned()] {
        assert!(!text.contains(&absent), "{absent}: {text}");
    }

    let all = hipchat(&app, "/reviews all", "carol_r", "Renamed Room").await;
    assert!(
        all.contains("3 pull requests waiting for review, 1 waiting on their author"),
        "{all}"
    );
    assert!(
        all.contains(
            "#1) by Alice Author · 0/2 approvals · 5h old · waiting for Bob Reviewer, @carol_r"
        ),
        "{all}"
    );

    let mine = hipchat(&app, "/reviews mine", "carol_r", "backend").await;
    assert!(
        mine.starts_with("<b>Your 1 open pull request</b>"),
        "{mine}"
    );
    assert!(
        mine.contains(&link(3)) && mine.contains("changes requested by Dave Bystander"),
        "{mine}"
    );

    let stranger = hipchat(&app, "/reviews", "stranger", "backend").await;
    assert!(
        stranger.contains(&link(1)) && stranger.contains(&link(2)) && stranger.contains(&link(3)),
        "{stranger}"
    );
    assert!(
        stranger.contains("[[users]] bitbucket = ")
            && stranger.contains("hipchat = &quot;stranger&quot;"),
        "{stranger}"
    );
    let bob = hipchat(&app, "/reviews", "bob", "backend").await;
    assert!(
        bob.starts_with("<b>3 pull requests you can review</b>"),
        "{bob}"
    );
    assert_eq!(
        hipchat(&app, "/reviews", "carol_r", "random").await,
        "This room has no repositories routed to it: there is nothing to list here."
    );

    // Slack, signed.
    let form = serde_urlencoded::to_string([
        ("command", "/reviews"),
        ("text", ""),
        ("user_id", "UCAROL"),
        ("user_name", "carol"),
        ("channel_id", "C0123"),
        ("channel_name", "backend"),
        ("response_url", "https://hooks.slack.com/commands/x"),
    ])
    .unwrap();
    let ts = now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{form}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let answer: Value = app
        .client
        .post(format!("{}/commands/slack", app.address))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", ts.to_string())
        .header("X-Slack-Signature", signature)
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response_type"], "ephemeral");
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.starts_with("*2 pull requests you can review* (backend)"),
        "{text}"
    );
    assert!(
        text.contains("<https://bitbucket.org/acme/payments-api/pull-requests/1|Change 1>"),
        "{text}"
    );
}

/// `commands::snooze_hides_until_a_new_commit_or_expiry` on PostgreSQL: the snooze row as
/// recorded (commit, requested reviewers, approvers), hidden from the asker's list and the
/// room's digest, woken by a new commit, by expiry, by unsnooze; unknown PRs and people.
#[tokio::test]
async fn snooze_hides_until_a_new_commit_expiry_or_unsnooze() {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(&clock).await else { return };
    let answer = hipchat(
        &app,
        &format!("/reviews snooze https://bitbucket.org/{REPO}/pull-requests/1 2h"),
        "carol_r",
        "backend",
    )
    .await;
    assert_eq!(
        answer,
        "Snoozed acme/payments-api#1 until 2026-11-24 12:00 UTC, or until it gets a new commit, a new reviewer or loses an approval."
    );
    let row: (String, i64, String, String, Option<String>, String, String) = sqlx::query_as(
        "SELECT s.user_key, s.number, s.until, s.created_at, s.source_commit, s.reviewers, \
         s.approvers FROM snoozes s",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let (user, number, until, created_at, commit, reviewers, approvers) = row;
    assert_eq!(
        (
            user,
            number,
            until.as_str(),
            created_at.as_str(),
            commit.as_deref()
        ),
        (
            key_of("carol"),
            1,
            "2026-11-24T12:00:00.000000Z",
            "2026-11-24T10:00:00.000000Z",
            Some("abcdef012345")
        )
    );
    let mut reviewers: Vec<String> = serde_json::from_str(&reviewers).unwrap();
    reviewers.sort();
    assert_eq!(reviewers, [key_of("bob"), key_of("carol")]);
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&approvers).unwrap(),
        Vec::<String>::new()
    );
    let text = hipchat(&app, "/reviews", "carol_r", "backend").await;
    assert!(
        !text.contains(&link(1)) && text.contains(&link(4)),
        "{text}"
    );

    // The room's sweep leaves it out too.
    let report: Value = app
        .client
        .post(format!("{}/sweep?force=true", app.address))
        .bearer_auth(SWEEP_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let backend = report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "backend")
        .unwrap()
        .clone();
    assert_eq!(backend["waiting_review"], 2, "#1 snoozed: {report}");

    // A new commit wakes it.
    let mut pushed = pr_event(
        1,
        "2026-11-24T09:30:00+00:00",
        "OPEN",
        "Change 1",
        "ffffffffffff",
        &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
    );
    pushed["pullrequest"]["created_on"] = json!((now() - Span::hours(5)).to_rfc3339());
    pushed["pullrequest"]["reviewers"] = json!([]);
    processed(&app, "pullrequest:updated", &pushed).await;
    assert_eq!(snoozes(&app).await, 0);
    assert!(hipchat(&app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(1)));

    // Snoozed again by name#number for an hour; two hours later it is back.
    hipchat(
        &app,
        &format!("/reviews snooze {REPO}#1 1h"),
        "carol_r",
        "backend",
    )
    .await;
    assert!(!hipchat(&app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(1)));
    clock.set(now() + Span::hours(2));
    assert!(hipchat(&app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(1)));

    // A repository named in another case is found (PostgreSQL's lower() index).
    let answer = hipchat(
        &app,
        "/reviews snooze ACME/Payments-API#4 1d",
        "carol_r",
        "backend",
    )
    .await;
    assert!(
        answer.starts_with("Snoozed ACME/Payments-API#4 until 2026-11-25 12:00 UTC"),
        "{answer}"
    );
    let snoozed: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT r.full_name, s.number, s.until FROM snoozes s \
         JOIN repositories r ON r.repository_key = s.repository_key ORDER BY s.number",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        snoozed,
        [
            (REPO.to_owned(), 1, "2026-11-24T11:00:00.000000Z".to_owned()),
            (REPO.to_owned(), 4, "2026-11-25T12:00:00.000000Z".to_owned())
        ],
        "#1's expired snooze stays, and ends nothing"
    );
    assert_eq!(
        hipchat(
            &app,
            &format!("/reviews unsnooze {REPO}#4"),
            "carol_r",
            "backend"
        )
        .await,
        "acme/payments-api#4 is back in your list."
    );
    assert_eq!(
        hipchat(&app, "/reviews snooze acme/nothing#9", "carol_r", "backend").await,
        "I don&#39;t know acme/nothing#9."
    );
    let answer = hipchat(
        &app,
        &format!("/reviews snooze {REPO}#4"),
        "stranger",
        "backend",
    )
    .await;
    assert!(
        answer.starts_with("I don&#39;t know which Bitbucket account is yours"),
        "{answer}"
    );
    // Bob snoozes as "BOB": matched by his nickname in any case, without configuration.
    let answer = hipchat(
        &app,
        &format!("/reviews snooze {REPO}#4 1d"),
        "BOB",
        "backend",
    )
    .await;
    assert!(
        answer.starts_with("Snoozed acme/payments-api#4"),
        "{answer}"
    );
    let who: Vec<String> = sqlx::query_scalar("SELECT user_key FROM snoozes ORDER BY user_key")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(who, [key_of("bob"), key_of("carol")]);
}

/// Carol has an account on Bitbucket Cloud and one on Data Center (nickname `carol` on
/// both). `/reviews snooze` from HipChat as `carol` (no mapping) picks the same account on
/// PostgreSQL as on SQLite (a SQLite app beside it gets the same commands): the Cloud one,
/// whose uuid and account id are set, and which is reviewing the PR.
#[tokio::test]
async fn a_person_on_both_sites_is_the_same_account_as_on_sqlite() {
    let settings = |s: &mut Settings| {
        s.notify.rooms = vec![Room {
            name: "backend".into(),
            sink: Sink::Console,
        }];
        s.notify.routes = vec![digest_only_route(&["acme/*"], "backend")];
        s.commands.hipchat_token = Some(SecretToken(SecretString::from(HIPCHAT_TOKEN.to_owned())));
    };
    let clock = ManualClock::frozen(now());
    let Some(app) = spawn_pg("bothsites", settings, clock.clock()).await else {
        return;
    };
    let sqlite = crate::helpers::spawn_app_with_clock(settings, clock.clock()).await;

    let cloud = pr(
        1,
        5,
        &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
    );
    let mut datacenter: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/datacenter/base.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let claire = &mut datacenter["pullRequest"]["reviewers"][2]["user"];
    claire["name"] = json!("carol");
    claire["slug"] = json!("carol");
    claire["displayName"] = json!("Carol (Data Center)");
    let deliveries = [
        (
            "cloud",
            "pullrequest:created",
            serde_json::to_vec(&cloud).unwrap(),
        ),
        (
            "data-center",
            "pr:opened",
            serde_json::to_vec(&datacenter).unwrap(),
        ),
    ];
    for (i, (flavour, key, body)) in deliveries.iter().enumerate() {
        let id = format!("both-{i}");
        for (client, address) in [
            (&app.client, &app.address),
            (&sqlite.client, &sqlite.address),
        ] {
            let answer = send_as(client, address, flavour, key, &id, body).await;
            assert_eq!(answer.body["status"], "processed", "{}", answer.body);
        }
    }
    let command = json!({
        "event": "room_message",
        "item": {
            "message": {"message": format!("/reviews snooze {REPO}#1 1h"),
                        "from": {"id": 99, "name": "Carol", "mention_name": "carol"}},
            "room": {"id": 1, "name": "backend"},
        }
    });
    let mut answers = Vec::new();
    for (client, address) in [
        (&app.client, &app.address),
        (&sqlite.client, &sqlite.address),
    ] {
        let answer: Value = client
            .post(format!("{address}/commands/hipchat/{HIPCHAT_TOKEN}"))
            .json(&command)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answers.push(answer["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        answers[0], answers[1],
        "PostgreSQL's answer (left), SQLite's (right)"
    );
    assert!(
        answers[0].starts_with("Snoozed acme/payments-api#1"),
        "{}",
        answers[0]
    );
    let on_sqlite: String = sqlx::query_scalar("SELECT user_key FROM snoozes")
        .fetch_one(&sqlite.db)
        .await
        .unwrap();
    let on_postgres: String = sqlx::query_scalar("SELECT user_key FROM snoozes")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(on_sqlite, key_of("carol"), "SQLite: the Cloud account");
    assert_eq!(on_postgres, on_sqlite, "PostgreSQL: the same account");
}

/// #4 (30 h old) as Cloud sends it at `minute` past 09:00, with this description.
fn pr4(
    minute: i64,
    description: &str,
    participants: &[(&str, &str, Option<&str>)],
    reviewers: &[&str],
) -> Value {
    let users = own_fixture("users.json");
    let mut body = pr_event(
        4,
        &(now() - Span::hours(1) + Span::minutes(minute)).to_rfc3339(),
        "OPEN",
        "Change 4",
        "abcdef012345",
        participants,
    );
    body["pullrequest"]["description"] = json!(description);
    body["pullrequest"]["created_on"] = json!((now() - Span::hours(30)).to_rfc3339());
    body["pullrequest"]["reviewers"] = reviewers.iter().map(|u| users[*u].clone()).collect();
    body
}

async fn carol_sees_4(app: &PgApp) -> bool {
    hipchat(app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(4))
}

/// The writer's PostgreSQL statements end a snooze when a reviewer is requested or an
/// approval withdrawn, and keep it through an event that changes neither.
#[tokio::test]
async fn snooze_ends_when_a_reviewer_is_requested_or_an_approval_withdrawn() {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(&clock).await else { return };
    let approved = [("bob", "REVIEWER", Some("approved"))];
    let deliver = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            let answer = app.deliver_json(key, &uuid_like("wake"), &body).await;
            assert_eq!(answer.body["status"], "processed", "{}", answer.body);
        }
    };
    deliver(
        "pullrequest:approved",
        pr4(1, "Adds retries.", &approved, &[]),
    )
    .await;
    assert!(carol_sees_4(&app).await);
    hipchat(
        &app,
        &format!("/reviews snooze {REPO}#4 1d"),
        "carol_r",
        "backend",
    )
    .await;
    assert_eq!(snoozes(&app).await, 1);
    assert!(!carol_sees_4(&app).await);

    // Only the description changes: still snoozed.
    deliver(
        "pullrequest:updated",
        pr4(2, "Now with tests.", &approved, &[]),
    )
    .await;
    assert_eq!(snoozes(&app).await, 1);
    assert!(!carol_sees_4(&app).await);

    // Bob withdraws his approval: the snooze ends.
    deliver(
        "pullrequest:unapproved",
        pr4(3, "Now with tests.", &[("bob", "REVIEWER", None)], &[]),
    )
    .await;
    assert_eq!(snoozes(&app).await, 0);
    assert!(carol_sees_4(&app).await);

    // Snoozed again; Dave is asked to review: it ends again.
    hipchat(
        &app,
        &format!("/reviews snooze {REPO}#4 1d"),
        "carol_r",
        "backend",
    )
    .await;
    assert!(!carol_sees_4(&app).await);
    deliver(
        "pullrequest:updated",
        pr4(4, "Now with tests.", &[("bob", "REVIEWER", None)], &[]),
    )
    .await;
    assert_eq!(snoozes(&app).await, 1, "nothing changed");
    deliver(
        "pullrequest:updated",
        pr4(
            5,
            "Now with tests.",
            &[("bob", "REVIEWER", None)],
            &["dave"],
        ),
    )
    .await;
    assert_eq!(snoozes(&app).await, 0);
    assert!(carol_sees_4(&app).await);
}

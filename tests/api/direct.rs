//! Personal reminders in direct messages (issue 24), against loopback fakes of each chat's
//! direct-message API (`fake_direct`), on the service's clock.

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use pr_reminder::config::{SecretToken, Settings, UserMapping};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::commands::{app_settings, hipchat, seed, HIPCHAT_TOKEN, SWEEP_TOKEN};
use crate::fake_direct::FakeDirect;
use crate::fake_slack::BOT_TOKEN;
use crate::helpers::{on_both, spawn_on, App, ManualClock, On, Served};

/// Tuesday 24 November 2026, 08:29:30 UTC: 09:29:30 in Berlin (UTC+1).
fn before_930_berlin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 29, 30).unwrap()
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// Carol, who reviews in Berlin and is found in Slack by her e-mail address.
fn carol() -> UserMapping {
    UserMapping {
        bitbucket: "carol".into(),
        hipchat: Some("carol_r".into()),
        slack: Some("UCAROL".into()),
        email: Some("carol@example.com".into()),
        timezone: Some("Europe/Berlin".into()),
        remind_at: Some(vec!["09:30".into()]),
        ..UserMapping::default()
    }
}

/// `commands::app_settings` (rooms, command tokens, a sweep token) with the Slack bot at `api`
/// and `users`.
fn with_slack(api: String, users: Vec<UserMapping>) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        app_settings()(s);
        s.direct.slack_bot_token = Some(SecretToken(SecretString::from(BOT_TOKEN.to_owned())));
        s.direct.slack_api_url = api;
        s.commands.users = users;
    }
}

/// (person, dm, remind_at, away_until) of `direct_preferences`.
type PreferenceRow = (String, Option<String>, Option<String>, Option<String>);

/// (chat, person, kind, state) of every direct message, oldest first.
async fn rows(app: &impl Served) -> Vec<(String, String, String, String)> {
    app.query_rows("SELECT chat, person, kind, state FROM direct_outbox ORDER BY id")
        .await
}

/// Lets the service run for a while of real time (its clock stands still).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
}

on_both!(
    a_queue_is_sent_at_930_in_berlin_once_and_not_on_saturday_nor_while_away,
    slack_rate_limit_retry_after_is_honoured,
    hipchat_mattermost_and_teams_get_their_documented_requests,
    direct_messages_queued_before_a_restart_are_sent_after_it,
    commands_set_a_persons_own_reminders_and_refuse_bad_input,
    the_status_page_shows_each_persons_direct_messages_and_next_reminder,
    who_must_act_hears_it_and_the_actor_never_dms_themselves,
    news_outside_working_hours_waits_for_the_next_working_hour,
);

/// Carol's queue at 09:30 Europe/Berlin on a Tuesday (08:30 UTC): her e-mail looked up once in
/// Slack, her DM channel opened for her user id, the message posted there, at that instant and
/// not a second before; once (the next minutes queue nothing); nothing on Saturday; nothing
/// while she is away; again on the day she is back.
async fn a_queue_is_sent_at_930_in_berlin_once_and_not_on_saturday_nor_while_away(on: On) {
    let slack = FakeDirect::slack(&[("carol@example.com", "U0CAROL01", "Europe/Berlin")]).await;
    let clock = ManualClock::frozen(before_930_berlin());
    let api = format!("{}/api", slack.uri());
    let Some(app) = spawn_on(on, "dm930", with_slack(api, vec![carol()]), clock.clock()).await
    else {
        return;
    };
    seed(&app).await;
    clock.set(at(2026, 11, 24, 8, 29) + Duration::seconds(59));
    settle().await;
    assert!(rows(&app).await.is_empty(), "nothing before 09:30");
    assert!(slack.calls().is_empty(), "{:#?}", slack.calls());

    clock.set(at(2026, 11, 24, 8, 30));
    let posted = slack.wait_for("chat.postMessage", 1).await;
    let calls = slack.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        methods,
        [
            "users.lookupByEmail",
            "conversations.open",
            "chat.postMessage"
        ]
    );
    for call in &calls {
        assert_eq!(
            call.authorization.as_deref(),
            Some(format!("Bearer {BOT_TOKEN}").as_str())
        );
    }
    assert_eq!(calls[0].http_method, "GET");
    assert_eq!(calls[0].query["email"], "carol@example.com");
    assert_eq!(calls[1].body, json!({"users": "U0CAROL01"}));
    assert_eq!(
        calls[1].content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    let post = &posted[0].body;
    assert_eq!(post["channel"], "D0CAROL01");
    let text = post["text"].as_str().unwrap();
    assert_eq!(text, CAROL_QUEUE, "{text}");
    app.wait_for_count("SELECT count(*) FROM direct_outbox WHERE state = 'sent'", 1)
        .await;
    let sent: Vec<(Option<String>,)> = app.query_rows("SELECT sent_at FROM direct_outbox").await;
    assert_eq!(sent[0].0.as_deref(), Some("2026-11-24T08:30:00.000000Z"));

    // The next minutes: nothing more (sent once), and the e-mail is not looked up again.
    clock.set(at(2026, 11, 24, 8, 31));
    clock.set(at(2026, 11, 24, 8, 45));
    settle().await;
    assert_eq!(rows(&app).await.len(), 1);

    // Saturday 28 November, 09:30 in Berlin: not a working day.
    clock.set(at(2026, 11, 28, 8, 30));
    settle().await;
    assert_eq!(rows(&app).await.len(), 1, "nothing on a Saturday");

    // Away until Wednesday 2 December: nothing on Monday 30 November; again on Wednesday.
    let (status, answer) = hipchat(
        &app,
        HIPCHAT_TOKEN,
        "/reviews away until 2026-12-02",
        "carol_r",
        "backend",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["message"],
        "Away until 2026-12-02: no personal messages before then."
    );
    clock.set(at(2026, 11, 30, 8, 30));
    settle().await;
    assert_eq!(rows(&app).await.len(), 1, "nothing while away");
    clock.set(at(2026, 12, 2, 8, 30));
    slack.wait_for("chat.postMessage", 2).await;
    assert_eq!(
        slack.calls_to("users.lookupByEmail").len(),
        1,
        "looked up once, then kept"
    );
    app.wait_for_count("SELECT count(*) FROM direct_outbox WHERE state = 'sent'", 2)
        .await;
}

/// Carol's queue in Slack mrkdwn: the review she owes (#1), then her own PR whose turn is hers
/// (#3, changes requested).
const CAROL_QUEUE: &str = "*1 pull request waiting for your review*\n\
• <https://bitbucket.org/acme/payments-api/pull-requests/1|Change 1> (acme/payments-api #1) by Alice Author · 0/2 approvals · 3h old · waiting for Bob Reviewer, <@UCAROL> · your turn for 3h\n\
*Your turn: 1*\n\
• <https://bitbucket.org/acme/payments-api/pull-requests/3|Change 3> (acme/payments-api #3) by Carol Reviewer · 0/2 approvals · changes requested by Dave Bystander · 5h old";

/// A 429 from `chat.postMessage` with `Retry-After: 30`: the message is tried again 30 s later
/// on the service's clock, not sooner, and then delivered.
async fn slack_rate_limit_retry_after_is_honoured(on: On) {
    let slack = FakeDirect::slack(&[("carol@example.com", "U0CAROL01", "Europe/Berlin")]).await;
    slack.rate_limit("chat.postMessage", &[30]);
    let start = at(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(start);
    let api = format!("{}/api", slack.uri());
    let Some(app) = spawn_on(on, "dm429", with_slack(api, vec![carol()]), clock.clock()).await
    else {
        return;
    };
    seed(&app).await;
    let answer = app
        .post_bearer("/remind?user=carol&force=true", SWEEP_TOKEN)
        .await;
    assert_eq!(answer.status(), 200);
    let report: Value = answer.json().await.unwrap();
    assert_eq!(report["people"][0]["status"], "queued", "{report}");
    slack.wait_for("chat.postMessage", 1).await;
    app.wait_for_count(
        "SELECT count(*) FROM direct_outbox WHERE state = 'retrying' \
         AND not_before = '2026-11-24T10:00:30.000000Z' AND last_error = 'chat.postMessage: ratelimited'",
        1,
    )
    .await;
    clock.advance(std::time::Duration::from_secs(29));
    settle().await;
    assert_eq!(
        slack.calls_to("chat.postMessage").len(),
        1,
        "not before 30 s"
    );
    clock.advance(std::time::Duration::from_secs(1));
    slack.wait_for("chat.postMessage", 2).await;
    app.wait_for_count(
        "SELECT count(*) FROM direct_outbox WHERE state = 'sent' AND attempts = 2",
        1,
    )
    .await;
}

/// Bob's queue as Markdown (Mattermost's posts): the oldest owed review first.
const BOB_QUEUE: &str = "**2 pull requests waiting for your review**\n\
\n\
- [Change 4](https://bitbucket.org/acme/payments-api/pull-requests/4) (acme/payments-api \\#4) by Alice Author · 0/2 approvals · 1d 6h old · waiting for Bob Reviewer · your turn for 1d 6h\n\
- [Change 1](https://bitbucket.org/acme/payments-api/pull-requests/1) (acme/payments-api \\#1) by Alice Author · 0/2 approvals · 5h old · waiting for Bob Reviewer, Carol Reviewer · your turn for 5h";

const HIPCHAT_DM_TOKEN: &str = "hipchat-dm-token-0123456789abcdef";
const MATTERMOST_BOT_TOKEN: &str = "mattermost-bot-token-0123456789ab";
const MATTERMOST_BOT: &str = "botuserid00000000000000000";
const MATTERMOST_BOB: &str = "bobuserid000000000000000000";
const TEAMS_SIG: &str = "teams-workflow-sig-0123456789";

/// Bob through Mattermost, Carol through HipChat, Dave through Teams: `POST /remind?force=true`
/// queues each one's list and each chat gets exactly its documented request.
async fn hipchat_mattermost_and_teams_get_their_documented_requests(on: On) {
    let hip = FakeDirect::hipchat(HIPCHAT_DM_TOKEN, &["@carol_r"]).await;
    let matter = FakeDirect::mattermost(MATTERMOST_BOT_TOKEN, MATTERMOST_BOT).await;
    let teams = FakeDirect::teams(TEAMS_SIG).await;
    let clock = ManualClock::frozen(at(2026, 11, 24, 10, 0));
    let (hip_url, matter_url) = (hip.uri(), matter.uri());
    let teams_url = format!(
        "{}/workflows/abc/triggers/manual/paths/invoke?sig={TEAMS_SIG}",
        teams.uri()
    );
    let users = vec![
        UserMapping {
            bitbucket: "bob".into(),
            mattermost: Some(MATTERMOST_BOB.into()),
            ..UserMapping::default()
        },
        UserMapping {
            direct: Some("hipchat".into()),
            ..carol()
        },
        UserMapping {
            bitbucket: "dave".into(),
            email: Some("dave@example.com".into()),
            direct: Some("teams".into()),
            ..UserMapping::default()
        },
    ];
    let adjust = move |s: &mut Settings| {
        app_settings()(s);
        s.direct.hipchat_url = Some(hip_url);
        s.direct.hipchat_token = Some(SecretToken(SecretString::from(HIPCHAT_DM_TOKEN.to_owned())));
        s.direct.mattermost_url = Some(matter_url);
        s.direct.mattermost_token = Some(SecretToken(SecretString::from(
            MATTERMOST_BOT_TOKEN.to_owned(),
        )));
        s.direct.teams_workflow_url = Some(SecretString::from(teams_url));
        s.commands.users = users;
    };
    let Some(app) = spawn_on(on, "dmchats", adjust, clock.clock()).await else {
        return;
    };
    seed(&app).await;
    let answer = app.post_bearer("/remind?force=true", SWEEP_TOKEN).await;
    assert_eq!(answer.status(), 200);
    let report: Value = answer.json().await.unwrap();
    let statuses: Vec<(&str, &str, Option<&str>)> = report["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["person"].as_str().unwrap(),
                p["status"].as_str().unwrap(),
                p["chat"].as_str(),
            )
        })
        .collect();
    // Dave (a bystander who asked for changes on #3) owes nothing and has no PR: nothing sent.
    assert_eq!(
        statuses,
        [
            ("bob", "queued", Some("mattermost")),
            ("carol", "queued", Some("hipchat")),
            ("dave", "skipped", Some("teams")),
        ],
        "{report}"
    );

    let call = &hip.wait_for("/v2/user/@carol_r/message", 1).await[0];
    assert_eq!(call.http_method, "POST");
    assert_eq!(
        call.authorization.as_deref(),
        Some(format!("Bearer {HIPCHAT_DM_TOKEN}").as_str())
    );
    let mut keys: Vec<&String> = call.body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["message", "message_format", "notify"]);
    assert_eq!(call.body["message_format"], "html");
    assert_eq!(call.body["notify"], true);
    assert!(
        call.body["message"]
            .as_str()
            .unwrap()
            .starts_with("<b>1 pull request waiting for your review</b>"),
        "{}",
        call.body
    );

    let posts = matter.wait_for("/api/v4/posts", 1).await;
    let calls = matter.calls();
    let paths: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.http_method.as_str(), c.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/api/v4/users/me"),
            ("POST", "/api/v4/channels/direct"),
            ("POST", "/api/v4/posts")
        ]
    );
    for call in &calls {
        assert_eq!(
            call.authorization.as_deref(),
            Some(format!("Bearer {MATTERMOST_BOT_TOKEN}").as_str())
        );
    }
    assert_eq!(calls[1].body, json!([MATTERMOST_BOT, MATTERMOST_BOB]));
    assert_eq!(posts[0].body["channel_id"], "dmchannel0000000000000000a");
    let message = posts[0].body["message"].as_str().unwrap();
    assert_eq!(message, BOB_QUEUE, "{message}");
    app.wait_for_count("SELECT count(*) FROM direct_outbox WHERE state = 'sent'", 2)
        .await;
    assert!(teams.calls().is_empty());

    // Dave, asked to review #4 too: his card goes to the workflow with his e-mail.
    let mut four = crate::commands::pr(9, 1, &[("dave", "REVIEWER", None)]);
    four["pullrequest"]["title"] = json!("Change 9");
    app.processed("pullrequest:updated", &four).await;
    let answer = app
        .post_bearer("/remind?user=dave@example.com&force=true", SWEEP_TOKEN)
        .await;
    assert_eq!(answer.status(), 200);
    let call = &teams
        .wait_for("/workflows/abc/triggers/manual/paths/invoke", 1)
        .await[0];
    assert_eq!(call.query["sig"], TEAMS_SIG);
    assert_eq!(call.body["recipient"], "dave@example.com");
    assert_eq!(call.body["type"], "message");
    assert_eq!(
        call.body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    app.wait_for_count("SELECT count(*) FROM direct_outbox WHERE state = 'sent'", 3)
        .await;
}

/// A direct message claimed when the process died (`sending`) and one waiting for its retry are
/// both sent by the next start on the same database: nothing is lost.
async fn direct_messages_queued_before_a_restart_are_sent_after_it(on: On) {
    let slack = FakeDirect::slack(&[("carol@example.com", "U0CAROL01", "Europe/Berlin")]).await;
    // Slack is down for the first process: every post is refused for an hour.
    slack.rate_limit("chat.postMessage", &[3600]);
    let clock = ManualClock::frozen(at(2026, 11, 24, 10, 0));
    let api = format!("{}/api", slack.uri());
    let Some(app) = spawn_on(
        on,
        "dmrestart",
        with_slack(api.clone(), vec![carol()]),
        clock.clock(),
    )
    .await
    else {
        return;
    };
    seed(&app).await;
    let answer = app
        .post_bearer("/remind?user=carol&force=true", SWEEP_TOKEN)
        .await;
    assert_eq!(answer.status(), 200);
    app.wait_for_count(
        "SELECT count(*) FROM direct_outbox WHERE state = 'retrying'",
        1,
    )
    .await;
    // A second message, claimed by a process that then died.
    app.execute(
        "INSERT INTO direct_outbox (chat, person, kind, payload, state, created_at, not_before) \
         SELECT chat, person, kind, payload, 'sending', created_at, created_at FROM direct_outbox",
    )
    .await;

    // The next start, two hours later by its clock.
    let later = ManualClock::frozen(at(2026, 11, 24, 12, 0));
    let again = app
        .again(with_slack(api, vec![carol()]), later.clock())
        .await;
    again
        .wait_for_count("SELECT count(*) FROM direct_outbox WHERE state = 'sent'", 2)
        .await;
    assert_eq!(slack.calls_to("chat.postMessage").len(), 3);
}

/// `/reviews dm|remind|away|mute` store the asker's own settings, with clear answers to bad
/// input (nothing stored then); someone without a `[[users]]` entry is told why.
async fn commands_set_a_persons_own_reminders_and_refuse_bad_input(on: On) {
    let slack = FakeDirect::slack(&[]).await;
    let clock = ManualClock::frozen(at(2026, 11, 24, 10, 0));
    let api = format!("{}/api", slack.uri());
    let Some(app) = spawn_on(
        on,
        "dmcommands",
        with_slack(api, vec![carol()]),
        clock.clock(),
    )
    .await
    else {
        return;
    };
    seed(&app).await;
    let say = |text: &'static str, who: &'static str| {
        let app = &app;
        async move {
            let (status, answer) = hipchat(app, HIPCHAT_TOKEN, text, who, "backend").await;
            assert_eq!(status, 200, "{answer}");
            answer["message"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        say("/reviews dm off", "carol_r").await,
        "Direct messages are off for you: no personal reminders."
    );
    assert_eq!(
        say("/reviews dm on", "carol_r").await,
        "Direct messages are on for you: they come through slack."
    );
    assert_eq!(
        say("/reviews remind 14:00,09:15", "carol_r").await,
        "Your queue will be sent to you at 09:15, 14:00 on your working days."
    );
    assert!(say("/reviews remind 9h15", "carol_r")
        .await
        .starts_with("Sorry: `9h15` is not a time of day such as 09:30 (24-hour HH:MM)."));
    assert!(say("/reviews away until 2026-13-01", "carol_r")
        .await
        .starts_with("Sorry: `2026-13-01` is not a date such as 2027-01-04 (YYYY-MM-DD)."));
    assert_eq!(
        say("/reviews away until 2026-11-20", "carol_r").await,
        "2026-11-20 is not after today (2026-11-24): nothing changed."
    );
    assert_eq!(
        say("/reviews mute acme/payments-api#1", "carol_r").await,
        "Muted acme/payments-api#1: no direct messages about it."
    );
    assert_eq!(
        say("/reviews mute acme/nothing#1", "carol_r").await,
        "I don&#39;t know acme/nothing#1."
    );
    assert!(say("/reviews dm off", "bob")
        .await
        .starts_with("Personal reminders need a [[users]] entry with your chat name"));
    let prefs: Vec<PreferenceRow> = app
        .query_rows("SELECT person, dm, remind_at, away_until FROM direct_preferences")
        .await;
    assert_eq!(
        prefs,
        [(
            "carol".to_owned(),
            Some("on".to_owned()),
            Some("09:15,14:00".to_owned()),
            None
        )]
    );
    // Muted: #1 leaves her queue; her own #3 is still hers.
    let answer = app
        .post_bearer("/remind?user=carol&force=true", SWEEP_TOKEN)
        .await;
    let report: Value = answer.json().await.unwrap();
    assert_eq!(report["people"][0]["owed"], 0, "{report}");
    assert_eq!(report["people"][0]["own"], 1, "{report}");
    // An unknown person is a clear 404.
    let answer = app.post_bearer("/remind?user=zed", SWEEP_TOKEN).await;
    assert_eq!(answer.status(), 404);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["reason"],
        "no [[users]] entry is `zed` (its bitbucket, slack, hipchat, mattermost or email)"
    );
}

/// Someone whose only chat cannot send direct messages gets none: skipped, said in the debug
/// log, and in `pr-reminder remind`'s report.
#[tokio::test]
async fn a_person_with_no_direct_chat_is_skipped_with_a_debug_log() {
    let Some(app) = spawn_on(
        On::Sqlite,
        "dmnone",
        |s: &mut Settings| {
            app_settings()(s);
            s.commands.users = vec![UserMapping {
                bitbucket: "erin".into(),
                hipchat: Some("erin".into()),
                remind_at: Some(vec!["09:30".into()]),
                ..UserMapping::default()
            }];
        },
        pr_reminder::clock::Clock::system(),
    )
    .await
    else {
        return;
    };
    let App::Sqlite(sqlite) = &app else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[[users]]\nbitbucket = \"erin\"\nhipchat = \"erin\"\nremind_at = [\"09:30\"]\n",
    )
    .unwrap();
    let out = crate::helpers::clean_command(env!("CARGO_BIN_EXE_pr-reminder"))
        .current_dir(dir.path())
        .env("PR_REMINDER_DATABASE", &sqlite.db_path)
        .env("RUST_LOG", "pr_reminder=debug")
        .args([
            "--config",
            config.to_str().unwrap(),
            "remind",
            "--user",
            "erin",
            "--force",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "erin: skipped (no direct chat)\n");
    assert!(
        stderr.contains("no direct chat (none configured for them, or DMs off): skipped")
            && stderr.contains("person=erin")
            && stderr.contains("DEBUG"),
        "{stderr}"
    );
}

const STATUS_TOKEN: &str = "status-token-0123456789abcdef";

/// The status page lists each person: DMs on (and the chat) or off, their next reminder in
/// their zone, and until when they are away.
async fn the_status_page_shows_each_persons_direct_messages_and_next_reminder(on: On) {
    let slack = FakeDirect::slack(&[]).await;
    // Tuesday 24 November 2026, 09:00 UTC: 10:00 in Berlin, past Carol's 09:30.
    let clock = ManualClock::frozen(at(2026, 11, 24, 9, 0));
    let api = format!("{}/api", slack.uri());
    let users = vec![
        carol(),
        UserMapping {
            bitbucket: "bob".into(),
            hipchat: Some("bob".into()),
            ..UserMapping::default()
        },
        UserMapping {
            bitbucket: "erin".into(),
            slack: Some("U0ERIN0001".into()),
            remind_at: Some(vec!["08:00".into()]),
            away_until: Some("2026-12-01".into()),
            ..UserMapping::default()
        },
    ];
    let adjust = move |s: &mut Settings| {
        with_slack(api, users)(s);
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN.to_owned())));
    };
    let Some(app) = spawn_on(on, "dmstatus", adjust, clock.clock()).await else {
        return;
    };
    let (status, page) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200);
    let start = page.find("<h2 id=\"reminders\">").expect("the section");
    let end = start + page[start..].find("</table>").expect("its table");
    let rows: Vec<&str> = page[start..end].split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 3, "{}", &page[start..end]);
    assert!(
        rows[0].contains(">carol<") && rows[0].contains("on (slack)"),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains("datetime=\"2026-11-25T08:30:00+00:00\">Wed 25 Nov 09:30 CET<"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains(">bob<") && rows[1].contains(">off<"),
        "{}",
        rows[1]
    );
    // Erin (UTC, the [sweep] zone) is away until Tuesday 1 December: her next is that day.
    assert!(
        rows[2].contains(">erin<") && rows[2].contains("on (slack)"),
        "{}",
        rows[2]
    );
    assert!(rows[2].contains(">Tue 1 Dec 08:00 UTC<"), "{}", rows[2]);
    assert!(rows[2].contains(">2026-12-01<"), "{}", rows[2]);
}

/// PR `n` as Bitbucket Cloud sends it at `at`: by Alice unless `author` says, `participants`
/// (user, role, state), each one who has a state having taken part at `at`.
fn event(
    n: i64,
    at: DateTime<Utc>,
    author: Option<&str>,
    participants: &[(&str, &str, Option<&str>)],
) -> Value {
    let mut body = crate::commands::pr(n, 1, participants);
    body["pullrequest"]["updated_on"] = json!(at.to_rfc3339());
    body["pullrequest"]["created_on"] = json!((at - Duration::hours(1)).to_rfc3339());
    if let Some(author) = author {
        body["pullrequest"]["author"] = crate::helpers::own_fixture("users.json")[author].clone();
    }
    for p in body["pullrequest"]["participants"].as_array_mut().unwrap() {
        if !p["state"].is_null() {
            p["participated_on"] = json!(at.to_rfc3339());
        }
    }
    body
}

/// Bob, found in Slack by his id.
fn bob() -> UserMapping {
    UserMapping {
        bitbucket: "bob".into(),
        hipchat: Some("bob".into()),
        slack: Some("U0BOB00001".into()),
        ..UserMapping::default()
    }
}

/// The texts posted to the DM channel `channel`, in order.
fn posted_to(slack: &FakeDirect, channel: &str) -> Vec<String> {
    slack
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == channel)
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Moves the clock to the next whole minute, and waits for that run (its news queued).
async fn next_minute(clock: &ManualClock, app: &impl Served, looks: i64) {
    tick(clock).await;
    app.wait_for_count("SELECT count(*) FROM direct_watch", looks)
        .await;
    settle().await;
}

/// Moves the clock to the next whole minute once the reminders' schedule waits for it (so that
/// the run at that minute happens, whatever the machine's load).
async fn tick(clock: &ManualClock) {
    let now = clock.now();
    let next = now + Duration::seconds(60 - i64::from(now.second()));
    let started = std::time::Instant::now();
    while !clock.waits().contains(&next) {
        assert!(
            started.elapsed() < crate::fake_chat::PATIENCE,
            "the reminders never waited for {next}: {:?}",
            clock.waits()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    clock.set(next);
}

/// Alice asks Carol and Bob to review #10: each hears it from the Slack bot, once (the PR's
/// state in the message). Bob approves #4 and then takes his approval back: #4 is his to review
/// again, but he did it, so he hears nothing. Carol's #3 gets its approvals: she hears it is
/// ready to merge. What was theirs before the first look is not news.
async fn who_must_act_hears_it_and_the_actor_never_dms_themselves(on: On) {
    let slack = FakeDirect::slack(&[
        ("carol@example.com", "U0CAROL01", "Europe/Berlin"),
        ("bob@example.com", "U0BOB00001", "Europe/Berlin"),
    ])
    .await;
    let t0 = at(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(t0);
    let api = format!("{}/api", slack.uri());
    let adjust = move |s: &mut Settings| {
        with_slack(api, vec![carol(), bob()])(s);
        s.notify.coalesce = std::time::Duration::ZERO;
    };
    let Some(app) = spawn_on(on, "dmnews", adjust, clock.clock()).await else {
        return;
    };
    seed(&app).await;
    // The first look: what is theirs already (Bob #1 and #4, Carol #1 and her #3) is no news.
    next_minute(&clock, &app, 2).await;
    assert_eq!(app.count_rows("SELECT count(*) FROM direct_turns").await, 4);
    assert!(slack.calls().is_empty(), "{:#?}", slack.calls());

    let t1 = clock.now();
    app.processed(
        "pullrequest:updated",
        &event(
            10,
            t1,
            None,
            &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
        ),
    )
    .await;
    // Bob approves #4.
    app.processed(
        "pullrequest:updated",
        &event(4, t1, None, &[("bob", "REVIEWER", Some("approved"))]),
    )
    .await;
    next_minute(&clock, &app, 2).await;
    slack.wait_for("chat.postMessage", 2).await;
    let carol_heard = posted_to(&slack, "D0CAROL01");
    assert_eq!(carol_heard.len(), 1, "{carol_heard:?}");
    assert!(
        carol_heard[0].starts_with("*Alice Author asked you to review*\n• <https://bitbucket.org/acme/payments-api/pull-requests/10|Change 10> (acme/payments-api #10) by Alice Author · 0/2 approvals"),
        "{}",
        carol_heard[0]
    );
    let bob_heard = posted_to(&slack, "D0BOB00001");
    assert_eq!(bob_heard.len(), 1, "{bob_heard:?}");
    assert!(bob_heard[0].contains("|Change 10>"), "{}", bob_heard[0]);

    // Bob takes his approval back on #4 (his own doing): not a word to him.
    let t2 = clock.now();
    let mut withdrawn = event(4, t2, None, &[("bob", "REVIEWER", None)]);
    withdrawn["pullrequest"]["participants"][0]["participated_on"] = json!(t2.to_rfc3339());
    app.processed("pullrequest:updated", &withdrawn).await;
    // Carol's #3: Bob and Dave approve, nobody asks for changes any more.
    app.processed(
        "pullrequest:updated",
        &event(
            3,
            t2,
            Some("carol"),
            &[
                ("bob", "REVIEWER", Some("approved")),
                ("dave", "REVIEWER", Some("approved")),
            ],
        ),
    )
    .await;
    next_minute(&clock, &app, 2).await;
    let carol_heard = slack.wait_for("chat.postMessage", 3).await;
    let carol_heard: Vec<&str> = carol_heard
        .iter()
        .filter(|c| c.body["channel"] == "D0CAROL01")
        .map(|c| c.body["text"].as_str().unwrap())
        .collect();
    assert_eq!(carol_heard.len(), 2, "{carol_heard:?}");
    assert!(
        carol_heard[1].starts_with("*Your pull request is ready to merge*\n• <https://bitbucket.org/acme/payments-api/pull-requests/3|Change 3>"),
        "{}",
        carol_heard[1]
    );
    next_minute(&clock, &app, 2).await;
    assert_eq!(
        posted_to(&slack, "D0BOB00001").len(),
        1,
        "Bob took his approval back himself"
    );
    let bob_turns: Vec<(String, i64, String)> = app
        .query_rows(
            "SELECT person, number, turn FROM direct_turns WHERE person = 'bob' ORDER BY number",
        )
        .await;
    assert_eq!(
        bob_turns,
        [
            ("bob".to_owned(), 1, "review".to_owned()),
            ("bob".to_owned(), 4, "review".to_owned()),
            ("bob".to_owned(), 10, "review".to_owned()),
        ]
    );
    assert_eq!(
        app.count_rows("SELECT count(*) FROM direct_outbox WHERE kind = 'news' AND state = 'sent'")
            .await,
        3
    );
}

/// News at 20:30 in Berlin, in quiet hours (19:00 to 08:00): held until 08:00 the next morning,
/// on the service's clock; news of a PR that stopped being hers meanwhile is withdrawn.
async fn news_outside_working_hours_waits_for_the_next_working_hour(on: On) {
    let slack = FakeDirect::slack(&[("carol@example.com", "U0CAROL01", "Europe/Berlin")]).await;
    let clock = ManualClock::frozen(at(2026, 11, 24, 19, 29));
    let api = format!("{}/api", slack.uri());
    let adjust = move |s: &mut Settings| {
        with_slack(api, vec![carol()])(s);
        s.notify.coalesce = std::time::Duration::from_secs(30);
        s.sweep.calendar.quiet_hours = Some((
            chrono::NaiveTime::from_hms_opt(19, 0, 0).unwrap(),
            chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        ));
    };
    let Some(app) = spawn_on(on, "dmquiet", adjust, clock.clock()).await else {
        return;
    };
    next_minute(&clock, &app, 1).await;
    let now = clock.now();
    app.processed(
        "pullrequest:updated",
        &event(11, now, None, &[("carol", "REVIEWER", None)]),
    )
    .await;
    tick(&clock).await;
    app.wait_for_count(
        "SELECT count(*) FROM direct_outbox WHERE kind = 'news' \
         AND not_before = '2026-11-25T07:00:00.000000Z'",
        1,
    )
    .await;
    // #12: Carol asked, then no longer before the morning: its news is withdrawn.
    let asked = clock.now();
    app.processed(
        "pullrequest:updated",
        &event(12, asked, None, &[("carol", "REVIEWER", None)]),
    )
    .await;
    tick(&clock).await;
    app.wait_for_count(
        "SELECT count(*) FROM direct_outbox WHERE kind = 'news' AND number = 12",
        1,
    )
    .await;
    let mut unasked = event(12, asked + Duration::minutes(1), None, &[]);
    unasked["pullrequest"]["created_on"] = json!((asked - Duration::hours(1)).to_rfc3339());
    app.processed("pullrequest:updated", &unasked).await;
    tick(&clock).await;
    app.wait_for_count(
        "SELECT count(*) FROM direct_outbox WHERE kind = 'news' AND number = 12",
        0,
    )
    .await;
    clock.set(at(2026, 11, 25, 6, 59));
    settle().await;
    assert!(slack.calls_to("chat.postMessage").is_empty());
    clock.set(at(2026, 11, 25, 7, 0));
    let posted = slack.wait_for("chat.postMessage", 1).await;
    settle().await;
    assert_eq!(slack.calls_to("chat.postMessage").len(), 1, "#11 only");
    assert!(
        posted[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("*Alice Author asked you to review*"),
        "{}",
        posted[0].body
    );
}

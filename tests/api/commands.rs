//! `/reviews` through HTTP, as HipChat and Slack / Mattermost send it.

use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, Mac};
use pr_reminder::config::{
    CommandSettings, NotifySettings, Room, SecretToken, Settings, Sink, SweepSettings, UserMapping,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{
    digest_only_route, on_both, own_fixture, set_repository, spawn_app_with_clock, spawn_on, App,
    ManualClock, On, Served,
};
use crate::lifecycle::{key_of, pr_event};

pub(crate) const HIPCHAT_TOKEN: &str = "hipchat-command-token-0123456789";
pub(crate) const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const MATTERMOST_TOKEN: &str = "mattermost-token-abcdefghijklmn";
pub(crate) const SWEEP_TOKEN: &str = "sweep-token-0123456789abcdef";
pub(crate) const REPO: &str = "acme/payments-api";

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() // a Tuesday
}

/// The settings of `app`: rooms backend (acme/*, HipChat id 4242) and web (web/*), digests
/// only; the command tokens, Carol mapped to carol_r and UCAROL; a sweep token.
pub(crate) fn app_settings() -> impl FnOnce(&mut Settings) {
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
        mattermost_token: Some(SecretToken(SecretString::from(MATTERMOST_TOKEN.to_owned()))),
        users: vec![UserMapping {
            bitbucket: "carol".into(),
            hipchat: Some("carol_r".into()),
            slack: Some("UCAROL".into()),
            ..UserMapping::default()
        }],
        ..CommandSettings::default()
    };
    let sweep = SweepSettings {
        token: Some(SecretToken(SecretString::from(SWEEP_TOKEN.to_owned()))),
        ..SweepSettings::default()
    };
    move |s| {
        s.notify = notify;
        s.commands = commands;
        s.sweep = sweep;
    }
}

/// PR `n` of acme/payments-api opened `hours` before `now()`, with these participants and no
/// requested reviewers.
pub(crate) fn pr(n: i64, hours: i64, participants: &[(&str, &str, Option<&str>)]) -> Value {
    let created = now() - Duration::hours(hours);
    let mut body = pr_event(
        n,
        &(created + Duration::minutes(1)).to_rfc3339(),
        "OPEN",
        &format!("Change {n}"),
        "abcdef012345",
        participants,
    );
    body["pullrequest"]["created_on"] = json!(created.to_rfc3339());
    body["pullrequest"]["reviewers"] = json!([]);
    body
}

/// Delivers `app`'s PRs: #1 by Alice, Bob and Carol asked to review (5 h). #2: Carol approved
/// it (6 h). #3: Carol's own, Dave asks for changes (7 h). #4: older than #1, only Bob asked
/// (30 h). #5: in web/, another room (2 h).
pub(crate) async fn seed(app: &impl Served) {
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
        app.processed("pullrequest:updated", body).await;
    }
}

/// `app_settings` on `on`'s database with `seed`'s PRs (`None`: PostgreSQL not configured).
async fn app(on: On, clock: &ManualClock) -> Option<App> {
    let app = spawn_on(on, "reviews", app_settings(), clock.clock()).await?;
    seed(&app).await;
    Some(app)
}

/// `/reviews ...` from HipChat by `mention` in `room`: the answer's HTML, asserted 200.
async fn reply(app: &impl Served, text: &str, mention: &str, room: &str) -> String {
    let (status, answer) = hipchat(app, HIPCHAT_TOKEN, text, mention, room).await;
    assert_eq!(status, 200, "{text}: {answer}");
    assert_eq!(answer["message_format"], "html");
    answer["message"].as_str().unwrap().to_owned()
}

on_both!(
    a_person_on_both_sites_is_their_cloud_account,
    hipchat_reviews_lists_owed_reviews_then_the_askers_turn,
    an_approval_before_a_new_commit_is_owed_again_when_the_route_says,
    every_total_follows_the_turn_past_the_cut,
    the_room_can_be_named_by_the_id_in_its_hipchat_url,
    mine_unmapped_automatic_and_unknown,
    slack_signed_commands_and_mattermost_tokens,
    snooze_hides_until_a_new_commit_expiry_or_unsnooze,
    snooze_ends_when_a_reviewer_is_requested,
    snooze_ends_when_an_approval_is_withdrawn,
    snoozes_have_a_policy_and_say_who_and_until_when,
);

/// `/reviews ...` from HipChat by `mention` in `room` with `token` in the path: (status, answer).
pub(crate) async fn hipchat(
    app: &impl Served,
    token: &str,
    text: &str,
    mention: &str,
    room: &str,
) -> (u16, Value) {
    // The "backend" room's HipChat id is 4242 (its URL says so); any other room is 777.
    let id = if room == "random" { 777 } else { 4242 };
    let body = json!({
        "event": "room_message",
        "webhook_id": 7,
        "item": {
            "message": {"message": text, "from": {"id": 99, "name": "Some One", "mention_name": mention}},
            "room": {"id": id, "name": room},
        }
    });
    hipchat_command(app, token, &body).await
}

/// `body` as HipChat posts it to `/commands/hipchat/{token}`: (status, answer or null).
pub(crate) async fn hipchat_command(app: &impl Served, token: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client()
        .post(format!("{}/commands/hipchat/{token}", app.address()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn html(answer: &(u16, Value)) -> &str {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["message"].as_str().unwrap()
}

pub(crate) fn link(n: i64) -> String {
    format!("/pull-requests/{n}\">Change {n}</a>")
}

/// `/reviews` (issue 23): only the PRs on which the asker is an owed reviewer (#1: asked, no
/// verdict), not those anyone could review (#4: only Bob asked), nor those they approved (#2) or
/// on which their request for changes stands (#8); then, under "Your turn", their own PRs whose
/// turn is theirs: changes requested (#3), ready to merge (#7).
async fn hipchat_reviews_lists_owed_reviews_then_the_askers_turn(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let users = own_fixture("users.json");
    let mut ready = pr(
        7,
        3,
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("dave", "REVIEWER", Some("approved")),
        ],
    );
    ready["pullrequest"]["author"] = users["carol"].clone();
    app.processed("pullrequest:updated", &ready).await;
    let asked_changes = pr(8, 4, &[("carol", "REVIEWER", Some("changes_requested"))]);
    app.processed("pullrequest:updated", &asked_changes).await;

    let answer = hipchat(&app, HIPCHAT_TOKEN, "/reviews", "carol_r", "backend").await;
    assert_eq!(answer.1["message_format"], "html");
    assert_eq!(answer.1["notify"], false);
    assert_eq!(answer.1["color"], "yellow");
    let text = html(&answer);
    assert_eq!(text, CAROL_REVIEWS, "{text}");
    assert!(!text.contains(&link(4)), "Carol was not asked: {text}");
    assert!(!text.contains(&link(2)), "approved by Carol: {text}");
    assert!(
        !text.contains(&link(8)),
        "Carol's request for changes stands: {text}"
    );
    assert!(!text.contains("web/site"), "another room's: {text}");

    // Bob owes #1 and #4 (asked, #4 first: the oldest), and #7 is no longer his to review.
    let text = reply(&app, "/reviews", "bob", "backend").await;
    assert!(
        text.starts_with("<b>2 pull requests waiting for your review</b> (backend)"),
        "{text}"
    );
    let (one, four) = (
        text.find(&link(1)).expect("#1"),
        text.find(&link(4)).expect("#4"),
    );
    assert!(four < one, "oldest first: {text}");
    assert!(!text.contains("Your turn"), "{text}");
}

/// With `approvals_after_last_push`, Carol's approval of #9 given before its latest new commit
/// no longer counts: she owes the review again, her `/reviews` lists it, and the room's list
/// counts it as waiting for review. Without the option her approval stands and she owes
/// nothing. (The PR is cut by the turn before any list is, so no count uses Bitbucket's raw
/// approvals.)
async fn an_approval_before_a_new_commit_is_owed_again_when_the_route_says(on: On) {
    for after_push in [true, false] {
        let clock = ManualClock::frozen(now());
        let settings = app_settings();
        let Some(app) = spawn_on(
            on,
            "reviewspush",
            move |s: &mut Settings| {
                settings(s);
                s.required_approvals = 1;
                s.notify.routes[0].approvals_after_last_push = after_push;
            },
            clock.clock(),
        )
        .await
        else {
            return;
        };
        let approved = pr(9, 4, &[("carol", "REVIEWER", Some("approved"))]);
        app.processed("pullrequest:approved", &approved).await;
        let mut pushed = approved.clone();
        pushed["pullrequest"]["source"]["commit"]["hash"] = json!("fedcba987654");
        pushed["pullrequest"]["updated_on"] = json!((now() - Duration::hours(1)).to_rfc3339());
        app.processed("pullrequest:updated", &pushed).await;

        let mine = reply(&app, "/reviews", "carol_r", "backend").await;
        let room = reply(&app, "/reviews all", "carol_r", "backend").await;
        if after_push {
            assert!(
                mine.starts_with("<b>1 pull request waiting for your review</b> (backend)")
                    && mine.contains(&link(9))
                    && mine.contains("0/1 approvals"),
                "{mine}"
            );
            assert!(
                room.contains("1 pull request waiting for review") && room.contains(&link(9)),
                "{room}"
            );
        } else {
            assert_eq!(mine, "Nothing is waiting for your review here.", "{mine}");
            assert!(
                room.contains("1 ready to merge") && room.contains(&link(9)),
                "{room}"
            );
        }
    }
}

/// The lists are cut (here to 1 PR each) only after each PR is sorted by its turn, so every
/// total counts by the turn: `seed`'s backend PRs wait for review (#4, #2, #1), on their
/// author (#3), and #7 is ready to merge; each list keeps its oldest.
async fn every_total_follows_the_turn_past_the_cut(on: On) {
    use pr_reminder::review_queue::{select_with, Scope, Selection};
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let mut ready = pr(
        7,
        3,
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("dave", "REVIEWER", Some("approved")),
        ],
    );
    ready["pullrequest"]["author"] = own_fixture("users.json")["carol"].clone();
    app.processed("pullrequest:updated", &ready).await;
    let database = pr_reminder::store::Database::parse(&app.database()).unwrap();
    let db = pr_reminder::store::connect(&database, "normal")
        .await
        .unwrap();
    let routing =
        pr_reminder::domain::routing::Routing::new(&[digest_only_route(&["acme/*"], "backend")], 2)
            .unwrap();
    let scope = Scope {
        room: Some("backend".into()),
        asker: None,
        reminders: false,
    };
    let cut = Selection {
        keep: 1,
        apart: false,
    };
    let queues = select_with(&db, &routing, &[], now(), &scope, cut)
        .await
        .unwrap();
    let digest = &queues["backend"].digest;
    let numbers = |list: &[pr_reminder::domain::PullRequestView]| {
        list.iter().map(|v| v.number).collect::<Vec<_>>()
    };
    assert_eq!(
        (digest.review_total, digest.author_total, digest.merge_total),
        (3, 1, 1)
    );
    assert_eq!(numbers(&digest.waiting_review), [4]);
    assert_eq!(numbers(&digest.waiting_author), [3]);
    assert_eq!(numbers(&digest.ready_to_merge), [7]);
}

/// Carol's `/reviews` in `hipchat_reviews_lists_owed_reviews_then_the_askers_turn`.
const CAROL_REVIEWS: &str = "<b>1 pull request waiting for your review</b> (backend)<br>\
• <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/1\">Change 1</a> (acme/payments-api #1) by Alice Author · 0/2 approvals · 5h old · waiting for Bob Reviewer, @carol_r<br>\
<b>Your turn: 2</b><br>\
• <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/3\">Change 3</a> (acme/payments-api #3) by Carol Reviewer · 0/2 approvals · changes requested by Dave Bystander · 7h old<br>\
• <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/7\">Change 7</a> (acme/payments-api #7) by Carol Reviewer · 2/2 approvals (Bob Reviewer, Dave Bystander) · 3h old · ready to merge";

async fn the_room_can_be_named_by_the_id_in_its_hipchat_url(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let answer = hipchat(
        &app,
        HIPCHAT_TOKEN,
        "/reviews all",
        "carol_r",
        "Renamed Room",
    )
    .await;
    let text = html(&answer);
    assert!(
        text.contains("3 pull requests waiting for review, 1 waiting on their author"),
        "{text}"
    );
    // Requested reviewers still to act: mapped ones as HipChat @mentions.
    assert!(
        text.contains(
            "#1) by Alice Author · 0/2 approvals · 5h old · waiting for Bob Reviewer, @carol_r"
        ),
        "{text}"
    );
}

async fn mine_unmapped_automatic_and_unknown(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let mine = hipchat(&app, HIPCHAT_TOKEN, "/reviews mine", "carol_r", "backend").await;
    let text = html(&mine);
    assert!(
        text.starts_with("<b>Your 1 open pull request</b>"),
        "{text}"
    );
    assert!(
        text.contains(&link(3)) && text.contains("changes requested by Dave Bystander"),
        "{text}"
    );

    // Nobody maps "stranger": the room's list, and how to map oneself.
    let stranger = hipchat(&app, HIPCHAT_TOKEN, "/reviews", "stranger", "backend").await;
    let text = html(&stranger);
    assert!(
        text.contains(&link(1)) && text.contains(&link(2)) && text.contains(&link(3)),
        "{text}"
    );
    assert!(
        text.contains("[[users]] bitbucket = ") && text.contains("hipchat = &quot;stranger&quot;"),
        "{text}"
    );

    // "bob" is a Bitbucket nickname: matched without configuration. Bob authored nothing; he
    // owes #1 and #4, on which he was asked.
    let bob = hipchat(&app, HIPCHAT_TOKEN, "/reviews", "bob", "backend").await;
    let text = html(&bob);
    assert!(
        text.starts_with("<b>2 pull requests waiting for your review</b>"),
        "{text}"
    );
    assert!(!text.contains("Tip:"), "{text}");

    let unknown = hipchat(&app, HIPCHAT_TOKEN, "/reviews dance", "carol_r", "backend").await;
    let text = html(&unknown);
    assert!(
        text.starts_with("Sorry: `dance` is not a /reviews command."),
        "{text}"
    );
    assert!(text.contains("/reviews snooze"), "{text}");
    let help = hipchat(&app, HIPCHAT_TOKEN, "/reviews help", "carol_r", "backend").await;
    assert!(
        html(&help).starts_with("/reviews: the pull requests in this room waiting for your review")
    );

    let nowhere = hipchat(&app, HIPCHAT_TOKEN, "/reviews", "carol_r", "random").await;
    assert_eq!(
        html(&nowhere),
        "This room has no repositories routed to it: there is nothing to list here."
    );
}

#[tokio::test]
async fn a_wrong_hipchat_token_is_404() {
    let clock = ManualClock::frozen(now());
    let app = app(On::Sqlite, &clock).await.unwrap();
    assert_eq!(
        hipchat(
            &app,
            "wrong-token-0123456789abcdef",
            "/reviews",
            "carol_r",
            "backend"
        )
        .await
        .0,
        404
    );
    let response = app
        .client()
        .post(format!(
            "{}/commands/hipchat/{HIPCHAT_TOKEN}",
            app.address()
        ))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

/// A snooze as stored: (user_key, number, until, created_at, source_commit, reviewers,
/// approvers).
type SnoozeRow = (String, i64, String, String, Option<String>, String, String);

/// Snoozing: the row as recorded (commit, requested reviewers, approvers), hidden from the
/// asker's list and the room's digest, woken by a new commit, by expiry, by unsnooze; a
/// repository named in another case; unknown PRs and people; a nickname in another case.
async fn snooze_hides_until_a_new_commit_expiry_or_unsnooze(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let answer = reply(
        &app,
        &format!("/reviews snooze https://bitbucket.org/{REPO}/pull-requests/1 2h"),
        "carol_r",
        "backend",
    )
    .await;
    assert_eq!(
        answer,
        "Snoozed acme/payments-api#1 until Tue 24 Nov 12:00 UTC, or until it gets a new commit, a new reviewer or loses an approval."
    );
    let rows: Vec<SnoozeRow> = app
        .query_rows(
            "SELECT s.user_key, s.number, s.until, s.created_at, s.source_commit, s.reviewers, \
             s.approvers FROM snoozes s",
        )
        .await;
    let (user, number, until, created_at, commit, reviewers, approvers) = rows[0].clone();
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
    // Carol owed a review only on #1; her own #3 (changes requested) is still hers.
    let text = reply(&app, "/reviews", "carol_r", "backend").await;
    assert!(
        !text.contains(&link(1))
            && text.starts_with("<b>No pull request is waiting for your review</b>")
            && text.contains(&link(3)),
        "{text}"
    );

    // The room's sweep leaves it out too.
    let report: Value = app
        .post_bearer("/sweep?force=true", SWEEP_TOKEN)
        .await
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
    pushed["pullrequest"]["created_on"] = json!((now() - Duration::hours(5)).to_rfc3339());
    pushed["pullrequest"]["reviewers"] = json!([]);
    app.processed("pullrequest:updated", &pushed).await;
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 0);
    assert!(reply(&app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(1)));

    // Snoozed again by name#number for an hour; two hours later it is back.
    reply(
        &app,
        &format!("/reviews snooze {REPO}#1 1h"),
        "carol_r",
        "backend",
    )
    .await;
    assert!(!reply(&app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(1)));
    clock.set(now() + Duration::hours(2));
    assert!(reply(&app, "/reviews", "carol_r", "backend")
        .await
        .contains(&link(1)));

    // A repository named in another case is found (PostgreSQL's lower() index).
    let answer = reply(
        &app,
        "/reviews snooze ACME/Payments-API#4 1d",
        "carol_r",
        "backend",
    )
    .await;
    assert!(
        answer.starts_with("Snoozed ACME/Payments-API#4 until Wed 25 Nov 12:00 UTC"),
        "{answer}"
    );
    let snoozed: Vec<(String, i64, String)> = app
        .query_rows(
            "SELECT r.full_name, s.number, s.until FROM snoozes s \
             JOIN repositories r ON r.repository_key = s.repository_key ORDER BY s.number",
        )
        .await;
    assert_eq!(
        snoozed,
        [
            (REPO.to_owned(), 1, "2026-11-24T11:00:00.000000Z".to_owned()),
            (REPO.to_owned(), 4, "2026-11-25T12:00:00.000000Z".to_owned())
        ],
        "#1's expired snooze stays, and ends nothing"
    );
    assert_eq!(
        reply(
            &app,
            &format!("/reviews unsnooze {REPO}#4"),
            "carol_r",
            "backend"
        )
        .await,
        "acme/payments-api#4 is back in your list."
    );
    assert_eq!(
        reply(&app, "/reviews snooze acme/nothing#9", "carol_r", "backend").await,
        "I don&#39;t know acme/nothing#9."
    );
    let answer = reply(
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
    let answer = reply(
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
    let who: Vec<(String,)> = app
        .query_rows("SELECT user_key FROM snoozes ORDER BY user_key")
        .await;
    assert_eq!(who, [(key_of("bob"),), (key_of("carol"),)]);
}

/// `app_settings` in Berlin (UTC+1 in November), with a status token.
pub(crate) fn berlin_settings() -> impl FnOnce(&mut Settings) {
    let base = app_settings();
    |s| {
        base(s);
        s.sweep.calendar.tz = chrono_tz::Europe::Berlin;
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN.to_owned())));
    }
}

pub(crate) const STATUS_TOKEN: &str = "status-token-0123456789abcdef";

/// The snooze policy (`berlin_settings`, `seed`, now = `now()`): an author cannot snooze their
/// own PR for the room; a snooze is at most `max_snooze_days` (7); `3 days`, `3d` and `72h` are
/// one duration and a wrong one is "not a duration"; `/reviews all` and the status page say who
/// snoozed what until when, in Berlin's time.
async fn snoozes_have_a_policy_and_say_who_and_until_when(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = spawn_on(on, "snooze_policy", berlin_settings(), clock.clock()).await else {
        return;
    };
    seed(&app).await;
    let app = &app;
    let ask = |text: String| async move {
        let answer = hipchat(app, HIPCHAT_TOKEN, &text, "carol_r", "backend").await;
        html(&answer).to_owned()
    };
    // #3 is Carol's own.
    assert_eq!(
        ask(format!("/reviews snooze {REPO}#3 1d")).await,
        "acme/payments-api#3 is your own pull request: you cannot snooze it for the room. \
         Mark it as a draft while it is not ready for review."
    );
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 0);
    // Twelve weeks is past the 7 days a snooze may last.
    assert_eq!(
        ask(format!("/reviews snooze {REPO}#4 12w")).await,
        "A snooze lasts at most 7 days here; 84 days is longer. Nothing was snoozed."
    );
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 0);
    // Three days, however written: until Friday 11:00 in Berlin (10:00 UTC + 72 h).
    for duration in ["3 days", "3d", "72h", "2 days 24 hours"] {
        assert_eq!(
            ask(format!("/reviews snooze {REPO}#4 {duration}")).await,
            "Snoozed acme/payments-api#4 until Fri 27 Nov 11:00 CET, or until it gets a new \
             commit, a new reviewer or loses an approval.",
            "{duration}"
        );
    }
    let until: Vec<(String,)> = app.query_rows("SELECT until FROM snoozes").await;
    assert_eq!(until, [("2026-11-27T10:00:00.000000Z".to_owned(),)]);
    let wrong = ask(format!("/reviews snooze {REPO}#4 3 dayz")).await;
    assert!(
        wrong.starts_with("Sorry: `3 dayz` is not a duration (such as 4h, 3d, 3 days or 1w).<br>"),
        "{wrong}"
    );
    // Who snoozed it and until when: the room's list, and the page.
    let all =
        html(&hipchat(app, HIPCHAT_TOKEN, "/reviews all", "stranger", "backend").await).to_owned();
    assert!(!all.contains(&link(4)), "snoozed: not listed: {all}");
    assert!(
        all.ends_with(
            "<br>Snoozed, not listed: acme/payments-api#4 by Carol Reviewer until Fri 27 Nov \
             11:00 CET"
        ),
        "{all}"
    );
    // Carol's own list leaves it out too and says so; Bob's (it is not his snooze) lists it.
    let carol = ask("/reviews".into()).await;
    assert!(
        carol.contains("Snoozed, not listed: acme/payments-api#4 by Carol Reviewer"),
        "{carol}"
    );
    let bob = html(&hipchat(app, HIPCHAT_TOKEN, "/reviews", "bob", "backend").await).to_owned();
    assert!(bob.contains(&link(4)) && !bob.contains("Snoozed"), "{bob}");
    let page = app
        .client()
        .get(format!("{}/status", app.address()))
        .bearer_auth(STATUS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "<div class=\"snooze muted\">Snoozed by Carol Reviewer until Fri 27 Nov 11:00 CET</div>"
        ),
        "{page}"
    );
}

pub(crate) fn slack_form(user: &str, channel: &str, text: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "deprecated"),
        ("command", "/reviews"),
        ("text", text),
        ("user_id", user),
        ("user_name", "someone"),
        ("channel_id", "C0123"),
        ("channel_name", channel),
        ("response_url", "https://hooks.slack.com/commands/x"),
    ])
    .unwrap()
}

pub(crate) fn slack_signature(timestamp: i64, body: &str) -> String {
    slack_signature_with(SLACK_SECRET, timestamp, body)
}

fn slack_signature_with(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) async fn slack(
    app: &impl Served,
    headers: &[(&str, String)],
    body: String,
) -> (u16, Value) {
    let mut request = app
        .client()
        .post(format!("{}/commands/slack", app.address()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn slack_signed_commands_and_mattermost_tokens(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let ts = now().timestamp();
    let body = slack_form("UCAROL", "backend", "");
    let answer = slack(
        &app,
        &[
            ("X-Slack-Request-Timestamp", ts.to_string()),
            ("X-Slack-Signature", slack_signature(ts, &body)),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["response_type"], "ephemeral");
    let text = answer.1["text"].as_str().unwrap();
    assert!(
        text.starts_with("*1 pull request waiting for your review* (backend)"),
        "{text}"
    );
    assert!(
        text.contains("<https://bitbucket.org/acme/payments-api/pull-requests/1|Change 1>"),
        "{text}"
    );

    // Tampered body, wrong secret, stale (replayed) timestamp.
    let other = slack_form("UCAROL", "backend", "all");
    let tampered = slack(
        &app,
        &[
            ("X-Slack-Request-Timestamp", ts.to_string()),
            ("X-Slack-Signature", slack_signature(ts, &body)),
        ],
        other,
    )
    .await;
    assert_eq!(tampered.0, 401, "{}", tampered.1);
    assert_eq!(tampered.1["reason"], "X-Slack-Signature does not match");
    let wrong_secret = slack(
        &app,
        &[
            ("X-Slack-Request-Timestamp", ts.to_string()),
            (
                "X-Slack-Signature",
                slack_signature_with("another-signing-secret-0123456789", ts, &body),
            ),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(wrong_secret.0, 401, "{}", wrong_secret.1);
    assert_eq!(wrong_secret.1["reason"], "X-Slack-Signature does not match");
    let old = ts - 6 * 60;
    let answer = slack(
        &app,
        &[
            ("X-Slack-Request-Timestamp", old.to_string()),
            ("X-Slack-Signature", slack_signature(old, &body)),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(answer.0, 401);
    assert_eq!(
        answer.1["reason"],
        "X-Slack-Request-Timestamp is more than 5 minutes away"
    );
    assert_eq!(
        slack(&app, &[], body.clone()).await.0,
        401,
        "neither signature nor token"
    );

    // Mattermost: a token instead of a signature; unknown commands get help, not an error.
    let mm = slack_form("uid-unknown", "web", "frobnicate");
    let answer = slack(
        &app,
        &[("Authorization", format!("Token {MATTERMOST_TOKEN}"))],
        mm.clone(),
    )
    .await;
    assert_eq!(answer.0, 200);
    assert!(answer.1["text"]
        .as_str()
        .unwrap()
        .starts_with("Sorry: `frobnicate` is not a /reviews command."));
    assert_eq!(
        slack(
            &app,
            &[("Authorization", "Token nope-nope-nope-nope-nope".into())],
            mm
        )
        .await
        .0,
        401
    );
    let all = slack(
        &app,
        &[("Authorization", format!("Token {MATTERMOST_TOKEN}"))],
        slack_form("x", "web", "all"),
    )
    .await;
    assert!(
        all.1["text"].as_str().unwrap().contains("web/site #5"),
        "{}",
        all.1
    );
    let backend = slack(
        &app,
        &[("Authorization", format!("Token {MATTERMOST_TOKEN}"))],
        slack_form("x", "backend", "all"),
    )
    .await;
    let text = backend.1["text"].as_str().unwrap();
    assert!(
        text.contains("waiting for Bob Reviewer, <@UCAROL>"),
        "Slack mentions by user id: {text}"
    );
}

/// A signed Slack request for `body` with this timestamp.
pub(crate) fn signed_at(ts: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Slack-Request-Timestamp", ts.to_string()),
        ("X-Slack-Signature", slack_signature(ts, body)),
    ]
}

#[tokio::test]
async fn slack_timestamps_up_to_five_minutes_either_way_are_accepted_and_no_further() {
    let clock = ManualClock::frozen(now());
    let app = app(On::Sqlite, &clock).await.unwrap();
    let body = slack_form("UCAROL", "backend", "");
    let t = now().timestamp();
    // Exactly at the edge, in the past and in the future (a sender's clock a bit ahead).
    for ts in [t - 5 * 60, t + 5 * 60] {
        let answer = slack(&app, &signed_at(ts, &body), body.clone()).await;
        assert_eq!(answer.0, 200, "{} s from now: {}", ts - t, answer.1);
        assert_eq!(answer.1["response_type"], "ephemeral");
    }
    // One second beyond it, either way; well in the future (not only replays are refused).
    for ts in [t - 5 * 60 - 1, t + 5 * 60 + 1, t + 6 * 60, t + 86_400] {
        let answer = slack(&app, &signed_at(ts, &body), body.clone()).await;
        assert_eq!(answer.0, 401, "{} s from now: {}", ts - t, answer.1);
        assert_eq!(answer.1["status"], "rejected");
        assert_eq!(
            answer.1["reason"],
            "X-Slack-Request-Timestamp is more than 5 minutes away"
        );
    }
    // The edge moves with the injected clock, not the wall clock.
    clock.set(now() + Duration::minutes(5));
    let answer = slack(&app, &signed_at(t, &body), body.clone()).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    clock.set(now() + Duration::minutes(5) + Duration::seconds(1));
    let answer = slack(&app, &signed_at(t, &body), body.clone()).await;
    assert_eq!(answer.0, 401, "{}", answer.1);
}

#[tokio::test]
async fn missing_or_garbled_slack_headers_are_401_with_the_reason() {
    let clock = ManualClock::frozen(now());
    let app = app(On::Sqlite, &clock).await.unwrap();
    let body = slack_form("UCAROL", "backend", "");
    let ts = now().timestamp();
    let good = slack_signature(ts, &body);
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no timestamp",
            vec![("X-Slack-Signature", good.clone())],
            "missing or unreadable X-Slack-Request-Timestamp",
        ),
        (
            "empty timestamp",
            vec![
                ("X-Slack-Request-Timestamp", String::new()),
                ("X-Slack-Signature", good.clone()),
            ],
            "missing or unreadable X-Slack-Request-Timestamp",
        ),
        (
            "timestamp not a number",
            vec![
                ("X-Slack-Request-Timestamp", "yesterday".into()),
                ("X-Slack-Signature", good.clone()),
            ],
            "missing or unreadable X-Slack-Request-Timestamp",
        ),
        (
            "timestamp in milliseconds",
            vec![
                ("X-Slack-Request-Timestamp", (ts * 1000).to_string()),
                ("X-Slack-Signature", good.clone()),
            ],
            "X-Slack-Request-Timestamp is more than 5 minutes away",
        ),
        (
            "no signature (and no token)",
            vec![("X-Slack-Request-Timestamp", ts.to_string())],
            "missing or wrong signature or token",
        ),
        (
            "signature without v0=",
            vec![
                ("X-Slack-Request-Timestamp", ts.to_string()),
                (
                    "X-Slack-Signature",
                    good.trim_start_matches("v0=").to_owned(),
                ),
            ],
            "X-Slack-Signature must look like v0=<hex>",
        ),
        (
            "signature not hex",
            vec![
                ("X-Slack-Request-Timestamp", ts.to_string()),
                ("X-Slack-Signature", "v0=not-hex-at-all".into()),
            ],
            "X-Slack-Signature must look like v0=<hex>",
        ),
        (
            "another scheme",
            vec![
                ("X-Slack-Request-Timestamp", ts.to_string()),
                ("X-Slack-Signature", good.replacen("v0=", "v1=", 1)),
            ],
            "X-Slack-Signature must look like v0=<hex>",
        ),
        (
            "signature cut short",
            vec![
                ("X-Slack-Request-Timestamp", ts.to_string()),
                ("X-Slack-Signature", good[..good.len() - 2].to_owned()),
            ],
            "X-Slack-Signature does not match",
        ),
    ];
    for (case, headers, reason) in cases {
        let answer = slack(&app, &headers, body.clone()).await;
        assert_eq!(answer.0, 401, "{case}: {}", answer.1);
        assert_eq!(
            answer.1,
            json!({"status": "rejected", "reason": reason}),
            "{case}"
        );
    }
    // The same request with both headers right is answered (the cases above differ by one header).
    let answer = slack(
        &app,
        &[
            ("X-Slack-Request-Timestamp", ts.to_string()),
            ("X-Slack-Signature", good),
        ],
        body,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
}

#[tokio::test]
async fn unconfigured_command_endpoints_are_404() {
    let clock = ManualClock::frozen(now());
    // No command secrets at all: both endpoints are off.
    let off = spawn_app_with_clock(|_| {}, clock.clock()).await;
    let body = slack_form("UCAROL", "console", "");
    let ts = now().timestamp();
    for headers in [
        signed_at(ts, &body),
        vec![("Authorization", format!("Token {MATTERMOST_TOKEN}"))],
        vec![],
    ] {
        let answer = slack(&off, &headers, body.clone()).await;
        assert_eq!(answer.0, 404, "{headers:?}: {}", answer.1);
        assert_eq!(
            answer.1,
            json!({"status": "rejected", "reason": "not found"})
        );
    }
    for token in [HIPCHAT_TOKEN, "anything"] {
        let answer = hipchat(&off, token, "/reviews", "carol_r", "console").await;
        assert_eq!(answer.0, 404, "{}", answer.1);
        assert_eq!(
            answer.1,
            json!({"status": "rejected", "reason": "not found"})
        );
    }

    // Only Slack configured: HipChat's endpoint is still off, Slack's answers.
    let slack_only = spawn_app_with_clock(
        |s| {
            s.commands.slack_signing_secret =
                Some(SecretToken(SecretString::from(SLACK_SECRET.to_owned())));
        },
        clock.clock(),
    )
    .await;
    assert_eq!(
        hipchat(&slack_only, HIPCHAT_TOKEN, "/reviews", "carol_r", "console")
            .await
            .0,
        404
    );
    let answer = slack(&slack_only, &signed_at(ts, &body), body.clone()).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    // Mattermost is not configured there: a token is refused (401), not taken for the endpoint.
    let answer = slack(
        &slack_only,
        &[("Authorization", format!("Token {MATTERMOST_TOKEN}"))],
        body,
    )
    .await;
    assert_eq!(answer.0, 401, "{}", answer.1);
}

async fn hipchat_raw(app: &impl Served, body: &Value) -> (u16, Value) {
    hipchat_command(app, HIPCHAT_TOKEN, body).await
}

#[tokio::test]
async fn hipchat_bodies_that_are_not_room_message_are_400() {
    let clock = ManualClock::frozen(now());
    let app = app(On::Sqlite, &clock).await.unwrap();
    let message = |event: Option<Value>, text: &str| {
        let mut body = json!({
            "webhook_id": 7,
            "item": {
                "message": {"message": text, "from": {"id": 99, "name": "Carol", "mention_name": "carol_r"}},
                "room": {"id": 4242, "name": "backend"},
            }
        });
        if let Some(event) = event {
            body["event"] = event;
        }
        body
    };
    let snooze = format!("/reviews snooze {REPO}#1 2h");
    let cases = [
        (
            message(Some(json!("room_notification")), &snooze),
            "event: expected room_message, got \"room_notification\"",
        ),
        (
            message(Some(json!("Room_Message")), &snooze),
            "event: expected room_message, got \"Room_Message\"",
        ),
        (
            message(Some(json!(7)), &snooze),
            "event: expected room_message, got 7",
        ),
        (
            message(Some(Value::Null), &snooze),
            "event: missing field, expected room_message",
        ),
        (
            message(None, &snooze),
            "event: missing field, expected room_message",
        ),
        // A room_enter body has no message: the answer names the event, not item.message.
        (
            json!({
                "event": "room_enter",
                "item": {"room": {"id": 4242, "name": "backend"}, "sender": {"id": 99, "name": "Carol"}},
            }),
            "event: expected room_message, got \"room_enter\"",
        ),
    ];
    for (body, reason) in cases {
        let answer = hipchat_raw(&app, &body).await;
        assert_eq!(answer.0, 400, "{body}: {}", answer.1);
        assert_eq!(
            answer.1,
            json!({"status": "rejected", "reason": reason}),
            "{body}"
        );
    }
    assert_eq!(
        app.count_rows("SELECT count(*) FROM snoozes").await,
        0,
        "none of them was executed"
    );
    // The same message as a room_message is a command, and a room_message without its message
    // is still refused by the path of what is missing.
    let answer = hipchat_raw(&app, &message(Some(json!("room_message")), &snooze)).await;
    assert!(
        html(&answer).starts_with("Snoozed acme/payments-api#1"),
        "{}",
        answer.1
    );
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 1);
    let answer = hipchat_raw(
        &app,
        &json!({"event": "room_message", "item": {"room": {"id": 4242}}}),
    )
    .await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert_eq!(
        answer.1["reason"],
        "item: missing field `message` at line 1 column 51"
    );
}

/// #4 (30 h old) as Bitbucket Cloud sends it at `minute` past 09:00 today, with this description:
/// `participants` are who acted, `reviewers` the requested ones who have not.
pub(crate) fn pr4(
    minute: i64,
    description: &str,
    participants: &[(&str, &str, Option<&str>)],
    reviewers: &[&str],
) -> Value {
    let users = own_fixture("users.json");
    let mut body = pr_event(
        4,
        &(now() - Duration::hours(1) + Duration::minutes(minute)).to_rfc3339(),
        "OPEN",
        "Change 4",
        "abcdef012345",
        participants,
    );
    body["pullrequest"]["description"] = json!(description);
    body["pullrequest"]["created_on"] = json!((now() - Duration::hours(30)).to_rfc3339());
    body["pullrequest"]["reviewers"] = reviewers.iter().map(|u| users[*u].clone()).collect();
    body
}

/// Whether #4 is in Bob's `/reviews` list in backend (he is asked to review it and owes it).
pub(crate) async fn bob_sees_4(app: &impl Served) -> bool {
    html(&hipchat(app, HIPCHAT_TOKEN, "/reviews", "bob", "backend").await).contains(&link(4))
}

async fn snooze_ends_when_a_reviewer_is_requested(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    let bob = [("bob", "REVIEWER", None)];
    let answer = hipchat(
        &app,
        HIPCHAT_TOKEN,
        &format!("/reviews snooze {REPO}#4 1d"),
        "bob",
        "backend",
    )
    .await;
    assert!(
        html(&answer).starts_with("Snoozed acme/payments-api#4"),
        "{}",
        answer.1
    );
    assert!(!bob_sees_4(&app).await);

    // A newer event that changes neither the commit, the reviewers nor an approval (only the
    // description) leaves it snoozed.
    app.processed("pullrequest:updated", &pr4(1, "Now with tests.", &bob, &[]))
        .await;
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 1);
    assert!(!bob_sees_4(&app).await);

    // Dave is asked to review: the snooze ends, for the room's digest too.
    app.processed(
        "pullrequest:updated",
        &pr4(2, "Now with tests.", &bob, &["dave"]),
    )
    .await;
    assert_eq!(
        app.review_rows(REPO, 4)
            .await
            .iter()
            .filter(|(_, role, _)| role == "REVIEWER")
            .count(),
        2,
        "{:?}",
        app.review_rows(REPO, 4).await
    );
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 0);
    assert!(bob_sees_4(&app).await);
}

async fn snooze_ends_when_an_approval_is_withdrawn(on: On) {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(on, &clock).await else {
        return;
    };
    // Dave approves #4 (one of two approvals); Bob still owes his review, and snoozes it.
    let approved = [
        ("bob", "REVIEWER", None),
        ("dave", "PARTICIPANT", Some("approved")),
    ];
    app.processed(
        "pullrequest:approved",
        &pr4(1, "Adds bounded retries.", &approved, &[]),
    )
    .await;
    assert!(bob_sees_4(&app).await);
    hipchat(
        &app,
        HIPCHAT_TOKEN,
        &format!("/reviews snooze {REPO}#4 1d"),
        "bob",
        "backend",
    )
    .await;
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 1);
    assert!(!bob_sees_4(&app).await);

    // Another event that keeps Dave's approval leaves it snoozed.
    app.processed(
        "pullrequest:updated",
        &pr4(2, "Now with tests.", &approved, &[]),
    )
    .await;
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 1);
    assert!(!bob_sees_4(&app).await);

    // Dave withdraws his approval: the snooze ends.
    app.processed(
        "pullrequest:unapproved",
        &pr4(
            3,
            "Now with tests.",
            &[("bob", "REVIEWER", None), ("dave", "PARTICIPANT", None)],
            &[],
        ),
    )
    .await;
    assert_eq!(app.count_rows("SELECT count(*) FROM snoozes").await, 0);
    assert!(bob_sees_4(&app).await);
}

/// Every `/reviews` answer, pinned as the exact JSON each chat gets back (HipChat's room
/// notification, Slack's and Mattermost's ephemeral reply): lists with a hostile title, a mapped
/// and an unmapped asker, help, a command not understood, a snooze. A change shows up as a
/// snapshot diff (`tests/api/snapshots/api__commands__answer__*.snap`).
#[tokio::test]
async fn answers_in_every_chat() {
    let clock = ManualClock::frozen(now());
    let app = app(On::Sqlite, &clock).await.unwrap();
    let mut hostile = pr(6, 9, &[("bob", "REVIEWER", None)]);
    hostile["pullrequest"]["title"] =
        json!("<b>Fix</b> @channel *bold* <!here> <@U123> & &amp; _it_ `c` [x](https://evil) 🚀");
    app.processed("pullrequest:updated", &hostile).await;
    let commands = [
        ("reviews", "/reviews"),
        ("all", "/reviews all"),
        ("mine", "/reviews mine"),
        ("help", "/reviews help"),
        ("unknown", "/reviews dance <b>"),
        ("unsnooze", "/reviews unsnooze acme/payments-api#4"),
        ("snooze", "/reviews snooze acme/payments-api#4 4h"),
    ];
    let ts = now().timestamp();
    for (case, text) in commands {
        for (who, mention, slack_user) in [
            ("mapped", "carol_r", "UCAROL"),
            ("unmapped", "stranger", "USTRANGER"),
        ] {
            let answer = hipchat(&app, HIPCHAT_TOKEN, text, mention, "backend").await;
            assert_eq!(answer.0, 200, "{}", answer.1);
            insta::assert_json_snapshot!(format!("answer__hipchat__{case}__{who}"), answer.1);
            let words = text.strip_prefix("/reviews").unwrap().trim();
            let body = slack_form(slack_user, "backend", words);
            let answer = slack(
                &app,
                &[
                    ("X-Slack-Request-Timestamp", ts.to_string()),
                    ("X-Slack-Signature", slack_signature(ts, &body)),
                ],
                body.clone(),
            )
            .await;
            assert_eq!(answer.0, 200, "{}", answer.1);
            insta::assert_json_snapshot!(format!("answer__slack__{case}__{who}"), answer.1);
            let answer = slack(
                &app,
                &[("Authorization", format!("Token {MATTERMOST_TOKEN}"))],
                body,
            )
            .await;
            assert_eq!(answer.0, 200, "{}", answer.1);
            insta::assert_json_snapshot!(format!("answer__mattermost__{case}__{who}"), answer.1);
        }
    }
}

/// Carol has an account on Bitbucket Cloud and one on Data Center (nickname `carol` on both).
/// `/reviews snooze` from HipChat as `carol` (no mapping) picks the Cloud account, whose uuid and
/// account id are set and which is reviewing the PR. The choice is made in SQL, so each database
/// is held to the same account and the same answer.
async fn a_person_on_both_sites_is_their_cloud_account(on: On) {
    let settings = |s: &mut Settings| {
        s.notify.rooms = vec![Room {
            name: "backend".into(),
            sink: Sink::Console,
        }];
        s.notify.routes = vec![digest_only_route(&["acme/*"], "backend")];
        s.commands.hipchat_token = Some(SecretToken(SecretString::from(HIPCHAT_TOKEN.to_owned())));
    };
    let clock = ManualClock::frozen(now());
    let Some(app) = spawn_on(on, "bothsites", settings, clock.clock()).await else {
        return;
    };
    let cloud = pr(
        1,
        5,
        &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
    );
    app.processed("pullrequest:created", &cloud).await;
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
    let answer = crate::datacenter::deliver_as(
        &app,
        "pr:opened",
        "both-1",
        serde_json::to_vec(&datacenter).unwrap(),
    )
    .await;
    assert_eq!(answer.body["status"], "processed", "{}", answer.body);

    let command = json!({
        "event": "room_message",
        "item": {
            "message": {"message": format!("/reviews snooze {REPO}#1 1h"),
                        "from": {"id": 99, "name": "Carol", "mention_name": "carol"}},
            "room": {"id": 1, "name": "backend"},
        }
    });
    let (status, answer) = hipchat_command(&app, HIPCHAT_TOKEN, &command).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["message"],
        "Snoozed acme/payments-api#1 until Tue 24 Nov 11:00 UTC, or until it gets a new commit, \
         a new reviewer or loses an approval.",
        "{answer}"
    );
    let snoozed: Vec<(String,)> = app.query_rows("SELECT user_key FROM snoozes").await;
    assert_eq!(snoozed, [(key_of("carol"),)], "the Cloud account");
}

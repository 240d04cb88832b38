//! `/reviews` and `/reviews snooze` on PostgreSQL.

use super::*;
use crate::commands::{
    self, app_settings, carol_sees_4, hipchat_command, link, now, pr, pr4, seed, signed_at, slack,
    slack_form, HIPCHAT_TOKEN, REPO, SWEEP_TOKEN,
};
use crate::helpers::{digest_only_route, ManualClock};
use crate::lifecycle::{key_of, pr_event};
use chrono::Duration as Span;
use pr_reminder::config::{Room, SecretToken, Sink};

/// `commands::app` on PostgreSQL: rooms backend (acme/*) and web (web/*), Carol mapped to
/// carol_r and UCAROL, and PRs #1 (5 h, Bob and Carol asked), #2 (6 h, Carol approved),
/// #3 (7 h, Carol's own, Dave asks for changes), #4 (30 h, Bob asked), web/site #5.
async fn app(clock: &ManualClock) -> Option<PgApp> {
    let app = spawn_pg("reviews", app_settings(), clock.clock()).await?;
    seed(&app).await;
    Some(app)
}

/// `/reviews ...` from HipChat by `mention` in `room` (4242 is backend's id): the answer's
/// HTML, asserted 200.
async fn hipchat(app: &PgApp, text: &str, mention: &str, room: &str) -> String {
    let (status, answer) = commands::hipchat(app, HIPCHAT_TOKEN, text, mention, room).await;
    assert_eq!(status, 200, "{text}: {answer}");
    assert_eq!(answer["message_format"], "html");
    answer["message"].as_str().unwrap().to_owned()
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
    let form = slack_form("UCAROL", "backend", "");
    let (_, answer) = slack(&app, &signed_at(now().timestamp(), &form), form).await;
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

/// `commands::snoozes_have_a_policy_and_say_who_and_until_when` on PostgreSQL.
#[tokio::test]
async fn snoozes_have_a_policy_and_say_who_and_until_when() {
    let clock = ManualClock::frozen(now());
    let Some(app) = spawn_pg("snooze_policy", commands::berlin_settings(), clock.clock()).await
    else {
        return;
    };
    seed(&app).await;
    commands::snooze_policy(&app).await;
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
        "Snoozed acme/payments-api#1 until Tue 24 Nov 12:00 UTC, or until it gets a new commit, a new reviewer or loses an approval."
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
    pushed["pullrequest"]["created_on"] = json!((now() - Span::hours(5)).to_rfc3339());
    pushed["pullrequest"]["reviewers"] = json!([]);
    app.processed("pullrequest:updated", &pushed).await;
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
        answer.starts_with("Snoozed ACME/Payments-API#4 until Wed 25 Nov 12:00 UTC"),
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
    for (_, answer) in [
        hipchat_command(&app, HIPCHAT_TOKEN, &command).await,
        hipchat_command(&sqlite, HIPCHAT_TOKEN, &command).await,
    ] {
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

/// The writer's PostgreSQL statements end a snooze when a reviewer is requested or an
/// approval withdrawn, and keep it through an event that changes neither.
#[tokio::test]
async fn snooze_ends_when_a_reviewer_is_requested_or_an_approval_withdrawn() {
    let clock = ManualClock::frozen(now());
    let Some(app) = app(&clock).await else { return };
    let approved = [("bob", "REVIEWER", Some("approved"))];
    app.processed(
        "pullrequest:approved",
        &pr4(1, "Adds retries.", &approved, &[]),
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
    app.processed(
        "pullrequest:updated",
        &pr4(2, "Now with tests.", &approved, &[]),
    )
    .await;
    assert_eq!(snoozes(&app).await, 1);
    assert!(!carol_sees_4(&app).await);

    // Bob withdraws his approval: the snooze ends.
    app.processed(
        "pullrequest:unapproved",
        &pr4(3, "Now with tests.", &[("bob", "REVIEWER", None)], &[]),
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
    app.processed(
        "pullrequest:updated",
        &pr4(4, "Now with tests.", &[("bob", "REVIEWER", None)], &[]),
    )
    .await;
    assert_eq!(snoozes(&app).await, 1, "nothing changed");
    app.processed(
        "pullrequest:updated",
        &pr4(
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

//! `/reviews` on PostgreSQL beside SQLite: the same person found on both (the scenarios
//! themselves run on both databases in `commands`).

use super::*;
use crate::commands::{hipchat_command, now, pr, HIPCHAT_TOKEN, REPO};
use crate::helpers::{digest_only_route, ManualClock};
use crate::lifecycle::key_of;
use pr_reminder::config::{Room, SecretToken, Sink};

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

//! PostgreSQL-only: the compose file runs two replicas only in its `postgres` profile (a SQLite
//! file has one writer; the default profile's single replica is `crate::compose`'s).
//!
//! docker-compose.yml's `postgres` profile as it runs: both replicas started exactly as compose
//! starts them (see `crate::compose`), on one fresh PostgreSQL database where the profile's
//! `postgres` service would be. Each replica runs the schedule of pr-reminder.toml; the room
//! still gets one digest.

use std::collections::HashMap;
use std::time::Duration;

use super::pg;
use crate::compose::{
    assert_posted_on_schedule, container, deliver, digests, dotenv, fake_room, settings_file,
    wait_for_digests, SECRET,
};

#[tokio::test]
async fn the_compose_replicas_post_one_digest_on_their_schedule() {
    let Some(url) = pg::fresh_database("compose").await else {
        return;
    };
    // The profile's connection string is
    // postgres://pr_reminder:${POSTGRES_PASSWORD}@postgres:5432/pr_reminder: the test server's
    // password goes in .env, and the `postgres` service's address is the test database's.
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (userinfo, location) = rest.split_once('@').expect("user:password@");
    let (user, password) = userinfo.split_once(':').expect("user:password");
    assert_eq!(user, "pr_reminder", "the profile's user (POSTGRES_USER)");
    let (server, database) = location.split_once('/').expect("host:port/database");
    let room = fake_room().await;
    let room_url = format!("{}/services/T0/B0/secret", room.uri());
    let env = dotenv(&[
        ("PR_REMINDER_WEBHOOK_SECRET", SECRET),
        ("PR_REMINDER_SLACK_WEBHOOK_URL", &room_url),
        ("PR_REMINDER_LOG_FORMAT", "json"),
        ("POSTGRES_PASSWORD", password),
    ]);
    let addresses = [(
        "@postgres:5432/pr_reminder".to_owned(),
        format!("@{server}/{database}"),
    )];
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("pr-reminder.toml");
    std::fs::write(&settings, settings_file()).unwrap();
    let replicas: Vec<_> = ["pr-reminder-1", "pr-reminder-2"]
        .into_iter()
        .map(|name| {
            let mounts = HashMap::from([
                ("/tmp", dir.path().join(name).join("tmp")),
                ("/data", dir.path().join(name).join("data")),
                ("/config/pr-reminder.toml", settings.clone()),
            ]);
            let container = container(name, &env, &mounts, &addresses);
            assert_eq!(container.args, ["serve"]);
            assert_eq!(container.env["PR_REMINDER_DATABASE"], url);
            container.start()
        })
        .collect();

    deliver(replicas[0].port).await;
    let got = wait_for_digests(&room, 1).await;
    assert!(
        got[0].contains("1 pull request waiting for review"),
        "{got:?}"
    );
    // Both replicas sweep every 3 seconds: over the next ones, no second digest.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(digests(&room).await.len(), 1, "one digest for the room");

    let db = sqlx::postgres::PgPoolOptions::new()
        .connect(&url)
        .await
        .unwrap();
    let posted: Vec<(String, String, String)> =
        sqlx::query_as("SELECT room, trigger, at FROM sweeps WHERE outcome = 'posted'")
            .fetch_all(&db)
            .await
            .unwrap();
    let skipped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sweeps WHERE outcome = 'skipped' AND trigger = 'schedule' \
         AND at > (SELECT at FROM sweeps WHERE outcome = 'posted')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        skipped >= 2,
        "the later scheduled sweeps found it swept: {skipped}"
    );
    let scheduled: Vec<_> = replicas.iter().flat_map(|r| r.scheduled()).collect();
    assert_posted_on_schedule(&posted, &scheduled);
    db.close().await;
    for replica in replicas {
        replica.stop();
    }
}

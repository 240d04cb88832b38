//! `POST /sweep` and `pr-reminder sweep` on PostgreSQL.

use super::*;
use crate::sweep::{digests, fake_room, notify, pr, room_status, send, sweep_settings, TOKEN};
use chrono::Duration as Span;
use pr_reminder::config::NotifySettings;

/// `POST /sweep{query}` with `TOKEN`, asserted 200: the report.
async fn sweep(app: &PgApp, query: &str) -> Value {
    let (status, report) = crate::sweep::sweep(app, Some(TOKEN), query).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// `pr-reminder sweep` on the same PostgreSQL database as the running service: the CLI's
/// digest is queued once per room and sent by the service; the service's sweep and the
/// CLI's again within the interval are skipped.
#[tokio::test]
async fn the_cli_sweep_beside_the_service_posts_once() {
    let fake = fake_room().await;
    let every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut sweep_settings = sweep_settings();
    sweep_settings.calendar = crate::helpers::always_open();
    let min_interval = sweep_settings.min_interval;
    let mut settings = notify(&fake);
    settings.coalesce = NotifySettings::default().coalesce;
    let Some(app) = spawn_pg(
        "clisweep",
        move |s| {
            s.notify = settings;
            s.sweep = sweep_settings;
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    let now = Utc::now();
    send(
        &app,
        &pr("acme/api", 1, now - Span::hours(2), "Pending", "OPEN", &[]),
    )
    .await;
    send(
        &app,
        &pr("web/site", 1, now - Span::hours(3), "Landing", "OPEN", &[]),
    )
    .await;

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
            "[sweep]\nworking_days = {every_day:?}\nmin_interval_minutes = {}\n\n\
             [[rooms]]\nname = \"backend\"\nhipchat_url = \"{}\"\n\n\
             [[rooms]]\nname = \"web\"\nhipchat_url = \"{}\"\n\n\
             [[routes]]\nrepositories = [\"acme/*\"]\nroom = \"backend\"\n\n\
             [[routes]]\nrepositories = [\"web/*\"]\nroom = \"web\"\n",
            min_interval.as_secs() / 60,
            url("backend"),
            url("web"),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let cli = || async {
        let (code, stdout, stderr) =
            run_cli(&app.url, &["--config", &config, "sweep", "--json"]).await;
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(stderr, "", "nothing on stderr");
        serde_json::from_str::<Value>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };

    let report = cli().await;
    for name in ["backend", "web"] {
        assert_eq!(
            room_status(&report, name),
            ("posted".into(), None),
            "{report}"
        );
    }
    let mut rooms: Vec<String> = digests(&fake, 2)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    rooms.sort();
    assert_eq!(rooms, ["backend", "web"]);

    let skipped = (
        "skipped".to_owned(),
        Some("posted 0 min ago (min_interval 50 min); use force to post again".to_owned()),
    );
    let report = sweep(&app, "").await;
    for name in ["backend", "web"] {
        assert_eq!(room_status(&report, name), skipped, "{report}");
    }
    let report = cli().await;
    for name in ["backend", "web"] {
        assert_eq!(room_status(&report, name), skipped, "{report}");
    }
    assert_eq!(digests(&fake, 2).await.len(), 2, "nothing more was posted");
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 2)
        .await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT room, trigger, outcome FROM sweeps ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let row = |room: &str, trigger: &str, outcome: &str| {
        (room.to_owned(), trigger.to_owned(), outcome.to_owned())
    };
    assert_eq!(
        rows,
        [
            row("backend", "cli", "posted"),
            row("web", "cli", "posted"),
            row("backend", "http", "skipped"),
            row("web", "http", "skipped"),
            row("backend", "cli", "skipped"),
            row("web", "cli", "skipped"),
        ]
    );
    let outbox: Vec<(String, String, String)> =
        sqlx::query_as("SELECT room, kind, state FROM outbox ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        outbox,
        [
            row("backend", "digest", "sent"),
            row("web", "digest", "sent")
        ]
    );
}

/// `sweep::a_skipped_sweep_reports_the_real_counts_with_its_reason` on PostgreSQL: the HTTP
/// answer and the `sweeps` rows of sweeps skipped for quiet hours and a day off, then the CLI's.
#[tokio::test]
async fn a_skipped_sweep_reports_the_real_counts_with_its_reason() {
    use crate::sweep::{
        a_skipped_sweep_reports_what_waits, cli_skipped_sweep, quiet_morning, quiet_settings,
    };
    let fake = fake_room().await;
    let clock = crate::helpers::ManualClock::frozen(quiet_morning());
    let Some(app) = spawn_pg("sweepquiet", quiet_settings(&fake), clock.clock()).await else {
        return;
    };
    a_skipped_sweep_reports_what_waits(&app, &clock).await;
    cli_skipped_sweep(app.url.clone(), &fake).await;
}

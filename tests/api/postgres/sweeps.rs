//! `POST /sweep` and `pr-reminder sweep` on PostgreSQL.

use super::*;
use crate::helpers::ManualClock;
use crate::sweep::{digests, fake_room, notify, pr, room_status, send, sweep_settings, TOKEN};
use chrono::Duration as Span;
use pr_reminder::config::{NotifySettings, SweepSettings};

/// `POST /sweep{query}` with `TOKEN`, asserted 200: the report.
async fn sweep(app: &PgApp, query: &str) -> Value {
    let (status, report) = crate::sweep::sweep(app, Some(TOKEN), query).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// (room, trigger, forced, outcome, reason, waiting_review, waiting_on_author, digest sent)
type SweepRow = (
    String,
    String,
    bool,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
);

async fn sweep_rows(app: &PgApp) -> Vec<SweepRow> {
    sqlx::query_as(
        "SELECT s.room, s.trigger, s.forced, s.outcome, s.reason, s.waiting_review, \
         s.waiting_on_author, o.state FROM sweeps s LEFT JOIN outbox o ON o.id = s.outbox_id \
         ORDER BY s.id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// `sweep::one_digest_per_room_listing_what_still_needs_review`, then the interval: skipped
/// 10 min later (saying why), posted when forced, posted again after the interval; six
/// sweeps at once post one digest (PostgreSQL's advisory lock per room); every sweep a row.
#[tokio::test]
async fn digests_per_room_the_interval_and_concurrent_sweeps() {
    let fake = fake_room().await;
    let now = utc(2026, 11, 24, 10, 0); // Tuesday
    let clock = ManualClock::frozen(now);
    let settings = notify(&fake);
    let Some(app) = spawn_pg(
        "sweep",
        move |s| {
            s.notify = settings;
            s.sweep = sweep_settings();
        },
        clock.clock(),
    )
    .await
    else {
        return;
    };
    let h = |hours: i64| now - Span::hours(hours);
    let repo = "acme/payments-api";
    let mut draft = pr(repo, 5, h(50), "Draft one", "OPEN", &[]);
    draft["pullrequest"]["draft"] = json!(true);
    for body in [
        pr(
            repo,
            1,
            h(30),
            "Oldest, nobody looked",
            "OPEN",
            &[("bob", "REVIEWER", None)],
        ),
        pr(
            repo,
            2,
            h(20),
            "One approval",
            "OPEN",
            &[("bob", "REVIEWER", Some("approved"))],
        ),
        pr(
            repo,
            3,
            h(25),
            "Changes asked",
            "OPEN",
            &[("carol", "REVIEWER", Some("changes_requested"))],
        ),
        pr(
            repo,
            4,
            h(40),
            "Fully approved",
            "OPEN",
            &[
                ("bob", "REVIEWER", Some("approved")),
                ("carol", "REVIEWER", Some("approved")),
            ],
        ),
        draft,
        pr(repo, 6, h(50), "WIP: parser", "OPEN", &[]),
        pr(repo, 7, h(60), "Merged long ago", "MERGED", &[]),
        pr("web/site", 1, h(2), "Landing page", "OPEN", &[]),
        pr("other/unrouted", 1, h(2), "Nobody's", "OPEN", &[]),
    ] {
        send(&app, &body).await;
    }

    let report = sweep(&app, "").await;
    let backend = report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "backend")
        .unwrap();
    assert_eq!(backend["status"], "posted");
    assert_eq!(backend["waiting_review"], 2);
    assert_eq!(backend["waiting_on_author"], 1);
    assert_eq!(backend["escalated"], false);

    let messages = digests(&fake, 2).await;
    let backend = &messages.iter().find(|(r, _)| r == "backend").unwrap().1;
    let web = &messages.iter().find(|(r, _)| r == "web").unwrap().1;
    assert_eq!(backend["color"], "yellow");
    let html = backend["message"].as_str().unwrap();
    let line = |n: i64| format!("<a href=\"https://bitbucket.org/{repo}/pull-requests/{n}\">");
    assert!(
        html.starts_with(
            "<b>2 pull requests waiting for review, 1 waiting on their author</b> (backend)"
        ),
        "{html}"
    );
    let (p1, p2, p3) = (
        html.find(&line(1)).unwrap(),
        html.find(&line(2)).unwrap(),
        html.find(&line(3)).unwrap(),
    );
    assert!(p1 < p2, "oldest first");
    let author_section = html.find("Waiting on author").unwrap();
    assert!(p2 < author_section && author_section < p3, "{html}");
    for absent in [4, 5, 6, 7] {
        assert!(!html.contains(&line(absent)), "#{absent}: {html}");
    }
    assert!(html.contains("1/2 approvals (Bob Reviewer)"), "{html}");
    assert!(
        html.contains("changes requested by Carol Reviewer"),
        "{html}"
    );
    assert!(html.contains("1d 6h old"), "{html}");
    let web_html = web["message"].as_str().unwrap();
    assert!(
        web_html.contains("web/site #1") && !web_html.contains("acme/"),
        "{web_html}"
    );
    assert!(!html.contains("other/unrouted") && !web_html.contains("other/unrouted"));
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 2)
        .await;

    // Ten minutes later: skipped, saying why; forced: posted.
    clock.set(now + Span::minutes(10));
    let skipped = "posted 10 min ago (min_interval 50 min); use force to post again";
    assert_eq!(
        room_status(&sweep(&app, "").await, "backend"),
        ("skipped".to_owned(), Some(skipped.to_owned()))
    );
    assert_eq!(
        room_status(&sweep(&app, "?force=true").await, "backend").0,
        "posted"
    );
    digests(&fake, 4).await;
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 4)
        .await;

    // After the interval, six sweeps at once: one posts per room, the others skip.
    clock.set(now + Span::minutes(81));
    let runs = (0..6).map(|_| sweep(&app, ""));
    let reports = futures_util::future::join_all(runs).await;
    for name in ["backend", "web"] {
        let posted = reports
            .iter()
            .filter(|r| room_status(r, name).0 == "posted")
            .count();
        assert_eq!(posted, 1, "{name}: {reports:#?}");
    }
    assert_eq!(digests(&fake, 6).await.len(), 6);
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 6)
        .await;

    let rows = sweep_rows(&app).await;
    let row = |room: &str,
               forced: bool,
               outcome: &str,
               reason: Option<&str>,
               review: i64,
               author: i64| {
        (
            room.to_owned(),
            "http".to_owned(),
            forced,
            outcome.to_owned(),
            reason.map(str::to_owned),
            review,
            author,
            (outcome == "posted").then(|| "sent".to_owned()),
        )
    };
    let later = "posted 0 min ago (min_interval 50 min); use force to post again";
    let mut expected = vec![
        row("backend", false, "posted", None, 2, 1),
        row("web", false, "posted", None, 1, 0),
        row("backend", false, "skipped", Some(skipped), 2, 1),
        row("web", false, "skipped", Some(skipped), 1, 0),
        row("backend", true, "posted", None, 2, 1),
        row("web", true, "posted", None, 1, 0),
    ];
    assert_eq!(rows[..6], expected[..]);
    // The six concurrent sweeps: in whatever order they ran, per room one posted and five
    // skipped for the digest just posted.
    let mut concurrent = rows[6..].to_vec();
    concurrent.sort();
    expected = Vec::new();
    for (room, review, author) in [("backend", 2, 1), ("web", 1, 0)] {
        expected.push(row(room, false, "posted", None, review, author));
        for _ in 0..5 {
            expected.push(row(room, false, "skipped", Some(later), review, author));
        }
    }
    expected.sort();
    assert_eq!(concurrent, expected);
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

/// `sweep::the_built_in_schedule_sweeps_by_itself` on PostgreSQL: the scheduler sleeps until
/// 10:00 by the service's clock, then sweeps (recorded as `schedule`) and posts the digest.
#[tokio::test]
async fn the_built_in_schedule_sweeps_by_itself() {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(utc(2026, 11, 24, 9, 59) + Span::seconds(59));
    let settings = notify(&fake);
    let Some(app) = spawn_pg(
        "schedule",
        move |s| {
            s.notify = settings;
            s.sweep = SweepSettings {
                schedule: Some("0 10 * * Mon-Fri".into()),
                ..sweep_settings()
            };
        },
        clock.clock(),
    )
    .await
    else {
        return;
    };
    send(
        &app,
        &pr(
            "acme/api",
            1,
            utc(2026, 11, 23, 9, 0),
            "Pending",
            "OPEN",
            &[],
        ),
    )
    .await;
    assert!(
        clock.until_waiting(1, PATIENCE).await,
        "the scheduler waits"
    );
    assert_eq!(clock.waits(), vec![utc(2026, 11, 24, 10, 0)]);
    assert!(fake.received_requests().await.unwrap().is_empty());
    assert_eq!(clock.advance_to_next(), Some(utc(2026, 11, 24, 10, 0)));
    let messages = digests(&fake, 1).await;
    assert_eq!(messages[0].0, "backend");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT room, trigger, outcome FROM sweeps ORDER BY room")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let row =
        |room: &str, outcome: &str| (room.to_owned(), "schedule".to_owned(), outcome.to_owned());
    assert_eq!(rows, [row("backend", "posted"), row("web", "skipped")]);
}

/// `sweep::a_skipped_sweep_reports_the_real_counts_with_its_reason` on PostgreSQL: the HTTP
/// answer and the `sweeps` rows of sweeps skipped for quiet hours and a day off, then the CLI's.
#[tokio::test]
async fn a_skipped_sweep_reports_the_real_counts_with_its_reason() {
    use crate::sweep::{
        a_skipped_sweep_reports_what_waits, cli_skipped_sweep, quiet_morning, quiet_settings,
    };
    let fake = fake_room().await;
    let clock = ManualClock::frozen(quiet_morning());
    let Some(app) = spawn_pg("sweepquiet", quiet_settings(&fake), clock.clock()).await else {
        return;
    };
    a_skipped_sweep_reports_what_waits(&app, &clock).await;
    cli_skipped_sweep(app.url.clone(), &fake).await;
}

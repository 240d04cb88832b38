//! `POST /sweep`: the digest per room, with an injected clock.

use chrono::{DateTime, Duration, TimeZone, Utc};
use pr_reminder::config::{Announce, NotifySettings, Room, SecretToken, Sink, SweepSettings};
use pr_reminder::domain::calendar::parse_hours;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake_chat::PATIENCE;
use crate::helpers::{
    digest_only_route, on_both, set_repository, spawn_app_with_clock, spawn_on, App, ManualClock,
    On, Served,
};
use crate::lifecycle::pr_event;

pub(crate) const TOKEN: &str = "sweep-token-0123456789abcdef";

pub(crate) fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// Room `name`: HipChat at the fake chat `fake`, the room's name in the path.
pub(crate) fn room(name: &str, fake: &MockServer) -> Room {
    Room {
        name: name.into(),
        sink: Sink::HipChat(SecretString::from(format!(
            "{}/v2/room/{name}/notification?auth_token=t0k3n",
            fake.uri()
        ))),
    }
}

/// A fake chat that takes every message (204).
pub(crate) async fn fake_room() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

/// Rooms backend (acme/*) and web (web/*) at `fake`, with routes that announce no single event:
/// only digests reach the fake rooms.
pub(crate) fn notify(fake: &MockServer) -> NotifySettings {
    NotifySettings {
        rooms: vec![room("backend", fake), room("web", fake)],
        routes: vec![
            digest_only_route(&["acme/*"], "backend"),
            digest_only_route(&["web/*"], "web"),
        ],
        coalesce: std::time::Duration::from_millis(50),
        retry_min: std::time::Duration::from_millis(50),
        room_rate_per_minute: Some(6000),
        ..NotifySettings::default()
    }
}

/// The sweep settings with `TOKEN`.
fn sweep_settings() -> SweepSettings {
    SweepSettings {
        token: Some(SecretToken(SecretString::from(TOKEN.to_owned()))),
        ..SweepSettings::default()
    }
}

/// The app on `on`'s database with `fake`'s rooms and the sweep settings `adjust`ed (`None`:
/// PostgreSQL not configured).
async fn app(
    on: On,
    fake: &MockServer,
    clock: &ManualClock,
    adjust: impl FnOnce(&mut SweepSettings),
) -> Option<App> {
    let mut sweep = sweep_settings();
    adjust(&mut sweep);
    let notify = notify(fake);
    spawn_on(
        on,
        "sweep",
        move |s| {
            s.notify = notify;
            s.sweep = sweep;
        },
        clock.clock(),
    )
    .await
}

on_both!(
    tokens,
    one_digest_per_room_grouped_by_turn,
    red_once_a_pr_is_older_than_three_days,
    counting_working_days_only_skips_the_weekend,
    the_bearer_scheme_is_case_insensitive,
    a_second_sweep_within_the_interval_posts_nothing_unless_forced,
    concurrent_sweeps_post_once,
    quiet_hours_and_weekends_in_the_team_zone,
    nothing_pending_is_silent_unless_all_clear_is_asked_for,
    many_prs_are_cut_to_fit_with_and_n_more,
    the_built_in_schedule_sweeps_by_itself,
    the_cli_sweep_beside_the_running_service_posts_once,
    a_skipped_sweep_reports_the_real_counts_with_its_reason,
    a_route_without_room_reminders_is_left_out_of_the_digest,
);

/// A PR opened at `created` in `repository`.
pub(crate) fn pr(
    repository: &str,
    number: i64,
    created: DateTime<Utc>,
    title: &str,
    state: &str,
    participants: &[(&str, &str, Option<&str>)],
) -> Value {
    let updated = (created + Duration::minutes(1)).to_rfc3339();
    let mut body = pr_event(number, &updated, state, title, "abcdef012345", participants);
    body["pullrequest"]["created_on"] = json!(created.to_rfc3339());
    set_repository(&mut body, repository);
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{repository}/pull-requests/{number}"
    ));
    body
}

/// Delivers `body` as `pullrequest:updated`, asserted processed.
pub(crate) async fn send(app: &impl Served, body: &Value) {
    app.processed("pullrequest:updated", body).await;
}

/// `POST /sweep{query}` with `token` as Bearer: (status, report).
pub(crate) async fn sweep(app: &impl Served, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut request = app.client().post(format!("{}/sweep{query}", app.address()));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The digests the fake rooms received: (room, message JSON); exactly `expected`.
pub(crate) async fn digests(fake: &MockServer, expected: usize) -> Vec<(String, Value)> {
    let started = std::time::Instant::now();
    loop {
        let requests = fake.received_requests().await.unwrap();
        if requests.len() >= expected {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let requests = fake.received_requests().await.unwrap();
            assert_eq!(requests.len(), expected, "more messages than expected");
            return requests
                .iter()
                .map(|r| {
                    let room = r.url.path().split('/').nth(3).unwrap().to_owned();
                    (room, serde_json::from_slice(&r.body).unwrap())
                })
                .collect();
        }
        assert!(started.elapsed() < PATIENCE, "expected {expected} messages");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// (status, reason) of `room` in a sweep's report.
fn room_status(report: &Value, room: &str) -> (String, Option<String>) {
    let r = report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == room)
        .unwrap_or_else(|| panic!("{room} in {report}"));
    (
        r["status"].as_str().unwrap().to_owned(),
        r["reason"].as_str().map(str::to_owned),
    )
}

async fn tokens(on: On) {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(disabled) = app(on, &fake, &clock, |s| s.token = None).await else {
        return;
    };
    let (status, body) = sweep(&disabled, Some(TOKEN), "").await;
    assert_eq!(status, 403);
    assert_eq!(body["status"], "disabled");

    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    assert_eq!(sweep(&app, None, "").await.0, 401);
    assert_eq!(
        sweep(&app, Some("wrong-token-0123456789abcdef"), "")
            .await
            .0,
        401
    );
    let response = app
        .client()
        .post(format!("{}/sweep", app.address()))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(sweep(&app, Some(TOKEN), "").await.0, 200);
    assert_eq!(
        app.count_rows("SELECT count(*) FROM sweeps").await,
        2,
        "one row per room"
    );
}

async fn one_digest_per_room_grouped_by_turn(on: On) {
    let fake = fake_room().await;
    let now = utc(2026, 11, 24, 10, 0); // Tuesday
    let clock = ManualClock::frozen(now);
    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    let h = |hours: i64| now - Duration::hours(hours);
    let repo = "acme/payments-api";
    send(
        &app,
        &pr(
            repo,
            1,
            h(30),
            "Oldest, nobody looked",
            "OPEN",
            &[("bob", "REVIEWER", None)],
        ),
    )
    .await;
    send(
        &app,
        &pr(
            repo,
            2,
            h(20),
            "One approval",
            "OPEN",
            &[("bob", "REVIEWER", Some("approved"))],
        ),
    )
    .await;
    send(
        &app,
        &pr(
            repo,
            3,
            h(25),
            "Changes asked",
            "OPEN",
            &[("carol", "REVIEWER", Some("changes_requested"))],
        ),
    )
    .await;
    send(
        &app,
        &pr(
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
    )
    .await;
    let mut draft = pr(repo, 5, h(50), "Draft one", "OPEN", &[]);
    draft["pullrequest"]["draft"] = json!(true);
    send(&app, &draft).await;
    send(&app, &pr(repo, 6, h(50), "WIP: parser", "OPEN", &[])).await;
    send(&app, &pr(repo, 7, h(60), "Merged long ago", "MERGED", &[])).await;
    send(&app, &pr("web/site", 1, h(2), "Landing page", "OPEN", &[])).await;
    send(
        &app,
        &pr("other/unrouted", 1, h(2), "Nobody's", "OPEN", &[]),
    )
    .await;

    let (status, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{report}");
    let backend = report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "backend")
        .unwrap();
    assert_eq!(backend["status"], "posted");
    assert_eq!(backend["waiting_review"], 2);
    assert_eq!(backend["waiting_on_author"], 1);
    assert_eq!(backend["ready_to_merge"], 1);
    assert_eq!(backend["escalated"], false);

    let messages = digests(&fake, 2).await;
    let backend = &messages
        .iter()
        .find(|(room, _)| room == "backend")
        .unwrap()
        .1;
    let web = &messages.iter().find(|(room, _)| room == "web").unwrap().1;
    assert_eq!(backend["color"], "yellow");
    assert_eq!(backend["message_format"], "html");
    let html = backend["message"].as_str().unwrap();
    let line = |n: i64| format!("<a href=\"https://bitbucket.org/{repo}/pull-requests/{n}\">");
    // The three groups of issue 23: waiting for review (with who owes it), waiting on the
    // author, ready to merge (with who can merge).
    assert_eq!(
        html,
        "<b>2 pull requests waiting for review, 1 waiting on their author, 1 ready to merge</b> (backend)<br>\
         • <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/1\">Oldest, nobody looked</a> (acme/payments-api #1) by Alice Author · 0/2 approvals · 1d 6h old · waiting for Bob Reviewer, Carol Reviewer<br>\
         • <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/2\">One approval</a> (acme/payments-api #2) by Alice Author · 1/2 approvals (Bob Reviewer) · 20h old · waiting for Carol Reviewer<br>\
         <b>Waiting on the author</b><br>\
         • <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/3\">Changes asked</a> (acme/payments-api #3) by Alice Author · 0/2 approvals · changes requested by Carol Reviewer · 1d 1h old<br>\
         <b>Ready to merge</b><br>\
         • <a href=\"https://bitbucket.org/acme/payments-api/pull-requests/4\">Fully approved</a> (acme/payments-api #4) by Alice Author · 2/2 approvals (Bob Reviewer, Carol Reviewer) · 1d 16h old · can merge: Alice Author"
    );
    let (p1, p2, p3) = (
        html.find(&line(1)).unwrap(),
        html.find(&line(2)).unwrap(),
        html.find(&line(3)).unwrap(),
    );
    assert!(p1 < p2, "oldest first");
    let author_section = html.find("Waiting on the author").unwrap();
    assert!(p2 < author_section && author_section < p3, "{html}");
    for absent in [5, 6, 7] {
        assert!(
            !html.contains(&line(absent)),
            "#{absent} is not listed: {html}"
        );
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
}

async fn red_once_a_pr_is_older_than_three_days(on: On) {
    let fake = fake_room().await;
    let created = utc(2026, 11, 20, 9, 0); // Friday
    let clock = ManualClock::frozen(created + Duration::hours(71));
    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    send(
        &app,
        &pr("acme/api", 1, created, "Getting old", "OPEN", &[]),
    )
    .await;
    let (_, report) = sweep(&app, Some(TOKEN), "?force=true").await;
    assert_eq!(report["rooms"][0]["escalated"], false);
    digests(&fake, 1).await;
    clock.set(created + Duration::hours(73));
    let (_, report) = sweep(&app, Some(TOKEN), "?force=true").await;
    assert_eq!(report["rooms"][0]["escalated"], true);
    let colours: Vec<String> = digests(&fake, 2)
        .await
        .iter()
        .map(|(_, m)| m["color"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(colours, vec!["yellow", "red"]);
}

async fn counting_working_days_only_skips_the_weekend(on: On) {
    let fake = fake_room().await;
    let created = utc(2026, 11, 20, 9, 0); // Friday 09:00
                                           // Tuesday 10:00: 97 h old, but only 49 working hours (Friday 15 + Monday 24 + Tuesday 10;
                                           // Saturday and Sunday's 48 h do not count): under the 72 h threshold, which 97 h is over.
    let clock = ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(app) = app(on, &fake, &clock, |s| s.escalate_working_days_only = true).await else {
        return;
    };
    send(
        &app,
        &pr("acme/api", 1, created, "Over a weekend", "OPEN", &[]),
    )
    .await;
    let (_, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(room_status(&report, "backend").0, "posted");
    assert_eq!(report["rooms"][0]["escalated"], false);
    // The 72nd working hour ends on Wednesday at 09:00 (49 + Tuesday's other 14 + 9): not yet
    // escalated then (more than 72 h escalates), a minute later it is.
    clock.set(utc(2026, 11, 25, 9, 0));
    let (_, report) = sweep(&app, Some(TOKEN), "?force=true").await;
    assert_eq!(report["rooms"][0]["escalated"], false, "72 working hours");
    clock.set(utc(2026, 11, 25, 9, 1));
    let (_, report) = sweep(&app, Some(TOKEN), "?force=true").await;
    assert_eq!(report["rooms"][0]["escalated"], true, "72 h 1 min");
    clock.set(utc(2026, 11, 26, 10, 0)); // Thursday 10:00: 145 h old, 97 working hours
    let (_, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(room_status(&report, "backend").0, "posted");
    assert_eq!(report["rooms"][0]["escalated"], true);
}

async fn the_bearer_scheme_is_case_insensitive(on: On) {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    let with = |authorization: String| {
        let app = &app;
        async move {
            let response = app
                .client()
                .post(format!("{}/sweep", app.address()))
                .header("Authorization", authorization)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (status, challenge, body)
        }
    };
    // Refused: a wrong token in any case of the scheme, a missing separator or token.
    for refused in [
        "bearer wrong-token-0123456789abcdef".to_owned(),
        "BEARER wrong-token-0123456789abcdef".to_owned(),
        format!("Bearer{TOKEN}"),
        "bearer".to_owned(),
        "bearer ".to_owned(),
        format!("Token {TOKEN}"),
    ] {
        let (status, challenge, body) = with(refused.clone()).await;
        assert_eq!(status, 401, "{refused}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{refused}");
        assert_eq!(
            body,
            json!({"status": "unauthorized", "reason": "missing or wrong bearer token"})
        );
    }
    assert_eq!(
        app.count_rows("SELECT count(*) FROM sweeps").await,
        0,
        "a refused request runs no sweep"
    );
    // Accepted: the right token after `bearer`, `BEARER` or `bEaReR` (RFC 9110 §11.1).
    for (i, scheme) in ["bearer", "BEARER", "bEaReR"].into_iter().enumerate() {
        let (status, _, body) = with(format!("{scheme} {TOKEN}")).await;
        assert_eq!(status, 200, "{scheme}: {body}");
        assert_eq!(body["rooms"].as_array().unwrap().len(), 2, "{body}");
        assert_eq!(
            app.count_rows("SELECT count(*) FROM sweeps").await,
            2 * (i as i64 + 1),
            "{scheme}: one row per room"
        );
    }
}

/// `pr-reminder sweep` beside a running service, on the same database and rooms: the digest is
/// posted once per room, whichever process sweeps first (the README's cron example). The CLI's
/// digest is queued once per room and sent by the service; the service's sweep and the CLI's
/// again within the interval are skipped.
async fn the_cli_sweep_beside_the_running_service_posts_once(on: On) {
    let fake = fake_room().await;
    // The CLI reads the wall clock: so does the service here, and every day is a working day
    // without quiet hours, so that neither skips for the day or hour the test runs at.
    let every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let notify = NotifySettings {
        coalesce: NotifySettings::default().coalesce,
        ..notify(&fake)
    };
    let mut sweep_settings = sweep_settings();
    sweep_settings.calendar = crate::helpers::always_open();
    let min_interval = sweep_settings.min_interval;
    let Some(app) = spawn_on(
        on,
        "clisweep",
        move |s| {
            s.notify = notify;
            s.sweep = sweep_settings;
        },
        pr_reminder::clock::Clock::system(),
    )
    .await
    else {
        return;
    };
    let now = Utc::now();
    send(
        &app,
        &pr(
            "acme/api",
            1,
            now - Duration::hours(2),
            "Pending",
            "OPEN",
            &[],
        ),
    )
    .await;
    send(
        &app,
        &pr(
            "web/site",
            1,
            now - Duration::hours(3),
            "Landing",
            "OPEN",
            &[],
        ),
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
            r#"[sweep]
working_days = {every_day:?}
min_interval_minutes = {}

[[rooms]]
name = "backend"
hipchat_url = "{}"

[[rooms]]
name = "web"
hipchat_url = "{}"

[[routes]]
repositories = ["acme/*"]
room = "backend"

[[routes]]
repositories = ["web/*"]
room = "web"
"#,
            min_interval.as_secs() / 60,
            url("backend"),
            url("web"),
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let database = app.database();
    let run_cli = || async {
        let (code, stdout, stderr) =
            crate::helpers::run_binary(&database, &["--config", &config, "sweep", "--json"]).await;
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(stderr, "", "nothing on stderr");
        serde_json::from_str::<Value>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };

    // The CLI sweeps first: it queues one digest per room, which the service sends.
    let report = run_cli().await;
    for name in ["backend", "web"] {
        assert_eq!(
            room_status(&report, name),
            ("posted".into(), None),
            "{report}"
        );
    }
    let sent = digests(&fake, 2).await;
    let mut rooms: Vec<&str> = sent.iter().map(|(room, _)| room.as_str()).collect();
    rooms.sort();
    assert_eq!(rooms, ["backend", "web"]);

    // The service's sweep, then the CLI's again, within min_interval: skipped, saying why.
    let skipped = (
        "skipped".to_owned(),
        Some("posted 0 min ago (min_interval 50 min); use force to post again".to_owned()),
    );
    let (status, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{report}");
    for name in ["backend", "web"] {
        assert_eq!(room_status(&report, name), skipped, "{report}");
    }
    let report = run_cli().await;
    for name in ["backend", "web"] {
        assert_eq!(room_status(&report, name), skipped, "{report}");
    }
    assert_eq!(digests(&fake, 2).await.len(), 2, "nothing more was posted");

    let sweeps: Vec<(String, String, String, Option<String>)> = app
        .query_rows("SELECT room, trigger, outcome, reason FROM sweeps ORDER BY id")
        .await;
    let row = |room: &str, trigger: &str, outcome: &str, reason: &Option<String>| {
        (
            room.to_owned(),
            trigger.to_owned(),
            outcome.to_owned(),
            reason.clone(),
        )
    };
    assert_eq!(
        sweeps,
        vec![
            row("backend", "cli", "posted", &None),
            row("web", "cli", "posted", &None),
            row("backend", "http", "skipped", &skipped.1),
            row("web", "http", "skipped", &skipped.1),
            row("backend", "cli", "skipped", &skipped.1),
            row("web", "cli", "skipped", &skipped.1),
        ]
    );
    // One digest row per room in the outbox, the one the CLI's sweep recorded, sent by the service.
    app.wait_for_count("SELECT count(*) FROM outbox WHERE state = 'sent'", 2)
        .await;
    let outbox: Vec<(String, String, String)> = app
        .query_rows("SELECT room, kind, state FROM outbox ORDER BY id")
        .await;
    let digest_row = |room: &str| (room.to_owned(), "digest".to_owned(), "sent".to_owned());
    assert_eq!(outbox, vec![digest_row("backend"), digest_row("web")]);
    assert_eq!(
        app.count_rows(
            "SELECT count(*) FROM sweeps s JOIN outbox o ON o.id = s.outbox_id \
             WHERE s.outcome = 'posted' AND s.trigger = 'cli' AND o.room = s.room"
        )
        .await,
        2
    );
}

async fn a_second_sweep_within_the_interval_posts_nothing_unless_forced(on: On) {
    let fake = fake_room().await;
    let t0 = utc(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(t0);
    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    send(
        &app,
        &pr(
            "acme/api",
            1,
            t0 - Duration::hours(1),
            "Pending",
            "OPEN",
            &[],
        ),
    )
    .await;

    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "").await.1, "backend").0,
        "posted"
    );
    digests(&fake, 1).await;
    clock.set(t0 + Duration::minutes(10));
    let (_, report) = sweep(&app, Some(TOKEN), "").await;
    let (status, reason) = room_status(&report, "backend");
    assert_eq!(status, "skipped");
    assert_eq!(
        reason.unwrap(),
        "posted 10 min ago (min_interval 50 min); use force to post again"
    );
    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "?force=true").await.1, "backend").0,
        "posted"
    );
    digests(&fake, 2).await;
    clock.set(t0 + Duration::minutes(40));
    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "").await.1, "backend").0,
        "skipped",
        "30 min after the forced one"
    );
    clock.set(t0 + Duration::minutes(81));
    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "").await.1, "backend").0,
        "posted"
    );
    assert_eq!(digests(&fake, 3).await.len(), 3);
    assert_eq!(
        app.count_rows("SELECT count(*) FROM sweeps WHERE room = 'backend' AND outcome = 'posted'")
            .await,
        3
    );
}

async fn concurrent_sweeps_post_once(on: On) {
    let fake = fake_room().await;
    let t0 = utc(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(t0);
    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    send(
        &app,
        &pr(
            "acme/api",
            1,
            t0 - Duration::hours(1),
            "Pending",
            "OPEN",
            &[],
        ),
    )
    .await;
    let runs = (0..6).map(|_| sweep(&app, Some(TOKEN), ""));
    let results = futures_util::future::join_all(runs).await;
    let posted = results
        .iter()
        .filter(|(_, r)| room_status(r, "backend").0 == "posted")
        .count();
    assert_eq!(posted, 1, "a retried scheduler call never double-posts");
    assert_eq!(digests(&fake, 1).await.len(), 1);
}

async fn quiet_hours_and_weekends_in_the_team_zone(on: On) {
    let fake = fake_room().await;
    // 08:30 in New York (13:30 UTC) on a Tuesday, quiet until 09:00 there.
    let clock = ManualClock::frozen(utc(2026, 11, 24, 13, 30));
    let Some(app) = app(on, &fake, &clock, |s| {
        s.calendar.tz = "America/New_York".parse().unwrap();
        s.calendar.quiet_hours = Some(parse_hours("18:00-09:00").unwrap());
    })
    .await
    else {
        return;
    };
    send(
        &app,
        &pr(
            "acme/api",
            1,
            utc(2026, 11, 23, 10, 0),
            "Pending",
            "OPEN",
            &[],
        ),
    )
    .await;
    let (_, report) = sweep(&app, Some(TOKEN), "").await;
    let (status, reason) = room_status(&report, "backend");
    assert_eq!(status, "skipped");
    assert_eq!(
        reason.unwrap(),
        "08:30 is within quiet hours 18:00-09:00 (America/New_York)"
    );

    clock.set(utc(2026, 11, 24, 14, 30)); // 09:30 there
    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "").await.1, "backend").0,
        "posted"
    );
    digests(&fake, 1).await; // sent before the next one (an unsent digest would be replaced)

    clock.set(utc(2026, 11, 28, 16, 0)); // Saturday
    let (_, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(
        room_status(&report, "backend").1.unwrap(),
        "Saturday is not a working day in America/New_York"
    );
    // Forced sweeps post anyway.
    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "?force=true").await.1, "backend").0,
        "posted"
    );
    assert_eq!(digests(&fake, 2).await.len(), 2);
}

/// The settings of `a_skipped_sweep_*`: the rooms at `fake`, New York's time zone with quiet
/// hours 18:00-09:00 and working days Monday to Friday.
fn quiet_settings(fake: &MockServer) -> impl FnOnce(&mut pr_reminder::config::Settings) {
    let notify = notify(fake);
    let mut sweep = sweep_settings();
    sweep.calendar.tz = "America/New_York".parse().unwrap();
    sweep.calendar.quiet_hours = Some(parse_hours("18:00-09:00").unwrap());
    move |s| {
        s.notify = notify;
        s.sweep = sweep;
    }
}

/// Tuesday 2026-11-24 08:30 in New York (quiet until 09:00 there).
fn quiet_morning() -> DateTime<Utc> {
    utc(2026, 11, 24, 13, 30)
}

/// (room, outcome, reason, waiting_review, waiting_on_author) of every sweep, in order.
type SweepCounts = (String, String, Option<String>, i64, i64);

/// (status, reason, waiting_review, waiting_on_author) of `room` in a report.
fn room_counts(report: &Value, room: &str) -> (String, Option<String>, i64, i64) {
    let (status, reason) = room_status(report, room);
    let r = report["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == room)
        .unwrap();
    (
        status,
        reason,
        r["waiting_review"].as_i64().unwrap(),
        r["waiting_on_author"].as_i64().unwrap(),
    )
}

/// A sweep skipped for quiet hours or a day off still says what waits: the real counts with the
/// reason, in the HTTP answer and in the `sweeps` table (issue 21: it used to answer
/// `skipped  0 waiting for review` while PRs were waiting). Backend has two PRs waiting for
/// review and one on its author; web one waiting for review.
async fn a_skipped_sweep_reports_what_waits(app: &impl Served, clock: &ManualClock) {
    let created = utc(2026, 11, 23, 10, 0);
    for body in [
        pr("acme/api", 1, created, "One", "OPEN", &[]),
        pr(
            "acme/api",
            2,
            created,
            "Two",
            "OPEN",
            &[("bob", "REVIEWER", Some("approved"))],
        ),
        pr(
            "acme/api",
            3,
            created,
            "Three",
            "OPEN",
            &[("carol", "REVIEWER", Some("changes_requested"))],
        ),
        pr("web/site", 4, created, "Four", "OPEN", &[]),
    ] {
        send(app, &body).await;
    }
    let quiet = "08:30 is within quiet hours 18:00-09:00 (America/New_York)";
    let saturday = "Saturday is not a working day in America/New_York";
    let (status, report) = sweep(app, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        room_counts(&report, "backend"),
        ("skipped".into(), Some(quiet.into()), 2, 1),
        "{report}"
    );
    assert_eq!(
        room_counts(&report, "web"),
        ("skipped".into(), Some(quiet.into()), 1, 0),
        "{report}"
    );
    clock.set(utc(2026, 11, 28, 16, 0));
    let (_, report) = sweep(app, Some(TOKEN), "").await;
    assert_eq!(
        room_counts(&report, "backend"),
        ("skipped".into(), Some(saturday.into()), 2, 1),
        "{report}"
    );
    let rows: Vec<SweepCounts> = app
        .query_rows(
            "SELECT room, outcome, reason, waiting_review, waiting_on_author FROM sweeps \
             ORDER BY id",
        )
        .await;
    let row = |room: &str, reason: &str, review: i64, author: i64| {
        (
            room.to_owned(),
            "skipped".to_owned(),
            Some(reason.to_owned()),
            review,
            author,
        )
    };
    assert_eq!(
        rows,
        vec![
            row("backend", quiet, 2, 1),
            row("web", quiet, 1, 0),
            row("backend", saturday, 2, 1),
            row("web", saturday, 1, 0),
        ]
    );
    assert_eq!(
        app.count_rows("SELECT count(*) FROM outbox").await,
        0,
        "nothing posted"
    );
}

/// `pr-reminder sweep --json` against `database` (a file or a connection string) on the real
/// clock, with rooms at `fake` whose working days leave out today and tomorrow (UTC), so that
/// it is skipped whenever it runs: the report of each room, as the CLI printed it.
async fn cli_skipped_sweep(database: String, fake: &MockServer) -> Value {
    use chrono::Datelike;
    let today = Utc::now().date_naive();
    let off = [today.weekday(), today.weekday().succ()];
    let working: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .filter(|d| !off.contains(&d.parse::<chrono::Weekday>().unwrap()))
        .map(str::to_owned)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pr-reminder.toml");
    std::fs::write(
        &config,
        format!(
            "[sweep]\ntimezone = \"UTC\"\nworking_days = {working:?}\n\n\
             [[rooms]]\nname = \"backend\"\nhipchat_url = \"{}/v2/room/backend/notification?auth_token=t\"\n\n\
             [[routes]]\nrepositories = [\"acme/*\"]\nroom = \"backend\"\n",
            fake.uri()
        ),
    )
    .unwrap();
    // The test's own clock (a shifted one in CI's second run), nothing else of its environment.
    let mut cmd = crate::helpers::clean_command(env!("CARGO_BIN_EXE_pr-reminder"));
    cmd.current_dir(dir.path())
        .env("PR_REMINDER_DATABASE", database)
        .arg("--config")
        .arg(&config)
        .args(["sweep", "--json"]);
    let (code, stdout, stderr) = crate::helpers::output(cmd).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let (status, reason, review, author) = room_counts(&report, "backend");
    assert_eq!(
        (status.as_str(), review, author),
        ("skipped", 2, 1),
        "{report}"
    );
    let reason = reason.unwrap();
    assert!(
        off.iter()
            .any(|d| reason == format!("{} is not a working day in UTC", weekday_name(*d))),
        "{reason}"
    );
    report
}

fn weekday_name(day: chrono::Weekday) -> &'static str {
    use chrono::Weekday::*;
    match day {
        Mon => "Monday",
        Tue => "Tuesday",
        Wed => "Wednesday",
        Thu => "Thursday",
        Fri => "Friday",
        Sat => "Saturday",
        Sun => "Sunday",
    }
}

async fn a_skipped_sweep_reports_the_real_counts_with_its_reason(on: On) {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(quiet_morning());
    let Some(app) = spawn_on(on, "sweepquiet", quiet_settings(&fake), clock.clock()).await else {
        return;
    };
    a_skipped_sweep_reports_what_waits(&app, &clock).await;
    cli_skipped_sweep(app.database(), &fake).await;
}

async fn nothing_pending_is_silent_unless_all_clear_is_asked_for(on: On) {
    let fake = fake_room().await;
    let clock = ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(quiet) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    let (_, report) = sweep(&quiet, Some(TOKEN), "").await;
    assert_eq!(
        room_status(&report, "backend").1.unwrap(),
        "nothing is waiting for review"
    );
    assert_eq!(quiet.count_rows("SELECT count(*) FROM outbox").await, 0);
    let Some(loud) = app(on, &fake, &clock, |s| s.all_clear = true).await else {
        return;
    };
    let (_, report) = sweep(&loud, Some(TOKEN), "").await;
    assert_eq!(room_status(&report, "backend").0, "posted");
    let messages = digests(&fake, 2).await; // one per room
    assert!(messages.iter().all(|(_, m)| m["color"] == "green"));
    assert!(messages[0].1["message"]
        .as_str()
        .unwrap()
        .starts_with("<b>All clear"));
}

/// `room_reminders = false` on web/*'s route (a team on personal reminders only): the sweep
/// leaves its PRs out of web's digest, while backend's is posted; `/reviews` is unchanged.
async fn a_route_without_room_reminders_is_left_out_of_the_digest(on: On) {
    let fake = fake_room().await;
    let now = utc(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(now);
    let mut notify = notify(&fake);
    notify.routes[1].room_reminders = false;
    let Some(app) = spawn_on(
        on,
        "sweepreminders",
        move |s| {
            s.notify = notify;
            s.sweep = sweep_settings();
        },
        clock.clock(),
    )
    .await
    else {
        return;
    };
    let created = now - Duration::hours(5);
    let participants = [("bob", "REVIEWER", None)];
    send(
        &app,
        &pr(
            "acme/api",
            1,
            created,
            "Backend change",
            "OPEN",
            &participants,
        ),
    )
    .await;
    send(
        &app,
        &pr("web/site", 2, created, "Web change", "OPEN", &participants),
    )
    .await;
    let (status, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(room_status(&report, "backend").0, "posted", "{report}");
    assert_eq!(
        room_status(&report, "web").1.unwrap(),
        "nothing is waiting for review",
        "{report}"
    );
    let messages = digests(&fake, 1).await;
    assert_eq!(messages[0].0, "backend");
}

async fn many_prs_are_cut_to_fit_with_and_n_more(on: On) {
    let fake = fake_room().await;
    let now = utc(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(now);
    let Some(app) = app(on, &fake, &clock, |_| {}).await else {
        return;
    };
    let title = "Refactor the payment gateway adapters so that retries are bounded everywhere";
    let sends = (1..=150).map(|n| {
        let body = pr(
            "acme/api",
            n,
            now - Duration::minutes(300 - n),
            title,
            "OPEN",
            &[],
        );
        let app = &app;
        async move { send(app, &body).await }
    });
    futures_util::future::join_all(sends).await;
    let (_, report) = sweep(&app, Some(TOKEN), "").await;
    assert_eq!(report["rooms"][0]["waiting_review"], 150);
    let message = &digests(&fake, 1).await[0].1;
    let html = message["message"].as_str().unwrap();
    assert!(html.chars().count() <= 10_000, "{}", html.chars().count());
    let shown = html.matches("<br>• ").count();
    assert!((20..150).contains(&shown), "{shown}");
    assert!(
        html.ends_with(&format!("<br>and {} more", 150 - shown)),
        "{}",
        &html[html.len() - 60..]
    );
    assert!(html.contains("/pull-requests/1\""), "the oldest is shown");
}

/// The scheduler sleeps until 10:00 by the service's clock, then sweeps (recorded as
/// `schedule`) and posts the digest.
async fn the_built_in_schedule_sweeps_by_itself(on: On) {
    let fake = fake_room().await;
    // One second before 10:00 on a Tuesday; the schedule says 10:00 on working days.
    let clock = ManualClock::frozen(utc(2026, 11, 24, 9, 59) + Duration::seconds(59));
    let Some(app) = app(on, &fake, &clock, |s| {
        s.schedule = Some("0 10 * * Mon-Fri".into())
    })
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
    // The scheduler sleeps until exactly 10:00 by the service's clock, and sweeps then.
    assert!(
        clock.until_waiting(1, crate::fake_chat::PATIENCE).await,
        "the scheduler waits"
    );
    assert_eq!(clock.waits(), vec![utc(2026, 11, 24, 10, 0)]);
    assert!(
        fake.received_requests().await.unwrap().is_empty(),
        "nothing before 10:00"
    );
    assert_eq!(clock.advance_to_next(), Some(utc(2026, 11, 24, 10, 0)));
    let messages = digests(&fake, 1).await;
    assert_eq!(messages[0].0, "backend");
    let rows: Vec<(String, String, String)> = app
        .query_rows("SELECT room, trigger, outcome FROM sweeps ORDER BY room")
        .await;
    let row =
        |room: &str, outcome: &str| (room.to_owned(), "schedule".to_owned(), outcome.to_owned());
    assert_eq!(rows, [row("backend", "posted"), row("web", "skipped")]);
}

/// A PR's own message waiting out its 30 s coalescing window does not hold the digest back.
#[tokio::test]
async fn a_digest_is_not_held_behind_a_message_in_its_window() {
    let fake = fake_room().await;
    let now = utc(2026, 11, 24, 10, 0);
    let clock = ManualClock::frozen(now);
    let mut sweep_settings = SweepSettings {
        token: Some(SecretToken(SecretString::from(TOKEN.to_owned()))),
        ..SweepSettings::default()
    };
    sweep_settings.min_interval = std::time::Duration::ZERO;
    let mut announcing = digest_only_route(&["acme/*"], "backend");
    announcing.announce = Announce::default();
    let notify = NotifySettings {
        rooms: vec![room("backend", &fake)],
        routes: vec![announcing],
        coalesce: std::time::Duration::from_secs(30),
        ..NotifySettings::default()
    };
    let app = spawn_app_with_clock(
        move |s| {
            s.notify = notify;
            s.sweep = sweep_settings;
        },
        clock.clock(),
    )
    .await;
    send(
        &app,
        &pr(
            "acme/api",
            1,
            now - Duration::hours(1),
            "Pending",
            "OPEN",
            &[],
        ),
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(
        room_status(&sweep(&app, Some(TOKEN), "").await.1, "backend").0,
        "posted"
    );
    let messages = digests(&fake, 1).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(messages[0].1["message"]
        .as_str()
        .unwrap()
        .contains("waiting for review"));
    let pending: (String, String) = sqlx::query_as(
        "SELECT events, state FROM outbox WHERE repository_key IN \
             (SELECT repository_key FROM repositories WHERE full_name = 'acme/api')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        pending,
        ("opened".to_owned(), "pending".to_owned()),
        "still in its window"
    );
}

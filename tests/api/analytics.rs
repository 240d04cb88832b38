//! The review flow in numbers (issue 28): the dated facts the writer keeps for every PR, from
//! real Bitbucket Cloud and Data Center payload shapes (`../shared/fixtures/bitbucket`) with
//! chosen dates and participants, on both databases; the store's read; a backfill by
//! reconciliation equal to the live history; the histograms in /metrics.

use pr_reminder::clock::Clock;
use pr_reminder::config::{Room, SecretToken, Settings, Sink};
use pr_reminder::domain::Timestamp;
use pr_reminder::store::Database;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{on_both, route, shared_fixtures, spawn_on, App, On, Served};
use crate::metrics::{value, METRICS_TOKEN};

/// ble-testsuite's repository (Cloud), and go-playground-webhooks' (Data Center).
const BLE: &str = "arolgroup/j0664-ns2-firmware";
const GOPHER: &str = "~gopher/webhook-test";

pub(crate) fn settings(s: &mut Settings) {
    s.notify.coalesce = std::time::Duration::ZERO;
    s.required_approvals = 1;
    s.notify.rooms = vec![Room {
        name: "acme".into(),
        sink: Sink::Console,
    }];
    s.notify.routes = vec![route(&["*"], "acme")];
    s.monitoring.metrics_token = Some(SecretToken(SecretString::from(METRICS_TOKEN)));
}

/// `settings` with two approvals required.
fn two_required(s: &mut Settings) {
    settings(s);
    s.required_approvals = 2;
}

pub(crate) fn shared(file: &str) -> Option<Value> {
    let dir = shared_fixtures()?;
    Some(serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap())
}

/// The real Cloud approval of ble-testsuite's PR #7: its users are the author (Gianpaolo
/// Macario) and the requested reviewer (Gianluca Teti).
fn cloud_base() -> Option<Value> {
    shared("cloud/ble-testsuite/2023-05-16-123305-webhook-site.json")
}

/// One participant as Cloud lists it: `user` from the real payload, a role, a verdict
/// (`approved`, `changes_requested` or null) and its `participated_on`.
fn participant(user: &Value, role: &str, state: Option<&str>, on: Option<&str>) -> Value {
    json!({"type": "participant", "user": user, "role": role,
           "approved": state == Some("approved"), "state": state, "participated_on": on})
}

/// `base` as PR `number` at `updated`: opened at `created`, `state`, `draft`, on `commit`,
/// with `participants` (the requested reviewers are those with role REVIEWER).
#[allow(clippy::too_many_arguments)]
fn cloud_snapshot(
    base: &Value,
    number: i64,
    created: &str,
    updated: &str,
    state: &str,
    draft: bool,
    commit: &str,
    participants: Vec<Value>,
) -> Value {
    let mut body = base.clone();
    let pr = &mut body["pullrequest"];
    pr["id"] = json!(number);
    pr["created_on"] = json!(created);
    pr["updated_on"] = json!(updated);
    pr["state"] = json!(state);
    pr["draft"] = json!(draft);
    pr["source"]["commit"]["hash"] = json!(commit);
    pr["reviewers"] = json!(participants
        .iter()
        .filter(|p| p["role"] == "REVIEWER")
        .map(|p| p["user"].clone())
        .collect::<Vec<_>>());
    pr["participants"] = json!(participants);
    body
}

/// (repository name, number, created, ready, first review, approved, state, closed, approvals,
/// required, rounds): every figure column of `pull_request_facts` but title, url and author.
pub(crate) type FactsRow = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
    i64,
    i64,
);

pub(crate) async fn facts(app: &impl Served) -> Vec<FactsRow> {
    app.query_rows(
        "SELECT repository_name, number, created_on, ready_on, first_review_on, approved_on,
                state, closed_on, approvals, required_approvals, rounds
           FROM pull_request_facts ORDER BY repository_name, number",
    )
    .await
}

/// (number, turn, since, until) of every span, by PR then start.
pub(crate) async fn spans(app: &impl Served) -> Vec<(i64, String, String, Option<String>)> {
    app.query_rows(
        "SELECT number, turn, since, until FROM pull_request_turns
          ORDER BY repository_key, number, since",
    )
    .await
}

/// (number, reviewer name, asked on, reviewed on) of every review request.
pub(crate) async fn requests(app: &impl Served) -> Vec<(i64, String, String, Option<String>)> {
    app.query_rows(
        "SELECT number, reviewer_name, asked_on, reviewed_on FROM pull_request_review_requests
          ORDER BY repository_key, number, reviewer",
    )
    .await
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn o(text: &str) -> Option<String> {
    Some(text.to_owned())
}

#[allow(clippy::too_many_arguments)]
fn fact(
    (repository, number, created, ready, first_review, approved): (
        &str,
        i64,
        &str,
        Option<&str>,
        Option<&str>,
        Option<&str>,
    ),
    (state, closed, approvals, required, rounds): (&str, Option<&str>, i64, i64, i64),
) -> FactsRow {
    (
        s(repository),
        number,
        s(created),
        ready.map(s),
        first_review.map(s),
        approved.map(s),
        s(state),
        closed.map(s),
        approvals,
        required,
        rounds,
    )
}

/// The Cloud histories: #7 opened Monday 2 November 09:00 with Gianluca asked, a comment by its
/// author at 10:00 (not a review), approved at 12:00, merged at 14:00; #9 opened as a draft on
/// Tuesday 09:00, ready at 10:00, changes requested at 11:00, a new commit at 13:00 (a review
/// round), approved at 15:00, still open.
pub(crate) async fn cloud_history(app: &impl Served) -> Option<Value> {
    let base = cloud_base()?;
    let pr = &base["pullrequest"];
    let author = pr["author"].clone();
    let gianluca = pr["participants"][0]["user"].clone();
    let asked =
        |state: Option<&str>, on: Option<&str>| participant(&gianluca, "REVIEWER", state, on);
    let commented = participant(
        &author,
        "PARTICIPANT",
        None,
        Some("2026-11-02T10:00:00+00:00"),
    );
    let seven = |updated: &str, state: &str, people: Vec<Value>| {
        cloud_snapshot(
            &base,
            7,
            "2026-11-02T09:00:00+00:00",
            updated,
            state,
            false,
            "c50556ede84b",
            people,
        )
    };
    let created7 = seven("2026-11-02T09:00:00+00:00", "OPEN", vec![asked(None, None)]);
    let history = [
        ("pullrequest:created", created7.clone()),
        (
            "pullrequest:comment_created",
            seven(
                "2026-11-02T10:00:00+00:00",
                "OPEN",
                vec![asked(None, None), commented.clone()],
            ),
        ),
        (
            "pullrequest:approved",
            seven(
                "2026-11-02T12:00:00+00:00",
                "OPEN",
                vec![
                    asked(Some("approved"), Some("2026-11-02T12:00:00+00:00")),
                    commented.clone(),
                ],
            ),
        ),
        (
            "pullrequest:fulfilled",
            seven(
                "2026-11-02T14:00:00+00:00",
                "MERGED",
                vec![
                    asked(Some("approved"), Some("2026-11-02T12:00:00+00:00")),
                    commented,
                ],
            ),
        ),
    ];
    for (key, body) in history {
        app.processed(key, &body).await;
    }
    let nine = |updated: &str, draft: bool, commit: &str, people: Vec<Value>| {
        cloud_snapshot(
            &base,
            9,
            "2026-11-03T09:00:00+00:00",
            updated,
            "OPEN",
            draft,
            commit,
            people,
        )
    };
    let changes = asked(Some("changes_requested"), Some("2026-11-03T11:00:00+00:00"));
    let history = [
        (
            "pullrequest:created",
            nine(
                "2026-11-03T09:00:00+00:00",
                true,
                "c50556ede84b",
                vec![asked(None, None)],
            ),
        ),
        (
            "pullrequest:updated",
            nine(
                "2026-11-03T10:00:00+00:00",
                false,
                "c50556ede84b",
                vec![asked(None, None)],
            ),
        ),
        (
            "pullrequest:changes_request_created",
            nine(
                "2026-11-03T11:00:00+00:00",
                false,
                "c50556ede84b",
                vec![changes.clone()],
            ),
        ),
        (
            "pullrequest:updated",
            nine(
                "2026-11-03T13:00:00+00:00",
                false,
                "0123456789ab",
                vec![changes],
            ),
        ),
        (
            "pullrequest:approved",
            nine(
                "2026-11-03T15:00:00+00:00",
                false,
                "0123456789ab",
                vec![asked(Some("approved"), Some("2026-11-03T15:00:00+00:00"))],
            ),
        ),
    ];
    for (key, body) in history {
        app.processed(key, &body).await;
    }
    Some(created7)
}

/// go-playground-webhooks' Data Center PR #5 as delivered: opened 09:31:15.860 with Cain
/// Piper asked, needs work at 09:34:53, approved at 09:35:38, merged at 09:37:14.286 (UTC).
pub(crate) async fn datacenter_history(app: &impl Served) -> Option<()> {
    let dir = "server/go-playground-webhooks";
    for (key, file) in [
        ("pr:opened", "pr-opened.json"),
        ("pr:reviewer:needs_work", "pr-reviewer-needs-work.json"),
        ("pr:reviewer:approved", "pr-reviewer-approved.json"),
        ("pr:merged", "pr-merged.json"),
    ] {
        let body = shared(&format!("{dir}/{file}"))?;
        let answer = crate::datacenter::deliver_as(
            app,
            key,
            &crate::helpers::uuid_like("dc"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200, "{key}: {}", answer.body);
        assert_eq!(answer.body["status"], "processed", "{key}: {}", answer.body);
    }
    Some(())
}

on_both!(
    live_histories_keep_their_dated_facts_whatever_the_arrival_order,
    a_backfill_of_the_final_state_gives_the_live_facts,
);

async fn live_histories_keep_their_dated_facts_whatever_the_arrival_order(on: On) {
    let Some(app) = spawn_on(on, "flowlive", settings, Clock::system()).await else {
        return;
    };
    let Some(created7) = cloud_history(&app).await else {
        return;
    };
    datacenter_history(&app).await.unwrap();
    // A late redelivery of #7's opening (a new request id): older than what is stored.
    app.processed("pullrequest:created", &created7).await;

    let expected = vec![
        fact(
            (
                BLE,
                7,
                "2026-11-02T09:00:00.000000Z",
                Some("2026-11-02T09:00:00.000000Z"),
                // The author's own comment at 10:00 is no review.
                Some("2026-11-02T12:00:00.000000Z"),
                Some("2026-11-02T12:00:00.000000Z"),
            ),
            ("MERGED", Some("2026-11-02T14:00:00.000000Z"), 1, 1, 0),
        ),
        fact(
            (
                BLE,
                9,
                "2026-11-03T09:00:00.000000Z",
                // Opened as a draft: ready when it left draft.
                Some("2026-11-03T10:00:00.000000Z"),
                Some("2026-11-03T11:00:00.000000Z"),
                Some("2026-11-03T15:00:00.000000Z"),
            ),
            // Changes requested, then a new commit: one round.
            ("OPEN", None, 1, 1, 1),
        ),
        fact(
            (
                GOPHER,
                5,
                "2019-03-01T09:31:15.860000Z",
                Some("2019-03-01T09:31:15.860000Z"),
                Some("2019-03-01T09:34:53.000000Z"),
                Some("2019-03-01T09:35:38.000000Z"),
            ),
            ("MERGED", Some("2019-03-01T09:37:14.286000Z"), 1, 1, 0),
        ),
    ];
    assert_eq!(facts(&app).await, expected);

    let mut turns = spans(&app).await;
    turns.sort();
    assert_eq!(
        turns,
        vec![
            (
                5,
                s("author"),
                s("2019-03-01T09:34:53.000000Z"),
                o("2019-03-01T09:35:38.000000Z")
            ),
            (
                5,
                s("merge"),
                s("2019-03-01T09:35:38.000000Z"),
                o("2019-03-01T09:37:14.286000Z")
            ),
            (
                5,
                s("reviewers"),
                s("2019-03-01T09:31:15.860000Z"),
                o("2019-03-01T09:34:53.000000Z")
            ),
            (
                7,
                s("merge"),
                s("2026-11-02T12:00:00.000000Z"),
                o("2026-11-02T14:00:00.000000Z")
            ),
            (
                7,
                s("reviewers"),
                s("2026-11-02T09:00:00.000000Z"),
                o("2026-11-02T12:00:00.000000Z")
            ),
            // The draft is its author's turn.
            (
                9,
                s("author"),
                s("2026-11-03T09:00:00.000000Z"),
                o("2026-11-03T10:00:00.000000Z")
            ),
            (
                9,
                s("author"),
                s("2026-11-03T11:00:00.000000Z"),
                o("2026-11-03T13:00:00.000000Z")
            ),
            (9, s("merge"), s("2026-11-03T15:00:00.000000Z"), None),
            (
                9,
                s("reviewers"),
                s("2026-11-03T10:00:00.000000Z"),
                o("2026-11-03T11:00:00.000000Z")
            ),
            (
                9,
                s("reviewers"),
                s("2026-11-03T13:00:00.000000Z"),
                o("2026-11-03T15:00:00.000000Z")
            ),
        ]
    );

    let mut asked = requests(&app).await;
    asked.sort();
    assert_eq!(
        asked,
        vec![
            (
                5,
                s("Cain Piper"),
                s("2019-03-01T09:31:15.860000Z"),
                o("2019-03-01T09:34:53.000000Z")
            ),
            (
                7,
                s("Gianluca Teti"),
                s("2026-11-02T09:00:00.000000Z"),
                o("2026-11-02T12:00:00.000000Z")
            ),
            // Asked while a draft: asked when it became ready.
            (
                9,
                s("Gianluca Teti"),
                s("2026-11-03T10:00:00.000000Z"),
                o("2026-11-03T11:00:00.000000Z")
            ),
        ]
    );

    // The histograms: first reviews after 217 s (#5), 3 h (#7) and 1 h (#9); merges after
    // 358 s (#5, 358.426 s rounded down) and 5 h (#7). Each observed once.
    let (status, text) = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    for (series, expected) in [
        ("pr_reminder_time_to_first_review_seconds_count", "3"),
        ("pr_reminder_time_to_first_review_seconds_sum", "14617.0"),
        (
            "pr_reminder_time_to_first_review_seconds_bucket{le=\"300.0\"}",
            "1",
        ),
        (
            "pr_reminder_time_to_first_review_seconds_bucket{le=\"3600.0\"}",
            "2",
        ),
        (
            "pr_reminder_time_to_first_review_seconds_bucket{le=\"14400.0\"}",
            "3",
        ),
        ("pr_reminder_time_to_merge_seconds_count", "2"),
        ("pr_reminder_time_to_merge_seconds_sum", "18358.0"),
        (
            "pr_reminder_time_to_merge_seconds_bucket{le=\"300.0\"}",
            "0",
        ),
        (
            "pr_reminder_time_to_merge_seconds_bucket{le=\"900.0\"}",
            "1",
        ),
        (
            "pr_reminder_time_to_merge_seconds_bucket{le=\"28800.0\"}",
            "2",
        ),
    ] {
        assert_eq!(value(&text, series), expected, "{series}");
    }

    // The store's read: open now, or closed or opened since the earliest instant asked for.
    let db = connect(&app).await;
    let at = |t: &str| Timestamp::parse(t).unwrap();
    let read = pr_reminder::store::analytics::read(&db, &at("2026-11-01T00:00:00Z"), None)
        .await
        .unwrap();
    assert_eq!(
        read.facts.iter().map(|f| f.number).collect::<Vec<_>>(),
        [7, 9],
        "#5 closed in 2019"
    );
    assert_eq!(read.turns.len(), 7);
    assert!(read
        .turns
        .windows(2)
        .all(|w| (w[0].number, &w[0].since) <= (w[1].number, &w[1].since)));
    assert_eq!(read.requests.len(), 2);
    let nine = &read.facts[1];
    assert_eq!(
        (
            nine.ready_on.as_ref(),
            nine.first_review_on.as_ref(),
            nine.rounds,
            nine.title.as_str()
        ),
        (
            Some(&at("2026-11-03T10:00:00Z")),
            Some(&at("2026-11-03T11:00:00Z")),
            1,
            "[Feat] Sync repo from Bitbucket Cloud"
        )
    );
    // After #7's merge: #9 alone (open); the repository in any case.
    let read = pr_reminder::store::analytics::read(
        &db,
        &at("2026-11-02T14:00:01Z"),
        Some(&BLE.to_uppercase()),
    )
    .await
    .unwrap();
    assert_eq!(read.facts.iter().map(|f| f.number).collect::<Vec<_>>(), [9]);
    assert_eq!(read.turns.len(), 5);
    let read = pr_reminder::store::analytics::read(&db, &at("2019-01-01T00:00:00Z"), Some(GOPHER))
        .await
        .unwrap();
    assert_eq!(read.facts.iter().map(|f| f.number).collect::<Vec<_>>(), [5]);
    assert_eq!(read.requests[0].reviewer_name, "Cain Piper");
}

/// The app's database, opened as the binary opens it.
pub(crate) async fn connect(app: &App) -> pr_reminder::store::Db {
    let database = Database::parse(&app.database()).unwrap();
    pr_reminder::store::connect(&database, "normal")
        .await
        .unwrap()
}

/// #21 as it stands after its history: opened Monday 2 November 09:00 asking Gianluca and a
/// second reviewer (the same real user shape, another account), approved by Gianluca at 11:00
/// and by the second at 13:30: two approvals required, met at 13:30. Live, the three snapshots
/// come as webhooks; backfilled, a reconciliation pass reads the last one from the REST API.
fn backfill_history(base: &Value) -> Vec<(&'static str, Value)> {
    let pr = &base["pullrequest"];
    let gianluca = pr["participants"][0]["user"].clone();
    let mut carla = gianluca.clone();
    carla["display_name"] = json!("Carla Rossi");
    carla["uuid"] = json!("{0c7e1b8e-9a3e-4d7b-8d5e-5f6a7b8c9d0e}");
    carla["account_id"] = json!("557058:0c7e1b8e-9a3e-4d7b-8d5e-5f6a7b8c9d0e");
    carla["nickname"] = json!("Carla Rossi");
    let snapshot =
        |updated: &str, g: (Option<&str>, Option<&str>), c: (Option<&str>, Option<&str>)| {
            cloud_snapshot(
                base,
                21,
                "2026-11-02T09:00:00+00:00",
                updated,
                "OPEN",
                false,
                "c50556ede84b",
                vec![
                    participant(&gianluca, "REVIEWER", g.0, g.1),
                    participant(&carla, "REVIEWER", c.0, c.1),
                ],
            )
        };
    let g = (Some("approved"), Some("2026-11-02T11:00:00+00:00"));
    let c = (Some("approved"), Some("2026-11-02T13:30:00+00:00"));
    vec![
        (
            "pullrequest:created",
            snapshot("2026-11-02T09:00:00+00:00", (None, None), (None, None)),
        ),
        (
            "pullrequest:approved",
            snapshot("2026-11-02T11:00:00+00:00", g, (None, None)),
        ),
        (
            "pullrequest:approved",
            snapshot("2026-11-02T13:30:00+00:00", g, c),
        ),
    ]
}

/// Every column of the facts and the requests, and the open turn: what the figures read.
async fn everything(
    app: &impl Served,
) -> (
    Vec<FactsRow>,
    Vec<(i64, String, String, Option<String>)>,
    Vec<(String, String)>,
) {
    let open: Vec<(String, String)> = app
        .query_rows("SELECT turn, turn_since FROM pull_request_facts WHERE turn IS NOT NULL")
        .await;
    (facts(app).await, requests(app).await, open)
}

async fn a_backfill_of_the_final_state_gives_the_live_facts(on: On) {
    let Some(base) = cloud_base() else {
        return;
    };
    let history = backfill_history(&base);
    let Some(live) = spawn_on(on, "flowbackfill0", two_required, Clock::system()).await else {
        return;
    };
    for (key, body) in &history {
        live.processed(key, body).await;
    }
    let live_facts = everything(&live).await;
    assert_eq!(
        live_facts.0,
        vec![fact(
            (
                BLE,
                21,
                "2026-11-02T09:00:00.000000Z",
                Some("2026-11-02T09:00:00.000000Z"),
                Some("2026-11-02T11:00:00.000000Z"),
                Some("2026-11-02T13:30:00.000000Z"),
            ),
            ("OPEN", None, 2, 2, 0),
        )]
    );
    assert_eq!(
        live_facts.2,
        vec![(s("merge"), s("2026-11-02T13:30:00.000000Z"))]
    );

    let server = wiremock::MockServer::start().await;
    let last = history.last().unwrap().1["pullrequest"].clone();
    crate::reconcile::cloud_list(&server, BLE, vec![last]).await;
    crate::reconcile::cloud_statuses(&server, BLE, "c50556ede84b", vec![]).await;
    let url = format!("{}/2.0", server.uri());
    let Some(backfilled) = spawn_on(
        on,
        "flowbackfill1",
        move |s: &mut Settings| {
            two_required(s);
            s.bitbucket = vec![crate::reconcile::site(
                pr_reminder::domain::Flavour::Cloud,
                url,
                &[BLE],
            )];
            s.sweep.token = Some(SecretToken(SecretString::from(
                crate::reconcile::TOKEN.to_owned(),
            )));
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    let (status, report) = crate::reconcile::reconcile(&backfilled).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(everything(&backfilled).await, live_facts);
}

on_both!(the_report_gives_the_figures_computed_by_hand);

/// #11: opened Friday 6 November 16:00 with Gianluca asked, approved on Monday 9 November at
/// 10:00, merged at 12:00: across a weekend.
pub(crate) async fn weekend_history(app: &impl Served) -> Option<()> {
    let base = cloud_base()?;
    let gianluca = base["pullrequest"]["participants"][0]["user"].clone();
    let eleven = |updated: &str, state: &str, verdict: Option<&str>| {
        let on = verdict.map(|_| "2026-11-09T10:00:00+00:00");
        cloud_snapshot(
            &base,
            11,
            "2026-11-06T16:00:00+00:00",
            updated,
            state,
            false,
            "c50556ede84b",
            vec![participant(&gianluca, "REVIEWER", verdict, on)],
        )
    };
    for (key, body) in [
        (
            "pullrequest:created",
            eleven("2026-11-06T16:00:00+00:00", "OPEN", None),
        ),
        (
            "pullrequest:approved",
            eleven("2026-11-09T10:00:00+00:00", "OPEN", Some("approved")),
        ),
        (
            "pullrequest:fulfilled",
            eleven("2026-11-09T12:00:00+00:00", "MERGED", Some("approved")),
        ),
    ] {
        app.processed(key, &body).await;
    }
    Some(())
}

/// `pr-reminder report ARGS` on the app's database, with `config` as its settings file:
/// (exit code, stdout, stderr).
async fn report(app: &App, config: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pr-reminder.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.display().to_string();
    let mut all = vec!["--config", path.as_str(), "report"];
    all.extend_from_slice(args);
    crate::helpers::run_binary(&app.database(), &all).await
}

fn stat(count: u32, median: i64, p90: i64) -> Value {
    json!({"count": count, "median_seconds": median, "p90_seconds": p90})
}

/// The Cloud histories (#7, #9) and the weekend one (#11), reported over November on; each
/// figure computed by hand below. The Data Center PR (2019) is outside the window.
async fn the_report_gives_the_figures_computed_by_hand(on: On) {
    let Some(app) = spawn_on(on, "flowreport", settings, Clock::system()).await else {
        return;
    };
    if cloud_history(&app).await.is_none() {
        return;
    }
    weekend_history(&app).await.unwrap();
    datacenter_history(&app).await.unwrap();
    let since = ["--since", "2026-11-01T00:00:00Z", "--json"];

    // Wall-clock time. Per PR (seconds):
    //   #7: ready Mon 09:00; first review and approval 12:00 (10800); merged 14:00 (18000);
    //       0 rounds; with reviewers 09:00-12:00 (10800), author 0, merge 12:00-14:00 (7200).
    //   #9: ready Tue 10:00; first review 11:00 (3600); approved 15:00 (18000); still open.
    //   #11: ready Fri 16:00; first review and approval Mon 10:00 (66 h, 237600); merged Mon
    //       12:00 (244800); 0 rounds; with reviewers 237600, author 0, merge 7200.
    // First review [3600, 10800, 237600]: median 10800, p90 rank ⌈2.7⌉ = 3: 237600.
    // Approval [10800, 18000, 237600]: median 18000, p90 237600.
    // Merge [18000, 244800]: median (18000 + 244800) / 2 = 131400, p90 rank ⌈1.8⌉ = 2: 244800.
    // Rounds [0, 0]. With reviewers [10800, 237600]: median 124200, p90 237600; author [0, 0];
    // merge [7200, 7200].
    let (code, out, err) = report(&app, "", &since).await;
    assert_eq!(code, 0, "{err}");
    let flow: Value = serde_json::from_str(&out).unwrap();
    let overall = json!({
        "opened": 3, "merged": 2, "declined": 0, "merged_under_approved": 0,
        "time_to_first_review": stat(3, 10800, 237600),
        "time_to_approval": stat(3, 18000, 237600),
        "time_to_merge": stat(2, 131400, 244800),
        "rounds": {"count": 2, "median": 0, "p90": 0},
        "reviewers_turn": stat(2, 124200, 237600),
        "author_turn": stat(2, 0, 0),
        "merge_turn": stat(2, 7200, 7200),
    });
    assert_eq!(flow["overall"], overall, "{out}");
    assert_eq!(flow["working_hours_only"], false);
    assert_eq!(flow["since"], "2026-11-01T00:00:00.000000Z");
    let mut repository = overall.clone();
    repository["name"] = json!(BLE);
    assert_eq!(flow["repositories"], json!([repository]));
    // Without a configuration, the default room (`console`) hears every repository.
    let mut room = overall.clone();
    room["name"] = json!("console");
    assert_eq!(flow["rooms"], json!([room]));
    // Gianluca's three first verdicts, 3 h, 1 h and 66 h after being asked: median 3 h. #9
    // waits on nobody (approved: whoever merges).
    assert_eq!(flow["reviewers"][0]["name"], "Gianluca Teti");
    assert_eq!(
        (
            &flow["reviewers"][0]["reviews"],
            &flow["reviewers"][0]["median_response_seconds"],
            &flow["reviewers"][0]["waiting"]
        ),
        (&json!(3), &json!(10800), &json!(0))
    );
    assert_eq!(flow["waiting"], json!([]));

    // Working days only (the [sweep] calendar: Monday to Friday, UTC): #11's weekend does not
    // count. First review and approval Fri 16:00-24:00 + Mon 00:00-10:00 = 18 h (64800), merge
    // 20 h (72000), with reviewers 64800. First review [3600, 10800, 64800]: median 10800, p90
    // 64800; approval [10800, 18000, 64800]: median 18000, p90 64800; merge [18000, 72000]:
    // median 45000, p90 72000; with reviewers [10800, 64800]: median 37800, p90 64800.
    let config = "[analytics]\nworking_hours_only = true\n";
    let (code, out, err) = report(&app, config, &since).await;
    assert_eq!(code, 0, "{err}");
    let flow: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(flow["working_hours_only"], true);
    let mut expected = overall.clone();
    expected["time_to_first_review"] = stat(3, 10800, 64800);
    expected["time_to_approval"] = stat(3, 18000, 64800);
    expected["time_to_merge"] = stat(2, 45000, 72000);
    expected["reviewers_turn"] = stat(2, 37800, 64800);
    assert_eq!(flow["overall"], expected, "{out}");

    // The table: medians and p90s read as people say them; one repository, by name in any case.
    let (code, out, err) = report(
        &app,
        "",
        &[
            "--since",
            "2026-11-01T00:00:00Z",
            "--repository",
            &BLE.to_uppercase(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let overall_line = out
        .lines()
        .find(|l| l.starts_with("overall"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = overall_line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "overall",
            "3",
            "2",
            "0",
            "0",
            "3h / 2d 18h (3)",
            "5h / 2d 18h (3)",
            "1d 12h / 2d 20h (2)",
            "0 / 0 (2)",
            "1d 10h / 2d 18h (2)",
            "0s / 0s (2)",
            "2h / 2h (2)",
        ],
        "{out}"
    );
    assert!(out.contains("\nGianluca Teti  "), "{out}");

    // The Data Center PR, in its own day of 2019: opened 09:31:15.860, needs work 09:34:53
    // (first review 217.14 s), approved 09:35:38 (262.14 s), merged 09:37:14.286 (358.426 s);
    // whole seconds, rounded down.
    let (code, out, err) = report(
        &app,
        "",
        &[
            "--since",
            "2019-03-01T00:00:00Z",
            "--until",
            "2019-03-02T00:00:00Z",
            "--repository",
            GOPHER,
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let flow: Value = serde_json::from_str(&out).unwrap();
    let dc = &flow["overall"];
    assert_eq!(
        (
            &dc["opened"],
            &dc["merged"],
            &dc["time_to_first_review"],
            &dc["time_to_approval"],
            &dc["time_to_merge"]
        ),
        (
            &json!(1),
            &json!(1),
            &stat(1, 217, 217),
            &stat(1, 262, 262),
            &stat(1, 358, 358)
        ),
        "{out}"
    );
    assert_eq!(flow["repositories"][0]["name"], GOPHER);

    // A bad --since: a usage error naming the flag.
    let (code, _, err) = report(&app, "", &["--since", "yesterday"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since") && err.contains("28d"), "{err}");
}

/// The sample `report` of README.md and docs/analytics.md: the command line and every line of
/// its output, over this file's histories (#7, #9, #11 and the Data Center PR). November's first
/// week as it stood at its end (#11 waiting on its reviewer since Friday 16:00), so the output is the same whenever the test runs. `cargo test --test api
/// the_documented_report_sample` reproduces it; on a difference the message holds the output.
async fn the_documented_report_sample_is_this_data(on: On) {
    let Some(app) = spawn_on(on, "flowsample", settings, Clock::system()).await else {
        return;
    };
    if cloud_history(&app).await.is_none() {
        return;
    }
    weekend_history(&app).await.unwrap();
    datacenter_history(&app).await.unwrap();
    let args = [
        "--since",
        "2026-11-01T00:00:00Z",
        "--until",
        "2026-11-07T00:00:00Z",
    ];
    let (code, out, err) = report(&app, "", &args).await;
    assert_eq!(code, 0, "{err}");
    let command = format!("$ pr-reminder report {}", args.join(" "));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["README.md", "docs/analytics.md"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let start = text
            .find(&format!("{command}\n"))
            .unwrap_or_else(|| panic!("{file} has no `{command}` line; the output is:\n{out}"));
        let shown = &text[start + command.len() + 1..];
        let shown = &shown[..shown.find("```").unwrap()];
        assert_eq!(shown, out, "{file}'s sample differs from the output");
    }
    // An empty window is a usage error.
    let (code, _, err) = report(
        &app,
        "",
        &[
            "--since",
            "2026-12-01T00:00:00Z",
            "--until",
            "2026-11-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since") && err.contains("empty"), "{err}");
}

on_both!(the_documented_report_sample_is_this_data);

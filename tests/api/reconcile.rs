//! Reconciliation over Bitbucket's REST API (issue 10), against fake Cloud and Data Center APIs:
//! exact requests, rows and announcements.

use pr_reminder::config::{
    Credentials, RepositorySelector, SecretToken, Settings, SignaturePolicy, Site,
};
use pr_reminder::domain::Flavour;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    on_both, spawn_app_with, spawn_on, App, On, PendingRow, Served, TestApp, PENDING_ROW_SELECT,
};
use crate::status::between;

pub(crate) const TOKEN: &str = "reconcile-token-0123456789abcdef-0123";
pub(crate) const API_TOKEN: &str = "bitbucket-api-token";

pub(crate) fn site(kind: Flavour, url: String, repositories: &[&str]) -> Site {
    Site {
        kind,
        url: url.parse().unwrap(),
        credentials: Credentials::Bearer(SecretToken(SecretString::from(API_TOKEN.to_owned()))),
        repositories: repositories
            .iter()
            .map(|r| RepositorySelector::parse(r).unwrap())
            .collect(),
        poll_interval: None,
        aliases: Vec::new(),
        webhook_url: None,
    }
}

async fn app_with(sites: Vec<Site>) -> TestApp {
    spawn_app_with(move |s: &mut Settings| {
        s.bitbucket = sites;
        s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
    })
    .await
}

/// The token of the status page of `app_on`'s apps.
const STATUS_TOKEN: &str = "status-token-0123456789abcdef";

/// The app on `on`'s database (a fresh one named after `label` on PostgreSQL) with `sites`, the
/// sweep token `TOKEN` and the status token `STATUS_TOKEN`; `None` on PostgreSQL without a test
/// server.
async fn app_on(on: On, label: &str, sites: Vec<Site>) -> Option<App> {
    spawn_on(
        on,
        label,
        move |s: &mut Settings| {
            s.bitbucket = sites;
            s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
            s.monitoring.status_token =
                Some(SecretToken(SecretString::from(STATUS_TOKEN.to_owned())));
        },
        pr_reminder::clock::Clock::system(),
    )
    .await
}

on_both!(
    cloud_later_passes_repair_a_missed_merge_approval_needs_work_and_build_failure,
    datacenter_a_pr_gone_from_the_list_that_answers_404_is_closed_as_deleted,
    the_cli_exits_0_when_every_repository_went_through_and_1_naming_the_failure,
    a_repository_answering_404_for_a_day_has_its_prs_closed_as_deleted,
    a_repository_gone_from_its_project_has_its_prs_closed_as_deleted,
);

/// `POST /reconcile`: (status, report).
pub(crate) async fn reconcile(app: &impl Served) -> (u16, Value) {
    let response = app.post_bearer("/reconcile", TOKEN).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub(crate) async fn requests(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| match r.url.query() {
            Some(q) => format!("{} {}?{q}", r.method, r.url.path()),
            None => format!("{} {}", r.method, r.url.path()),
        })
        .collect()
}

/// (number, state, source_commit) of every stored pull request, by number.
pub(crate) async fn rows(app: &impl Served) -> Vec<(i64, String, Option<String>)> {
    app.query_rows("SELECT number, state, source_commit FROM pull_requests ORDER BY number")
        .await
}

/// (number, events) of every pull-request message in the outbox, in order.
pub(crate) async fn announced(app: &impl Served) -> Vec<(i64, String)> {
    app.query_rows(
        "SELECT number, events FROM outbox WHERE kind = 'pull_request' ORDER BY number, id",
    )
    .await
}

// ---------- Bitbucket Cloud ----------

pub(crate) fn cloud_pr(id: i64, commit: &str, updated: &str, participants: Value) -> Value {
    json!({
        "id": id, "title": format!("PR {id}"), "state": "OPEN",
        "author": {"uuid": "{ann}", "display_name": "Ann"},
        "source": {"branch": {"name": format!("feature-{id}")}, "commit": {"hash": commit}},
        "destination": {"branch": {"name": "main"},
                        "repository": {"full_name": "acme/api", "uuid": "{acme-api}"}},
        "participants": participants,
        "created_on": "2026-11-01T10:00:00+00:00", "updated_on": updated,
        "links": {"html": {"href": format!("https://bitbucket.org/acme/api/pull-requests/{id}")}}
    })
}

pub(crate) fn reviewer(uuid: &str, state: Value) -> Value {
    json!({"user": {"uuid": uuid, "display_name": uuid}, "role": "REVIEWER",
           "approved": state == "approved", "state": state,
           "participated_on": "2026-11-02T10:00:00+00:00"})
}

pub(crate) async fn cloud_list(server: &MockServer, repo: &str, values: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(format!("/2.0/repositories/{repo}/pullrequests")))
        .and(query_param("state", "OPEN"))
        .and(query_param("pagelen", "50"))
        .and(query_param("fields", "+values.participants"))
        .and(header(
            "Authorization",
            format!("Bearer {API_TOKEN}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": values, "pagelen": 50})),
        )
        .mount(server)
        .await;
}

pub(crate) async fn cloud_statuses(
    server: &MockServer,
    repo: &str,
    hash: &str,
    values: Vec<Value>,
) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/2.0/repositories/{repo}/commit/{hash}/statuses"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": values})))
        .mount(server)
        .await;
}

/// The app with one Cloud site at the fake `server`, over `repositories`.
async fn cloud_app(server: &MockServer, repositories: &[&str]) -> TestApp {
    app_with(vec![site(
        Flavour::Cloud,
        format!("{}/2.0", server.uri()),
        repositories,
    )])
    .await
}

/// acme/api at the fake `server` lists one open PR, #1 on commit `aaaaaaaaaaaa`, without builds.
async fn one_open_pr(server: &MockServer) {
    cloud_list(
        server,
        "acme/api",
        vec![cloud_pr(
            1,
            "aaaaaaaaaaaa",
            "2026-11-02T10:00:00+00:00",
            json!([]),
        )],
    )
    .await;
    cloud_statuses(server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
}

/// The statuses of the 12-digit commit `short`: one failed CI build on its full hash.
async fn failed_build(server: &MockServer, repo: &str, short: &str) {
    let full = format!("{short}0000111122223333444455556666");
    cloud_statuses(server, repo, short, vec![cloud_status(&full, "FAILED")]).await;
}

fn cloud_status(hash: &str, state: &str) -> Value {
    json!({"key": "ci", "state": state, "name": "CI", "url": "https://ci.example/1",
           "updated_on": "2026-11-02T11:00:00+00:00", "commit": {"hash": hash}})
}

#[tokio::test]
async fn cloud_backfill_from_a_real_list_answer_announces_nothing() {
    let Some(dir) = crate::helpers::shared_fixtures() else {
        return;
    };
    let list: Value = serde_json::from_slice(
        &std::fs::read(dir.join(
            "cloud-api/jenkinsci-bitbucket-branch-source/2.0-repositories-amuniz-test-repos-pullrequests_pagelen_50.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let server = MockServer::start().await;
    let values = list["values"].as_array().unwrap().clone();
    cloud_list(&server, "amuniz/test-repos", values).await;
    for hash in [
        "e6cd2efc892e",
        "251fce291f08",
        "a7235e1ff894",
        "bf0e8b7962c0",
    ] {
        cloud_statuses(&server, "amuniz/test-repos", hash, vec![]).await;
    }
    cloud_statuses(
        &server,
        "amuniz/test-repos",
        "046d9a3c1532",
        vec![cloud_status(
            "046d9a3c1532aaaabbbbccccddddeeeeffff0000",
            "FAILED",
        )],
    )
    .await;
    let app = cloud_app(&server, &["amuniz/test-repos"]).await;

    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["ok"],
            &repo["first_pass"],
            &repo["open"],
            &repo["updated"],
            &repo["builds"],
            &repo["requests"]
        ),
        (
            &json!(true),
            &json!(true),
            &json!(5),
            &json!(5),
            &json!(1),
            &json!(7)
        )
    );
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "OPEN".into(), Some("bf0e8b7962c0".into())),
            (3, "OPEN".into(), Some("046d9a3c1532".into())),
            (8, "OPEN".into(), Some("251fce291f08".into())),
            (9, "OPEN".into(), Some("a7235e1ff894".into())),
            (11, "OPEN".into(), Some("e6cd2efc892e".into())),
        ]
    );
    let keys: Vec<String> = sqlx::query_scalar("SELECT DISTINCT repository_key FROM pull_requests")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, vec!["cloud/{3deb8c29-778a-450c-8f69-3e50a18079df}"]);
    let pending = app.pending().await;
    let pr3 = pending.iter().find(|p| p.number == 3).unwrap();
    assert_eq!(pr3.build_state.as_deref(), Some("FAILED"));
    assert!(
        announced(&app).await.is_empty(),
        "a backfill announces nothing"
    );
}

#[tokio::test]
async fn cloud_pages_then_an_unchanged_pass_costs_its_list_pages_only() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/2.0/repositories/acme/api/pullrequests?state=OPEN&pagelen=50&page=2",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [cloud_pr(2, "bbbbbbbbbbbb", "2026-11-02T10:00:00+00:00", json!([]))]
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .and(query_param("fields", "+values.participants"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [cloud_pr(1, "aaaaaaaaaaaa", "2026-11-02T10:00:00+00:00",
                                json!([reviewer("{bob}", json!("approved"))]))],
            "next": next
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    cloud_statuses(&server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
    cloud_statuses(&server, "acme/api", "bbbbbbbbbbbb", vec![]).await;
    let app = cloud_app(&server, &["acme/api"]).await;

    let (status, first) = reconcile(&app).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["repositories"][0]["open"], 2);
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "OPEN".into(), Some("aaaaaaaaaaaa".into())),
            (2, "OPEN".into(), Some("bbbbbbbbbbbb".into()))
        ]
    );
    assert_eq!(
        app.reviews("acme/api", 1).await,
        vec![("{bob}".into(), "REVIEWER".into(), "approved".into())]
    );
    server.reset().await;
    // The same answers again.
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [cloud_pr(2, "bbbbbbbbbbbb", "2026-11-02T10:00:00+00:00", json!([]))]
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [cloud_pr(1, "aaaaaaaaaaaa", "2026-11-02T10:00:00+00:00",
                                json!([reviewer("{bob}", json!("approved"))]))],
            "next": next
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    let (status, second) = reconcile(&app).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        requests(&server).await,
        vec![
            "GET /2.0/repositories/acme/api/pullrequests?state=OPEN&pagelen=50&fields=%2Bvalues.participants".to_owned(),
            "GET /2.0/repositories/acme/api/pullrequests?state=OPEN&pagelen=50&page=2".to_owned(),
        ],
        "an unchanged pass costs its list pages only"
    );
    let repo = &second["repositories"][0];
    assert_eq!(
        (
            &repo["first_pass"],
            &repo["updated"],
            &repo["builds"],
            &repo["requests"]
        ),
        (&json!(false), &json!(0), &json!(0), &json!(2))
    );
    assert_eq!(second["requests"], 2);
    assert!(announced(&app).await.is_empty());

    // The metrics: both passes' requests under the site's URL, two passes timed, a last success.
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let site = format!("{}/2.0", server.uri());
    let total = first["requests"].as_u64().unwrap() + 2;
    assert_eq!(
        sample(
            &text,
            &format!("pr_reminder_reconciliation_repository_failures_total{{site=\"{site}\"}}")
        ),
        "0"
    );
    assert_reconciliation_metrics(&text, &site, &total.to_string(), "2");
}

/// The value of the first sample of `series` (name and labels as exposed) in `text`.
pub(crate) fn sample(text: &str, series: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{series} ")))
        .unwrap_or_else(|| panic!("{series} in:\n{text}"));
    line[series.len() + 1..].to_owned()
}

/// The metrics of reconciliation at `site` in `text`: `requests` in all, `passes` passes timed,
/// a last success within a minute of now; and no API token anywhere.
fn assert_reconciliation_metrics(text: &str, site: &str, requests: &str, passes: &str) {
    assert_eq!(
        sample(
            text,
            &format!("pr_reminder_reconciliation_requests_total{{site=\"{site}\"}}")
        ),
        requests
    );
    assert_eq!(
        sample(
            text,
            "pr_reminder_reconciliation_pass_duration_seconds_count"
        ),
        passes
    );
    let last: f64 = sample(
        text,
        &format!("pr_reminder_reconciliation_last_success_timestamp_seconds{{site=\"{site}\"}}"),
    )
    .parse()
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} vs {now}");
    assert!(!text.contains(API_TOKEN), "{text}");
}

/// The first pass backfills without announcing (and remembers the commits it checked in
/// `reconciled_commits`); the second repairs a merge, an approval, a needs work and a build
/// failure that no delivery told, announcing them as webhooks would; the third, over the same
/// answers, asks for the list only. The metrics and the status page then show the site's passes.
async fn cloud_later_passes_repair_a_missed_merge_approval_needs_work_and_build_failure(on: On) {
    let server = MockServer::start().await;
    four_open(&server).await;
    let url = format!("{}/2.0", server.uri());
    let Some(app) = app_on(
        on,
        "reconcile",
        vec![site(Flavour::Cloud, url.clone(), &["acme/api"])],
    )
    .await
    else {
        return;
    };
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["ok"],
            &repo["first_pass"],
            &repo["open"],
            &repo["updated"],
            &repo["requests"]
        ),
        (&json!(true), &json!(true), &json!(4), &json!(4), &json!(6))
    );
    assert!(
        announced(&app).await.is_empty(),
        "a backfill announces nothing"
    );
    let checked: Vec<(String,)> = app
        .query_rows("SELECT commit_hash FROM reconciled_commits ORDER BY commit_hash")
        .await;
    assert_eq!(
        checked,
        [
            "aaaaaaaaaaaa",
            "bbbbbbbbbbbb",
            "cccccccccccc",
            "dddddddddddd"
        ]
        .map(|c| (c.to_owned(),))
    );

    // Meanwhile: #1 merged, #2 approved, #3 needs work, #4 got a commit whose build failed; no
    // delivery arrived.
    server.reset().await;
    repaired(&server).await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_repaired(&app, &report).await;
    let pending: Vec<(i64, Option<String>)> = app
        .query_rows::<PendingRow>(PENDING_ROW_SELECT)
        .await
        .into_iter()
        .map(|p| (p.number, p.build_state))
        .collect();
    assert_eq!(
        pending,
        [(2, None), (3, None), (4, Some("FAILED".to_owned()))]
    );

    // The same answers again: the list only.
    server.reset().await;
    repaired_list(&server).await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["updated"],
            &repo["closed"],
            &repo["builds"],
            &repo["requests"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(1))
    );
    assert_eq!(
        requests(&server).await,
        ["GET /2.0/repositories/acme/api/pullrequests?state=OPEN&pagelen=50&fields=%2Bvalues.participants"]
    );
    assert_eq!(announced(&app).await.len(), 3, "nothing new announced");

    // The metrics: three passes, 5 + 3 + 1 requests, a last success now (the gauge read
    // from reconciled_repositories).
    let (_, text) = app.get_text("/metrics", None).await;
    assert_reconciliation_metrics(&text, &url, "11", "3");

    // The status page: the site's last pass (one repository, one request), and the sweep of
    // the console room (#2 waits for review; #3 on its author, and #4 too: its build failed, so
    // it is its author's turn).
    let swept = app.post_bearer("/sweep", TOKEN).await;
    assert_eq!(swept.status(), 200);
    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    let sweeps = assert_one_site_pass(&html, &url);
    assert!(
        sweeps.contains("<td>http</td><td class=\"posted\">posted</td><td>1</td><td>2</td>")
            && sweeps.contains("<tr><td>console</td>"),
        "{sweeps}"
    );
}

/// The first state of the repair tests: acme/api lists #1-#4 open on commits aaaa.., bbbb..,
/// cccc.., dddd.. (Bob asked to review #2 and #3), none with a build.
async fn four_open(server: &MockServer) {
    cloud_list(
        server,
        "acme/api",
        vec![
            cloud_pr(1, "aaaaaaaaaaaa", "2026-11-02T10:00:00+00:00", json!([])),
            cloud_pr(
                2,
                "bbbbbbbbbbbb",
                "2026-11-02T10:00:00+00:00",
                json!([reviewer("{bob}", Value::Null)]),
            ),
            cloud_pr(
                3,
                "cccccccccccc",
                "2026-11-02T10:00:00+00:00",
                json!([reviewer("{bob}", Value::Null)]),
            ),
            cloud_pr(4, "dddddddddddd", "2026-11-02T10:00:00+00:00", json!([])),
        ],
    )
    .await;
    for hash in [
        "aaaaaaaaaaaa",
        "bbbbbbbbbbbb",
        "cccccccccccc",
        "dddddddddddd",
    ] {
        cloud_statuses(server, "acme/api", hash, vec![]).await;
    }
}

/// The list after `four_open` was repaired: #2 approved by Bob, #3 needs work, #4 on commit
/// eeee.. (#1 is gone from it).
async fn repaired_list(server: &MockServer) {
    cloud_list(
        server,
        "acme/api",
        vec![
            cloud_pr(
                2,
                "bbbbbbbbbbbb",
                "2026-11-03T10:00:00+00:00",
                json!([reviewer("{bob}", json!("approved"))]),
            ),
            cloud_pr(
                3,
                "cccccccccccc",
                "2026-11-03T10:00:00+00:00",
                json!([reviewer("{bob}", json!("changes_requested"))]),
            ),
            cloud_pr(4, "eeeeeeeeeeee", "2026-11-03T10:00:00+00:00", json!([])),
        ],
    )
    .await;
}

/// What Bitbucket answers after `four_open` changed: `repaired_list`, #1 merged, and a failed
/// build on eeee...
async fn repaired(server: &MockServer) {
    repaired_list(server).await;
    let mut merged = cloud_pr(1, "aaaaaaaaaaaa", "2026-11-03T09:00:00+00:00", json!([]));
    merged["state"] = json!("MERGED");
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(merged))
        .mount(server)
        .await;
    failed_build(server, "acme/api", "eeeeeeeeeeee").await;
}

/// The pass over `repaired` after one over `four_open`: its `report`, the rows and reviews it
/// left, and what it announced (as webhooks would; merges are not announced by default).
async fn assert_repaired(app: &impl Served, report: &Value) {
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["first_pass"],
            &repo["updated"],
            &repo["closed"],
            &repo["builds"],
            &repo["requests"]
        ),
        // The list, the merged PR, one new build, and the default reviewers of the changed PRs.
        (&json!(false), &json!(3), &json!(1), &json!(1), &json!(4))
    );
    assert_eq!(
        rows(app).await,
        vec![
            (1, "MERGED".into(), Some("aaaaaaaaaaaa".into())),
            (2, "OPEN".into(), Some("bbbbbbbbbbbb".into())),
            (3, "OPEN".into(), Some("cccccccccccc".into())),
            (4, "OPEN".into(), Some("eeeeeeeeeeee".into())),
        ]
    );
    assert_eq!(
        app.review_rows("acme/api", 2).await,
        vec![("{bob}".into(), "REVIEWER".into(), "approved".into())]
    );
    assert_eq!(
        app.review_rows("acme/api", 3).await,
        vec![(
            "{bob}".into(),
            "REVIEWER".into(),
            "changes_requested".into()
        )]
    );
    assert_eq!(
        announced(app).await,
        vec![
            (2, "approvals".into()),
            (3, "changes_requested".into()),
            (4, "build_failed".into()),
        ]
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_a_401_leaves_state_untouched_while_others_go_on() {
    let server = MockServer::start().await;
    let pr = cloud_pr(1, "aaaaaaaaaaaa", "2026-11-02T10:00:00+00:00", json!([]));
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    cloud_list(&server, "acme/api", vec![pr.clone()]).await;
    cloud_statuses(&server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
    let app = cloud_app(&server, &["acme/api", "acme/web"]).await;
    // acme/web: refused.
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web/pullrequests"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"type": "error", "error": {"message": "Access token expired."}}),
            ),
        )
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let (status, report) = reconcile(&app).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(status, 502, "{report}");
    assert_eq!(report["ok"], false);
    let api = &report["repositories"][0];
    assert_eq!(
        (&api["repository"], &api["ok"], &api["requests"]),
        (&json!("acme/api"), &json!(true), &json!(4))
    );
    let web = &report["repositories"][1];
    assert_eq!(
        (&web["repository"], &web["ok"], &web["http_status"]),
        (&json!("acme/web"), &json!(false), &json!(401))
    );
    let error = web["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 401")
            && error.contains("token")
            && error.contains("Access token expired."),
        "{error}"
    );
    assert!(!error.contains(API_TOKEN));
    assert_eq!(
        rows(&app).await,
        vec![(1, "OPEN".into(), Some("aaaaaaaaaaaa".into()))]
    );

    // Now acme/api is refused too: what is stored stays as it was.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let before: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT number, state, updated_on FROM pull_requests")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 502);
    assert_eq!(report["repositories"][0]["http_status"], 401);
    let after: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT number, state, updated_on FROM pull_requests")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(before, after);
    assert_eq!(requests(&server).await.len(), 2, "a 401 is not retried");
}

#[tokio::test]
async fn a_webhook_newer_than_the_rest_snapshot_wins() {
    let server = MockServer::start().await;
    cloud_list(
        &server,
        "acme/api",
        vec![cloud_pr(
            1,
            "aaaaaaaaaaaa",
            "2026-11-02T10:00:00+00:00",
            json!([reviewer("{bob}", Value::Null)]),
        )],
    )
    .await;
    cloud_statuses(&server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
    let app = cloud_app(&server, &["acme/api"]).await;
    assert_eq!(reconcile(&app).await.0, 200);
    // The approval arrives by webhook, newer than what the API still answers.
    let mut approved = cloud_pr(
        1,
        "aaaaaaaaaaaa",
        "2026-11-02T12:00:00+00:00",
        json!([reviewer("{bob}", json!("approved"))]),
    );
    approved["reviewers"] = json!([]);
    let body = json!({"pullrequest": approved,
                      "repository": {"full_name": "acme/api", "uuid": "{acme-api}"}});
    let answer = app
        .deliver_json(
            "pullrequest:approved",
            &crate::helpers::uuid_like("d"),
            &body,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(reconcile(&app).await.0, 200);
    assert_eq!(
        app.reviews("acme/api", 1).await,
        vec![("{bob}".into(), "REVIEWER".into(), "approved".into())]
    );
    let row = app.pull_request("acme/api", 1).await.unwrap();
    assert_eq!(row.updated_on, "2026-11-02T12:00:00.000000Z");
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pull_requests")
            .fetch_one(&app.db)
            .await
            .unwrap(),
        1,
        "seen by webhook and by REST, one PR"
    );
}

// ---------- Bitbucket Data Center ----------

pub(crate) fn dc_pr(
    server: &MockServer,
    id: i64,
    commit: &str,
    updated: i64,
    status: &str,
) -> Value {
    json!({
        "id": id, "title": format!("DC {id}"), "state": "OPEN", "draft": false,
        "createdDate": 1_700_000_000_000i64, "updatedDate": updated,
        "fromRef": {"displayId": "feature", "latestCommit": commit,
                    "repository": {"id": 42, "slug": "api", "project": {"key": "PRJ"}}},
        "toRef": {"displayId": "main",
                  "repository": {"id": 42, "slug": "api", "project": {"key": "PRJ"},
                                 "links": {"self": [{"href": format!("{}/projects/PRJ/repos/api/browse", server.uri())}]}}},
        "author": {"user": {"id": 1, "name": "ann", "slug": "ann", "displayName": "Ann"},
                   "role": "AUTHOR", "status": "UNAPPROVED"},
        "reviewers": [{"user": {"id": 7, "name": "bob", "slug": "bob", "displayName": "Bob"},
                       "role": "REVIEWER", "status": status}],
        "participants": [],
        "links": {"self": [{"href": format!("{}/projects/PRJ/repos/api/pull-requests/{id}", server.uri())}]}
    })
}

pub(crate) async fn dc_pages(server: &MockServer, pages: Vec<Vec<Value>>) {
    let n = pages.len();
    for (i, values) in pages.into_iter().enumerate() {
        let last = i + 1 == n;
        let mut page =
            json!({"values": values, "isLastPage": last, "start": i, "limit": 1, "size": 1});
        if !last {
            page["nextPageStart"] = json!(i + 1);
        }
        Mock::given(method("GET"))
            .and(path("/rest/api/1.0/projects/PRJ/repos/api/pull-requests"))
            .and(query_param("state", "OPEN"))
            .and(query_param("start", i.to_string().as_str()))
            .and(query_param("limit", "1000"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn datacenter_backfill_follows_a_capped_limit_and_reads_builds_from_the_older_endpoint() {
    let server = MockServer::start().await;
    // The server caps `limit` at 1: one PR a page.
    dc_pages(
        &server,
        vec![
            vec![dc_pr(
                &server,
                1,
                "AAAA1111",
                1_700_000_100_000,
                "NEEDS_WORK",
            )],
            vec![dc_pr(&server, 2, "bbbb2222", 1_700_000_100_000, "APPROVED")],
        ],
    )
    .await;
    // An older server: no /builds endpoint.
    Mock::given(method("GET"))
        .and(path(
            "/rest/api/latest/projects/PRJ/repos/api/commits/aaaa1111/builds",
        ))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/build-status/1.0/commits/aaaa1111"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"key": "ci", "state": "FAILED", "name": "CI", "url": "https://ci/1",
                        "dateAdded": 1_700_000_200_000i64}],
            "isLastPage": true})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/build-status/1.0/commits/bbbb2222"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true})),
        )
        .mount(&server)
        .await;
    let app = app_with(vec![site(Flavour::DataCenter, server.uri(), &["PRJ/api"])]).await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let repo = &report["repositories"][0];
    // 2 pages; both commits' builds asked at once, each at /builds (404) then at the older
    // endpoint, which later passes use alone.
    assert_eq!(
        (
            &repo["open"],
            &repo["builds"],
            &repo["requests"],
            &repo["first_pass"]
        ),
        (&json!(2), &json!(1), &json!(6), &json!(true))
    );
    let host = server.uri().trim_start_matches("http://").to_owned();
    let keys: Vec<String> = sqlx::query_scalar("SELECT DISTINCT repository_key FROM pull_requests")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("datacenter/{host}/42")]);
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "OPEN".into(), Some("aaaa1111".into())),
            (2, "OPEN".into(), Some("bbbb2222".into()))
        ]
    );
    assert_eq!(
        app.reviews("PRJ/api", 1).await,
        vec![(
            format!("datacenter/{host}/user/7"),
            "REVIEWER".into(),
            "changes_requested".into()
        )]
    );
    assert_eq!(
        app.reviews("PRJ/api", 2).await,
        vec![(
            format!("datacenter/{host}/user/7"),
            "REVIEWER".into(),
            "approved".into()
        )]
    );
    let pending = app.pending().await;
    assert_eq!(
        pending
            .iter()
            .find(|p| p.number == 1)
            .unwrap()
            .build_state
            .as_deref(),
        Some("FAILED")
    );
    assert!(announced(&app).await.is_empty());

    // A webhook about the same PR (its links name the same server) is the same PR.
    let body = json!({"eventKey": "pr:reviewer:approved", "date": "2099-01-01T00:00:00+0000",
                      "participant": {"user": {"id": 7, "name": "bob", "slug": "bob", "displayName": "Bob"},
                                      "role": "REVIEWER", "status": "APPROVED"},
                      "pullRequest": dc_pr(&server, 1, "aaaa1111", 1_700_000_100_000, "APPROVED")});
    let answer = app
        .post(
            &[
                ("X-Event-Key", "pr:reviewer:approved"),
                ("X-Request-Id", &crate::helpers::uuid_like("dc")),
                (
                    "X-Hub-Signature",
                    &pr_reminder::signature::sign(
                        crate::helpers::SECRET,
                        body.to_string().as_bytes(),
                    ),
                ),
            ],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(rows(&app).await.len(), 2);

    // Next pass: the approval given by webhook at a later time stays (the API's answer is older);
    // #2 was declined meanwhile; a missed needs work on... nothing else changed.
    server.reset().await;
    dc_pages(
        &server,
        vec![vec![dc_pr(
            &server,
            1,
            "aaaa1111",
            1_700_000_100_000,
            "NEEDS_WORK",
        )]],
    )
    .await;
    let mut declined = dc_pr(&server, 2, "bbbb2222", 1_700_000_300_000, "APPROVED");
    declined["state"] = json!("DECLINED");
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/PRJ/repos/api/pull-requests/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(declined))
        .mount(&server)
        .await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["repositories"][0]["requests"], 2,
        "list + the closed PR; builds known"
    );
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "OPEN".into(), Some("aaaa1111".into())),
            (2, "DECLINED".into(), Some("bbbb2222".into()))
        ]
    );
    assert_eq!(
        app.reviews("PRJ/api", 1).await,
        vec![(
            format!("datacenter/{host}/user/7"),
            "REVIEWER".into(),
            "approved".into()
        )],
        "the newer webhook wins over the REST answer"
    );
    // Declines are not announced by default; the webhook's approval was.
    assert_eq!(announced(&app).await, vec![(1, "approvals".into())]);
}

#[tokio::test]
async fn datacenter_missed_needs_work_and_a_build_failure_seen_only_by_rest() {
    let server = MockServer::start().await;
    dc_pages(
        &server,
        vec![vec![dc_pr(
            &server,
            1,
            "aaaa1111",
            1_700_000_100_000,
            "UNAPPROVED",
        )]],
    )
    .await;
    Mock::given(method("GET"))
        .and(path(
            "/rest/api/latest/projects/PRJ/repos/api/commits/aaaa1111/builds",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"key": "ci", "state": "INPROGRESS", "name": "CI", "url": "https://ci/1",
                        "createdDate": 1_700_000_200_000i64, "updatedDate": 1_700_000_200_000i64}],
            "isLastPage": true})))
        .mount(&server)
        .await;
    let app = app_with(vec![site(Flavour::DataCenter, server.uri(), &["PRJ/api"])]).await;
    assert_eq!(reconcile(&app).await.0, 200);

    server.reset().await;
    dc_pages(
        &server,
        vec![vec![dc_pr(
            &server,
            1,
            "aaaa1111",
            1_700_000_100_000,
            "NEEDS_WORK",
        )]],
    )
    .await;
    // The build was still running: asked again, and it failed.
    Mock::given(method("GET"))
        .and(path(
            "/rest/api/latest/projects/PRJ/repos/api/commits/aaaa1111/builds",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"key": "ci", "state": "FAILED", "name": "CI", "url": "https://ci/1",
                        "createdDate": 1_700_000_200_000i64, "updatedDate": 1_700_000_400_000i64}],
            "isLastPage": true})))
        .mount(&server)
        .await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let host = server.uri().trim_start_matches("http://").to_owned();
    assert_eq!(
        app.reviews("PRJ/api", 1).await,
        vec![(
            format!("datacenter/{host}/user/7"),
            "REVIEWER".into(),
            "changes_requested".into()
        )]
    );
    assert_eq!(
        app.pending().await[0].build_state.as_deref(),
        Some("FAILED")
    );
    assert_eq!(
        announced(&app).await,
        vec![(1, "changes_requested,build_failed".into())]
    );
}

// ---------- poll-only ----------

#[tokio::test]
async fn poll_only_starts_polls_and_refuses_deliveries() {
    let server = MockServer::start().await;
    one_open_pr(&server).await;
    let mut polled = site(
        Flavour::Cloud,
        format!("{}/2.0", server.uri()),
        &["acme/api"],
    );
    polled.poll_interval = Some(std::time::Duration::from_secs(3600));
    let app = spawn_app_with(move |s: &mut Settings| {
        s.signature = SignaturePolicy::PollOnly;
        s.bitbucket = vec![polled];
    })
    .await;
    for _ in 0..100 {
        if !rows(&app).await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        rows(&app).await,
        vec![(1, "OPEN".into(), Some("aaaaaaaaaaaa".into()))]
    );
    let answer = app
        .deliver_json("pullrequest:created", "poll-only-1", &json!({}))
        .await;
    assert_eq!(answer.status, 401);
    let reason = answer.body["reason"].as_str().unwrap();
    assert!(reason.contains("webhooks are not configured"), "{reason}");
}

#[tokio::test]
async fn the_endpoint_is_guarded_like_sweep() {
    let server = MockServer::start().await;
    let app = cloud_app(&server, &["acme/api"]).await;
    let response = app
        .client
        .post(format!("{}/reconcile", app.address))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = app
        .client
        .post(format!("{}/reconcile?repository=other/repo", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(requests(&server).await.is_empty());
}

// ---------- failures, listings, credentials ----------

#[tokio::test]
async fn a_5xx_is_retried_then_reported_and_the_pass_changes_nothing() {
    use pr_reminder::bitbucket::rest::RetryPolicy;

    let server = MockServer::start().await;
    one_open_pr(&server).await;
    let app = cloud_app(&server, &["acme/api"]).await;
    assert_eq!(reconcile(&app).await.0, 200);

    // #1 left the open list and #2 came; Bitbucket fails on #1 itself, every time.
    server.reset().await;
    cloud_list(
        &server,
        "acme/api",
        vec![cloud_pr(
            2,
            "bbbbbbbbbbbb",
            "2026-11-03T10:00:00+00:00",
            json!([reviewer("{bob}", json!("approved"))]),
        )],
    )
    .await;
    failed_build(&server, "acme/api", "bbbbbbbbbbbb").await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests/1"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"type": "error", "error": {"message": "Try again later"}})),
        )
        .mount(&server)
        .await;
    let tries = 1 + RetryPolicy::default().retries;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 502, "{report}");
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["ok"],
            &repo["http_status"],
            &repo["error"],
            &repo["requests"]
        ),
        (
            &json!(false),
            &json!(503),
            &json!("HTTP 503 from GET /2.0/repositories/acme/api/pullrequests/1: Try again later"),
            &json!(2 + tries)
        )
    );
    let asked = requests(&server).await;
    assert_eq!(
        asked
            .iter()
            .filter(|r| *r == "GET /2.0/repositories/acme/api/pullrequests/1")
            .count(),
        tries,
        "a 5xx is tried {tries} times: {asked:?}"
    );
    // Nothing of the failed pass was stored: not #2, its review or its build, nor #1's closing.
    assert_eq!(
        rows(&app).await,
        vec![(1, "OPEN".into(), Some("aaaaaaaaaaaa".into()))]
    );
    let builds: i64 = sqlx::query_scalar("SELECT count(*) FROM commit_statuses")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(builds, 0);
    assert!(announced(&app).await.is_empty());

    // Bitbucket answers again: the next pass does all of it, builds included (not marked fetched).
    server.reset().await;
    cloud_list(
        &server,
        "acme/api",
        vec![cloud_pr(
            2,
            "bbbbbbbbbbbb",
            "2026-11-03T10:00:00+00:00",
            json!([reviewer("{bob}", json!("approved"))]),
        )],
    )
    .await;
    failed_build(&server, "acme/api", "bbbbbbbbbbbb").await;
    let mut merged = cloud_pr(1, "aaaaaaaaaaaa", "2026-11-03T09:00:00+00:00", json!([]));
    merged["state"] = json!("MERGED");
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(merged))
        .mount(&server)
        .await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["requests"], 4);
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "MERGED".into(), Some("aaaaaaaaaaaa".into())),
            (2, "OPEN".into(), Some("bbbbbbbbbbbb".into()))
        ]
    );
    assert_eq!(
        announced(&app).await,
        vec![(2, "opened,build_failed".into())]
    );
}

#[tokio::test]
async fn cloud_workspace_glob_lists_every_page_of_repositories() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme"))
        .and(query_param("page", "2"))
        .and(header(
            "Authorization",
            format!("Bearer {API_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"full_name": "acme/web", "uuid": "{acme-web}"}], "page": 2
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme"))
        .and(query_param("pagelen", "100"))
        .and(header(
            "Authorization",
            format!("Bearer {API_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"full_name": "acme/api", "uuid": "{acme-api}"}], "page": 1,
            "next": format!("{}/2.0/repositories/acme?pagelen=100&page=2", server.uri())
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    one_open_pr(&server).await;
    cloud_list(&server, "acme/web", vec![]).await;
    let app = cloud_app(&server, &["acme/*"]).await;

    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let mut asked = requests(&server).await;
    asked.sort();
    assert_eq!(
        asked,
        vec![
            "GET /2.0/repositories/acme/api/commit/aaaaaaaaaaaa/statuses".to_owned(),
            "GET /2.0/repositories/acme/api/effective-default-reviewers?pagelen=100".to_owned(),
            "GET /2.0/repositories/acme/api/pullrequests?state=OPEN&pagelen=50&fields=%2Bvalues.participants".to_owned(),
            "GET /2.0/repositories/acme/web/pullrequests?state=OPEN&pagelen=50&fields=%2Bvalues.participants".to_owned(),
            "GET /2.0/repositories/acme?pagelen=100".to_owned(),
            "GET /2.0/repositories/acme?pagelen=100&page=2".to_owned(),
        ]
    );
    let seen: Vec<(&Value, &Value, &Value, &Value)> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (&r["repository"], &r["ok"], &r["open"], &r["requests"]))
        .collect();
    assert_eq!(
        seen,
        vec![
            (&json!("acme/api"), &json!(true), &json!(1), &json!(3)),
            (&json!("acme/web"), &json!(true), &json!(0), &json!(1)),
        ]
    );
    assert_eq!(
        report["requests"], 6,
        "the listing's requests count in the pass's total"
    );
    assert_eq!(
        rows(&app).await,
        vec![(1, "OPEN".into(), Some("aaaaaaaaaaaa".into()))]
    );
}

#[tokio::test]
async fn datacenter_project_glob_lists_every_page_and_reports_a_project_it_cannot_list() {
    let server = MockServer::start().await;
    for (start, values, last) in [
        (
            0,
            json!([{"slug": "api", "project": {"key": "PRJ"}}]),
            false,
        ),
        (1, json!([{"slug": "web", "project": {"key": "PRJ"}}]), true),
    ] {
        let mut page = json!({"values": values, "isLastPage": last, "start": start, "limit": 1});
        if !last {
            page["nextPageStart"] = json!(start + 1);
        }
        Mock::given(method("GET"))
            .and(path("/rest/api/1.0/projects/PRJ/repos"))
            .and(query_param("start", start.to_string().as_str()))
            .and(query_param("limit", "1000"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/GONE/repos"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "errors": [{"message": "Project GONE does not exist."}]
        })))
        .mount(&server)
        .await;
    for slug in ["api", "web"] {
        Mock::given(method("GET"))
            .and(path(format!(
                "/rest/api/1.0/projects/PRJ/repos/{slug}/pull-requests"
            )))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"values": [], "isLastPage": true, "start": 0})),
            )
            .mount(&server)
            .await;
    }
    let app = app_with(vec![site(
        Flavour::DataCenter,
        server.uri(),
        &["PRJ/*", "GONE/*"],
    )])
    .await;

    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 502, "{report}");
    let mut asked = requests(&server).await;
    asked.sort();
    assert_eq!(
        asked,
        vec![
            "GET /rest/api/1.0/projects/GONE/repos?start=0&limit=1000".to_owned(),
            "GET /rest/api/1.0/projects/PRJ/repos/api/pull-requests?state=OPEN&start=0&limit=1000"
                .to_owned(),
            "GET /rest/api/1.0/projects/PRJ/repos/web/pull-requests?state=OPEN&start=0&limit=1000"
                .to_owned(),
            "GET /rest/api/1.0/projects/PRJ/repos?start=0&limit=1000".to_owned(),
            "GET /rest/api/1.0/projects/PRJ/repos?start=1&limit=1000".to_owned(),
        ]
    );
    let site_name = server.uri();
    assert_eq!(
        report["repositories"][0],
        json!({"site": site_name, "repository": "GONE/*", "ok": false, "first_pass": false,
               "open": 0, "updated": 0, "closed": 0, "builds": 0, "requests": 1,
               "http_status": 404,
               "error": "HTTP 404 from GET /rest/api/1.0/projects/GONE/repos (no such repository, \
                         or the token cannot see it): Project GONE does not exist."})
    );
    let others: Vec<(&Value, &Value, &Value)> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|r| (&r["repository"], &r["ok"], &r["requests"]))
        .collect();
    assert_eq!(
        others,
        vec![
            (&json!("PRJ/api"), &json!(true), &json!(1)),
            (&json!("PRJ/web"), &json!(true), &json!(1)),
        ]
    );
    assert_eq!(report["requests"], 5);
}

#[tokio::test]
async fn a_username_sends_http_basic_with_the_token() {
    let server = MockServer::start().await;
    cloud_statuses(&server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [cloud_pr(1, "aaaaaaaaaaaa", "2026-11-02T10:00:00+00:00", json!([]))]
        })))
        .mount(&server)
        .await;
    let mut basic = site(
        Flavour::Cloud,
        format!("{}/2.0", server.uri()),
        &["acme/api"],
    );
    basic.credentials = Credentials::Basic {
        username: "me@example.com".into(),
        token: SecretToken(SecretString::from(API_TOKEN.to_owned())),
    };
    let app = app_with(vec![basic]).await;

    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let sent: Vec<(String, Option<String>)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.url.path().to_owned(),
                r.headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        })
        .collect();
    // base64("me@example.com:bitbucket-api-token")
    let expected = Some("Basic bWVAZXhhbXBsZS5jb206Yml0YnVja2V0LWFwaS10b2tlbg==".to_owned());
    assert_eq!(
        sent,
        vec![
            (
                "/2.0/repositories/acme/api/pullrequests".to_owned(),
                expected.clone()
            ),
            (
                "/2.0/repositories/acme/api/commit/aaaaaaaaaaaa/statuses".to_owned(),
                expected.clone()
            ),
            // #1 has no requested reviewer: its default reviewers are read (issue 23).
            (
                "/2.0/repositories/acme/api/effective-default-reviewers".to_owned(),
                expected
            ),
        ]
    );
}

/// Data Center keys, a needs-work verdict read by REST, and a PR the server no longer lists
/// that answers 404: closed as DELETED, out of pending_reviews.
async fn datacenter_a_pr_gone_from_the_list_that_answers_404_is_closed_as_deleted(on: On) {
    let server = MockServer::start().await;
    dc_pages(
        &server,
        vec![vec![
            dc_pr(&server, 1, "aaaa1111", 1_700_000_100_000, "NEEDS_WORK"),
            dc_pr(&server, 2, "bbbb2222", 1_700_000_100_000, "UNAPPROVED"),
        ]],
    )
    .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"^/rest/api/latest/projects/PRJ/repos/api/commits/[0-9a-f]+/builds$",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true})),
        )
        .mount(&server)
        .await;
    let Some(app) = app_on(
        on,
        "dcreconcile",
        vec![site(Flavour::DataCenter, server.uri(), &["PRJ/api"])],
    )
    .await
    else {
        return;
    };
    assert_eq!(reconcile(&app).await.0, 200);
    let host = server.uri().trim_start_matches("http://").to_owned();
    let keys: Vec<(String,)> = app
        .query_rows("SELECT DISTINCT repository_key FROM pull_requests")
        .await;
    assert_eq!(keys, vec![(format!("datacenter/{host}/42"),)]);
    assert_eq!(
        app.review_rows("PRJ/api", 1).await,
        vec![(
            format!("datacenter/{host}/user/7"),
            "REVIEWER".into(),
            "changes_requested".into()
        )]
    );

    server.reset().await;
    dc_pages(
        &server,
        vec![vec![dc_pr(
            &server,
            1,
            "aaaa1111",
            1_700_000_100_000,
            "NEEDS_WORK",
        )]],
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/PRJ/repos/api/pull-requests/2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "errors": [{"message": "Pull request 2 does not exist in PRJ/api."}]
        })))
        .mount(&server)
        .await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["ok"],
            &repo["open"],
            &repo["updated"],
            &repo["closed"],
            &repo["requests"]
        ),
        (&json!(true), &json!(1), &json!(0), &json!(1), &json!(2))
    );
    assert_eq!(
        requests(&server).await,
        vec![
            "GET /rest/api/1.0/projects/PRJ/repos/api/pull-requests?state=OPEN&start=0&limit=1000"
                .to_owned(),
            "GET /rest/api/1.0/projects/PRJ/repos/api/pull-requests/2".to_owned(),
        ]
    );
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "OPEN".into(), Some("aaaa1111".into())),
            (2, "DELETED".into(), Some("bbbb2222".into()))
        ]
    );
    let pending: Vec<(String, i64, i64)> = app
        .query_rows::<PendingRow>(PENDING_ROW_SELECT)
        .await
        .into_iter()
        .map(|p| (p.repository, p.number, p.changes_requested))
        .collect();
    assert_eq!(
        pending,
        [("PRJ/api".to_owned(), 1, 1)],
        "a deleted PR no longer waits for review"
    );
}

/// The status page's sites table in `html` shows `url`'s last pass, of one repository and one
/// request; the sweeps table, which is returned.
fn assert_one_site_pass<'a>(html: &'a str, url: &str) -> &'a str {
    let sites = between(html, "<table id=\"sites\">", "</table>");
    assert!(sites.contains(&format!("<td>{url}</td>")), "{sites}");
    assert!(
        sites.ends_with("<td>1</td><td>1</td></tr></tbody>"),
        "one repository, one request: {sites}"
    );
    between(html, "<table id=\"sweeps\">", "</table>")
}

// ---------- pr-reminder reconcile (the binary) ----------

/// `pr-reminder reconcile ARGS` with the single-site variables for `url` (Cloud) on `database`
/// (a SQLite file or a PostgreSQL connection string), run in an empty folder with nothing else
/// of the caller's environment: (exit code, stdout, stderr).
async fn cli_reconcile(database: &str, url: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::helpers::clean_command(env!("CARGO_BIN_EXE_pr-reminder"));
    cmd.current_dir(dir.path())
        .env("PR_REMINDER_DATABASE", database);
    reconcile_command(&mut cmd, url, args);
    crate::helpers::output(cmd).await
}

/// Makes `cmd` `reconcile ARGS` with the single-site variables for `url` (Cloud, acme/api and
/// acme/web, `API_TOKEN`).
fn reconcile_command(cmd: &mut std::process::Command, url: &str, args: &[&str]) {
    cmd.env("PR_REMINDER_BITBUCKET_KIND", "cloud")
        .env("PR_REMINDER_BITBUCKET_URL", url)
        .env("PR_REMINDER_BITBUCKET_TOKEN", API_TOKEN)
        .env("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/api, acme/web")
        .arg("reconcile")
        .args(args);
}

/// `pr-reminder reconcile` on the database of a running service (which has no site of its
/// own): one repository goes through (exit 0, its line and the summary); both, as JSON and as
/// text, name the one Bitbucket refuses (exit 1, on stderr too). The rows are the service's to
/// read.
async fn the_cli_exits_0_when_every_repository_went_through_and_1_naming_the_failure(on: On) {
    let server = MockServer::start().await;
    api_and_a_refusing_web(&server).await;
    let Some(app) = app_on(on, "clireconcile", Vec::new()).await else {
        return;
    };
    let database = app.database();
    let url = format!("{}/2.0", server.uri());
    let failure = CLI_FAILURE;

    // One repository, which goes through: exit 0.
    let (code, stdout, stderr) =
        cli_reconcile(&database, &url, &["--repository", "acme/api"]).await;
    assert_api_went_through(code, &stdout, &stderr, &url);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[1].ends_with(" ms"), "{stdout}");

    // Both, as JSON: acme/web is refused, exit 1, named on standard error.
    let (code, stdout, stderr) = cli_reconcile(&database, &url, &["--json"]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let mut report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["elapsed_ms"].is_u64(), "{report}");
    report["elapsed_ms"] = json!(0);
    assert_eq!(
        report,
        json!({
            "ok": false, "requests": 2, "elapsed_ms": 0,
            "repositories": [
                {"site": url, "repository": "acme/api", "ok": true, "first_pass": false,
                 "open": 1, "updated": 0, "closed": 0, "builds": 0, "requests": 1},
                {"site": url, "repository": "acme/web", "ok": false, "first_pass": false,
                 "open": 0, "updated": 0, "closed": 0, "builds": 0, "requests": 1,
                 "http_status": 403, "error": failure}
            ]
        })
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == format!("pr-reminder: {url} acme/web: {failure}")),
        "{stderr}"
    );

    // As text: the failed line names site, repository and status.
    let (code, stdout, stderr) = cli_reconcile(&database, &url, &[]).await;
    assert_web_failed(code, &stdout, &stderr, &url);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[2].starts_with("2 repositories, 1 failed, 2 requests, "),
        "{stdout}"
    );

    // What the CLI stored, as the service reads it.
    let stored: Vec<(String, i64, String, Option<String>)> = app
        .query_rows::<PendingRow>(PENDING_ROW_SELECT)
        .await
        .into_iter()
        .map(|p| (p.repository, p.number, p.title, p.build_state))
        .collect();
    assert_eq!(
        stored,
        [(
            "acme/api".to_owned(),
            1,
            "PR 1".to_owned(),
            Some("SUCCESSFUL".to_owned())
        )]
    );
    let passes: Vec<(String, String, i64)> = app
        .query_rows("SELECT site, full_name, last_requests FROM reconciled_repositories")
        .await;
    assert_eq!(passes, [(url.clone(), "acme/api".to_owned(), 1)]);
}

/// Why `api_and_a_refusing_web`'s acme/web fails, as reported.
const CLI_FAILURE: &str = "HTTP 403 from GET /2.0/repositories/acme/web/pullrequests \
    (the token lacks read access to pull requests and repositories): Your credentials lack one \
    or more required privilege scopes.";

/// The fake Cloud API of the CLI tests: acme/api lists #1 on commit aaaa.., whose build
/// succeeded; acme/web refuses the token (403).
async fn api_and_a_refusing_web(server: &MockServer) {
    cloud_list(
        server,
        "acme/api",
        vec![cloud_pr(
            1,
            "aaaaaaaaaaaa",
            "2026-11-02T10:00:00+00:00",
            json!([]),
        )],
    )
    .await;
    cloud_statuses(
        server,
        "acme/api",
        "aaaaaaaaaaaa",
        vec![cloud_status(
            "aaaaaaaaaaaa0000111122223333444455556666",
            "SUCCESSFUL",
        )],
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/web/pullrequests"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "type": "error",
            "error": {"message": "Your credentials lack one or more required privilege scopes."}
        })))
        .mount(server)
        .await;
}

/// `reconcile --repository acme/api`'s first run against `api_and_a_refusing_web` at `url`:
/// exit 0, the repository's line and the summary, nothing on stderr.
fn assert_api_went_through(code: i32, stdout: &str, stderr: &str, url: &str) {
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            "ok      {url} acme/api: 1 open, 1 updated, 0 closed, 1 builds, 3 requests \
             (first pass: nothing announced)"
        )
    );
    assert!(
        lines[1].starts_with("1 repositories, 0 failed, 3 requests, "),
        "{stdout}"
    );
    assert!(!stderr.contains("pr-reminder:"), "{stderr}");
}

/// `reconcile` (both repositories, as text) after `assert_api_went_through`: exit 1, acme/api
/// unchanged, acme/web's failure on stdout and stderr, no token anywhere.
fn assert_web_failed(code: i32, stdout: &str, stderr: &str, url: &str) {
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("ok      {url} acme/api: 1 open, 0 updated, 0 closed, 0 builds, 1 requests"),
            format!("FAILED  {url} acme/web: {CLI_FAILURE}"),
        ]
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == format!("pr-reminder: {url} acme/web: {CLI_FAILURE}")),
        "{stderr}"
    );
    for text in [stdout, stderr] {
        assert!(!text.contains(API_TOKEN), "the token leaked: {text}");
    }
}

/// The status page's health part after a pass and a sweep: the site's last successful pass with
/// its repositories and requests, and the room's last sweep with its trigger and outcome.
#[tokio::test]
async fn the_status_page_shows_the_last_pass_and_the_last_sweep() {
    let server = MockServer::start().await;
    cloud_list(&server, "acme/api", vec![]).await;
    let url = format!("{}/2.0", server.uri());
    let sites = vec![site(Flavour::Cloud, url.clone(), &["acme/api"])];
    let app = spawn_app_with(move |s: &mut Settings| {
        s.bitbucket = sites;
        s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN.to_owned())));
    })
    .await;
    let page = || async {
        app.client
            .get(format!("{}/status", app.address))
            .bearer_auth(STATUS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = page().await;
    assert!(
        before.contains("<td class=\"muted\" colspan=\"3\">never</td>"),
        "{before}"
    );

    assert_eq!(reconcile(&app).await.0, 200);
    let swept = app
        .client
        .post(format!("{}/sweep", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(swept.status(), 200);
    let html = page().await;
    let sweeps = assert_one_site_pass(&html, &url);
    assert!(
        sweeps.contains("<td>http</td><td class=\"skipped\">skipped (nothing is waiting for review)</td><td>0</td><td>0</td>"),
        "{sweeps}"
    );
}

/// A repository no site covers is a usage error (exit 2, nothing asked of Bitbucket); one named
/// in another case is asked for as configured.
#[tokio::test]
async fn the_cli_refuses_an_unconfigured_repository_and_spells_a_configured_one_as_configured() {
    let server = MockServer::start().await;
    cloud_list(&server, "acme/api", vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("state.db").display().to_string();
    let url = format!("{}/2.0", server.uri());
    let (code, _, stderr) = cli_reconcile(&database, &url, &["--repository", "other/repo"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr,
        "pr-reminder: --repository other/repo: no configured site covers it (see the \
         repositories of [[bitbucket]] in check-config)\n"
    );
    assert!(requests(&server).await.is_empty());

    let (code, stdout, stderr) =
        cli_reconcile(&database, &url, &["--repository", "ACME/Api"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        requests(&server).await,
        vec![format!(
            "GET /2.0/repositories/acme/api/pullrequests?state=OPEN&pagelen=50&fields=%2Bvalues.participants"
        )]
    );
}

/// A pass the database fails (here its table is gone) is a failed repository in the report, whose
/// text names no internal detail: the report is an HTTP answer; the cause is in the log.
#[tokio::test]
async fn a_database_failure_is_reported_without_its_internal_text() {
    use sqlx::Connection;

    let server = MockServer::start().await;
    cloud_list(&server, "acme/api", vec![]).await;
    let app = cloud_app(&server, &["acme/api"]).await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path.display()))
        .await
        .unwrap();
    sqlx::query("DROP TABLE reconciled_repositories")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 502, "{report}");
    assert_eq!(
        report["repositories"][0]["error"],
        json!("the database could not be read or written; see the service log"),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        !text.contains("reconciled_repositories") && !text.contains("no such table"),
        "{text}"
    );
}

// ---------- a repository that is gone ----------

/// A Data Center PR of `PRJ/{slug}` (repository `id`), as `dc_pr` makes PRJ/api's.
fn dc_pr_in(server: &MockServer, slug: &str, id: i64, number: i64) -> Value {
    let text = dc_pr(server, number, "aaaa1111", 1_700_000_100_000, "UNAPPROVED")
        .to_string()
        .replace("/repos/api/", &format!("/repos/{slug}/"))
        .replace("\"slug\":\"api\"", &format!("\"slug\":\"{slug}\""))
        .replace("\"id\":42", &format!("\"id\":{id}"));
    serde_json::from_str(&text).unwrap()
}

/// The fake Data Center API answering `PRJ/{slug}`'s open PRs with `answer`, and no builds.
async fn dc_list(server: &MockServer, slug: &str, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/rest/api/1.0/projects/PRJ/repos/{slug}/pull-requests"
        )))
        .respond_with(answer)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            r"^/rest/api/latest/projects/PRJ/repos/{slug}/commits/[0-9a-f]+/builds$"
        )))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true})),
        )
        .mount(server)
        .await;
}

/// A page of `values`.
fn dc_page(values: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"values": values, "isLastPage": true}))
}

/// Data Center's 404 for a repository that does not exist (its `errors` body).
fn dc_404(slug: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({"errors": [{
        "context": null, "message": format!("Repository PRJ/{slug} does not exist."),
        "exceptionName": "com.atlassian.bitbucket.repository.NoSuchRepositoryException"}]}))
}

/// Data Center's 403 for a repository the token may not read.
fn dc_403() -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_json(json!({"errors": [{
        "context": null, "message": "You are not permitted to access this resource",
        "exceptionName": "com.atlassian.bitbucket.AuthorisationException"}]}))
}

/// The settings of `a_repository_answering_404_*`: one Data Center site at `server` over
/// PRJ/api, PRJ/locked and PRJ/web.
fn gone_settings(server: &MockServer) -> impl FnOnce(&mut Settings) {
    let sites = vec![site(
        Flavour::DataCenter,
        server.uri(),
        &["PRJ/api", "PRJ/locked", "PRJ/web"],
    )];
    move |s| {
        s.bitbucket = sites;
        s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
    }
}

/// (repository, ok, closed, error) of each repository of a report.
fn outcomes(report: &Value) -> Vec<(String, bool, i64, String)> {
    report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap().to_owned(),
                r["ok"].as_bool().unwrap(),
                r["closed"].as_i64().unwrap(),
                r["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A deleted repository's PRs stay in digests no longer: once its list has answered 404 on passes
/// spanning a day (and gone through on none since), its open PRs are closed as deleted, and the
/// pass says so. A repository that answers 403 for days (inaccessible, not gone) is never
/// closed; one that went through in between starts its day again. `clock` starts on Tuesday
/// 2026-11-24 10:00 UTC.
async fn a_repository_answering_404_for_a_day(
    app: &impl Served,
    server: &MockServer,
    clock: &crate::helpers::ManualClock,
) {
    use chrono::Duration as Span;
    let t0 = crate::sweep::utc(2026, 11, 24, 10, 0);
    dc_list(
        server,
        "api",
        dc_page(vec![
            dc_pr_in(server, "api", 42, 1),
            dc_pr_in(server, "api", 42, 2),
        ]),
    )
    .await;
    dc_list(
        server,
        "locked",
        dc_page(vec![dc_pr_in(server, "locked", 43, 5)]),
    )
    .await;
    dc_list(server, "web", dc_page(vec![dc_pr_in(server, "web", 44, 7)])).await;
    let (status, report) = reconcile(app).await;
    assert_eq!(status, 200, "{report}");
    let open = |numbers: &[i64]| {
        numbers
            .iter()
            .map(|n| {
                let repo = match n {
                    1 | 2 => "PRJ/api",
                    5 => "PRJ/locked",
                    _ => "PRJ/web",
                };
                (repo.to_owned(), *n)
            })
            .collect::<Vec<_>>()
    };
    let pending = || async {
        app.query_rows::<(String, i64)>(
            "SELECT repository, number FROM pending_reviews ORDER BY number",
        )
        .await
    };
    assert_eq!(pending().await, open(&[1, 2, 5, 7]));

    let api_404 = "HTTP 404 from GET /rest/api/1.0/projects/PRJ/repos/api/pull-requests (no such \
                   repository, or the token cannot see it): Repository PRJ/api does not exist.";
    let locked_403 =
        "HTTP 403 from GET /rest/api/1.0/projects/PRJ/repos/locked/pull-requests (the \
                      token lacks read access to pull requests and repositories): You are not \
                      permitted to access this resource";
    let pass = |at: chrono::DateTime<chrono::Utc>, web_gone: bool| async move {
        server.reset().await;
        dc_list(server, "api", dc_404("api")).await;
        dc_list(server, "locked", dc_403()).await;
        let web = if web_gone {
            dc_404("web")
        } else {
            dc_page(vec![dc_pr_in(server, "web", 44, 7)])
        };
        dc_list(server, "web", web).await;
        clock.set(at);
        let (status, report) = reconcile(app).await;
        assert_eq!(status, 502, "{report}");
        outcomes(&report)
    };
    // An hour later: PRJ/api and PRJ/web answer 404, PRJ/locked 403. Nothing is closed yet.
    let first = t0 + Span::hours(1);
    let not_yet = |repo: &str, since: &str| {
        format!(
            "{}; answering 404 since {since}: its open pull requests are closed as deleted once \
             it has answered 404 for a day",
            api_404
                .replace("/repos/api/", &format!("/repos/{repo}/"))
                .replace("PRJ/api", &format!("PRJ/{repo}"))
        )
    };
    assert_eq!(
        pass(first, true).await,
        vec![
            (
                "PRJ/api".to_owned(),
                false,
                0,
                not_yet("api", "2026-11-24 11:00 UTC")
            ),
            ("PRJ/locked".to_owned(), false, 0, locked_403.to_owned()),
            (
                "PRJ/web".to_owned(),
                false,
                0,
                not_yet("web", "2026-11-24 11:00 UTC")
            ),
        ]
    );
    // PRJ/web goes through once: its day starts again.
    let outcome = pass(first + Span::hours(1), false).await;
    assert_eq!((outcome[2].1, outcome[2].2), (true, 0), "{outcome:?}");
    // A minute short of a day after the first 404.
    let outcome = pass(first + Span::hours(24) - Span::minutes(1), true).await;
    assert_eq!(
        outcome[0],
        (
            "PRJ/api".to_owned(),
            false,
            0,
            not_yet("api", "2026-11-24 11:00 UTC")
        )
    );
    assert_eq!(pending().await, open(&[1, 2, 5, 7]));
    // A day after the first 404: PRJ/api's two PRs are closed as deleted; PRJ/locked, refused for
    // more than a day, and PRJ/web, gone for less than one since it went through, stay.
    assert_eq!(
        pass(first + Span::hours(24), true).await,
        vec![
            (
                "PRJ/api".to_owned(),
                false,
                2,
                format!("{api_404}; answering 404 since 2026-11-24 11:00 UTC: 2 open pull requests closed as deleted")
            ),
            ("PRJ/locked".to_owned(), false, 0, locked_403.to_owned()),
            ("PRJ/web".to_owned(), false, 0, not_yet("web", "2026-11-25 10:59 UTC")),
        ]
    );
    assert_eq!(pending().await, open(&[5, 7]));
    let states: Vec<(i64, String)> = app
        .query_rows("SELECT number, state FROM pull_requests ORDER BY number")
        .await;
    assert_eq!(
        states,
        [(1, "DELETED"), (2, "DELETED"), (5, "OPEN"), (7, "OPEN")].map(|(n, s)| (n, s.to_owned()))
    );
}

async fn a_repository_answering_404_for_a_day_has_its_prs_closed_as_deleted(on: On) {
    let server = MockServer::start().await;
    let clock = crate::helpers::ManualClock::frozen(crate::sweep::utc(2026, 11, 24, 10, 0));
    let Some(app) = spawn_on(on, "dcgone", gone_settings(&server), clock.clock()).await else {
        return;
    };
    a_repository_answering_404_for_a_day(&app, &server, &clock).await;
}

/// The settings of `a_repository_gone_from_its_project_*`: one Data Center site at `server` over
/// PRJ/*.
fn project_settings(server: &MockServer) -> impl FnOnce(&mut Settings) {
    let sites = vec![site(Flavour::DataCenter, server.uri(), &["PRJ/*"])];
    move |s| {
        s.bitbucket = sites;
        s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
    }
}

/// PRJ's repositories as `GET /rest/api/1.0/projects/PRJ/repos` lists them.
async fn project_lists(server: &MockServer, slugs: &[&str]) {
    let values: Vec<Value> = slugs
        .iter()
        .map(|s| json!({"slug": s, "project": {"key": "PRJ"}}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/PRJ/repos"))
        .respond_with(dc_page(values))
        .mount(server)
        .await;
}

/// Configured as `PRJ/*`, a repository deleted from its project is no longer listed: the
/// repositories stored with open PRs are asked for too, so the deleted one answers 404 and, a day
/// later, its PRs are closed as deleted.
async fn a_repository_gone_from_its_project(
    app: &impl Served,
    server: &MockServer,
    clock: &crate::helpers::ManualClock,
) {
    let t0 = crate::sweep::utc(2026, 11, 24, 10, 0);
    project_lists(server, &["api", "web"]).await;
    dc_list(server, "api", dc_page(vec![dc_pr_in(server, "api", 42, 1)])).await;
    dc_list(server, "web", dc_page(vec![])).await;
    assert_eq!(reconcile(app).await.0, 200);
    for (at, closed) in [
        (t0 + chrono::Duration::hours(1), 0),
        (t0 + chrono::Duration::hours(25), 1),
    ] {
        server.reset().await;
        project_lists(server, &["web"]).await;
        dc_list(server, "api", dc_404("api")).await;
        dc_list(server, "web", dc_page(vec![])).await;
        clock.set(at);
        let (status, report) = reconcile(app).await;
        assert_eq!(status, 502, "{report}");
        let outcome = outcomes(&report);
        assert_eq!(
            (outcome[0].0.as_str(), outcome[0].1, outcome[0].2),
            ("PRJ/api", false, closed),
            "{report}"
        );
    }
    let states: Vec<(i64, String)> = app
        .query_rows("SELECT number, state FROM pull_requests ORDER BY number")
        .await;
    assert_eq!(states, [(1, "DELETED".to_owned())]);
}

async fn a_repository_gone_from_its_project_has_its_prs_closed_as_deleted(on: On) {
    let server = MockServer::start().await;
    let clock = crate::helpers::ManualClock::frozen(crate::sweep::utc(2026, 11, 24, 10, 0));
    let Some(app) = spawn_on(on, "dcgoneglob", project_settings(&server), clock.clock()).await
    else {
        return;
    };
    a_repository_gone_from_its_project(&app, &server, &clock).await;
}

//! `POST /reconcile` and `pr-reminder reconcile` on PostgreSQL, against a fake Bitbucket REST API.

use super::*;
use pr_reminder::config::{Credentials, RepositorySelector, SecretToken, Site};
use pr_reminder::domain::Flavour;
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "reconcile-token-0123456789abcdef-0123";
const API_TOKEN: &str = "bitbucket-api-token";
const STATUS_TOKEN: &str = "status-token-0123456789abcdef";

fn site(kind: Flavour, url: String, repositories: &[&str]) -> Site {
    Site {
        kind,
        url: url.parse().unwrap(),
        credentials: Credentials::Bearer(SecretToken(SecretString::from(API_TOKEN.to_owned()))),
        repositories: repositories
            .iter()
            .map(|r| RepositorySelector::parse(r).unwrap())
            .collect(),
        poll_interval: None,
    }
}

async fn app_with(label: &str, sites: Vec<Site>) -> Option<PgApp> {
    spawn_pg(
        label,
        move |s| {
            s.bitbucket = sites;
            s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
            s.monitoring.status_token =
                Some(SecretToken(SecretString::from(STATUS_TOKEN.to_owned())));
        },
        Clock::system(),
    )
    .await
}

async fn reconcile(app: &PgApp) -> Value {
    let response = app
        .client
        .post(format!("{}/reconcile", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let report: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{report}");
    report
}

async fn requests(server: &MockServer) -> Vec<String> {
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

async fn rows(app: &PgApp) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("SELECT number, state, source_commit FROM pull_requests ORDER BY number")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn announced(app: &PgApp) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT number, events FROM outbox WHERE kind = 'pull_request' ORDER BY number, id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

fn cloud_pr(id: i64, commit: &str, updated: &str, participants: Value) -> Value {
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

fn reviewer(uuid: &str, state: Value) -> Value {
    json!({"user": {"uuid": uuid, "display_name": uuid}, "role": "REVIEWER",
           "approved": state == "approved", "state": state,
           "participated_on": "2026-11-02T10:00:00+00:00"})
}

async fn cloud_list(server: &MockServer, values: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
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

async fn cloud_statuses(server: &MockServer, hash: &str, values: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/2.0/repositories/acme/api/commit/{hash}/statuses"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": values})))
        .mount(server)
        .await;
}

fn cloud_status(hash: &str, state: &str) -> Value {
    json!({"key": "ci", "state": state, "name": "CI", "url": "https://ci.example/1",
           "updated_on": "2026-11-02T11:00:00+00:00", "commit": {"hash": hash}})
}

async fn reviews(app: &PgApp, number: i64) -> Vec<(String, String, String)> {
    app.reviews("acme/api", number).await
}

/// `reconcile::cloud_later_passes_repair_...` on PostgreSQL, then an unchanged pass: the
/// first pass backfills without announcing; the second repairs a missed merge, approval,
/// needs work and build failure, announcing them; the third asks for the list only (the
/// commits checked are remembered in `reconciled_commits`). The metrics and the status page
/// then show the site's passes.
#[tokio::test]
async fn cloud_backfill_repair_and_an_unchanged_pass() {
    let server = MockServer::start().await;
    let first = vec![
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
    ];
    cloud_list(&server, first).await;
    for hash in [
        "aaaaaaaaaaaa",
        "bbbbbbbbbbbb",
        "cccccccccccc",
        "dddddddddddd",
    ] {
        cloud_statuses(&server, hash, vec![]).await;
    }
    let url = format!("{}/2.0", server.uri());
    let Some(app) = app_with(
        "reconcile",
        vec![site(Flavour::Cloud, url.clone(), &["acme/api"])],
    )
    .await
    else {
        return;
    };
    let report = reconcile(&app).await;
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["ok"],
            &repo["first_pass"],
            &repo["open"],
            &repo["updated"],
            &repo["requests"]
        ),
        (&json!(true), &json!(true), &json!(4), &json!(4), &json!(5))
    );
    assert!(
        announced(&app).await.is_empty(),
        "a backfill announces nothing"
    );
    let checked: Vec<String> =
        sqlx::query_scalar("SELECT commit_hash FROM reconciled_commits ORDER BY commit_hash")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        checked,
        [
            "aaaaaaaaaaaa",
            "bbbbbbbbbbbb",
            "cccccccccccc",
            "dddddddddddd"
        ]
    );

    // Meanwhile: #1 merged, #2 approved, #3 needs work, #4 got a commit whose build failed.
    server.reset().await;
    cloud_list(
        &server,
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
    let mut merged = cloud_pr(1, "aaaaaaaaaaaa", "2026-11-03T09:00:00+00:00", json!([]));
    merged["state"] = json!("MERGED");
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(merged))
        .mount(&server)
        .await;
    cloud_statuses(
        &server,
        "eeeeeeeeeeee",
        vec![cloud_status(
            "eeeeeeeeeeee0000111122223333444455556666",
            "FAILED",
        )],
    )
    .await;
    let report = reconcile(&app).await;
    let repo = &report["repositories"][0];
    assert_eq!(
        (
            &repo["first_pass"],
            &repo["updated"],
            &repo["closed"],
            &repo["builds"],
            &repo["requests"]
        ),
        (&json!(false), &json!(3), &json!(1), &json!(1), &json!(3))
    );
    assert_eq!(
        rows(&app).await,
        vec![
            (1, "MERGED".into(), Some("aaaaaaaaaaaa".into())),
            (2, "OPEN".into(), Some("bbbbbbbbbbbb".into())),
            (3, "OPEN".into(), Some("cccccccccccc".into())),
            (4, "OPEN".into(), Some("eeeeeeeeeeee".into())),
        ]
    );
    assert_eq!(
        reviews(&app, 2).await,
        vec![("{bob}".into(), "REVIEWER".into(), "approved".into())]
    );
    assert_eq!(
        reviews(&app, 3).await,
        vec![(
            "{bob}".into(),
            "REVIEWER".into(),
            "changes_requested".into()
        )]
    );
    assert_eq!(
        announced(&app).await,
        vec![
            (2, "approvals".into()),
            (3, "changes_requested".into()),
            (4, "build_failed".into()),
        ]
    );
    let pending: Vec<(i64, Option<String>)> = app
        .pending()
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
    cloud_list(
        &server,
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
    let report = reconcile(&app).await;
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
    let sample = |series: String| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{series} ")))
            .unwrap_or_else(|| panic!("{series} in:\n{text}"));
        line[series.len() + 1..].to_owned()
    };
    assert_eq!(
        sample(format!(
            "pr_reminder_reconciliation_requests_total{{site=\"{url}\"}}"
        )),
        "9"
    );
    assert_eq!(
        sample("pr_reminder_reconciliation_pass_duration_seconds_count".into()),
        "3"
    );
    let last: f64 = sample(format!(
        "pr_reminder_reconciliation_last_success_timestamp_seconds{{site=\"{url}\"}}"
    ))
    .parse()
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} vs {now}");
    assert!(!text.contains(API_TOKEN), "{text}");

    // The status page: the site's last pass (one repository, one request), and the sweep of
    // the console room (#2 and #4 wait for review, #3 on its author).
    let swept = app
        .client
        .post(format!("{}/sweep", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(swept.status(), 200);
    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    let sites = &html[html.find("<table id=\"sites\">").expect("sites table")..];
    let sites = &sites[..sites.find("</table>").unwrap()];
    assert!(sites.contains(&format!("<td>{url}</td>")), "{sites}");
    assert!(
        sites.ends_with("<td>1</td><td>1</td></tr></tbody>"),
        "one repository, one request: {sites}"
    );
    let sweeps = &html[html.find("<table id=\"sweeps\">").expect("sweeps table")..];
    let sweeps = &sweeps[..sweeps.find("</table>").unwrap()];
    assert!(
        sweeps.contains("<td>http</td><td class=\"posted\">posted</td><td>2</td><td>1</td>")
            && sweeps.contains("<tr><td>console</td>"),
        "{sweeps}"
    );
}

/// `pr-reminder reconcile` on the PostgreSQL database: one repository goes through (exit 0,
/// its line and the summary), another is refused by Bitbucket (exit 1, named on stderr);
/// the rows are the service's to read.
#[tokio::test]
async fn the_cli_reconciles_into_postgres_and_names_a_failure() {
    let server = MockServer::start().await;
    cloud_list(
        &server,
        vec![cloud_pr(
            1,
            "aaaaaaaaaaaa",
            "2026-11-02T10:00:00+00:00",
            json!([]),
        )],
    )
    .await;
    cloud_statuses(
        &server,
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
        .mount(&server)
        .await;
    let Some(database) = pg::fresh_database("clireconcile").await else {
        return;
    };
    let url = format!("{}/2.0", server.uri());
    let cli = |args: &'static [&'static str]| {
        let mut cmd = command(&database);
        cmd.env("PR_REMINDER_BITBUCKET_KIND", "cloud")
            .env("PR_REMINDER_BITBUCKET_URL", &url)
            .env("PR_REMINDER_BITBUCKET_TOKEN", API_TOKEN)
            .env("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/api, acme/web")
            .arg("reconcile")
            .args(args);
        output(cmd)
    };
    let (code, stdout, stderr) = cli(&["--repository", "acme/api"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            "ok      {url} acme/api: 1 open, 1 updated, 0 closed, 1 builds, 2 requests \
             (first pass: nothing announced)"
        )
    );
    assert!(
        lines[1].starts_with("1 repositories, 0 failed, 2 requests, "),
        "{stdout}"
    );
    assert!(!stderr.contains("pr-reminder:"), "{stderr}");

    let failure = "HTTP 403 from GET /2.0/repositories/acme/web/pullrequests (the token lacks \
                   read access to pull requests and repositories): Your credentials lack one \
                   or more required privilege scopes.";
    let (code, stdout, stderr) = cli(&[]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("ok      {url} acme/api: 1 open, 0 updated, 0 closed, 0 builds, 1 requests"),
            format!("FAILED  {url} acme/web: {failure}"),
        ]
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == format!("pr-reminder: {url} acme/web: {failure}")),
        "{stderr}"
    );
    assert!(!stdout.contains(API_TOKEN) && !stderr.contains(API_TOKEN));

    let db = PgPoolOptions::new().connect(&database).await.unwrap();
    let stored: Vec<(String, i64, String, Option<String>)> =
        sqlx::query_as("SELECT repository, number, title, build_state FROM pending_reviews")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        stored,
        [(
            "acme/api".to_owned(),
            1,
            "PR 1".to_owned(),
            Some("SUCCESSFUL".to_owned())
        )]
    );
    let passes: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT site, full_name, last_requests FROM reconciled_repositories")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(passes, [(url.clone(), "acme/api".to_owned(), 1)]);
}

fn dc_pr(server: &MockServer, id: i64, commit: &str, updated: i64, status: &str) -> Value {
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

async fn dc_page(server: &MockServer, values: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/PRJ/repos/api/pull-requests"))
        .and(query_param("state", "OPEN"))
        .and(query_param("start", "0"))
        .and(query_param("limit", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"values": values, "isLastPage": true, "start": 0, "limit": 1000, "size": 2}),
        ))
        .mount(server)
        .await;
}

/// `reconcile::datacenter_a_pr_gone_from_the_list_that_answers_404_is_closed_as_deleted` on
/// PostgreSQL: Data Center keys, a needs-work verdict read by REST, and a PR the server no
/// longer knows closed as DELETED, out of pending_reviews.
#[tokio::test]
async fn datacenter_a_pr_gone_that_answers_404_is_closed_as_deleted() {
    let server = MockServer::start().await;
    dc_page(
        &server,
        vec![
            dc_pr(&server, 1, "aaaa1111", 1_700_000_100_000, "NEEDS_WORK"),
            dc_pr(&server, 2, "bbbb2222", 1_700_000_100_000, "UNAPPROVED"),
        ],
    )
    .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/rest/api/latest/projects/PRJ/repos/api/commits/[0-9a-f]+/builds$",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true})),
        )
        .mount(&server)
        .await;
    let Some(app) = app_with(
        "dcreconcile",
        vec![site(Flavour::DataCenter, server.uri(), &["PRJ/api"])],
    )
    .await
    else {
        return;
    };
    reconcile(&app).await;
    let host = server.uri().trim_start_matches("http://").to_owned();
    let keys: Vec<String> = sqlx::query_scalar("SELECT DISTINCT repository_key FROM pull_requests")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("datacenter/{host}/42")]);
    assert_eq!(
        app.reviews("PRJ/api", 1).await,
        vec![(
            format!("datacenter/{host}/user/7"),
            "REVIEWER".into(),
            "changes_requested".into()
        )]
    );

    server.reset().await;
    dc_page(
        &server,
        vec![dc_pr(
            &server,
            1,
            "aaaa1111",
            1_700_000_100_000,
            "NEEDS_WORK",
        )],
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/PRJ/repos/api/pull-requests/2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "errors": [{"message": "Pull request 2 does not exist in PRJ/api."}]
        })))
        .mount(&server)
        .await;
    let report = reconcile(&app).await;
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
        [
            "GET /rest/api/1.0/projects/PRJ/repos/api/pull-requests?state=OPEN&start=0&limit=1000",
            "GET /rest/api/1.0/projects/PRJ/repos/api/pull-requests/2",
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
        .pending()
        .await
        .into_iter()
        .map(|p| (p.repository, p.number, p.changes_requested))
        .collect();
    assert_eq!(pending, [("PRJ/api".to_owned(), 1, 1)]);
}

//! `POST /reconcile` and `pr-reminder reconcile` on PostgreSQL, against a fake Bitbucket REST API.

use super::*;
use crate::reconcile::{
    announced, api_and_a_refusing_web, assert_api_went_through, assert_one_site_pass,
    assert_reconciliation_metrics, assert_repaired, assert_web_failed, dc_pages, dc_pr, four_open,
    reconcile_command, repaired, repaired_list, requests, rows, site, TOKEN,
};
use pr_reminder::config::{SecretToken, Site};
use pr_reminder::domain::Flavour;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STATUS_TOKEN: &str = "status-token-0123456789abcdef";

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

/// `POST /reconcile`, asserted 200: the report.
async fn reconcile(app: &PgApp) -> Value {
    let (status, report) = crate::reconcile::reconcile(app).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// `reconcile::cloud_later_passes_repair_...` on PostgreSQL, then an unchanged pass: the
/// first pass backfills without announcing; the second repairs a missed merge, approval,
/// needs work and build failure, announcing them; the third asks for the list only (the
/// commits checked are remembered in `reconciled_commits`). The metrics and the status page
/// then show the site's passes.
#[tokio::test]
async fn cloud_backfill_repair_and_an_unchanged_pass() {
    let server = MockServer::start().await;
    four_open(&server).await;
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
    repaired(&server).await;
    let report = reconcile(&app).await;
    assert_repaired(&app, &report).await;
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
    repaired_list(&server).await;
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
    assert_reconciliation_metrics(&text, &url, "9", "3");

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

/// `pr-reminder reconcile` on the PostgreSQL database: one repository goes through (exit 0,
/// its line and the summary), another is refused by Bitbucket (exit 1, named on stderr);
/// the rows are the service's to read.
#[tokio::test]
async fn the_cli_reconciles_into_postgres_and_names_a_failure() {
    let server = MockServer::start().await;
    api_and_a_refusing_web(&server).await;
    let Some(database) = pg::fresh_database("clireconcile").await else {
        return;
    };
    let url = format!("{}/2.0", server.uri());
    let cli = |args: &'static [&'static str]| {
        let mut cmd = command(&database);
        reconcile_command(&mut cmd, &url, args);
        output(cmd)
    };
    let (code, stdout, stderr) = cli(&["--repository", "acme/api"]).await;
    assert_api_went_through(code, &stdout, &stderr, &url);
    let (code, stdout, stderr) = cli(&[]).await;
    assert_web_failed(code, &stdout, &stderr, &url);

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

/// `reconcile::datacenter_a_pr_gone_from_the_list_that_answers_404_is_closed_as_deleted` on
/// PostgreSQL: Data Center keys, a needs-work verdict read by REST, and a PR the server no
/// longer knows closed as DELETED, out of pending_reviews.
#[tokio::test]
async fn datacenter_a_pr_gone_that_answers_404_is_closed_as_deleted() {
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

/// `reconcile::a_repository_answering_404_for_a_day_has_its_prs_closed_as_deleted` on
/// PostgreSQL.
#[tokio::test]
async fn a_repository_answering_404_for_a_day_has_its_prs_closed_as_deleted() {
    use crate::reconcile::{a_repository_answering_404_for_a_day, gone_settings};
    let server = MockServer::start().await;
    let clock = crate::helpers::ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(app) = spawn_pg("dcgone", gone_settings(&server), clock.clock()).await else {
        return;
    };
    a_repository_answering_404_for_a_day(&app, &server, &clock).await;
}

/// `reconcile::a_repository_gone_from_its_project_has_its_prs_closed_as_deleted` on PostgreSQL.
#[tokio::test]
async fn a_repository_gone_from_its_project_has_its_prs_closed_as_deleted() {
    use crate::reconcile::{a_repository_gone_from_its_project, project_settings};
    let server = MockServer::start().await;
    let clock = crate::helpers::ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(app) = spawn_pg("dcgoneglob", project_settings(&server), clock.clock()).await else {
        return;
    };
    a_repository_gone_from_its_project(&app, &server, &clock).await;
}

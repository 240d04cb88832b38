//! Drift made visible (issue 26): a reconciliation pass over a site with a `webhook_url` reads
//! the hooks that could cover each repository (the fake hook APIs of `connect.rs`, which follow
//! Bitbucket's documented contracts, cited there) and records what covers it; the status page
//! shows it with the last delivery from the repository and "webhook silent?", and
//! `pr_reminder_webhooks{state}` counts it. Each scenario runs on both databases.

use chrono::{DateTime, TimeZone, Utc};
use pr_reminder::config::{Credentials, SecretToken, Settings, Site};
use pr_reminder::connect::CLOUD_EVENTS;
use pr_reminder::domain::Flavour;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::connect::{Fake, HOOK_URL};
use crate::helpers::{
    on_both, set_repository, spawn_app_with_clock, spawn_on, ManualClock, On, Served,
};
use crate::lifecycle::pr_event;
use crate::reconcile::{cloud_list, cloud_pr, cloud_statuses, reconcile, API_TOKEN, TOKEN};

pub(crate) const STATUS_TOKEN: &str = "status-token-0123456789";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

/// A Cloud hook as the fake lists it.
fn cloud_hook(uuid: &str, url: &str, active: bool, events: &[&str], subject: &str) -> Value {
    json!({"uuid": uuid, "url": url, "description": "pr-reminder", "subject_type": subject,
           "active": active, "events": events, "secret_set": true,
           "created_at": "2026-01-01T00:00:00+00:00"})
}

/// An open PR of `repository` as the REST list gives it, last updated at `updated`.
fn listed_pr(repository: &str, id: i64, updated: &str) -> Value {
    let mut pr = cloud_pr(id, &format!("{id:012}"), updated, json!([]));
    pr["destination"]["repository"] =
        json!({"full_name": repository, "uuid": format!("{{repo:{repository}}}")});
    pr
}

const REPOSITORIES: [&str; 5] = [
    "acme/api",
    "beta/hooked",
    "beta/bare",
    "beta/asleep",
    "delta/locked",
];

/// The fake Cloud: acme's workspace hook covers acme/api; beta has no workspace hook of
/// pr-reminder's (a CI hook only), beta/hooked has its own repository hook, beta/asleep an
/// inactive one, beta/bare none; the token may not read delta's hooks at all (403).
async fn fake_cloud() -> Fake {
    let fake = Fake::start(Flavour::Cloud).await;
    fake.seed(
        "/2.0/workspaces/acme/hooks",
        cloud_hook("{w-acme}", HOOK_URL, true, CLOUD_EVENTS, "workspace"),
    );
    fake.seed(
        "/2.0/workspaces/beta/hooks",
        crate::connect::foreign("{ci}", "https://ci.example.com/hook"),
    );
    fake.seed(
        "/2.0/repositories/beta/hooked/hooks",
        cloud_hook("{r-hooked}", HOOK_URL, true, CLOUD_EVENTS, "repository"),
    );
    fake.seed(
        "/2.0/repositories/beta/asleep/hooks",
        cloud_hook("{r-asleep}", HOOK_URL, false, CLOUD_EVENTS, "repository"),
    );
    fake.forbid("/2.0/workspaces/delta/hooks");
    fake.forbid("/2.0/repositories/delta/locked/hooks");
    for repository in REPOSITORIES {
        let prs = match repository {
            "acme/api" => vec![listed_pr(repository, 1, "2026-11-30T10:00:00+00:00")],
            "beta/bare" => vec![listed_pr(repository, 2, "2026-11-30T12:00:00+00:00")],
            _ => Vec::new(),
        };
        cloud_list(&fake.server, repository, prs).await;
    }
    cloud_statuses(&fake.server, "acme/api", "000000000001", vec![]).await;
    cloud_statuses(&fake.server, "beta/bare", "000000000002", vec![]).await;
    fake
}

fn settings(site: Site) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.bitbucket = vec![site];
        s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
        s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN.to_owned())));
    }
}

/// (repository, state, scope, events_missing, detail) of every recorded coverage.
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn coverage(app: &impl Served) -> Vec<Row> {
    app.query_rows(
        "SELECT full_name, state, scope, events_missing, detail FROM webhook_coverage
          ORDER BY repository",
    )
    .await
}

fn row(name: &str, state: &str, scope: Option<&str>, detail: Option<&str>) -> Row {
    (
        name.into(),
        state.into(),
        scope.map(Into::into),
        None,
        detail.map(Into::into),
    )
}

/// The `pr_reminder_webhooks` samples of the exposition, by state name.
async fn webhook_lines(app: &impl Served) -> Vec<String> {
    let (status, text) = app.get_text("/metrics", None).await;
    assert_eq!(status, 200);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("pr_reminder_webhooks{"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The status page's webhook rows: (data-repository, data-state, the row's text).
async fn page_rows(app: &impl Served) -> Vec<(String, String, String)> {
    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200);
    let table = crate::status::between(&html, "<table id=\"webhooks\">", "</table>");
    table
        .split("<tr class=\"webhook\"")
        .skip(1)
        .map(|tr| {
            let attr = |name: &str| {
                let from = tr.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                tr[from..from + tr[from..].find('"').unwrap()].to_owned()
            };
            let mut text = String::new();
            let mut in_tag = false;
            for c in tr[tr.find('>').unwrap() + 1..].chars() {
                match c {
                    '<' => {
                        in_tag = true;
                        text.push(' ');
                    }
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            (attr("data-repository"), attr("data-state"), text)
        })
        .collect()
}

/// The app the browser test reads: the fake Cloud of `fake_cloud`, a delivery from acme/api at
/// `t0`, then one reconciliation pass (SQLite).
pub(crate) async fn drift_app() -> (crate::helpers::TestApp, Fake) {
    let fake = fake_cloud().await;
    let app = spawn_app_with_clock(
        settings(fake.site(&REPOSITORIES)),
        ManualClock::frozen(t0()).clock(),
    )
    .await;
    let mut body = pr_event(
        1,
        "2026-11-30T10:00:00+00:00",
        "OPEN",
        "PR 1",
        "000000000001",
        &[],
    );
    set_repository(&mut body, "acme/api");
    app.processed("pullrequest:updated", &body).await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    (app, fake)
}

on_both!(reconciliation_records_what_covers_each_repository_and_the_page_and_metric_show_it);

async fn reconciliation_records_what_covers_each_repository_and_the_page_and_metric_show_it(
    on: On,
) {
    let fake = fake_cloud().await;
    let clock = ManualClock::frozen(t0());
    let Some(app) = spawn_on(
        on,
        "drift_coverage",
        settings(fake.site(&REPOSITORIES)),
        clock.clock(),
    )
    .await
    else {
        return;
    };
    // Nothing checked yet: the page says how coverage is checked; every state is 0.
    let (_, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert!(html.contains("Not checked: reconciliation reads the hooks of sites with a"));
    assert_eq!(
        webhook_lines(&app).await,
        [
            "pr_reminder_webhooks{state=\"covered\"} 0",
            "pr_reminder_webhooks{state=\"inactive\"} 0",
            "pr_reminder_webhooks{state=\"incomplete\"} 0",
            "pr_reminder_webhooks{state=\"missing\"} 0",
            "pr_reminder_webhooks{state=\"silent\"} 0",
            "pr_reminder_webhooks{state=\"unknown\"} 0",
        ]
    );
    // A delivery from acme/api at t0.
    let mut body = pr_event(
        1,
        "2026-11-30T10:00:00+00:00",
        "OPEN",
        "PR 1",
        "000000000001",
        &[],
    );
    set_repository(&mut body, "acme/api");
    app.processed("pullrequest:updated", &body).await;

    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    // The 403 on delta's hooks never fails the pass (delta/locked's PR list went through).
    assert_eq!(report["ok"], true, "{report}");

    let needs = |scope: &str, name: &str| match scope {
        "workspace" => format!(
            "to read the webhooks of workspace {name}: a workspace access token with the \
             webhook scope, or an API token with read:webhook:bitbucket of a workspace admin"
        ),
        _ => format!(
            "to read the webhooks of repository {name}: a repository, project or workspace \
             access token with the webhook scope, or an API token with \
             read:webhook:bitbucket of a repository admin"
        ),
    };
    let locked = format!(
        "no permission: the token needs {}; no permission: the token needs {}",
        needs("workspace", "delta"),
        needs("repository", "delta/locked")
    );
    assert_eq!(
        coverage(&app).await,
        [
            row("acme/api", "covered", Some("workspace"), None),
            row("beta/asleep", "inactive", Some("repository"), None),
            row("beta/bare", "missing", None, None),
            row("beta/hooked", "covered", Some("repository"), None),
            row("delta/locked", "unknown", None, Some(&locked)),
        ]
    );
    // The pass's report says it too.
    let reported: Vec<(String, String)> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap().to_owned(),
                r["webhook"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reported,
        [
            (
                "acme/api".to_owned(),
                "covered by workspace hook".to_owned()
            ),
            (
                "beta/asleep".to_owned(),
                "repository hook inactive".to_owned()
            ),
            ("beta/bare".to_owned(), "none".to_owned()),
            (
                "beta/hooked".to_owned(),
                "covered by repository hook".to_owned()
            ),
            ("delta/locked".to_owned(), format!("unknown ({locked})")),
        ]
    );
    // acme's workspace hook covers acme/api: its own hooks were not asked for.
    let asked: Vec<String> = fake
        .received()
        .await
        .iter()
        .filter(|r| r.url.path().ends_with("/hooks"))
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    let mut asked_sorted = asked.clone();
    asked_sorted.sort();
    assert_eq!(
        asked_sorted,
        [
            "GET /2.0/repositories/beta/asleep/hooks",
            "GET /2.0/repositories/beta/bare/hooks",
            "GET /2.0/repositories/beta/hooked/hooks",
            "GET /2.0/repositories/delta/locked/hooks",
            "GET /2.0/workspaces/acme/hooks",
            "GET /2.0/workspaces/beta/hooks",
            "GET /2.0/workspaces/delta/hooks",
        ]
    );

    // The page: covered by, last delivery, and beta/bare, never delivered from while its PR
    // changed within the week, "webhook silent?".
    let rows = page_rows(&app).await;
    let silent = "webhook silent? no delivery for 7 days while its pull requests changed";
    assert_eq!(
        rows,
        [
            (
                "acme/api".into(),
                "covered".into(),
                format!(
                    "acme/api {url} workspace hook 2026-12-01 09:00 UTC 1 2026-12-01 09:00 UTC",
                    url = fake.site(&[]).name()
                )
            ),
            (
                "beta/asleep".into(),
                "inactive".into(),
                format!(
                    "beta/asleep {url} repository hook (inactive) none 0 2026-12-01 09:00 UTC",
                    url = fake.site(&[]).name()
                )
            ),
            (
                "beta/bare".into(),
                "missing".into(),
                format!(
                    "beta/bare {url} none none {silent} 1 2026-12-01 09:00 UTC",
                    url = fake.site(&[]).name()
                )
            ),
            (
                "beta/hooked".into(),
                "covered".into(),
                format!(
                    "beta/hooked {url} repository hook none 0 2026-12-01 09:00 UTC",
                    url = fake.site(&[]).name()
                )
            ),
            (
                "delta/locked".into(),
                "unknown".into(),
                format!(
                    "delta/locked {url} unknown {locked} none 0 2026-12-01 09:00 UTC",
                    url = fake.site(&[]).name()
                )
            ),
        ]
    );
    assert_eq!(
        webhook_lines(&app).await,
        [
            "pr_reminder_webhooks{state=\"covered\"} 2",
            "pr_reminder_webhooks{state=\"inactive\"} 1",
            "pr_reminder_webhooks{state=\"incomplete\"} 0",
            "pr_reminder_webhooks{state=\"missing\"} 1",
            "pr_reminder_webhooks{state=\"silent\"} 1",
            "pr_reminder_webhooks{state=\"unknown\"} 1",
        ]
    );
}

on_both!(a_covered_repository_turns_silent_after_webhook_silence_days_while_its_prs_change);

async fn a_covered_repository_turns_silent_after_webhook_silence_days_while_its_prs_change(on: On) {
    let fake = Fake::start(Flavour::Cloud).await;
    fake.seed(
        "/2.0/workspaces/acme/hooks",
        cloud_hook("{w-acme}", HOOK_URL, true, CLOUD_EVENTS, "workspace"),
    );
    let clock = ManualClock::frozen(t0());
    let site = fake.site(&["acme/api"]);
    let Some(app) = spawn_on(
        on,
        "drift_silent",
        move |s: &mut Settings| {
            settings(site)(s);
            s.monitoring.webhook_silence = std::time::Duration::from_secs(3 * 86_400);
        },
        clock.clock(),
    )
    .await
    else {
        return;
    };
    let mut body = pr_event(
        1,
        "2026-11-30T10:00:00+00:00",
        "OPEN",
        "PR 1",
        "000000000001",
        &[],
    );
    set_repository(&mut body, "acme/api");
    app.processed("pullrequest:created", &body).await;
    // Bitbucket lists the PR as the delivery left it.
    cloud_list(
        &fake.server,
        "acme/api",
        vec![listed_pr("acme/api", 1, "2026-11-30T10:00:00+00:00")],
    )
    .await;
    cloud_statuses(&fake.server, "acme/api", "000000000001", vec![]).await;
    assert_eq!(reconcile(&app).await.0, 200);
    let state = |rows: Vec<(String, String, String)>| rows[0].2.clone();
    assert!(!state(page_rows(&app).await).contains("silent"));

    // Four days on, quiet: nothing changed, so nothing is silent.
    clock.set(t0() + chrono::Duration::days(4));
    assert_eq!(reconcile(&app).await.0, 200);
    assert!(!state(page_rows(&app).await).contains("silent"));
    assert!(webhook_lines(&app)
        .await
        .contains(&"pr_reminder_webhooks{state=\"silent\"} 0".to_owned()));

    // The PR changed two days ago and no delivery said so: reconciliation sees it.
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme/api/pullrequests"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [listed_pr("acme/api", 1, "2026-12-03T10:00:00+00:00")], "pagelen": 50
        })))
        .with_priority(1)
        .mount(&fake.server)
        .await;
    assert_eq!(reconcile(&app).await.0, 200);
    let text = state(page_rows(&app).await);
    assert!(
        text.contains(
            "workspace hook 2026-12-01 09:00 UTC webhook silent? no delivery for 3 days while \
             its pull requests changed"
        ),
        "{text}"
    );
    assert!(webhook_lines(&app)
        .await
        .contains(&"pr_reminder_webhooks{state=\"silent\"} 1".to_owned()));
}

/// Atlassian API tokens (Basic: the account's e-mail and the token) and access tokens (Bearer)
/// both work for `connect` and for reconciliation's hook check, on both flavours: every request
/// carries the site's credentials, and the hook `connect` made is then found covering.
#[tokio::test]
async fn connect_and_the_coverage_check_send_basic_or_bearer_credentials_on_both_flavours() {
    for flavour in [Flavour::Cloud, Flavour::DataCenter] {
        for basic in [false, true] {
            let fake = Fake::start(flavour).await;
            let (name, scope) = match flavour {
                Flavour::Cloud => ("acme/api", "workspace"),
                Flavour::DataCenter => ("PAY/api", "project"),
            };
            let mut site = fake.site(&[name]);
            let expected = if basic {
                site.credentials = Credentials::Basic {
                    username: "me@example.com".into(),
                    token: SecretToken(SecretString::from(API_TOKEN.to_owned())),
                };
                // base64("me@example.com:bitbucket-api-token")
                "Basic bWVAZXhhbXBsZS5jb206Yml0YnVja2V0LWFwaS10b2tlbg==".to_owned()
            } else {
                format!("Bearer {API_TOKEN}")
            };
            let report = crate::connect::run(std::slice::from_ref(&site), false).await;
            assert!(report.ok, "{}", report.to_text());
            let app = spawn_app_with_clock(settings(site), ManualClock::frozen(t0()).clock()).await;
            reconcile(&app).await;
            assert_eq!(
                coverage(&app).await,
                [row(name, "covered", Some(scope), None)],
                "{flavour:?}, basic: {basic}"
            );
            let received = fake.received().await;
            assert!(received.len() >= 3, "{flavour:?}: {}", received.len());
            for request in received {
                assert_eq!(
                    request
                        .headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned()),
                    Some(expected.clone()),
                    "{flavour:?} {} {}",
                    request.method,
                    request.url.path()
                );
            }
        }
    }
}

on_both!(a_repository_gone_from_the_workspace_leaves_the_coverage_table);

/// After a pass over every repository of a site, the coverage of a repository the pass no
/// longer has (deleted, or no longer configured) is forgotten; a pass over one repository
/// forgets nothing.
async fn a_repository_gone_from_the_workspace_leaves_the_coverage_table(on: On) {
    let fake = Fake::start(Flavour::Cloud).await;
    let listing = |names: &[&str]| {
        let values: Vec<Value> = names.iter().map(|n| json!({"full_name": n})).collect();
        ResponseTemplate::new(200).set_body_json(json!({"values": values, "pagelen": 100}))
    };
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/beta"))
        .respond_with(listing(&["beta/one", "beta/two"]))
        .mount(&fake.server)
        .await;
    for repository in ["beta/one", "beta/two"] {
        cloud_list(&fake.server, repository, Vec::new()).await;
    }
    let clock = ManualClock::frozen(t0());
    let Some(app) = spawn_on(
        on,
        "drift_forget",
        settings(fake.site(&["beta/*"])),
        clock.clock(),
    )
    .await
    else {
        return;
    };
    assert_eq!(reconcile(&app).await.0, 200);
    let names = |rows: Vec<Row>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(names(coverage(&app).await), ["beta/one", "beta/two"]);

    // beta/two is deleted: the workspace lists beta/one only.
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/beta"))
        .respond_with(listing(&["beta/one"]))
        .with_priority(1)
        .mount(&fake.server)
        .await;
    clock.set(t0() + chrono::Duration::hours(1));
    let response = app
        .post_bearer("/reconcile?repository=beta/one", TOKEN)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(names(coverage(&app).await), ["beta/one", "beta/two"]);
    clock.set(t0() + chrono::Duration::hours(2));
    assert_eq!(reconcile(&app).await.0, 200);
    assert_eq!(names(coverage(&app).await), ["beta/one"]);
}

on_both!(datacenter_project_webhooks_cover_or_fall_short_and_a_403_names_the_admin_permission);

/// Data Center: PAY's project webhook lacks `pr:merged` (incomplete), OPS's project webhooks
/// may not be read but OPS/tool has its own (covered by the repository's), and SEC's may not be
/// read at all (unknown, naming PROJECT_ADMIN and REPO_ADMIN).
async fn datacenter_project_webhooks_cover_or_fall_short_and_a_403_names_the_admin_permission(
    on: On,
) {
    let fake = Fake::start(Flavour::DataCenter).await;
    let all = pr_reminder::connect::DATACENTER_EVENTS;
    let short: Vec<&str> = all.iter().copied().filter(|e| *e != "pr:merged").collect();
    fake.seed(
        "/rest/api/1.0/projects/PAY/webhooks",
        crate::connect::dc_hook(1, HOOK_URL, &short, true),
    );
    fake.forbid("/rest/api/1.0/projects/OPS/webhooks");
    fake.seed(
        "/rest/api/1.0/projects/OPS/repos/tool/webhooks",
        crate::connect::dc_hook(2, HOOK_URL, all, true),
    );
    fake.forbid("/rest/api/1.0/projects/SEC/webhooks");
    fake.forbid("/rest/api/1.0/projects/SEC/repos/vault/webhooks");
    for (project, slug) in [("PAY", "api"), ("OPS", "tool"), ("SEC", "vault")] {
        Mock::given(method("GET"))
            .and(path(format!(
                "/rest/api/1.0/projects/{project}/repos/{slug}/pull-requests"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"size": 0, "limit": 25, "start": 0, "isLastPage": true, "values": []}),
            ))
            .mount(&fake.server)
            .await;
    }
    let Some(app) = spawn_on(
        on,
        "drift_datacenter",
        settings(fake.site(&["PAY/api", "OPS/tool", "SEC/vault"])),
        ManualClock::frozen(t0()).clock(),
    )
    .await
    else {
        return;
    };
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        coverage(&app).await,
        [
            row("OPS/tool", "covered", Some("repository"), None),
            (
                "PAY/api".into(),
                "incomplete".into(),
                Some("project".into()),
                Some("pr:merged".into()),
                None
            ),
            row(
                "SEC/vault",
                "unknown",
                None,
                Some(
                    "no permission: the token needs PROJECT_ADMIN on project SEC: an HTTP access \
                     token with Project admin permission; no permission: the token needs \
                     REPO_ADMIN on repository SEC/vault: an HTTP access token with Repository \
                     admin permission"
                )
            ),
        ]
    );
    let rows = page_rows(&app).await;
    assert!(
        rows[1]
            .2
            .contains("project hook (events missing: pr:merged)"),
        "{rows:?}"
    );
}

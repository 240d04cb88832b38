//! `pr-reminder connect` (issue 26) against fake Bitbucket Cloud and Data Center hook APIs that
//! keep state: hooks are listed page by page, created, updated, refused; every test asserts the
//! exact writes, the hooks left behind, and the report.
//!
//! The fakes follow the documented contracts:
//! - Cloud (developer.atlassian.com/cloud/bitbucket/rest/api-group-workspaces/
//!   #api-workspaces-workspace-hooks-get/-post, #api-workspaces-workspace-hooks-uid-put, and
//!   api-group-repositories/#api-repositories-workspace-repo-slug-hooks-get/-post/-uid-put):
//!   pages `{pagelen, size, page, values, next}` (`next` an absolute URL); a hook is
//!   `{uuid: "{…}", url, description, subject_type, active, events, secret_set, created_at}` and
//!   never shows its secret; create answers 201 with the hook; update answers 200 and keeps the
//!   secret when the body omits it; a token without the webhook scope or admin role gets 403
//!   `{"type": "error", "error": {"message"}}` (developer.atlassian.com/cloud/bitbucket/rest/
//!   intro/#standardized-error-responses).
//! - Data Center (developer.atlassian.com/server/bitbucket/rest/v815/api-group-project/ "Find
//!   webhooks", "Create webhook", "Update webhook", "Test webhook", and the same under
//!   api-group-repository/; confluence.atlassian.com/bitbucketserver/manage-webhooks-938025878.html):
//!   pages `{size, limit, start, isLastPage, values, nextPageStart}` with `limit` capped by the
//!   server (here 2); a webhook is `{id, name, createdDate, updatedDate, events, configuration,
//!   url, active, scopeType}`; create 201, update 200; an unknown event name is refused with 400
//!   (a live 10.4.3 server refuses `pr:reviewer:changes_requested`, DESIGN.md §4); no permission
//!   is 403 `{"errors": [{"message", "exceptionName"}]}`; a server without project webhooks
//!   answers 404 there.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use percent_encoding::percent_decode_str;
use pr_reminder::bitbucket::rest::RetryPolicy;
use pr_reminder::config::Site;
use pr_reminder::connect::{self, ConnectReport, Target, CLOUD_EVENTS, DATACENTER_EVENTS};
use pr_reminder::domain::Flavour;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::reconcile::{site, API_TOKEN};

const SECRET: &str = "the-webhook-secret-4f9a0c";
pub(crate) const HOOK_URL: &str = "https://pr.example.com/webhooks/bitbucket";

/// What the fake holds: hooks by their collection's path, secrets by hook id, and which
/// collections the token may not touch (403) or that do not exist (404).
#[derive(Default)]
struct State {
    hooks: HashMap<String, Vec<Value>>,
    secrets: HashMap<String, String>,
    forbidden: HashSet<String>,
    missing: HashSet<String>,
    next_id: u64,
    tests: Vec<String>,
}

pub(crate) struct Fake {
    pub(crate) server: MockServer,
    state: Arc<Mutex<State>>,
    flavour: Flavour,
    /// Requests before this many are from earlier runs (`reset`).
    seen: Mutex<usize>,
}

fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/json")
        .set_body_json(body)
}

impl Fake {
    pub(crate) async fn start(flavour: Flavour) -> Fake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let base = server.uri();
        let pattern = match flavour {
            Flavour::Cloud => r"^/2\.0/(workspaces/[^/]+|repositories/[^/]+/[^/]+)/hooks(/[^/]+)?$",
            Flavour::DataCenter => {
                r"^/rest/api/1\.0/projects/[^/]+(/repos/[^/]+)?/webhooks(/[^/]+)?$"
            }
        };
        Mock::given(path_regex(pattern))
            .respond_with(move |request: &Request| {
                let mut state = shared.lock().unwrap();
                match flavour {
                    Flavour::Cloud => cloud(&mut state, &base, request),
                    Flavour::DataCenter => datacenter(&mut state, request),
                }
            })
            .mount(&server)
            .await;
        Fake {
            server,
            state,
            flavour,
            seen: Mutex::new(0),
        }
    }

    pub(crate) fn site(&self, repositories: &[&str]) -> Site {
        let url = match self.flavour {
            Flavour::Cloud => format!("{}/2.0", self.server.uri()),
            Flavour::DataCenter => self.server.uri(),
        };
        let mut site = site(self.flavour, url, repositories);
        site.webhook_url = Some(HOOK_URL.parse().unwrap());
        site
    }

    /// Puts a hook in a collection (`/2.0/workspaces/acme/hooks`), as Bitbucket would list it.
    pub(crate) fn seed(&self, collection: &str, hook: Value) {
        let mut state = self.state.lock().unwrap();
        state
            .hooks
            .entry(collection.to_owned())
            .or_default()
            .push(hook);
    }

    pub(crate) fn forbid(&self, collection: &str) {
        self.state
            .lock()
            .unwrap()
            .forbidden
            .insert(collection.to_owned());
    }

    fn hooks(&self, collection: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .hooks
            .get(collection)
            .cloned()
            .unwrap_or_default()
    }

    /// The requests since the last `reset`.
    pub(crate) async fn received(&self) -> Vec<Request> {
        let all = self.server.received_requests().await.unwrap();
        let seen = *self.seen.lock().unwrap();
        all.into_iter().skip(seen).collect()
    }

    /// The writes received: `METHOD path` and the JSON body.
    async fn writes(&self) -> Vec<(String, Value)> {
        self.received()
            .await
            .iter()
            .filter(|r| r.method.as_str() != "GET")
            .map(|r| {
                let line = match r.url.query() {
                    Some(q) => format!("{} {}?{q}", r.method, r.url.path()),
                    None => format!("{} {}", r.method, r.url.path()),
                };
                (line, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            })
            .collect()
    }

    async fn reads(&self) -> usize {
        self.received()
            .await
            .iter()
            .filter(|r| r.method.as_str() == "GET")
            .count()
    }

    async fn reset(&self) {
        let all = self.server.received_requests().await.unwrap().len();
        *self.seen.lock().unwrap() = all;
    }
}

fn cloud_error(status: u16, message: &str) -> ResponseTemplate {
    json_response(
        status,
        json!({"type": "error", "error": {"message": message}}),
    )
}

/// Cloud's hooks API: `.../hooks` (GET paged by `page`, POST) and `.../hooks/{uid}` (PUT).
fn cloud(state: &mut State, base: &str, request: &Request) -> ResponseTemplate {
    let path = request.url.path().to_owned();
    let (collection, uid) = match path.rsplit_once("/hooks/") {
        Some((head, uid)) => (
            format!("{head}/hooks"),
            Some(percent_decode_str(uid).decode_utf8_lossy().into_owned()),
        ),
        None => (path.clone(), None),
    };
    if state.forbidden.contains(&collection) {
        return cloud_error(
            403,
            "Your credentials lack one or more required privilege scopes.",
        );
    }
    let subject = if collection.starts_with("/2.0/workspaces/") {
        "workspace"
    } else {
        "repository"
    };
    match (request.method.as_str(), uid) {
        ("GET", None) => {
            let hooks = state.hooks.get(&collection).cloned().unwrap_or_default();
            let page: usize = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1);
            let pagelen = 2;
            let values: Vec<Value> = hooks
                .iter()
                .skip((page - 1) * pagelen)
                .take(pagelen)
                .cloned()
                .collect();
            let mut body =
                json!({"pagelen": pagelen, "size": hooks.len(), "page": page, "values": values});
            if page * pagelen < hooks.len() {
                body["next"] = json!(format!("{base}{collection}?page={}", page + 1));
            }
            json_response(200, body)
        }
        ("POST", None) => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let (Some(url), Some(events)) = (body["url"].as_str(), body["events"].as_array())
            else {
                return cloud_error(400, "url and events are required");
            };
            if events.is_empty() {
                return cloud_error(400, "events: at least one");
            }
            state.next_id += 1;
            let uuid = format!("{{00000000-0000-4000-8000-{:012}}}", state.next_id);
            let secret = body["secret"].as_str().unwrap_or_default().to_owned();
            let hook = json!({
                "uuid": uuid, "url": url, "description": body["description"],
                "subject_type": subject, "active": body["active"].as_bool().unwrap_or(true),
                "events": events, "secret_set": !secret.is_empty(),
                "created_at": "2026-12-06T10:00:00.000000+00:00",
            });
            state.secrets.insert(uuid, secret);
            state
                .hooks
                .entry(collection)
                .or_default()
                .push(hook.clone());
            json_response(201, hook)
        }
        ("PUT", Some(uid)) => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let Some(hook) = state
                .hooks
                .get_mut(&collection)
                .and_then(|hooks| hooks.iter_mut().find(|h| h["uuid"] == uid.as_str()))
            else {
                return cloud_error(404, "No such hook");
            };
            for key in ["url", "description", "active", "events"] {
                if !body[key].is_null() {
                    hook[key] = body[key].clone();
                }
            }
            // An omitted secret is kept.
            if let Some(secret) = body["secret"].as_str() {
                hook["secret_set"] = json!(!secret.is_empty());
                let answer = hook.clone();
                state.secrets.insert(uid, secret.to_owned());
                return json_response(200, answer);
            }
            json_response(200, hook.clone())
        }
        _ => cloud_error(405, "method not allowed"),
    }
}

fn dc_error(status: u16, message: &str, exception: &str) -> ResponseTemplate {
    json_response(
        status,
        json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]}),
    )
}

/// Data Center's webhooks API: `.../webhooks` (GET paged by `start`/`limit`, POST),
/// `.../webhooks/{id}` (PUT) and `.../webhooks/test?webhookId=` (POST).
fn datacenter(state: &mut State, request: &Request) -> ResponseTemplate {
    let path = request.url.path().to_owned();
    let (collection, tail) = match path.rsplit_once("/webhooks/") {
        Some((head, tail)) => (format!("{head}/webhooks"), Some(tail.to_owned())),
        None => (path.clone(), None),
    };
    if state.missing.contains(&collection) {
        return dc_error(404, "Not Found", "");
    }
    if state.forbidden.contains(&collection) {
        return dc_error(
            403,
            "You are not permitted to access this resource",
            "com.atlassian.bitbucket.AuthorisationException",
        );
    }
    let scope = if collection.contains("/repos/") {
        "repository"
    } else {
        "project"
    };
    let known = DATACENTER_EVENTS;
    match (request.method.as_str(), tail.as_deref()) {
        ("GET", None) => {
            let hooks = state.hooks.get(&collection).cloned().unwrap_or_default();
            let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
            let start: usize = query.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
            // An administrator's page.max caps what is asked for.
            let limit: usize = query
                .get("limit")
                .and_then(|s| s.parse().ok())
                .unwrap_or(25)
                .min(2);
            let values: Vec<Value> = hooks.iter().skip(start).take(limit).cloned().collect();
            let last = start + limit >= hooks.len();
            let mut body = json!({"size": values.len(), "limit": limit, "start": start,
                                  "isLastPage": last, "values": values});
            if !last {
                body["nextPageStart"] = json!(start + limit);
            }
            json_response(200, body)
        }
        ("POST", Some("test")) => {
            let id = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "webhookId")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            state.tests.push(format!("{collection} {id}"));
            json_response(200, json!({}))
        }
        ("POST", None) | ("PUT", Some(_)) => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let events: Vec<Value> = body["events"].as_array().cloned().unwrap_or_default();
            if let Some(bad) = events
                .iter()
                .find(|e| !known.contains(&e.as_str().unwrap_or("")) && *e != "repo:refs_changed")
            {
                return dc_error(
                    400,
                    &format!("Invalid event id: {bad}"),
                    "com.atlassian.bitbucket.webhook.InvalidWebhookEventException",
                );
            }
            let secret = body["configuration"]["secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if request.method.as_str() == "POST" {
                state.next_id += 1;
                let id = state.next_id;
                let hook = json!({
                    "id": id, "name": body["name"], "createdDate": 1765015200000_i64,
                    "updatedDate": 1765015200000_i64, "events": events,
                    "configuration": {}, "url": body["url"],
                    "active": body["active"].as_bool().unwrap_or(true), "scopeType": scope,
                });
                state.secrets.insert(id.to_string(), secret);
                state
                    .hooks
                    .entry(collection)
                    .or_default()
                    .push(hook.clone());
                return json_response(201, hook);
            }
            let id = tail.unwrap_or_default();
            let Some(hook) = state.hooks.get_mut(&collection).and_then(|hooks| {
                hooks.iter_mut().find(|h| {
                    h["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id.as_str())
                })
            }) else {
                return dc_error(404, "No webhook", "");
            };
            for key in ["name", "url", "active", "events"] {
                if !body[key].is_null() {
                    hook[key] = body[key].clone();
                }
            }
            let answer = hook.clone();
            state.secrets.insert(id, secret);
            json_response(200, answer)
        }
        _ => dc_error(405, "method not allowed", ""),
    }
}

pub(crate) async fn run(sites: &[Site], dry_run: bool) -> ConnectReport {
    let secret = SecretString::from(SECRET.to_owned());
    let targets: Vec<Target> = sites
        .iter()
        .map(|site| Target {
            site,
            secret: &secret,
        })
        .collect();
    let retry = RetryPolicy {
        min_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
        retries: 1,
    };
    let report = connect::run(&targets, dry_run, retry).await;
    let shown = format!(
        "{}\n{}\n{report:?}",
        report.to_text(),
        serde_json::to_string(&report).unwrap()
    );
    assert!(!shown.contains(SECRET), "the secret is shown: {shown}");
    assert!(!shown.contains(API_TOKEN), "the token is shown: {shown}");
    report
}

pub(crate) fn foreign(uuid: &str, url: &str) -> Value {
    json!({"uuid": uuid, "url": url, "description": "CI", "subject_type": "workspace",
           "active": true, "events": ["repo:push"], "secret_set": true,
           "created_at": "2025-01-01T00:00:00+00:00"})
}

fn strings(list: &[&str]) -> Vec<Value> {
    list.iter().map(|s| json!(s)).collect()
}

#[tokio::test]
async fn cloud_creates_the_workspace_hook_once_and_a_dry_run_writes_nothing() {
    let fake = Fake::start(Flavour::Cloud).await;
    let ws = "/2.0/workspaces/acme/hooks";
    // Three foreign hooks: the list takes two pages.
    for (i, url) in [
        "https://ci.example.com/a",
        "https://ci.example.com/b",
        "https://chat.example.com/x",
    ]
    .iter()
    .enumerate()
    {
        fake.seed(ws, foreign(&format!("{{f{i}}}"), url));
    }
    let sites = [fake.site(&["acme/*", "acme/api"])];

    let dry = run(&sites, true).await;
    assert!(dry.ok && dry.dry_run);
    assert_eq!(fake.writes().await, vec![], "a dry run sends no write");
    assert_eq!(fake.reads().await, 2, "both pages of the list");
    let site_line = format!("{}/2.0 (cloud) -> {HOOK_URL}", fake.server.uri());
    assert_eq!(
        dry.to_text(),
        format!("{site_line} [dry run: nothing changed]\n  workspace acme: would create\n")
    );

    fake.reset().await;
    let first = run(&sites, false).await;
    assert!(first.ok);
    let uuid = "{00000000-0000-4000-8000-000000000001}";
    assert_eq!(
        first.to_text(),
        format!("{site_line}\n  workspace acme: created\n")
    );
    assert_eq!(first.sites[0].scopes[0].hook.as_deref(), Some(uuid));
    assert_eq!(
        fake.writes().await,
        vec![(
            format!("POST {ws}"),
            json!({"description": "pr-reminder", "url": HOOK_URL, "active": true,
                   "events": strings(CLOUD_EVENTS), "secret": SECRET})
        )]
    );
    let hooks = fake.hooks(ws);
    assert_eq!(hooks.len(), 4);
    for (i, hook) in hooks[..3].iter().enumerate() {
        assert_eq!(hook["uuid"], format!("{{f{i}}}"), "foreign hooks untouched");
        assert_eq!(hook["events"], json!(["repo:push"]));
    }
    assert_eq!(fake.state.lock().unwrap().secrets[uuid], SECRET);

    fake.reset().await;
    let second = run(&sites, false).await;
    assert!(second.ok);
    assert_eq!(
        second.to_text(),
        format!("{site_line}\n  workspace acme: ok\n")
    );
    assert_eq!(fake.writes().await, vec![], "a second run changes nothing");
    assert_eq!(fake.hooks(ws).len(), 4);
}

#[tokio::test]
async fn cloud_repairs_an_inactive_event_short_hook_without_a_secret_and_keeps_its_extras() {
    let fake = Fake::start(Flavour::Cloud).await;
    let ws = "/2.0/workspaces/acme/hooks";
    fake.seed(ws, foreign("{f0}", "https://ci.example.com/a"));
    fake.seed(
        ws,
        json!({"uuid": "{own}", "url": format!("{HOOK_URL}/"), "description": "PR bot",
               "subject_type": "workspace", "active": false,
               "events": ["repo:push", "pullrequest:created", "pullrequest:updated"],
               "secret_set": false, "created_at": "2025-01-01T00:00:00+00:00"}),
    );
    let sites = [fake.site(&["acme/*"])];

    let dry = run(&sites, true).await;
    let missing: Vec<&str> = CLOUD_EVENTS[2..].to_vec();
    assert_eq!(
        dry.to_text().lines().nth(1).unwrap(),
        format!(
            "  workspace acme: would update (events added: {}; activated; secret set)",
            missing.join(", ")
        )
    );
    assert_eq!(fake.writes().await, vec![]);

    let report = run(&sites, false).await;
    assert!(report.ok);
    let line = &report.sites[0].scopes[0];
    assert_eq!(line.outcome, connect::Outcome::Updated);
    assert_eq!(line.events_added, missing);
    let mut events = vec!["repo:push", "pullrequest:created", "pullrequest:updated"];
    events.extend(&missing);
    assert_eq!(
        fake.writes().await,
        vec![(
            format!("PUT {ws}/%7Bown%7D"),
            json!({"description": "PR bot", "url": HOOK_URL, "active": true,
                   "events": strings(&events), "secret": SECRET})
        )]
    );
    assert_eq!(
        fake.hooks(ws)[0]["active"],
        true,
        "the foreign hook untouched"
    );
    assert_eq!(fake.hooks(ws)[0]["events"], json!(["repo:push"]));

    fake.reset().await;
    let again = run(&sites, false).await;
    assert_eq!(again.sites[0].scopes[0].outcome, connect::Outcome::Ok);
    assert_eq!(fake.writes().await, vec![]);
}

#[tokio::test]
async fn cloud_without_workspace_admin_uses_repository_hooks_and_names_the_missing_scope() {
    let fake = Fake::start(Flavour::Cloud).await;
    fake.forbid("/2.0/workspaces/acme/hooks");
    fake.forbid("/2.0/workspaces/beta/hooks");
    fake.forbid("/2.0/repositories/acme/web/hooks");
    // beta/*: the repositories it has now (GET /2.0/repositories/{workspace}, paged
    // `{values: [{full_name, uuid}], next}`: api-group-repositories/#api-repositories-workspace-get).
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/beta"))
        .respond_with(json_response(
            200,
            json!({"pagelen": 100, "values": [{"full_name": "beta/one", "uuid": "{b1}"}]}),
        ))
        .mount(&fake.server)
        .await;
    let sites = [fake.site(&["acme/api", "acme/web", "beta/*"])];

    let report = run(&sites, false).await;
    assert!(!report.ok, "acme/web is not covered");
    let text = report.to_text();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "  workspace acme: no permission (HTTP 403: the token needs to manage the webhooks of \
             workspace acme: a workspace access token with the webhook scope, or an API token \
             with read:webhook:bitbucket and write:webhook:bitbucket of a workspace admin); its \
             listed repositories get repository hooks instead",
            "  repository acme/api: created",
            "  repository acme/web: no permission (HTTP 403: the token needs to manage the \
             webhooks of repository acme/web: a repository, project or workspace access token \
             with the webhook scope, or an API token with read:webhook:bitbucket and \
             write:webhook:bitbucket of a repository admin)",
            "  workspace beta: no permission (HTTP 403: the token needs to manage the webhooks \
             of workspace beta: a workspace access token with the webhook scope, or an API \
             token with read:webhook:bitbucket and write:webhook:bitbucket of a workspace \
             admin); each of its repositories gets a repository hook instead (run connect again \
             after creating a repository)",
            "  repository beta/one: created",
        ]
    );
    let scopes = &report.sites[0].scopes;
    let ok: Vec<bool> = scopes.iter().map(|s| s.ok()).collect();
    assert_eq!(ok, [true, true, false, true, true]);
    assert_eq!(scopes[2].http_status, Some(403));
    assert_eq!(
        fake.writes()
            .await
            .into_iter()
            .map(|(line, _)| line)
            .collect::<Vec<_>>(),
        [
            "POST /2.0/repositories/acme/api/hooks",
            "POST /2.0/repositories/beta/one/hooks"
        ]
    );
    assert_eq!(
        fake.hooks("/2.0/repositories/acme/api/hooks")[0]["subject_type"],
        "repository"
    );
}

pub(crate) fn dc_hook(id: i64, url: &str, events: &[&str], active: bool) -> Value {
    json!({"id": id, "name": "someone's", "createdDate": 1, "updatedDate": 1,
           "events": events, "configuration": {}, "url": url, "active": active,
           "scopeType": "project"})
}

#[tokio::test]
async fn datacenter_project_webhooks_then_repository_webhooks_and_test_connection() {
    let fake = Fake::start(Flavour::DataCenter).await;
    let pay = "/rest/api/1.0/projects/PAY/webhooks";
    let ops = "/rest/api/1.0/projects/OPS/webhooks";
    // PAY: two foreign webhooks and an own one that lacks two events (three pages of two).
    fake.seed(
        pay,
        dc_hook(
            501,
            "https://ci.example.com/a",
            &["repo:refs_changed"],
            true,
        ),
    );
    fake.seed(
        pay,
        dc_hook(
            502,
            "https://ci.example.com/b",
            &["repo:refs_changed"],
            true,
        ),
    );
    let short: Vec<&str> = DATACENTER_EVENTS[..DATACENTER_EVENTS.len() - 2].to_vec();
    fake.seed(pay, dc_hook(503, HOOK_URL, &short, true));
    // OPS: a server without project webhooks answers 404; its listed repository gets one.
    fake.state.lock().unwrap().missing.insert(ops.to_owned());
    // SEC: no project admin, no repository admin.
    fake.forbid("/rest/api/1.0/projects/SEC/webhooks");
    fake.forbid("/rest/api/1.0/projects/SEC/repos/vault/webhooks");
    // LEG/*: the same old server; each of the project's repositories gets a webhook
    // (GET /rest/api/1.0/projects/{KEY}/repos, paged like every list: api-group-project/
    // "Get repositories for project").
    fake.state
        .lock()
        .unwrap()
        .missing
        .insert("/rest/api/1.0/projects/LEG/webhooks".to_owned());
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/LEG/repos"))
        .respond_with(json_response(
            200,
            json!({"size": 1, "limit": 1000, "start": 0, "isLastPage": true,
                   "values": [{"slug": "one", "project": {"key": "LEG"}}]}),
        ))
        .mount(&fake.server)
        .await;
    let sites = [fake.site(&["PAY/*", "OPS/deploy", "SEC/vault", "LEG/*"])];

    let dry = run(&sites, true).await;
    assert!(!dry.ok, "SEC cannot be made right");
    assert_eq!(
        fake.writes().await,
        vec![],
        "a dry run sends no write, no test"
    );

    fake.reset().await;
    let report = run(&sites, false).await;
    let text = report.to_text();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "  project PAY: updated (events added: pr:comment:edited, pr:comment:deleted; test \
             connection: sent)",
            "  project OPS: failed (HTTP 404: project OPS was not found, or the token cannot see \
             it, or the server has no project webhooks); its listed repositories get repository \
             hooks instead",
            "  repository OPS/deploy: created (test connection: sent)",
            "  project SEC: no permission (HTTP 403: the token needs PROJECT_ADMIN on project \
             SEC: an HTTP access token with Project admin permission); its listed repositories \
             get repository hooks instead",
            "  repository SEC/vault: no permission (HTTP 403: the token needs REPO_ADMIN on \
             repository SEC/vault: an HTTP access token with Repository admin permission)",
            "  project LEG: failed (HTTP 404: project LEG was not found, or the token cannot see \
             it, or the server has no project webhooks); each of its repositories gets a \
             repository hook instead (run connect again after creating a repository)",
            "  repository LEG/one: created (test connection: sent)",
        ]
    );
    assert!(!report.ok);
    let deploy = "/rest/api/1.0/projects/OPS/repos/deploy/webhooks";
    assert_eq!(
        fake.writes().await,
        vec![
            (
                format!("PUT {pay}/503"),
                json!({"name": "someone's", "url": HOOK_URL, "active": true,
                       "events": strings(DATACENTER_EVENTS),
                       "configuration": {"secret": SECRET}})
            ),
            (format!("POST {pay}/test?webhookId=503"), json!({})),
            (
                format!("POST {deploy}"),
                json!({"name": "pr-reminder", "url": HOOK_URL, "active": true,
                       "events": strings(DATACENTER_EVENTS),
                       "configuration": {"secret": SECRET}})
            ),
            (format!("POST {deploy}/test?webhookId=1"), json!({})),
            (
                "POST /rest/api/1.0/projects/LEG/repos/one/webhooks".to_owned(),
                json!({"name": "pr-reminder", "url": HOOK_URL, "active": true,
                       "events": strings(DATACENTER_EVENTS),
                       "configuration": {"secret": SECRET}})
            ),
            (
                "POST /rest/api/1.0/projects/LEG/repos/one/webhooks/test?webhookId=2".to_owned(),
                json!({})
            ),
        ]
    );
    let hooks = fake.hooks(pay);
    assert_eq!(
        hooks[0],
        dc_hook(
            501,
            "https://ci.example.com/a",
            &["repo:refs_changed"],
            true
        )
    );
    assert_eq!(
        hooks[1],
        dc_hook(
            502,
            "https://ci.example.com/b",
            &["repo:refs_changed"],
            true
        )
    );
    assert_eq!(fake.state.lock().unwrap().secrets["503"], SECRET);

    fake.reset().await;
    let again = run(&sites, false).await;
    let outcomes: Vec<_> = again.sites[0]
        .scopes
        .iter()
        .map(|s| (s.name.as_str(), s.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("PAY", connect::Outcome::Ok),
            ("OPS", connect::Outcome::Failed),
            ("OPS/deploy", connect::Outcome::Ok),
            ("SEC", connect::Outcome::NoPermission),
            ("SEC/vault", connect::Outcome::NoPermission),
            ("LEG", connect::Outcome::Failed),
            ("LEG/one", connect::Outcome::Ok),
        ]
    );
    let writes: Vec<String> = fake.writes().await.into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        writes,
        [
            format!("POST {pay}/test?webhookId=503"),
            format!("POST {deploy}/test?webhookId=1"),
            "POST /rest/api/1.0/projects/LEG/repos/one/webhooks/test?webhookId=2".to_owned(),
        ],
        "the second run only asks for test connections"
    );
}

/// The binary as an operator runs it: `connect` reads the single-site variables, says what it
/// did, exits 1 when a scope could not be made right and 2 when a setting is missing, and shows
/// neither the secret nor the token, in its report or its logs.
#[tokio::test]
async fn the_binary_connects_reports_and_exits_by_the_outcome() {
    let fake = Fake::start(Flavour::Cloud).await;
    let dir = tempfile::tempdir().unwrap();
    let api = format!("{}/2.0", fake.server.uri());
    let run = |args: &'static [&'static str], webhook_url: Option<&'static str>| {
        let dir = dir.path().to_owned();
        let api = api.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut cmd = crate::helpers::clean_command(env!("CARGO_BIN_EXE_pr-reminder"));
                cmd.current_dir(dir)
                    .args(["--log-format", "json", "connect"])
                    .args(args)
                    .env("PR_REMINDER_WEBHOOK_SECRET", SECRET)
                    .env("PR_REMINDER_BITBUCKET_KIND", "cloud")
                    .env("PR_REMINDER_BITBUCKET_URL", api)
                    .env("PR_REMINDER_BITBUCKET_TOKEN", API_TOKEN)
                    .env("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/*");
                if let Some(url) = webhook_url {
                    cmd.env("PR_REMINDER_BITBUCKET_WEBHOOK_URL", url);
                }
                let out = cmd.output().unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                for text in [&stdout, &stderr] {
                    assert!(
                        !text.contains(SECRET) && !text.contains(API_TOKEN),
                        "{text}"
                    );
                }
                (out.status.code(), stdout, stderr)
            })
            .await
            .unwrap()
        }
    };

    let (code, stdout, stderr) = run(&[], None).await;
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("bitbucket[0].webhook_url is not set")
            && stderr.contains("PR_REMINDER_BITBUCKET_WEBHOOK_URL"),
        "{stderr}"
    );
    assert_eq!(fake.received().await.len(), 0, "nothing sent");

    let (code, stdout, _) = run(&["--dry-run"], Some(HOOK_URL)).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.ends_with("  workspace acme: would create\n"),
        "{stdout}"
    );
    assert_eq!(fake.writes().await, vec![]);

    let (code, stdout, _) = run(&[], Some(HOOK_URL)).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        format!("{api} (cloud) -> {HOOK_URL}\n  workspace acme: created\n")
    );

    let (code, stdout, _) = run(&["--json"], Some(HOOK_URL)).await;
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report,
        json!({"ok": true, "dry_run": false, "sites": [{
            "site": api, "kind": "cloud", "webhook_url": HOOK_URL,
            "scopes": [{"scope": "workspace", "name": "acme", "outcome": "ok",
                        "hook": "{00000000-0000-4000-8000-000000000001}"}]}]})
    );

    let (code, stdout, _) = run(&["--site", "nowhere.example"], Some(HOOK_URL)).await;
    assert_eq!(code, Some(2), "{stdout}");

    fake.forbid("/2.0/workspaces/acme/hooks");
    let (code, stdout, stderr) = run(&[], Some(HOOK_URL)).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("  workspace acme: no permission (HTTP 403: the token needs"),
        "{stdout}"
    );
    assert!(
        stderr.contains("the webhook could not be made right"),
        "{stderr}"
    );
    assert_eq!(fake.hooks("/2.0/workspaces/acme/hooks").len(), 1);
}

//! `pr-reminder connect`: installs pr-reminder's webhook on every configured Bitbucket site and
//! keeps it right, idempotently. A hook is pr-reminder's own when its URL is the site's
//! `webhook_url`; no other hook is ever changed or deleted, and nothing is deleted at all.
//!
//! Per scope, the hooks are listed (every page); with no own hook one is created (description
//! `pr-reminder`, active, the secret, exactly [`CLOUD_EVENTS`] / [`DATACENTER_EVENTS`]); an own
//! hook that is inactive, lacks events, or (Cloud) has no secret is updated, keeping any extra
//! events someone added; otherwise it is `ok`. On Data Center, Bitbucket's "test connection" is
//! then asked for (Bitbucket sends a `diagnostics:ping`).
//!
//! Scopes, widest first:
//! - Cloud: the workspace of each selector (`acme/*` or `acme/api` → workspace `acme`),
//!   `GET/POST /2.0/workspaces/{ws}/hooks`, `PUT …/hooks/{uid}`: one hook that covers every
//!   repository of the workspace, future ones included. When the token cannot manage workspace
//!   hooks (403), the repositories listed one by one get repository hooks,
//!   `/2.0/repositories/{ws}/{slug}/hooks`, and for `acme/*` every repository the workspace has
//!   now (listed as reconciliation lists them; one created later needs another run). Sources: developer.atlassian.com/cloud/bitbucket/rest/
//!   api-group-workspaces/#api-workspaces-workspace-hooks-get (list, paged `{values, next}`;
//!   items `uuid`, `url`, `description`, `active`, `events`, `secret_set`, never the secret),
//!   …-hooks-post (create: `description`, `url`, `active`, `events`, `secret`; 201),
//!   …-hooks-uid-put (update; an omitted `secret` is kept), api-group-repositories/
//!   #api-repositories-workspace-repo-slug-hooks-get/-post and …-hooks-uid-put (the same for one
//!   repository); support.atlassian.com/bitbucket-cloud/kb/how-to-create-workspace-level-webhooks
//!   (workspace hooks exist only through the API). 403 when the token lacks the scope or its
//!   account the admin role (developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication).
//! - Data Center: the project of each selector (`PAY/*`, `PAY/api` → project `PAY`),
//!   `GET/POST {base}/rest/api/1.0/projects/{KEY}/webhooks`, `PUT …/webhooks/{id}` (inherited by
//!   every repository of the project; PROJECT_ADMIN); when that is refused (403, or 404 from a
//!   server without project webhooks) the repositories listed one by one, or for `PAY/*` every
//!   repository the project has now, get `…/projects/{KEY}/repos/{slug}/webhooks` (REPO_ADMIN). Body `{name, url, active, events,
//!   configuration: {secret}}`; lists paged `{values, isLastPage, nextPageStart}`; the list does
//!   not give the secret, so a Data Center hook's secret is set on every write but never judged.
//!   Test connection: `POST …/webhooks/test?webhookId={id}` (a 404 or 405 there means the server
//!   does not offer it, and is only noted). Sources: confluence.atlassian.com/bitbucketserver/
//!   manage-webhooks-938025878.html; developer.atlassian.com/server/bitbucket/rest/v815/
//!   api-group-project/ ("Find webhooks", "Create webhook", "Update webhook", "Test webhook")
//!   and api-group-repository/ (the same per repository).
//!
//! The secret is sent in request bodies only: never logged, printed, or kept in an error (any
//! text from Bitbucket is scrubbed of it before it is shown).

use std::fmt::Write as _;

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Value};

use crate::bitbucket::rest::hooks::{self, missing_events, own_hook, Hook, Scope};
pub use crate::bitbucket::rest::hooks::{ScopeKind, CLOUD_EVENTS, DATACENTER_EVENTS, HOOK_NAME};
use crate::bitbucket::rest::{self, Api, Requests, RestError, RetryPolicy};
use crate::clock::Clock;
use crate::config::Site;
use crate::domain::Flavour;

/// What `connect` did (or, with `--dry-run`, would do) for one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No own hook existed; one was created.
    Created,
    /// The own hook was inactive, short of events or without a secret; it was updated.
    Updated,
    /// The own hook was right already.
    Ok,
    /// `--dry-run`: would create.
    WouldCreate,
    /// `--dry-run`: would update.
    WouldUpdate,
    /// Bitbucket answered 403: the token may not manage hooks here.
    NoPermission,
    /// Anything else that went wrong (the detail says what).
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Ok => "ok",
            Outcome::WouldCreate => "would create",
            Outcome::WouldUpdate => "would update",
            Outcome::NoPermission => "no permission",
            Outcome::Failed => "failed",
        }
    }
}

/// One scope's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeReport {
    /// Workspace, project or repository.
    pub scope: ScopeKind,
    /// `acme`, `PAY`, or `acme/api`.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
    /// Events the own hook lacked and got (or would get).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events_added: Vec<String>,
    /// Other repairs: `activated`, `secret set`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<String>,
    /// The hook's id (Cloud `uuid`, Data Center `id`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// Why it failed, what the token needs, or a note (other hooks at the same URL, the test
    /// connection's result). Never holds a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The HTTP status of the answer that failed the scope, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// For a refused workspace or project: which of its repositories got repository hooks
    /// instead (each has a line of its own), so that this line alone is not a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fell_back: Option<Fallback>,
}

/// Which repositories of a refused workspace or project got repository hooks instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Those listed one by one (`acme/api`).
    Listed,
    /// Every repository it has now (`acme/*`): a repository created later needs another run.
    All,
}

impl ScopeReport {
    /// Whether this scope is as it should be (or would be, after a dry run's changes).
    pub fn ok(&self) -> bool {
        self.fell_back.is_some() || !matches!(self.outcome, Outcome::NoPermission | Outcome::Failed)
    }
}

/// One site's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    /// The site's URL.
    pub site: String,
    /// `cloud` or `datacenter`.
    pub kind: &'static str,
    /// The URL the hooks point at.
    pub webhook_url: String,
    /// Every scope, in the order handled.
    pub scopes: Vec<ScopeReport>,
}

/// The whole report (`--json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    /// Whether every scope is right (exit status 0).
    pub ok: bool,
    /// Whether this was a dry run (nothing was written).
    pub dry_run: bool,
    /// Per site.
    pub sites: Vec<SiteReport>,
}

impl ConnectReport {
    /// The report as the terminal shows it: per site, one line per scope.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for site in &self.sites {
            let _ = writeln!(
                out,
                "{} ({}) -> {}{}",
                site.site,
                site.kind,
                site.webhook_url,
                if self.dry_run {
                    " [dry run: nothing changed]"
                } else {
                    ""
                }
            );
            for s in &site.scopes {
                let mut line = format!("  {} {}: {}", s.scope.as_str(), s.name, s.outcome.as_str());
                let mut what: Vec<String> = Vec::new();
                if !s.events_added.is_empty() {
                    what.push(format!("events added: {}", s.events_added.join(", ")));
                }
                what.extend(s.repairs.iter().cloned());
                if let Some(detail) = &s.detail {
                    what.push(detail.clone());
                }
                if !what.is_empty() {
                    let _ = write!(line, " ({})", what.join("; "));
                }
                match s.fell_back {
                    Some(Fallback::Listed) => {
                        line.push_str("; its listed repositories get repository hooks instead")
                    }
                    Some(Fallback::All) => line.push_str(
                        "; each of its repositories gets a repository hook instead (run \
                         connect again after creating a repository)",
                    ),
                    None => {}
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        if self.sites.is_empty() {
            out.push_str("(no site)\n");
        }
        out
    }
}

/// What to do with one scope's hooks.
#[derive(Debug, PartialEq)]
enum Plan {
    Create,
    Update {
        id: String,
        description: String,
        events: Vec<String>,
        events_added: Vec<String>,
        repairs: Vec<String>,
    },
    Ok {
        id: String,
    },
}

/// Decides from the listed hooks; the second value counts further own hooks (left alone).
fn plan(hooks: &[Hook], ours: &Url, wanted: &[&str]) -> (Plan, usize) {
    let (Some(hook), extra) = own_hook(hooks, ours) else {
        return (Plan::Create, 0);
    };
    let events_added = missing_events(hook, wanted);
    let mut repairs = Vec::new();
    if !hook.active {
        repairs.push("activated".to_owned());
    }
    if hook.secret_set == Some(false) {
        repairs.push("secret set".to_owned());
    }
    if events_added.is_empty() && repairs.is_empty() {
        return (
            Plan::Ok {
                id: hook.id.clone(),
            },
            extra,
        );
    }
    // Keep what someone added beside ours.
    let mut events = hook.events.clone();
    events.extend(events_added.iter().cloned());
    let description = if hook.description.trim().is_empty() {
        HOOK_NAME.to_owned()
    } else {
        hook.description.clone()
    };
    (
        Plan::Update {
            id: hook.id.clone(),
            description,
            events,
            events_added,
            repairs,
        },
        extra,
    )
}

/// One site with what `connect` needs.
pub struct Target<'a> {
    /// The site (its `webhook_url` must be set).
    pub site: &'a Site,
    /// The secret Bitbucket signs deliveries with (the first `webhook_secret`).
    pub secret: &'a SecretString,
}

/// A failure of one scope: 403 (no permission) or anything else.
struct Refused {
    status: Option<u16>,
    message: String,
}

impl From<RestError> for Refused {
    fn from(err: RestError) -> Self {
        Refused {
            status: err.status,
            message: err.message,
        }
    }
}

/// Connects every site: sequentially, scope by scope. `dry_run` sends only GETs.
pub async fn run(targets: &[Target<'_>], dry_run: bool, retry: RetryPolicy) -> ConnectReport {
    let mut sites = Vec::new();
    for target in targets {
        sites.push(connect_site(target, dry_run, retry).await);
    }
    ConnectReport {
        ok: sites.iter().all(|s| s.scopes.iter().all(ScopeReport::ok)),
        dry_run,
        sites,
    }
}

async fn connect_site(target: &Target<'_>, dry_run: bool, retry: RetryPolicy) -> SiteReport {
    let site = target.site;
    let mut report = SiteReport {
        site: site.name().to_owned(),
        kind: site.kind.as_str(),
        webhook_url: site
            .webhook_url
            .as_ref()
            .map_or_else(String::new, ToString::to_string),
        scopes: Vec::new(),
    };
    // A failure of the whole site is reported on its widest kind of scope.
    let wide_kind = match site.kind {
        Flavour::Cloud => ScopeKind::Workspace,
        Flavour::DataCenter => ScopeKind::Project,
    };
    let failed = |name: String, kind: ScopeKind, detail: String| ScopeReport {
        scope: kind,
        name,
        outcome: Outcome::Failed,
        events_added: Vec::new(),
        repairs: Vec::new(),
        hook: None,
        detail: Some(detail),
        http_status: None,
        fell_back: None,
    };
    let Some(webhook_url) = site.webhook_url.clone() else {
        report.scopes.push(failed(
            site.name().to_owned(),
            wide_kind,
            "webhook_url is not set for this site".into(),
        ));
        return report;
    };
    let api = match Api::new(site, retry, Clock::system()) {
        Ok(api) => api,
        Err(err) => {
            report.scopes.push(failed(
                site.name().to_owned(),
                wide_kind,
                format!("cannot build the HTTP client: {err}"),
            ));
            return report;
        }
    };
    let connector = Connector {
        api: &api,
        flavour: site.kind,
        webhook_url: &webhook_url,
        secret: target.secret,
        dry_run,
    };
    // Owners in the order first named, each with its repositories listed one by one.
    let mut owners: Vec<(String, bool, Vec<String>)> = Vec::new();
    for selector in &site.repositories {
        let i = match owners
            .iter()
            .position(|(o, _, _)| o.eq_ignore_ascii_case(&selector.owner))
        {
            Some(i) => i,
            None => {
                owners.push((selector.owner.clone(), false, Vec::new()));
                owners.len() - 1
            }
        };
        match &selector.slug {
            None => owners[i].1 = true,
            Some(slug) => {
                if !owners[i].2.iter().any(|s| s.eq_ignore_ascii_case(slug)) {
                    owners[i].2.push(slug.clone());
                }
            }
        }
    }
    for (owner, all, slugs) in owners {
        let wide = match site.kind {
            Flavour::Cloud => Scope::cloud_workspace(&owner),
            Flavour::DataCenter => Scope::dc_project(&owner),
        };
        let mut line = connector.scope(&wide).await;
        // A refused workspace or project: its listed repositories, one by one. (Data Center
        // servers without project webhooks answer 404.)
        let refused = match site.kind {
            Flavour::Cloud => line.outcome == Outcome::NoPermission,
            Flavour::DataCenter => {
                line.outcome == Outcome::NoPermission
                    || (line.outcome == Outcome::Failed && line.http_status == Some(404))
            }
        };
        let mut narrow = Vec::new();
        if refused && (all || !slugs.is_empty()) {
            let mut names: Vec<String> = slugs.iter().map(|s| format!("{owner}/{s}")).collect();
            let mut listed = true;
            if all {
                // `owner/*`: every repository it has now (the same listing reconciliation uses).
                let requests = Requests::default();
                let found = match site.kind {
                    Flavour::Cloud => {
                        rest::cloud::workspace_repositories(&api, &owner, &requests).await
                    }
                    Flavour::DataCenter => {
                        rest::datacenter::project_repositories(&api, &owner, &requests).await
                    }
                };
                match found {
                    Ok(found) => {
                        for name in found {
                            if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                                names.push(name);
                            }
                        }
                    }
                    Err(err) => {
                        listed = false;
                        let mut line = failed(
                            format!("{owner}/*"),
                            ScopeKind::Repository,
                            format!(
                                "cannot list the repositories of {owner}: {}",
                                connector.scrub(&err.message)
                            ),
                        );
                        line.http_status = err.status;
                        narrow.push(line);
                    }
                }
            }
            for name in &names {
                let Some((owner, slug)) = name.split_once('/') else {
                    continue;
                };
                let scope = match site.kind {
                    Flavour::Cloud => Scope::cloud_repository(owner, slug),
                    Flavour::DataCenter => Scope::dc_repository(owner, slug),
                };
                narrow.push(connector.scope(&scope).await);
            }
            // The wide line stops being a failure when every repository it should have covered
            // has a line of its own.
            if listed {
                line.fell_back = Some(if all { Fallback::All } else { Fallback::Listed });
            }
        }
        report.scopes.push(line);
        report.scopes.extend(narrow);
    }
    report
}

struct Connector<'a> {
    api: &'a Api,
    flavour: Flavour,
    webhook_url: &'a Url,
    secret: &'a SecretString,
    dry_run: bool,
}

impl Connector<'_> {
    /// Lists, plans and (unless a dry run) writes one scope.
    async fn scope(&self, scope: &Scope) -> ScopeReport {
        let mut line = ScopeReport {
            scope: scope.kind,
            name: scope.name.clone(),
            outcome: Outcome::Failed,
            events_added: Vec::new(),
            repairs: Vec::new(),
            hook: None,
            detail: None,
            http_status: None,
            fell_back: None,
        };
        match self.apply(scope, &mut line).await {
            Ok(()) => {}
            Err(refused) => {
                let message = self.scrub(&refused.message);
                line.http_status = refused.status;
                if refused.status == Some(403) {
                    line.outcome = Outcome::NoPermission;
                    line.detail = Some(format!(
                        "HTTP 403: the token needs {}",
                        scope.needs(self.flavour)
                    ));
                } else {
                    line.outcome = Outcome::Failed;
                    line.detail = Some(message);
                }
                tracing::warn!(
                    scope = scope.kind.as_str(),
                    name = %scope.name,
                    detail = line.detail.as_deref().unwrap_or_default(),
                    "connect: the webhook could not be made right"
                );
            }
        }
        line
    }

    async fn apply(&self, scope: &Scope, line: &mut ScopeReport) -> Result<(), Refused> {
        let hooks = self.list(scope).await?;
        let wanted = hooks::wanted_events(self.flavour);
        let (plan, extra) = plan(&hooks, self.webhook_url, wanted);
        let mut notes = Vec::new();
        if extra > 0 {
            notes.push(format!(
                "{extra} more hook(s) point at the same URL and send each event again; left \
                 alone, delete them in Bitbucket"
            ));
        }
        let id = match plan {
            Plan::Ok { id } => {
                line.outcome = Outcome::Ok;
                Some(id)
            }
            Plan::Create if self.dry_run => {
                line.outcome = Outcome::WouldCreate;
                None
            }
            Plan::Create => {
                let body = self.body(HOOK_NAME, wanted.iter().map(|e| (*e).to_owned()).collect());
                let created = self
                    .write(Method::POST, scope.url(self.api, &[]), &body)
                    .await?;
                line.outcome = Outcome::Created;
                self.id_of(&created)
            }
            Plan::Update {
                id,
                description,
                events,
                events_added,
                repairs,
            } => {
                line.events_added = events_added;
                line.repairs = repairs;
                if self.dry_run {
                    line.outcome = Outcome::WouldUpdate;
                } else {
                    let body = self.body(&description, events);
                    self.write(Method::PUT, scope.url(self.api, &[&id]), &body)
                        .await?;
                    line.outcome = Outcome::Updated;
                }
                Some(id)
            }
        };
        line.hook = id.clone();
        if let (Flavour::DataCenter, Some(id), false) = (self.flavour, &id, self.dry_run) {
            notes.push(self.test_connection(scope, id).await);
        }
        if !notes.is_empty() {
            line.detail = Some(notes.join("; "));
        }
        Ok(())
    }

    /// Every hook of the scope (all pages).
    async fn list(&self, scope: &Scope) -> Result<Vec<Hook>, Refused> {
        Ok(hooks::list(self.api, self.flavour, scope, &Requests::default()).await?)
    }

    /// The create/update body, with the secret (sent on every write: pr-reminder's secret is the
    /// one its hooks must carry).
    fn body(&self, description: &str, events: Vec<String>) -> Value {
        let secret = self.secret.expose_secret();
        match self.flavour {
            Flavour::Cloud => json!({
                "description": description,
                "url": self.webhook_url.as_str(),
                "active": true,
                "events": events,
                "secret": secret,
            }),
            Flavour::DataCenter => json!({
                "name": description,
                "url": self.webhook_url.as_str(),
                "active": true,
                "events": events,
                "configuration": {"secret": secret},
            }),
        }
    }

    /// The new hook's id from a create's answer.
    fn id_of(&self, answer: &Value) -> Option<String> {
        match self.flavour {
            Flavour::Cloud => answer.get("uuid")?.as_str().map(str::to_owned),
            Flavour::DataCenter => answer.get("id")?.as_i64().map(|n| n.to_string()),
        }
    }

    /// Sends one write, once; the answer's JSON (or `null`).
    async fn write(&self, method: Method, url: Url, body: &Value) -> Result<Value, Refused> {
        let what = format!("{method} {}", url.path());
        let response = self
            .api
            .request(method, url)
            .json(body)
            .send()
            .await
            .map_err(|e| Refused {
                status: None,
                message: format!("{what}: {}", crate::http::transport_error(e)),
            })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        }
        Err(Refused {
            status: Some(status.as_u16()),
            message: format!(
                "HTTP {} from {what}{}",
                status.as_u16(),
                error_detail(&bytes)
            ),
        })
    }

    /// Bitbucket's test connection for a Data Center hook: a short note for the report.
    async fn test_connection(&self, scope: &Scope, id: &str) -> String {
        let mut url = scope.url(self.api, &["test"]);
        url.query_pairs_mut().append_pair("webhookId", id);
        let sent = self
            .api
            .request(Method::POST, url)
            .header("X-Atlassian-Token", "no-check")
            // The optional body is the credentials Bitbucket should send (`RestWebhookCredentials`);
            // pr-reminder checks signatures instead.
            .json(&json!({}))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return format!(
                    "test connection: not sent ({})",
                    crate::http::transport_error(e)
                )
            }
        };
        let status = response.status();
        if matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            return "test connection: not offered by this server".into();
        }
        if !status.is_success() {
            return format!("test connection: HTTP {}", status.as_u16());
        }
        // Any 2xx: Bitbucket sent its `diagnostics:ping`. The answer's body is not relied on
        // (its shape differs between versions); the delivery shows on the status page.
        "test connection: sent".into()
    }

    /// `text` without the secret (Bitbucket's error text might echo a body).
    fn scrub(&self, text: &str) -> String {
        let secret = self.secret.expose_secret();
        if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret, "[redacted]")
        }
    }
}

/// `: <message>` from Bitbucket's error body (Cloud `{"error": {"message"}}`, Data Center
/// `{"errors": [{"message"}]}`), shortened; empty when there is none.
fn error_detail(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/errors/0/message"))
                .and_then(|m| m.as_str().map(|m| m.chars().take(200).collect::<String>()))
        })
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, active: bool, events: &[&str], secret_set: Option<bool>) -> Hook {
        Hook {
            id: "{1}".into(),
            url: url.into(),
            description: "mine".into(),
            active,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            secret_set,
        }
    }

    #[test]
    fn the_events_are_those_the_parsers_act_on() {
        // Cloud hooks subscribe to the parser's own list (`cloud::EVENT_KEYS`); Data Center's
        // list leaves out a key a live server refuses, so each of its keys is checked.
        for key in DATACENTER_EVENTS {
            assert!(crate::bitbucket::datacenter::handles(key), "{key}");
        }
    }

    #[test]
    fn plans() {
        let ours: Url = "https://pr.example.com/webhooks/bitbucket".parse().unwrap();
        let all = CLOUD_EVENTS;
        let foreign = hook("https://ci.example.com/hook", false, &[], Some(false));
        assert_eq!(
            plan(std::slice::from_ref(&foreign), &ours, all),
            (Plan::Create, 0)
        );
        let right = hook(
            "https://PR.example.com/webhooks/bitbucket/",
            true,
            all,
            Some(true),
        );
        assert_eq!(
            plan(&[foreign, right.clone(), right.clone()], &ours, all),
            (Plan::Ok { id: "{1}".into() }, 1)
        );
        let short = hook(
            "https://pr.example.com/webhooks/bitbucket",
            false,
            &["repo:push", "pullrequest:created"],
            Some(false),
        );
        let (
            Plan::Update {
                events,
                events_added,
                repairs,
                description,
                ..
            },
            0,
        ) = plan(
            &[short],
            &ours,
            &["pullrequest:created", "pullrequest:updated"],
        )
        else {
            panic!()
        };
        assert_eq!(
            events,
            ["repo:push", "pullrequest:created", "pullrequest:updated"]
        );
        assert_eq!(events_added, ["pullrequest:updated"]);
        assert_eq!(repairs, ["activated", "secret set"]);
        assert_eq!(description, "mine");
    }
}

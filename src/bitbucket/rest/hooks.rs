//! Bitbucket's webhooks, as `connect` manages them and reconciliation checks them: the hook
//! scopes of both flavours, their lists (every page), which hook is pr-reminder's own (its URL is
//! the site's `webhook_url`) and what it lacks. Sources are those of `crate::connect`:
//! developer.atlassian.com/cloud/bitbucket/rest/api-group-workspaces/#api-workspaces-workspace-hooks-get
//! and api-group-repositories/#api-repositories-workspace-repo-slug-hooks-get (Cloud: paged
//! `{values, next}`, items `uuid`, `url`, `description`, `active`, `events`, `secret_set`);
//! developer.atlassian.com/server/bitbucket/rest/v815/api-group-project/ "Find webhooks" and
//! api-group-repository/ (Data Center: paged `{values, isLastPage, nextPageStart}`, items `id`,
//! `name`, `url`, `active`, `events`).

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{Api, Requests, RestError};
use crate::domain::Flavour;

/// The description (Cloud) or name (Data Center) of the hooks pr-reminder creates.
pub const HOOK_NAME: &str = "pr-reminder";

/// The Cloud event keys pr-reminder acts on: what its hooks subscribe to
/// (`bitbucket::cloud::EVENT_KEYS`, the one list the webhook route also reads).
pub const CLOUD_EVENTS: &[&str] = crate::bitbucket::cloud::EVENT_KEYS;

/// The Data Center event keys pr-reminder acts on (each one is `bitbucket::datacenter::handles`),
/// without `pr:reviewer:changes_requested`, which pr-reminder reads but a live 10.4.3 server
/// refuses as an unknown event (DESIGN.md §4 "Bitbucket Data Center / Server webhooks"): asking
/// for it would fail the whole create.
pub const DATACENTER_EVENTS: &[&str] = &[
    "pr:opened",
    "pr:modified",
    "pr:from_ref_updated",
    "pr:reviewer:updated",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:reviewer:needs_work",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
    "pr:comment:added",
    "pr:comment:edited",
    "pr:comment:deleted",
];

/// What a hook scope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// A Cloud workspace hook (every repository of the workspace).
    Workspace,
    /// A Data Center project webhook (every repository of the project).
    Project,
    /// One repository's hook.
    Repository,
}

impl ScopeKind {
    /// `workspace`, `project` or `repository`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Workspace => "workspace",
            ScopeKind::Project => "project",
            ScopeKind::Repository => "repository",
        }
    }
}

/// A hook as both flavours' lists give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Cloud's `uuid`, Data Center's `id`.
    pub id: String,
    /// Where Bitbucket sends the deliveries.
    pub url: String,
    /// Cloud's `description`, Data Center's `name`.
    pub description: String,
    /// Whether Bitbucket sends anything.
    pub active: bool,
    /// The event keys it is subscribed to.
    pub events: Vec<String>,
    /// Cloud's `secret_set`; Data Center does not say (`None`).
    pub secret_set: Option<bool>,
}

/// Cloud's hook (the `webhook_subscription` schema).
#[derive(Deserialize)]
struct CloudHook {
    uuid: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    secret_set: Option<bool>,
}

/// Data Center's webhook (`RestWebhook`): `id` is a number.
#[derive(Deserialize)]
struct DataCenterHook {
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    events: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Whether `hook_url` is `ours`: the same URL, ignoring a trailing slash and the host's case.
pub fn same_url(hook_url: &str, ours: &Url) -> bool {
    match Url::parse(hook_url.trim()) {
        Ok(theirs) => theirs.as_str().trim_end_matches('/') == ours.as_str().trim_end_matches('/'),
        Err(_) => false,
    }
}

/// A scope of hooks: its kind, name, and the REST path of its hooks list.
pub struct Scope {
    /// Workspace, project or repository.
    pub kind: ScopeKind,
    /// `acme`, `PAY`, `acme/api`.
    pub name: String,
    path: Vec<String>,
}

impl Scope {
    /// The scope of cloud workspace hooks.
    pub fn cloud_workspace(ws: &str) -> Self {
        Scope {
            kind: ScopeKind::Workspace,
            name: ws.to_owned(),
            path: vec!["workspaces".into(), ws.into(), "hooks".into()],
        }
    }

    /// The scope of cloud repository hooks.
    pub fn cloud_repository(ws: &str, slug: &str) -> Self {
        Scope {
            kind: ScopeKind::Repository,
            name: format!("{ws}/{slug}"),
            path: vec![
                "repositories".into(),
                ws.into(),
                slug.into(),
                "hooks".into(),
            ],
        }
    }

    /// The scope of dc project hooks.
    pub fn dc_project(key: &str) -> Self {
        Scope {
            kind: ScopeKind::Project,
            name: key.to_owned(),
            path: ["rest", "api", "1.0", "projects", key, "webhooks"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// The scope of dc repository hooks.
    pub fn dc_repository(key: &str, slug: &str) -> Self {
        Scope {
            kind: ScopeKind::Repository,
            name: format!("{key}/{slug}"),
            path: [
                "rest", "api", "1.0", "projects", key, "repos", slug, "webhooks",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    /// The URL of its hooks list, with `tail` appended.
    pub fn url(&self, api: &Api, tail: &[&str]) -> Url {
        let mut segments: Vec<&str> = self.path.iter().map(String::as_str).collect();
        segments.extend_from_slice(tail);
        api.url(&segments)
    }

    /// What a token needs to read this scope's hooks (reconciliation's check), as a 403 is
    /// recorded. Listing hooks is an admin's right on both flavours: Cloud's hooks endpoints
    /// want the `webhook` scope (access tokens) or `read:webhook:bitbucket` (API tokens) and
    /// the admin role (support.atlassian.com/bitbucket-cloud/docs/api-token-permissions,
    /// …/repository-access-token-permissions); Data Center's "Find webhooks" wants PROJECT_ADMIN
    /// or REPO_ADMIN (developer.atlassian.com/server/bitbucket/rest/v815/api-group-project/).
    pub fn reads(&self, flavour: Flavour) -> String {
        match (flavour, self.kind) {
            (Flavour::Cloud, ScopeKind::Workspace) => format!(
                "to read the webhooks of workspace {}: a workspace access token with the \
                 webhook scope, or an API token with read:webhook:bitbucket of a workspace admin",
                self.name
            ),
            (Flavour::Cloud, _) => format!(
                "to read the webhooks of repository {}: a repository, project or workspace \
                 access token with the webhook scope, or an API token with \
                 read:webhook:bitbucket of a repository admin",
                self.name
            ),
            (Flavour::DataCenter, ScopeKind::Repository) => format!(
                "REPO_ADMIN on repository {}: an HTTP access token with Repository admin \
                 permission",
                self.name
            ),
            (Flavour::DataCenter, _) => format!(
                "PROJECT_ADMIN on project {}: an HTTP access token with Project admin \
                 permission",
                self.name
            ),
        }
    }

    /// What a token needs to manage this scope's hooks, as a 403 reports it.
    pub fn needs(&self, flavour: Flavour) -> String {
        match (flavour, self.kind) {
            (Flavour::Cloud, ScopeKind::Workspace) => format!(
                "to manage the webhooks of workspace {}: a workspace access token with the \
                 webhook scope, or an API token with read:webhook:bitbucket and \
                 write:webhook:bitbucket of a workspace admin",
                self.name
            ),
            (Flavour::Cloud, _) => format!(
                "to manage the webhooks of repository {}: a repository, project or workspace \
                 access token with the webhook scope, or an API token with \
                 read:webhook:bitbucket and write:webhook:bitbucket of a repository admin",
                self.name
            ),
            (Flavour::DataCenter, ScopeKind::Repository) => format!(
                "REPO_ADMIN on repository {}: an HTTP access token with Repository admin \
                 permission",
                self.name
            ),
            (Flavour::DataCenter, _) => format!(
                "PROJECT_ADMIN on project {}: an HTTP access token with Project admin \
                 permission",
                self.name
            ),
        }
    }
}

/// pr-reminder's own hook among `hooks` (the first pointing at `ours`), and how many more point
/// there too.
pub fn own_hook<'a>(hooks: &'a [Hook], ours: &Url) -> (Option<&'a Hook>, usize) {
    let mut own = hooks.iter().filter(|h| same_url(&h.url, ours));
    let first = own.next();
    (first, own.count())
}

/// The events of `wanted` that `hook` is not subscribed to, in `wanted`'s order.
pub fn missing_events(hook: &Hook, wanted: &[&str]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !hook.events.iter().any(|e| e == *w))
        .map(|w| (*w).to_owned())
        .collect()
}

/// The events pr-reminder's hooks subscribe to on `flavour`.
pub fn wanted_events(flavour: Flavour) -> &'static [&'static str] {
    match flavour {
        Flavour::Cloud => CLOUD_EVENTS,
        Flavour::DataCenter => DATACENTER_EVENTS,
    }
}

/// Every hook of `scope` (all pages). A 404 says what may be missing (the scope, the token's
/// sight of it, or, for a Data Center project, the server's project webhooks); any other failure
/// is the REST client's.
pub async fn list(
    api: &Api,
    flavour: Flavour,
    scope: &Scope,
    requests: &Requests,
) -> Result<Vec<Hook>, RestError> {
    let url = scope.url(api, &[]);
    let not_found = |err: RestError| -> RestError {
        if err.status != Some(404) {
            return err;
        }
        let server = if flavour == Flavour::DataCenter && scope.kind == ScopeKind::Project {
            ", or the server has no project webhooks"
        } else {
            ""
        };
        RestError {
            status: err.status,
            message: format!(
                "HTTP 404: {} {} was not found, or the token cannot see it{server}",
                scope.kind.as_str(),
                scope.name
            ),
        }
    };
    Ok(match flavour {
        Flavour::Cloud => super::cloud::pages::<CloudHook>(api, url, requests)
            .await
            .map_err(not_found)?
            .into_iter()
            .map(|h| Hook {
                id: h.uuid,
                url: h.url,
                description: h.description.unwrap_or_default(),
                active: h.active,
                events: h.events,
                secret_set: h.secret_set,
            })
            .collect(),
        Flavour::DataCenter => super::datacenter::pages::<DataCenterHook>(api, &url, requests)
            .await
            .map_err(not_found)?
            .0
            .into_iter()
            .map(|h| Hook {
                id: h.id.to_string(),
                url: h.url,
                description: h.name.unwrap_or_default(),
                active: h.active,
                events: h.events,
                secret_set: None,
            })
            .collect(),
    })
}

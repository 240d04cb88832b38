//! Bitbucket Data Center's REST API (`{url}` = the server's base URL).
//!
//! - `GET {url}/rest/api/1.0/projects/{P}/repos/{r}/pull-requests?state=OPEN&start=N&limit=M`:
//!   the open PRs, paged by `isLastPage` / `nextPageStart`. The server may cap `limit` below what
//!   was asked (an administrator's `page.max.*`), so `nextPageStart` is always followed. Items
//!   carry `reviewers[].status`.
//! - `GET .../pull-requests/{id}`: one PR, whatever its state (404 once deleted).
//! - Build statuses: `GET {url}/rest/api/latest/projects/{P}/repos/{r}/commits/{hash}/builds`
//!   on newer servers, `GET {url}/rest/build-status/1.0/commits/{hash}` on older ones (the first
//!   answers 404 there; the one that works is remembered).
//! - `GET {url}/rest/api/1.0/projects/{P}/repos`: a project's repositories (for `P/*`).
//! - `GET {url}/rest/default-reviewers/1.0/projects/{P}/repos/{r}/reviewers?...`: the default
//!   reviewers of one PR's pair of refs.

use std::sync::atomic::{AtomicU8, Ordering};

use reqwest::Url;
use serde::Deserialize;

use super::{Api, Requests, RestError};
use std::collections::HashMap;

use crate::bitbucket::datacenter::{ApiPullRequest, ApiUser};
use crate::domain::{BuildState, CommitStatus, PullRequest, Repository, Timestamp, User};

/// The page size asked for (servers cap it at 1,000 unless configured lower).
pub const LIMIT: &str = "1000";
/// Pages followed at most for one list: a page chain that never ends is a bug.
const MAX_PAGES: usize = 1000;

/// A page: `{values, isLastPage, nextPageStart}`.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(rename = "isLastPage", default = "yes")]
    is_last_page: bool,
    #[serde(rename = "nextPageStart")]
    next_page_start: Option<i64>,
}

fn yes() -> bool {
    true
}

fn split(full_name: &str) -> Result<(&str, &str), RestError> {
    full_name.split_once('/').ok_or_else(|| RestError {
        status: None,
        message: format!("`{full_name}` is not PROJECT/slug"),
    })
}

/// Every page of `url`, from `start=0`, following `nextPageStart`; with the time of the first
/// answer.
pub(crate) async fn pages<T: serde::de::DeserializeOwned>(
    api: &Api,
    url: &Url,
    requests: &Requests,
) -> Result<(Vec<T>, Option<Timestamp>), RestError> {
    let mut out = Vec::new();
    let mut first_at = None;
    let mut start = 0;
    for _ in 0..MAX_PAGES {
        let mut page_url = url.clone();
        page_url
            .query_pairs_mut()
            .append_pair("start", &start.to_string())
            .append_pair("limit", LIMIT);
        let answer = api.get::<Page<T>>(page_url, requests).await?;
        first_at.get_or_insert(answer.at);
        let page = answer.body;
        out.extend(page.values);
        if page.is_last_page {
            return Ok((out, first_at));
        }
        match page.next_page_start {
            Some(next) if next > start => start = next,
            _ => {
                return Err(RestError {
                    status: None,
                    message: format!(
                        "GET {}: isLastPage is false without a later nextPageStart",
                        url.path()
                    ),
                })
            }
        }
    }
    Err(RestError {
        status: None,
        message: format!("GET {}: more than {MAX_PAGES} pages", url.path()),
    })
}

/// The query of one PR's default reviewers (`ApiPullRequest::default_reviewers_query`).
pub type DefaultReviewersQuery = [(&'static str, String); 4];

/// The open pull requests of `PROJECT/slug`, as snapshots; `server` is the site's
/// `host[:port]`. Each is dated as of the first page's answer (see `ApiPullRequest`). With them,
/// the base URL the server writes in its links (`ApiPullRequest::linked_base_url`), if any PR
/// has a link, and by PR number the query of its default reviewers.
#[allow(clippy::type_complexity)]
pub async fn open_pull_requests(
    api: &Api,
    server: &str,
    full_name: &str,
    requests: &Requests,
) -> Result<
    (
        Vec<PullRequest>,
        Option<String>,
        HashMap<i64, DefaultReviewersQuery>,
    ),
    RestError,
> {
    let (project, slug) = split(full_name)?;
    let mut url = api.url(&[
        "rest",
        "api",
        "1.0",
        "projects",
        project,
        "repos",
        slug,
        "pull-requests",
    ]);
    url.query_pairs_mut().append_pair("state", "OPEN");
    let (items, at) = pages::<ApiPullRequest>(api, &url, requests).await?;
    let at = at.unwrap_or_else(|| api.now());
    let base_url = items.iter().find_map(ApiPullRequest::linked_base_url);
    let queries = items
        .iter()
        .filter_map(|pr| Some((pr.number(), pr.default_reviewers_query()?)))
        .collect();
    let prs = items
        .into_iter()
        .map(|pr| {
            let number = pr.number();
            pr.into_domain(server, &at).map_err(|e| RestError {
                status: None,
                message: format!("pull request {number} of {full_name}: {}", e.0),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((prs, base_url, queries))
}

/// The default reviewers Data Center would add to a PR from `query`'s source to its target
/// (`GET {url}/rest/default-reviewers/1.0/projects/{P}/repos/{r}/reviewers?sourceRepoId=&
/// targetRepoId=&sourceRefId=&targetRefId=`: the server resolves the repository's and project's
/// default-reviewer conditions for that pair of refs; the answer is a JSON array of users, not
/// a page). Source: Atlassian, "Bitbucket Data Center REST API: Default reviewers, Get required
/// reviewers for PR creation" (developer.atlassian.com/server/bitbucket/rest/, group
/// default-reviewers) and support.atlassian.com/bitbucket-data-center/kb/
/// get-default-reviewers-api-in-bitbucket-datacenter-fails-with-nosuchbranchexception.
pub async fn default_reviewers(
    api: &Api,
    server: &str,
    full_name: &str,
    query: &DefaultReviewersQuery,
    requests: &Requests,
) -> Result<Vec<User>, RestError> {
    let (project, slug) = split(full_name)?;
    let mut url = api.url(&[
        "rest",
        "default-reviewers",
        "1.0",
        "projects",
        project,
        "repos",
        slug,
        "reviewers",
    ]);
    url.query_pairs_mut()
        .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    let users: Vec<ApiUser> = api.get(url, requests).await?.body;
    users
        .into_iter()
        .map(|u| u.into_domain(server).map_err(RestError::from))
        .collect()
}

/// One pull request, whatever its state; `None` when the server answers 404 (deleted).
pub async fn pull_request(
    api: &Api,
    server: &str,
    full_name: &str,
    number: i64,
    requests: &Requests,
) -> Result<Option<PullRequest>, RestError> {
    let (project, slug) = split(full_name)?;
    let url = api.url(&[
        "rest",
        "api",
        "1.0",
        "projects",
        project,
        "repos",
        slug,
        "pull-requests",
        &number.to_string(),
    ]);
    match api.get::<ApiPullRequest>(url, requests).await {
        Ok(answer) => Ok(Some(answer.body.into_domain(server, &answer.at)?)),
        Err(err) if err.status == Some(404) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Which build-status endpoint a server answers.
#[derive(Debug, Default)]
pub struct BuildEndpoint(AtomicU8);

const UNKNOWN: u8 = 0;
const NEWER: u8 = 1;
const OLDER: u8 = 2;

/// A build status in either endpoint's answer.
#[derive(Deserialize)]
struct WireBuild {
    key: String,
    state: String,
    name: Option<String>,
    url: Option<String>,
    /// Newer endpoint.
    #[serde(rename = "updatedDate")]
    updated_date: Option<i64>,
    #[serde(rename = "createdDate")]
    created_date: Option<i64>,
    /// Older endpoint.
    #[serde(rename = "dateAdded")]
    date_added: Option<i64>,
}

/// The build statuses of `hash` in `repository`. `CANCELLED` counts as stopped; `UNKNOWN` (newer
/// servers) is left out.
pub async fn commit_statuses(
    api: &Api,
    endpoint: &BuildEndpoint,
    repository: &Repository,
    full_name: &str,
    hash: &str,
    requests: &Requests,
) -> Result<Vec<CommitStatus>, RestError> {
    let (project, slug) = split(full_name)?;
    let newer = api.url(&[
        "rest", "api", "latest", "projects", project, "repos", slug, "commits", hash, "builds",
    ]);
    let older = api.url(&["rest", "build-status", "1.0", "commits", hash]);
    let (builds, at) = match endpoint.0.load(Ordering::Relaxed) {
        OLDER => pages::<WireBuild>(api, &older, requests).await?,
        known => match pages::<WireBuild>(api, &newer, requests).await {
            Ok(answer) => {
                endpoint.0.store(NEWER, Ordering::Relaxed);
                answer
            }
            Err(err) if err.status == Some(404) && known == UNKNOWN => {
                let answer = pages::<WireBuild>(api, &older, requests).await?;
                tracing::info!(
                    "this Data Center server answers build statuses at /rest/build-status/1.0"
                );
                endpoint.0.store(OLDER, Ordering::Relaxed);
                answer
            }
            Err(err) => return Err(err),
        },
    };
    let at = at.unwrap_or_else(|| api.now());
    let mut out = Vec::with_capacity(builds.len());
    for build in builds {
        let state = match build.state.as_str() {
            "CANCELLED" => BuildState::Stopped,
            "UNKNOWN" => continue,
            other => BuildState::parse(other).ok_or_else(|| RestError {
                status: None,
                message: format!("build `{}` of {hash}: unknown state `{other}`", build.key),
            })?,
        };
        let updated_on = build
            .updated_date
            .or(build.date_added)
            .or(build.created_date)
            .and_then(Timestamp::from_epoch_millis)
            .unwrap_or_else(|| at.clone());
        out.push(CommitStatus {
            repository: repository.clone(),
            commit_hash: hash.to_ascii_lowercase(),
            key: build.key,
            state,
            name: build.name,
            url: build.url,
            updated_on,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct WireRepository {
    slug: String,
    project: WireProject,
}

#[derive(Deserialize)]
struct WireProject {
    key: String,
}

/// `PROJECT/slug` of every repository of `project`.
pub async fn project_repositories(
    api: &Api,
    project: &str,
    requests: &Requests,
) -> Result<Vec<String>, RestError> {
    let url = api.url(&["rest", "api", "1.0", "projects", project, "repos"]);
    let (repos, _) = pages::<WireRepository>(api, &url, requests).await?;
    Ok(repos
        .into_iter()
        .map(|r| format!("{}/{}", r.project.key, r.slug))
        .collect())
}

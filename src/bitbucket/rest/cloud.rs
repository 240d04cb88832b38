//! Bitbucket Cloud's REST API 2.0 (`{url}` = `https://api.bitbucket.org/2.0` by default).
//!
//! - `GET {url}/repositories/{ws}/{slug}/pullrequests?state=OPEN&pagelen=50&fields=+values.participants`:
//!   the open PRs, 50 a page (the maximum: 100 answers "Invalid pagelen"), following `next`. List
//!   items omit participants unless `fields=+values.participants` asks for them.
//! - `GET .../pullrequests/{id}`: one PR, whole (a closed one too).
//! - `GET .../commit/{hash}/statuses`: a commit's build statuses.
//! - `GET {url}/repositories/{ws}`: a workspace's repositories (for `ws/*`).
//! - `GET {url}/repositories/{ws}/{slug}/effective-default-reviewers`: the repository's and its
//!   project's default reviewers.

use reqwest::Url;
use serde::Deserialize;

use super::{Api, Requests, RestError};
use crate::bitbucket::cloud::{ApiCommitStatus, ApiPullRequest, ApiRepository, ApiUser};
use crate::domain::{CommitStatus, PullRequest, Repository, User};

/// The most PRs a list page may hold.
pub const PAGELEN: &str = "50";
/// Pages followed at most for one list (50,000 open PRs): a `next` that never ends is a bug.
const MAX_PAGES: usize = 1000;

/// A page: `{values, next}`.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    next: Option<String>,
}

fn split(full_name: &str) -> Result<(&str, &str), RestError> {
    full_name.split_once('/').ok_or_else(|| RestError {
        status: None,
        message: format!("`{full_name}` is not workspace/slug"),
    })
}

/// Every page from `url` on, following `next` (on the same site only).
pub(crate) async fn pages<T: serde::de::DeserializeOwned>(
    api: &Api,
    mut url: Url,
    requests: &Requests,
) -> Result<Vec<T>, RestError> {
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let page: Page<T> = api.get(url, requests).await?.body;
        out.extend(page.values);
        let Some(next) = page.next else {
            return Ok(out);
        };
        url = Url::parse(&next)
            .ok()
            .filter(|u| api.same_site(u))
            .ok_or_else(|| RestError {
                status: None,
                message: format!("a `next` link leaves the configured site: {next}"),
            })?;
    }
    Err(RestError {
        status: None,
        message: format!("more than {MAX_PAGES} pages"),
    })
}

/// The open pull requests of `workspace/slug`, as snapshots.
pub async fn open_pull_requests(
    api: &Api,
    full_name: &str,
    requests: &Requests,
) -> Result<Vec<PullRequest>, RestError> {
    let (ws, slug) = split(full_name)?;
    let mut url = api.url(&["repositories", ws, slug, "pullrequests"]);
    url.query_pairs_mut()
        .append_pair("state", "OPEN")
        .append_pair("pagelen", PAGELEN)
        .append_pair("fields", "+values.participants");
    let items: Vec<ApiPullRequest> = pages(api, url, requests).await?;
    items
        .into_iter()
        .map(|pr| {
            let number = pr.number();
            pr.into_domain().map_err(|e| RestError {
                status: None,
                message: format!("pull request {number} of {full_name}: {}", e.0),
            })
        })
        .collect()
}

/// One pull request, whatever its state; `None` when Bitbucket answers 404 (it is gone).
pub async fn pull_request(
    api: &Api,
    full_name: &str,
    number: i64,
    requests: &Requests,
) -> Result<Option<PullRequest>, RestError> {
    let (ws, slug) = split(full_name)?;
    let url = api.url(&[
        "repositories",
        ws,
        slug,
        "pullrequests",
        &number.to_string(),
    ]);
    match api.get::<ApiPullRequest>(url, requests).await {
        Ok(answer) => Ok(Some(answer.body.into_domain()?)),
        Err(err) if err.status == Some(404) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The build statuses of `hash` in `repository`.
pub async fn commit_statuses(
    api: &Api,
    repository: &Repository,
    full_name: &str,
    hash: &str,
    requests: &Requests,
) -> Result<Vec<CommitStatus>, RestError> {
    let (ws, slug) = split(full_name)?;
    let url = api.url(&["repositories", ws, slug, "commit", hash, "statuses"]);
    let items: Vec<ApiCommitStatus> = pages(api, url, requests).await?;
    items
        .into_iter()
        .map(|s| s.into_domain(repository).map_err(RestError::from))
        .collect()
}

/// `workspace/slug` of every repository of `workspace`.
pub async fn workspace_repositories(
    api: &Api,
    workspace: &str,
    requests: &Requests,
) -> Result<Vec<String>, RestError> {
    let mut url = api.url(&["repositories", workspace]);
    url.query_pairs_mut().append_pair("pagelen", "100");
    let items: Vec<ApiRepository> = pages(api, url, requests).await?;
    Ok(items.iter().map(|r| r.full_name().to_owned()).collect())
}

/// One item of `effective-default-reviewers`: `{type: "default_reviewer_and_type",
/// reviewer_type: "repository" | "project", user: {...}}`.
#[derive(Deserialize)]
struct DefaultReviewer {
    user: ApiUser,
}

/// The effective default reviewers of `workspace/slug`: those of the repository and of its
/// project, each once (`GET /2.0/repositories/{workspace}/{repo_slug}/effective-default-reviewers`,
/// paged as every list; needs the `pullrequest` scope, `read:pullrequest:bitbucket` for API
/// tokens). Source: developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/
/// #api-repositories-workspace-repo-slug-effective-default-reviewers-get.
pub async fn effective_default_reviewers(
    api: &Api,
    full_name: &str,
    requests: &Requests,
) -> Result<Vec<User>, RestError> {
    let (ws, slug) = split(full_name)?;
    let mut url = api.url(&["repositories", ws, slug, "effective-default-reviewers"]);
    url.query_pairs_mut().append_pair("pagelen", "100");
    let items: Vec<DefaultReviewer> = pages(api, url, requests).await?;
    let mut users: Vec<User> = Vec::with_capacity(items.len());
    for item in items {
        let user = item.user.into_domain()?;
        if !users.iter().any(|u| u.key == user.key) {
            users.push(user);
        }
    }
    Ok(users)
}

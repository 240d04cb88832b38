//! Reconciliation: reads the open pull requests of the configured repositories from Bitbucket's
//! REST API and repairs what webhooks did not say (PRs opened before the webhook existed,
//! deliveries lost, Data Center builds, which no webhook reports).
//!
//! A pass over one repository:
//! 1. lists its open PRs (Cloud: 50 a page; Data Center: as many as the server allows a page);
//! 2. fetches the build statuses of source commits no pass fetched before, or whose build was
//!    still running;
//! 3. fetches, one by one, the PRs stored as open that the list no longer has (merged, declined,
//!    deleted); on Data Center a PR stored under several identities of the server (its site's,
//!    another base URL of it, `unknown`) is fetched once and closed under each;
//! 4. only when all of that answered, submits every snapshot that differs from what is stored
//!    to the writer, like a delivery (`Submission::reconciliation`): the same ordering rule
//!    applies, so an answer older than a delivery already stored changes nothing.
//!
//! The first pass over a repository announces nothing (a backfill of thirty old PRs is not news);
//! later passes announce what they find as webhooks would. A repository that fails (401, 403,
//! 404, 5xx after retries) is left untouched and reported; the others go on. One whose list has
//! answered 404 on every pass for a day (`GONE_AFTER`) was deleted: its open PRs are closed as
//! deleted (401 and 403 never close anything).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::bitbucket::rest::datacenter::BuildEndpoint;
use crate::bitbucket::rest::hooks::{self, Hook, Scope as HookScope, ScopeKind};
use crate::bitbucket::rest::{self, Api, Requests, RestError, RetryPolicy, MAX_IN_FLIGHT};
use crate::bitbucket::servers::DataCenterServers;
use crate::clock::Clock;
use crate::config::{server_name, Site};
use crate::domain::{
    Change, CommitStatus, Flavour, PrState, PullRequest, Repository, RepositoryKey, Role,
    Submission, Timestamp, User, DEFAULT_REQUIRED_APPROVALS,
};
use crate::store::default_reviewers;
use crate::store::reconciliations::{self, OpenPr};
use crate::store::webhooks;
use crate::store::{Db, WriteError, Writer};

/// Submissions handed to the writer at once (its queue holds 8,192).
const SUBMIT_CHUNK: usize = 256;

/// How long a repository's pull-request list must have answered 404 (on every pass since) before
/// its open PRs are closed as deleted: a day, so that a repository moved and configured again,
/// or a short-lived permission mistake, closes nothing.
pub const GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What to reconcile: every configured repository, or those of one site, or one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only the site at this index of `[[bitbucket]]`.
    pub site: Option<usize>,
    /// Only this `owner/slug` (any case), which a site must cover.
    pub repository: Option<String>,
}

/// What a pass did, per repository (the answer of `POST /reconcile` and
/// `pr-reminder reconcile --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Every repository went through.
    pub ok: bool,
    /// Requests sent to Bitbucket in all (429s and retries included).
    pub requests: u64,
    /// Wall time of the pass, in milliseconds.
    pub elapsed_ms: u64,
    /// One entry per repository (or per `owner/*` whose listing failed).
    pub repositories: Vec<RepositoryReport>,
    /// Sites passed over because another replica was running their pass (PostgreSQL): by URL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub busy_sites: Vec<String>,
}

/// One repository's pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryReport {
    /// The site's URL.
    pub site: String,
    /// `owner/slug` (or `owner/*` when listing the owner's repositories failed).
    pub repository: String,
    /// Went through; when false, nothing of it was changed and `error` says why.
    pub ok: bool,
    /// The first pass over it: nothing was announced.
    pub first_pass: bool,
    /// Open PRs Bitbucket listed.
    pub open: usize,
    /// PR snapshots submitted because they differed from the stored state (new PRs included).
    pub updated: usize,
    /// PRs stored as open that Bitbucket has closed (merged, declined, deleted).
    pub closed: usize,
    /// Build statuses submitted.
    pub builds: usize,
    /// Requests this repository used.
    pub requests: u64,
    /// The HTTP status of the failing answer, if one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What covers it with pr-reminder's webhook (sites with a `webhook_url`): `covered by
    /// workspace hook`, `repository hook inactive`, `none`, `unknown (no permission: …)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

impl ReconcileReport {
    /// One line per repository, then the totals.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for r in &self.repositories {
            if r.ok {
                out.push_str(&format!(
                    "ok      {} {}: {} open, {} updated, {} closed, {} builds, {} requests{}{}\n",
                    r.site,
                    r.repository,
                    r.open,
                    r.updated,
                    r.closed,
                    r.builds,
                    r.requests,
                    if r.first_pass {
                        " (first pass: nothing announced)"
                    } else {
                        ""
                    },
                    r.webhook_text()
                ));
            } else {
                out.push_str(&format!(
                    "FAILED  {} {}: {}{}\n",
                    r.site,
                    r.repository,
                    r.failure(),
                    r.webhook_text()
                ));
            }
        }
        for site in &self.busy_sites {
            out.push_str(&format!(
                "busy    {site}: another replica is running its pass; passed over\n"
            ));
        }
        let failed = self.repositories.iter().filter(|r| !r.ok).count();
        out.push_str(&format!(
            "{} repositories, {} failed, {} requests, {} ms\n",
            self.repositories.len(),
            failed,
            self.requests,
            self.elapsed_ms
        ));
        out
    }
}

impl RepositoryReport {
    /// `; webhook: …` when the coverage was checked, else empty.
    fn webhook_text(&self) -> String {
        self.webhook
            .as_deref()
            .map(|w| format!("; webhook: {w}"))
            .unwrap_or_default()
    }

    /// Why it failed, with the HTTP status when an answer came (`HTTP 401 from GET ...`); empty
    /// when it went through.
    pub fn failure(&self) -> String {
        if self.ok {
            return String::new();
        }
        let error = self.error.as_deref().unwrap_or("failed");
        match self.http_status {
            Some(status) if !error.starts_with(&format!("HTTP {status} ")) => {
                format!("HTTP {status}: {error}")
            }
            _ => error.to_owned(),
        }
    }
}

/// Why a repository's pass stopped.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The repository's pull-request list answered 404: it is gone, or the token cannot see it.
    #[error(transparent)]
    NotFound(RestError),
    #[error("the database: {0:#}")]
    Store(#[from] anyhow::Error),
    #[error("the writer did not take the changes: {0}")]
    Write(#[from] WriteError),
}

struct SiteClient {
    site: Site,
    api: Api,
    builds: BuildEndpoint,
}

/// A PR stored as open, under the key the site's answers give it (`canonical`), which may differ
/// from the key it is stored under (another identity of the same server).
struct Stored<'a> {
    canonical: RepositoryKey,
    pr: &'a OpenPr,
}

/// How long a repository's default reviewers are trusted before a pass reads them again (a PR
/// new or changed in a pass has its own read at once).
const DEFAULT_REVIEWERS_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// A listed PR as the default reviewers need it.
struct Requested {
    key: RepositoryKey,
    number: i64,
    /// Requested reviewers other than the author.
    reviewers: usize,
    /// New or changed in this pass.
    changed: bool,
}

/// Runs passes over the configured sites. One per service (and one per CLI run).
pub struct Reconciler {
    sites: Vec<SiteClient>,
    /// The configured Data Center servers (which identities are which site's).
    servers: DataCenterServers,
    db: Db,
    writer: Writer,
    clock: Clock,
    /// (site, base URL) pairs already warned about: Bitbucket's links name a base URL that is
    /// neither the site's `url` nor one of its `aliases`. Said once per process.
    warned: Mutex<HashSet<(String, String)>>,
}

impl Reconciler {
    /// A reconciler of `sites` writing through `writer`; `retry` says how failed requests are
    /// tried again.
    pub fn new(
        sites: &[Site],
        db: Db,
        writer: Writer,
        clock: Clock,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let sites_config = sites;
        let sites = sites
            .iter()
            .map(|site| {
                Ok(SiteClient {
                    api: Api::new(site, retry, clock.clone())?,
                    site: site.clone(),
                    builds: BuildEndpoint::default(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Reconciler {
            sites,
            servers: DataCenterServers::from_sites(sites_config),
            db,
            writer,
            clock,
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Whether `scope` names something configured; else why not.
    pub fn check(&self, scope: &Scope) -> Result<(), String> {
        if let Some(wanted) = &scope.repository {
            let covered = self.sites.iter().enumerate().any(|(i, client)| {
                scope.site.is_none_or(|s| s == i)
                    && client.site.repositories.iter().any(|r| r.covers(wanted))
            });
            if !covered {
                return Err(format!(
                    "{wanted} is not among the repositories of any [[bitbucket]] site"
                ));
            }
        }
        Ok(())
    }

    /// One pass over `scope`. Errs only when the scope names nothing configured; a repository
    /// that fails is in the report.
    pub async fn run(&self, scope: &Scope) -> anyhow::Result<ReconcileReport> {
        let started = Instant::now();
        self.check(scope).map_err(anyhow::Error::msg)?;
        let mut repositories = Vec::new();
        // Requests that listed `owner/*` repositories (a failed listing's are in its report).
        let listing = Requests::default();
        let mut busy_sites = Vec::new();
        for (i, site) in self.sites.iter().enumerate() {
            if scope.site.is_some_and(|s| s != i) {
                continue;
            }
            // One pass per site at a time, however many replicas run one.
            let lock = match reconciliations::lock_site(&self.db, site.site.name()).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    tracing::info!(
                        site = site.site.name(),
                        "another replica is reconciling this site; passed over"
                    );
                    busy_sites.push(site.site.name().to_owned());
                    continue;
                }
                Err(err) => return Err(err),
            };
            let (targets, failed) = self
                .targets(site, scope.repository.as_deref(), &listing)
                .await;
            // Every repository of the site is in this pass: coverage of others is forgotten.
            let every = scope.repository.is_none() && failed.is_empty();
            repositories.extend(failed);
            let names = targets.clone();
            let reports: Vec<RepositoryReport> = stream::iter(targets)
                .map(|name| self.repository(site, name))
                .buffer_unordered(MAX_IN_FLIGHT)
                .collect()
                .await;
            repositories.extend(reports);
            // Drift: what covers each repository (a site with a webhook_url only).
            let covered = self.check_webhooks(site, &names, every, &listing).await;
            for r in repositories
                .iter_mut()
                .filter(|r| r.site == site.site.name())
            {
                if let Some((_, text)) = covered
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(&r.repository))
                {
                    r.webhook = Some(text.clone());
                }
            }
            lock.release().await;
        }
        repositories.sort_by(|a, b| {
            (&a.site, a.repository.to_lowercase()).cmp(&(&b.site, b.repository.to_lowercase()))
        });
        let report = ReconcileReport {
            ok: repositories.iter().all(|r| r.ok),
            requests: repositories.iter().map(|r| r.requests).sum::<u64>() + listing.get(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            repositories,
            busy_sites,
        };
        tracing::info!(
            repositories = report.repositories.len(),
            failed = report.repositories.iter().filter(|r| !r.ok).count(),
            open = report.repositories.iter().map(|r| r.open).sum::<usize>(),
            updated = report.repositories.iter().map(|r| r.updated).sum::<usize>(),
            closed = report.repositories.iter().map(|r| r.closed).sum::<usize>(),
            requests = report.requests,
            elapsed_ms = report.elapsed_ms,
            "reconciliation pass done"
        );
        Ok(report)
    }

    /// The repositories of `site` to go through (`owner/*` listed), and a failed report for each
    /// owner whose listing failed. The requests of successful listings are added to `listed`.
    async fn targets(
        &self,
        sc: &SiteClient,
        only: Option<&str>,
        listed: &Requests,
    ) -> (Vec<String>, Vec<RepositoryReport>) {
        let mut names: Vec<String> = Vec::new();
        let mut failed = Vec::new();
        let mut push = |name: String| {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                names.push(name);
            }
        };
        for selector in &sc.site.repositories {
            match (&selector.slug, only) {
                (Some(slug), Some(one)) => {
                    // As configured: the name is matched ignoring case, the request spells it
                    // as the configuration does.
                    if selector.covers(one) {
                        push(format!("{}/{slug}", selector.owner));
                    }
                }
                (None, Some(one)) => {
                    if selector.covers(one) {
                        let slug = one.split_once('/').map_or(one, |(_, slug)| slug);
                        push(format!("{}/{slug}", selector.owner));
                    }
                }
                (Some(slug), None) => push(format!("{}/{slug}", selector.owner)),
                (None, None) => {
                    let requests = Requests::default();
                    let listed_names = match sc.site.kind {
                        Flavour::Cloud => {
                            rest::cloud::workspace_repositories(&sc.api, &selector.owner, &requests)
                                .await
                        }
                        Flavour::DataCenter => {
                            rest::datacenter::project_repositories(
                                &sc.api,
                                &selector.owner,
                                &requests,
                            )
                            .await
                        }
                    };
                    match listed_names {
                        Ok(list) => {
                            listed.add(requests.get());
                            list.into_iter().for_each(&mut push);
                            // A repository the listing no longer has, whose PRs are stored as
                            // open, is asked for too: a deleted one answers 404, and its PRs
                            // are closed once it has for a day.
                            let prefix = match sc.site.kind {
                                Flavour::Cloud => "cloud/".to_owned(),
                                Flavour::DataCenter => format!("datacenter/{}/", sc.site.server()),
                            };
                            match reconciliations::owner_repositories_with_open_prs(
                                &self.db,
                                &prefix,
                                &selector.owner,
                            )
                            .await
                            {
                                Ok(stored) => stored.into_iter().for_each(&mut push),
                                Err(err) => {
                                    tracing::warn!(error = %format!("{err:#}"), "cannot read the stored repositories of {selector}")
                                }
                            }
                        }
                        Err(err) => {
                            tracing::warn!(site = sc.site.name(), repository = %selector, error = %err, "cannot list repositories");
                            failed.push(RepositoryReport {
                                requests: requests.get(),
                                ..failure(sc, &selector.to_string(), &err)
                            });
                        }
                    }
                }
            }
        }
        (names, failed)
    }

    async fn repository(&self, sc: &SiteClient, full_name: String) -> RepositoryReport {
        let requests = Requests::default();
        let span = tracing::info_span!("reconcile", site = sc.site.name(), repository = %full_name);
        let result =
            tracing::Instrument::instrument(self.pass(sc, &full_name, &requests), span.clone())
                .await;
        let _entered = span.enter();
        match result {
            Ok(mut report) => {
                report.requests = requests.get();
                // Per repository: detail (the pass's summary is at info).
                tracing::debug!(
                    open = report.open,
                    updated = report.updated,
                    closed = report.closed,
                    builds = report.builds,
                    requests = report.requests,
                    first_pass = report.first_pass,
                    "repository reconciled"
                );
                report
            }
            Err(PassError::NotFound(err)) => {
                let report = self.not_found(sc, &full_name, &err).await;
                RepositoryReport {
                    requests: requests.get(),
                    ..report
                }
            }
            Err(err) => {
                let status = match &err {
                    PassError::Rest(e) | PassError::NotFound(e) => e.status,
                    _ => None,
                };
                tracing::warn!(error = %err, "repository not reconciled; its state is untouched");
                // The report is an HTTP answer too: a database error's text stays in the log.
                let shown = match &err {
                    PassError::Store(_) => {
                        "the database could not be read or written; see the service log".into()
                    }
                    _ => err.to_string(),
                };
                RepositoryReport {
                    requests: requests.get(),
                    http_status: status,
                    ..failure_text(sc, &full_name, status, shown)
                }
            }
        }
    }

    async fn pass(
        &self,
        sc: &SiteClient,
        full_name: &str,
        requests: &Requests,
    ) -> Result<RepositoryReport, PassError> {
        let site = sc.site.name();
        let server = sc.site.server();
        let first_pass = !reconciliations::seen(&self.db, site, full_name).await?;
        let prefix = match sc.site.kind {
            Flavour::Cloud => "cloud/",
            Flavour::DataCenter => "datacenter/",
        };
        let stored = reconciliations::open_pull_requests(&self.db, prefix, full_name).await?;
        let stored = self.stored_under_every_key(sc, &stored);

        // 1. The open PRs.
        let listed = match sc.site.kind {
            Flavour::Cloud => rest::cloud::open_pull_requests(&sc.api, full_name, requests)
                .await
                .map(|open| (open, None, HashMap::new())),
            Flavour::DataCenter => {
                rest::datacenter::open_pull_requests(&sc.api, &server, full_name, requests).await
            }
        };
        let (open, base_url, default_queries) = match listed {
            Ok(listed) => listed,
            Err(err) if err.status == Some(404) => return Err(PassError::NotFound(err)),
            Err(err) => return Err(err.into()),
        };
        if let Some(base) = &base_url {
            self.check_base_url(sc, base);
        }
        // The snapshots to compare with: those stored under the key the answers give.
        let stored_by: HashMap<(&RepositoryKey, i64), &OpenPr> = stored
            .iter()
            .filter(|s| s.canonical == s.pr.repository.key)
            .map(|s| ((&s.pr.repository.key, s.pr.number), s.pr))
            .collect();
        let listed: HashSet<(RepositoryKey, i64)> = open
            .iter()
            .map(|p| (p.repository.key.clone(), p.number))
            .collect();

        // 2. Builds of source commits not checked before (or still running).
        let mut commits: HashMap<RepositoryKey, Vec<String>> = HashMap::new();
        let mut repository_of: HashMap<RepositoryKey, Repository> = HashMap::new();
        for pr in &open {
            if let Some(hash) = pr.source_commit.as_deref() {
                let list = commits.entry(pr.repository.key.clone()).or_default();
                if !list.iter().any(|h| h == hash) {
                    list.push(hash.to_owned());
                }
                repository_of
                    .entry(pr.repository.key.clone())
                    .or_insert_with(|| pr.repository.clone());
            }
        }
        let mut to_fetch: Vec<(RepositoryKey, String)> = Vec::new();
        for (key, hashes) in &commits {
            let list: Vec<&str> = hashes.iter().map(String::as_str).collect();
            let wanted = reconciliations::commits_to_check(&self.db, key, &list).await?;
            for hash in list.into_iter().filter(|h| wanted.contains(*h)) {
                to_fetch.push((key.clone(), hash.to_owned()));
            }
        }
        let repository_of = &repository_of;
        let statuses: Vec<Vec<CommitStatus>> = stream::iter(to_fetch.clone())
            .map(|(key, hash)| async move {
                let repository = &repository_of[&key];
                let hash = hash.as_str();
                match sc.site.kind {
                    Flavour::Cloud => {
                        rest::cloud::commit_statuses(&sc.api, repository, full_name, hash, requests)
                            .await
                    }
                    Flavour::DataCenter => {
                        rest::datacenter::commit_statuses(
                            &sc.api, &sc.builds, repository, full_name, hash, requests,
                        )
                        .await
                    }
                }
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .try_collect()
            .await?;
        let statuses: Vec<CommitStatus> = statuses.into_iter().flatten().collect();

        // 3. PRs stored as open that the list no longer has: their real state, fetched once
        //    per PR and written under every key the PR is stored under.
        let now = self.clock.timestamp();
        let mut closed = Vec::new();
        let mut fetched: HashMap<(RepositoryKey, i64), Option<PullRequest>> = HashMap::new();
        for gone in stored
            .iter()
            .filter(|s| !listed.contains(&(s.canonical.clone(), s.pr.number)))
        {
            let number = gone.pr.number;
            let answer = match fetched.get(&(gone.canonical.clone(), number)) {
                Some(answer) => answer.clone(),
                None => {
                    let answer = match sc.site.kind {
                        Flavour::Cloud => {
                            rest::cloud::pull_request(&sc.api, full_name, number, requests).await?
                        }
                        Flavour::DataCenter => {
                            rest::datacenter::pull_request(
                                &sc.api, &server, full_name, number, requests,
                            )
                            .await?
                        }
                    };
                    fetched.insert((gone.canonical.clone(), number), answer.clone());
                    answer
                }
            };
            let snapshot = match (answer, gone.pr.repository.key.datacenter_parts()) {
                (Some(pr), Some((stored_under, _))) => pr.on_server(stored_under),
                (Some(pr), None) => pr,
                (None, _) => deleted(gone.pr, &now),
            };
            closed.push(snapshot);
        }
        let closed_count = fetched
            .values()
            .filter(|answer| answer.as_ref().is_none_or(|pr| pr.state != PrState::Open))
            .count();

        // Requested reviewers per listed PR (the author never counts), for the default
        // reviewers below.
        // With each, whether it is new or changed in this pass (its default reviewers are then
        // read at once).
        let requested: Vec<Requested> = open
            .iter()
            .map(|pr| Requested {
                key: pr.repository.key.clone(),
                number: pr.number,
                reviewers: pr
                    .participants
                    .iter()
                    .filter(|p| p.role == Role::Reviewer && p.user.key != pr.author.key)
                    .count(),
                changed: stored_by
                    .get(&(&pr.repository.key, pr.number))
                    .is_none_or(|s| differs(s, pr)),
            })
            .collect();

        // 4. Everything answered: submit what differs.
        let announce = !first_pass;
        let changed: Vec<PullRequest> = open
            .into_iter()
            .filter(|pr| {
                stored_by
                    .get(&(&pr.repository.key, pr.number))
                    .is_none_or(|s| differs(s, pr))
            })
            .collect();
        let updated = changed.len();
        let prs: Vec<Change> = changed
            .into_iter()
            .chain(closed)
            .map(|pr| {
                tracing::debug!(
                    pr = pr.number,
                    state = pr.state.as_str(),
                    announce,
                    "change found by reconciliation"
                );
                Change::PullRequest(Box::new(pr))
            })
            .collect();
        // PRs first, so that a build of a PR new to the database finds it.
        self.submit(prs, announce).await?;
        let builds = statuses.len();
        for status in &statuses {
            tracing::debug!(
                commit = %status.commit_hash,
                build = %status.key,
                state = status.state.as_str(),
                announce,
                "build status found by reconciliation"
            );
        }
        self.submit(
            statuses
                .into_iter()
                .map(|s| Change::CommitStatus(Box::new(s)))
                .collect(),
            announce,
        )
        .await?;
        for (key, hashes) in &commits {
            let fetched: Vec<&str> = hashes
                .iter()
                .map(String::as_str)
                .filter(|h| to_fetch.iter().any(|(k, f)| k == key && f == h))
                .collect();
            reconciliations::mark_commits_checked(&self.db, key, &fetched, &now).await?;
        }
        // 5. Default reviewers, once the PRs are stored (their requests count in the pass's).
        let closed_numbers: Vec<(RepositoryKey, i64)> = fetched
            .iter()
            .filter(|(_, answer)| answer.as_ref().is_none_or(|pr| pr.state != PrState::Open))
            .map(|(k, _)| k.clone())
            .collect();
        let refreshed = self
            .default_reviewers(
                sc,
                full_name,
                &requested,
                &closed_numbers,
                &default_queries,
                requests,
                &now,
            )
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(
                    site,
                    repository = full_name,
                    error = %format!("{err:#}"),
                    "could not store default reviewers; the stored ones are kept"
                );
                false
            });
        reconciliations::record_pass(
            &self.db,
            site,
            full_name,
            &now,
            requests.get(),
            base_url.as_deref(),
        )
        .await?;
        reconciliations::clear_not_found(&self.db, site, full_name).await?;
        if refreshed {
            if let Err(err) =
                default_reviewers::mark_refreshed(&self.db, site, full_name, &now).await
            {
                tracing::warn!(repository = full_name, error = %format!("{err:#}"),
                               "could not record the default reviewers' read");
            }
        }
        Ok(RepositoryReport {
            site: site.to_owned(),
            repository: full_name.to_owned(),
            ok: true,
            first_pass,
            open: listed.len(),
            updated,
            closed: closed_count,
            builds,
            requests: 0,
            http_status: None,
            error: None,
            webhook: None,
        })
    }

    /// Reads and stores the default reviewers (issue 23) of the listed PRs that have fewer
    /// requested reviewers than the approvals they need, clears those of the others and of the
    /// PRs found closed (`closed`); only what differs from what is stored is written. A short PR
    /// is read when it is new or changed in this pass, when it was never read (it may have come
    /// by webhook), and every PR when the repository's were last read over
    /// `DEFAULT_REVIEWERS_MAX_AGE` ago: an unchanged pass within it costs no request. Cloud's are
    /// the repository's (one request); Data Center's are resolved per PR from its pair of refs
    /// (`default_queries`; a PR whose answer lacks them is not asked about).
    ///
    /// Default reviewers complete the turn; they never fail a pass: a refused or failed request
    /// keeps what is stored, with one warning (a 401, 403 or 404 from Data Center stops the
    /// repository's reads for this pass), and so does a database error (the caller warns).
    /// Returns whether the pass was a full refresh to record (`mark_refreshed`): not after a
    /// failure that may pass
    /// (a 5xx, a 429 out of tries, the network), so that the next pass asks again; a refusal
    /// is asked again at the next hourly refresh.
    #[allow(clippy::too_many_arguments)]
    async fn default_reviewers(
        &self,
        sc: &SiteClient,
        full_name: &str,
        requested: &[Requested],
        closed: &[(RepositoryKey, i64)],
        default_queries: &HashMap<i64, rest::datacenter::DefaultReviewersQuery>,
        requests: &Requests,
        now: &Timestamp,
    ) -> anyhow::Result<bool> {
        let site = sc.site.name();
        let server = sc.site.server();
        let every = default_reviewers::refreshed_on(&self.db, site, full_name)
            .await?
            .is_none_or(|at| now.to_datetime() - at.to_datetime() >= DEFAULT_REVIEWERS_MAX_AGE);
        // A request failed for a reason that may pass (a 5xx, a 429 out of tries, the network):
        // the next pass asks again. A refusal (401, 403, 404) waits for the hourly refresh.
        let mut retry_soon = false;
        let mut required: HashMap<&RepositoryKey, u32> = HashMap::new();
        let mut stored: HashMap<&RepositoryKey, default_reviewers::Stored> = HashMap::new();
        // Cloud's one answer for the repository; `Some(None)` once it failed.
        let mut cloud: Option<Option<Vec<User>>> = None;
        // Bitbucket refused this repository's reads (401, 403, 404): no more asking in this pass.
        let mut refused = false;
        for (key, number) in closed {
            default_reviewers::clear(&self.db, key, *number).await?;
        }
        for r in requested {
            if !required.contains_key(&r.key) {
                let n = default_reviewers::required_approvals(&self.db, &r.key)
                    .await?
                    .unwrap_or(DEFAULT_REQUIRED_APPROVALS);
                required.insert(&r.key, n);
                stored.insert(
                    &r.key,
                    default_reviewers::of_repository(&self.db, &r.key).await?,
                );
            }
            let before = &stored[&r.key];
            let short = u32::try_from(r.reviewers).unwrap_or(u32::MAX) < required[&r.key];
            let users = if !short {
                Vec::new()
            } else if every || r.changed || !before.read.contains(&r.number) {
                // `Ok(None)`: not asked (no refs to ask with, or already refused/failed in
                // this pass); the refusal flag says whether to record the attempt.
                let answer = match sc.site.kind {
                    Flavour::Cloud => match &cloud {
                        Some(Some(users)) => Ok(Some(users.clone())),
                        Some(None) => Ok(None),
                        None => {
                            rest::cloud::effective_default_reviewers(&sc.api, full_name, requests)
                                .await
                                .map(Some)
                        }
                    },
                    Flavour::DataCenter => match default_queries.get(&r.number) {
                        Some(_) if refused => Ok(None),
                        Some(query) => rest::datacenter::default_reviewers(
                            &sc.api, &server, full_name, query, requests,
                        )
                        .await
                        .map(Some),
                        None => Ok(None),
                    },
                };
                match answer {
                    Ok(Some(users)) => {
                        if sc.site.kind == Flavour::Cloud {
                            cloud = Some(Some(users.clone()));
                        }
                        users
                    }
                    Ok(None) => {
                        if refused {
                            default_reviewers::mark_read(&self.db, &r.key, r.number, now).await?;
                        }
                        continue;
                    }
                    Err(err) => {
                        let refusal = matches!(err.status, Some(401 | 403 | 404));
                        retry_soon |= !refusal;
                        refused = refusal;
                        tracing::warn!(
                            site,
                            repository = full_name,
                            pr = r.number,
                            error = %err.message,
                            http_status = err.status,
                            "could not read default reviewers; the stored ones are kept"
                        );
                        if sc.site.kind == Flavour::Cloud {
                            cloud = Some(None);
                        }
                        if refusal {
                            // Asked and refused: not asked again before the hourly refresh.
                            default_reviewers::mark_read(&self.db, &r.key, r.number, now).await?;
                        }
                        continue;
                    }
                }
            } else {
                continue;
            };
            let keys: Vec<&str> = users.iter().map(|u| u.key.as_str()).collect();
            let unchanged = before.users.get(&r.number).map_or(keys.is_empty(), |b| {
                b.iter().map(String::as_str).eq(keys.iter().copied())
            });
            if !unchanged || (short && !before.read.contains(&r.number)) {
                default_reviewers::replace(&self.db, &r.key, r.number, &users, Some(now)).await?;
            }
        }
        Ok(every && !retry_soon)
    }

    /// Every key a stored open PR of one repository is under: on Data Center the site's own and
    /// any other identity no other site claims (another base URL of the same server, or
    /// `unknown`), each with the key the site's answers give it.
    fn stored_under_every_key<'a>(&self, sc: &SiteClient, stored: &'a [OpenPr]) -> Vec<Stored<'a>> {
        let server = sc.site.server();
        stored
            .iter()
            .filter_map(|pr| {
                let canonical = match pr.repository.key.datacenter_parts() {
                    None => pr.repository.key.clone(),
                    Some((other, id)) => {
                        let claimed = self.servers.site_of(other).map(|k| k.server.as_str());
                        if claimed.is_some_and(|s| s != server) {
                            return None;
                        }
                        RepositoryKey::datacenter(&server, id)
                    }
                };
                Some(Stored { canonical, pr })
            })
            .collect()
    }

    /// A repository whose pull-request list answered 404: remembered from the first such pass
    /// on; once it has answered 404 on passes spanning `GONE_AFTER` (and gone through on none
    /// since), its open PRs are closed as deleted. The report says which. (401 and 403 never
    /// get here: a repository that is merely inaccessible is never closed.)
    async fn not_found(
        &self,
        sc: &SiteClient,
        full_name: &str,
        err: &RestError,
    ) -> RepositoryReport {
        let site = sc.site.name();
        let now = self.clock.timestamp();
        let failed = |error: String, closed: usize| RepositoryReport {
            closed,
            ..failure_text(sc, full_name, Some(404), error)
        };
        let since = match reconciliations::record_not_found(&self.db, site, full_name, &now).await {
            Ok(since) => since,
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "cannot record a repository's 404");
                return failed(
                    "the database could not be read or written; see the service log".into(),
                    0,
                );
            }
        };
        let missing_for = (now.to_datetime() - since.to_datetime())
            .to_std()
            .unwrap_or_default();
        let since_text = since.to_datetime().format("%Y-%m-%d %H:%M UTC");
        if missing_for < GONE_AFTER {
            tracing::warn!(error = %err, since = %since, "repository answers 404; its pull requests are closed once it has for a day");
            return failed(
                format!(
                    "{err}; answering 404 since {since_text}: its open pull requests are closed \
                     as deleted once it has answered 404 for a day"
                ),
                0,
            );
        }
        let prefix = match sc.site.kind {
            Flavour::Cloud => "cloud/",
            Flavour::DataCenter => "datacenter/",
        };
        let closed = async {
            let stored = reconciliations::open_pull_requests(&self.db, prefix, full_name).await?;
            let stored = self.stored_under_every_key(sc, &stored);
            let prs: Vec<Change> = stored
                .iter()
                .map(|s| Change::PullRequest(Box::new(deleted(s.pr, &now))))
                .collect();
            let count = stored
                .iter()
                .map(|s| (&s.canonical, s.pr.number))
                .collect::<HashSet<_>>()
                .len();
            self.submit(prs, true).await?;
            reconciliations::record_closed_missing(&self.db, site, full_name, count).await?;
            Ok::<usize, PassError>(count)
        }
        .await;
        match closed {
            Ok(count) => {
                tracing::warn!(since = %since, closed = count, "repository answered 404 for a day: its open pull requests are closed as deleted");
                failed(
                    format!(
                        "{err}; answering 404 since {since_text}: {count} open pull request{} \
                         closed as deleted",
                        if count == 1 { "" } else { "s" }
                    ),
                    count,
                )
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot close the pull requests of a repository that answers 404");
                failed(
                    "the database could not be read or written; see the service log".into(),
                    0,
                )
            }
        }
    }

    /// Warns (once per site and base URL) when Bitbucket's links name a base URL that is neither
    /// the site's `url` nor one of its `aliases`: deliveries whose links name it are stored as
    /// another server, and each of its PRs twice.
    fn check_base_url(&self, sc: &SiteClient, base: &str) {
        let Some(linked) = reqwest::Url::parse(base)
            .ok()
            .as_ref()
            .and_then(server_name)
        else {
            return;
        };
        let named = self
            .servers
            .site_of(&linked)
            .is_some_and(|k| k.server == sc.site.server());
        if named {
            return;
        }
        let first = self.warned.lock().map_or(true, |mut w| {
            w.insert((sc.site.name().to_owned(), base.to_owned()))
        });
        if first {
            tracing::warn!(
                site = sc.site.name(),
                base_url = base,
                "Bitbucket at {} writes {base} in its links, which is neither the site's url nor one \
                 of its aliases: deliveries whose links name it are stored as another server \
                 ({linked}), and their pull requests twice. If it is this server, add \"{base}\" \
                 to the site's aliases",
                sc.site.name()
            );
        }
    }

    /// Hands `changes` to the writer, a chunk at a time, and waits for their commits.
    async fn submit(&self, changes: Vec<Change>, announce: bool) -> Result<(), WriteError> {
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let chunk: Vec<_> = changes
                .by_ref()
                .take(SUBMIT_CHUNK)
                .map(|c| self.writer.submit(Submission::reconciliation(c, announce)))
                .collect();
            for outcome in futures_util::future::join_all(chunk).await {
                outcome?;
            }
        }
        Ok(())
    }
}

/// Whether Bitbucket's snapshot says something the stored row does not.
fn differs(stored: &OpenPr, pr: &PullRequest) -> bool {
    let mut reviews: Vec<(String, String, String)> = pr
        .participants
        .iter()
        .map(|p| {
            (
                p.user.key.as_str().to_owned(),
                p.role.as_str().to_owned(),
                p.state.as_str().to_owned(),
            )
        })
        .collect();
    reviews.sort();
    // Cloud's `updated_on` moves with every change; Data Center's snapshot time is the answer's
    // (see `ApiPullRequest`), so there its activity time says whether something happened.
    let newer = match pr.repository.key.flavour() {
        Flavour::Cloud => pr.updated_on > stored.updated_on,
        Flavour::DataCenter => pr.activity_on > stored.last_activity_on,
    };
    newer
        || pr.state != PrState::Open
        || pr.title != stored.title
        || pr.author.key != stored.author
        || pr.source_branch != stored.source_branch
        || pr.source_commit != stored.source_commit
        || pr.destination_branch != stored.destination_branch
        || pr.draft != stored.draft
        || pr.repository.full_name != stored.repository.full_name
        || reviews != stored.reviews
}

/// The snapshot of a PR Bitbucket no longer has (404): the stored one, deleted, as of `now`.
fn deleted(stored: &OpenPr, now: &Timestamp) -> PullRequest {
    PullRequest {
        repository: stored.repository.clone(),
        number: stored.number,
        title: stored.title.clone(),
        author: User::keyed(stored.author.clone()),
        source_branch: stored.source_branch.clone(),
        source_commit: stored.source_commit.clone(),
        destination_branch: stored.destination_branch.clone(),
        state: PrState::Deleted,
        draft: stored.draft,
        open_tasks: None,
        created_on: stored.created_on.clone(),
        updated_on: now.clone().max(stored.updated_on.clone()),
        activity_on: stored.last_activity_on.clone(),
        url: stored.url.clone(),
        participants: Vec::new(),
    }
}

fn failure(sc: &SiteClient, repository: &str, err: &RestError) -> RepositoryReport {
    failure_text(sc, repository, err.status, err.to_string())
}

fn failure_text(
    sc: &SiteClient,
    repository: &str,
    status: Option<u16>,
    error: String,
) -> RepositoryReport {
    RepositoryReport {
        site: sc.site.name().to_owned(),
        repository: repository.to_owned(),
        ok: false,
        first_pass: false,
        open: 0,
        updated: 0,
        closed: 0,
        builds: 0,
        requests: 0,
        http_status: status,
        error: Some(error),
        webhook: None,
    }
}

/// What reconciliation found of pr-reminder's hook for one repository (`webhook_coverage`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Covering {
    state: &'static str,
    scope: Option<ScopeKind>,
    hook: Option<String>,
    events_missing: Vec<String>,
    detail: Option<String>,
}

impl Covering {
    /// As reports show it: `covered by workspace hook`, `repository hook inactive`,
    /// `project hook incomplete (events missing: pr:merged)`, `none`, `unknown (…)`.
    fn to_text(&self) -> String {
        let by = self.scope.map(|s| format!("{} hook", s.as_str()));
        let mut text = match (self.state, by) {
            ("covered", Some(by)) => format!("covered by {by}"),
            (state, Some(by)) => format!("{by} {state}"),
            ("missing", None) => "none".to_owned(),
            (state, None) => state.to_owned(),
        };
        if !self.events_missing.is_empty() {
            text.push_str(&format!(
                " (events missing: {})",
                self.events_missing.join(", ")
            ));
        } else if let Some(detail) = &self.detail {
            text.push_str(&format!(" ({detail})"));
        }
        text
    }

    fn unknown(detail: String) -> Self {
        Covering {
            state: "unknown",
            scope: None,
            hook: None,
            events_missing: Vec::new(),
            detail: Some(detail),
        }
    }
}

/// The own hook of one listed scope, judged: `covered` (active, every event), `inactive`, or
/// `incomplete` (active, events missing); `None` without an own hook.
fn judge(
    kind: ScopeKind,
    hooks: &[Hook],
    ours: &reqwest::Url,
    flavour: Flavour,
) -> Option<Covering> {
    let (hook, _) = hooks::own_hook(hooks, ours);
    let hook = hook?;
    let events_missing = hooks::missing_events(hook, hooks::wanted_events(flavour));
    let state = if !hook.active {
        "inactive"
    } else if events_missing.is_empty() {
        "covered"
    } else {
        "incomplete"
    };
    Some(Covering {
        state,
        scope: Some(kind),
        hook: Some(hook.id.clone()),
        events_missing,
        detail: None,
    })
}

/// Why a hooks list could not be read, as recorded: a 403 names what the token needs.
fn unreadable(scope: &HookScope, flavour: Flavour, err: &RestError) -> String {
    if err.status == Some(403) {
        format!("no permission: the token needs {}", scope.reads(flavour))
    } else {
        format!(
            "the hooks of {} {} could not be read: {err}",
            scope.kind.as_str(),
            scope.name
        )
    }
}

/// One repository's coverage from its workspace's or project's hooks (`wide`) and, unless those
/// cover it, its own (`narrow`): a covering hook wins (the wider first), then an own hook that
/// falls short, then `unknown` when a list could not be read, else `missing`.
fn coverage_of(
    flavour: Flavour,
    ours: &reqwest::Url,
    wide: (&HookScope, &Result<Vec<Hook>, RestError>),
    narrow: Option<(&HookScope, &Result<Vec<Hook>, RestError>)>,
) -> Covering {
    let mut judged = Vec::new();
    let mut unread = Vec::new();
    let mut foreign = None;
    for (scope, listed) in std::iter::once(wide).chain(narrow) {
        match listed {
            Ok(list) => {
                if let Some(c) = judge(scope.kind, list, ours, flavour) {
                    judged.push(c);
                } else if let Some(h) = list.iter().find(|h| h.description == hooks::HOOK_NAME) {
                    foreign = Some(format!(
                        "the {} hook named {} points at {}, not at webhook_url",
                        scope.kind.as_str(),
                        hooks::HOOK_NAME,
                        h.url
                    ));
                }
            }
            Err(err) => unread.push(unreadable(scope, flavour, err)),
        }
    }
    if let Some(c) = judged.iter().find(|c| c.state == "covered") {
        return c.clone();
    }
    if let Some(c) = judged.into_iter().next() {
        return c;
    }
    if !unread.is_empty() {
        return Covering::unknown(unread.join("; "));
    }
    Covering {
        state: "missing",
        scope: None,
        hook: None,
        events_missing: Vec::new(),
        detail: foreign,
    }
}

impl Reconciler {
    /// Reads the hooks that could cover each of `names` (a site with a `webhook_url` only) and
    /// records what covers each (with `every`, `names` are all the site's repositories, and the
    /// coverage of any other is forgotten); then summarises the deliveries per repository.
    /// Never fails the pass: what cannot be read is recorded as `unknown` (a 403 with what the
    /// token needs), and a database error is logged. The requests are added to `requests`.
    /// Returns each repository's coverage as reports show it.
    async fn check_webhooks(
        &self,
        sc: &SiteClient,
        names: &[String],
        every: bool,
        requests: &Requests,
    ) -> Vec<(String, String)> {
        let Some(ours) = sc.site.webhook_url.as_ref() else {
            return Vec::new();
        };
        let mut shown = Vec::new();
        let flavour = sc.site.kind;
        let now = self.clock.timestamp();
        let mut wide: HashMap<String, (HookScope, Result<Vec<Hook>, RestError>)> = HashMap::new();
        for name in names {
            let Some((owner, _)) = name.split_once('/') else {
                continue;
            };
            if wide.contains_key(&owner.to_lowercase()) {
                continue;
            }
            let scope = match flavour {
                Flavour::Cloud => HookScope::cloud_workspace(owner),
                Flavour::DataCenter => HookScope::dc_project(owner),
            };
            let listed = hooks::list(&sc.api, flavour, &scope, requests).await;
            wide.insert(owner.to_lowercase(), (scope, listed));
        }
        let judged: Vec<Option<(String, Covering)>> = stream::iter(names.to_vec())
            .map(|name| self.cover_one(sc, ours, &wide, name, requests))
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        for (name, c) in judged.into_iter().flatten() {
            shown.push((name.clone(), c.to_text()));
            if c.state != "covered" {
                tracing::warn!(
                    site = sc.site.name(),
                    repository = %name,
                    state = c.state,
                    detail = c.detail.as_deref().unwrap_or_default(),
                    events_missing = %c.events_missing.join(","),
                    "pr-reminder's webhook does not cover this repository; `pr-reminder connect` \
                     makes it right"
                );
            }
            let row = webhooks::Coverage {
                site: sc.site.name().to_owned(),
                repository: name.to_lowercase(),
                full_name: name.clone(),
                flavour: flavour.as_str().to_owned(),
                state: c.state.to_owned(),
                scope: c.scope.map(|s| s.as_str().to_owned()),
                hook: c.hook,
                events_missing: (!c.events_missing.is_empty()).then(|| c.events_missing.join(",")),
                detail: c.detail,
                checked_on: now.as_str().to_owned(),
            };
            if let Err(err) = webhooks::record(&self.db, &row).await {
                tracing::warn!(error = %format!("{err:#}"), "cannot record webhook coverage");
            }
        }
        if every {
            if let Err(err) =
                webhooks::forget_unchecked(&self.db, sc.site.name(), now.as_str()).await
            {
                tracing::warn!(error = %format!("{err:#}"), "cannot forget old webhook coverage");
            }
        }
        let minute_ago = Timestamp::from_datetime(self.clock.now() - chrono::Duration::minutes(1));
        if let Err(err) = webhooks::summarise_deliveries(&self.db, &minute_ago).await {
            tracing::warn!(error = %format!("{err:#}"), "cannot summarise deliveries");
        }
        shown
    }
}

impl Reconciler {
    /// One repository's coverage: its workspace's or project's hooks (listed already, in
    /// `wide` by lowercased owner) and, unless those cover it, its own.
    async fn cover_one(
        &self,
        sc: &SiteClient,
        ours: &reqwest::Url,
        wide: &HashMap<String, (HookScope, Result<Vec<Hook>, RestError>)>,
        name: String,
        requests: &Requests,
    ) -> Option<(String, Covering)> {
        let flavour = sc.site.kind;
        let (owner, slug) = name.split_once('/')?;
        let (wide_scope, wide_list) = wide.get(&owner.to_lowercase())?;
        let covering = match wide_list
            .as_ref()
            .ok()
            .and_then(|l| judge(wide_scope.kind, l, ours, flavour))
        {
            // Covered by the workspace's or project's hook: the repository's own list is not
            // asked for.
            Some(c) if c.state == "covered" => c,
            _ => {
                let scope = match flavour {
                    Flavour::Cloud => HookScope::cloud_repository(owner, slug),
                    Flavour::DataCenter => HookScope::dc_repository(owner, slug),
                };
                let listed = hooks::list(&sc.api, flavour, &scope, requests).await;
                coverage_of(
                    flavour,
                    ours,
                    (wide_scope, wide_list),
                    Some((&scope, &listed)),
                )
            }
        };
        Some((name, covering))
    }
}

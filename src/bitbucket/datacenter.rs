//! Bitbucket Data Center (formerly Server) webhook payloads (`X-Event-Key: pr:*`).
//!
//! Facts (Atlassian's event-payload page for Data Center, a live 10.4 server, and the real
//! payloads in `../shared/fixtures/bitbucket/server`):
//! - every `pr:*` body carries the whole `pullRequest`, with `reviewers[].status`
//!   `APPROVED | UNAPPROVED | NEEDS_WORK` (NEEDS_WORK is "changes requested");
//! - `createdDate` / `updatedDate` are epoch milliseconds in most versions, ISO text in some;
//!   the event's `date` has an offset without a colon (`2019-03-26T15:49:39+0530`);
//! - **a reviewer's verdict does not move `updatedDate`**: approved, unapproved and needs work of
//!   one PR carry the same one. So a snapshot is dated by the newer of `updatedDate` and the
//!   event's `date`, which orders verdicts (and everything else) by when they happened;
//! - the repository is `toRef.repository` (project `key` + `slug`, numeric `id`); links name the
//!   server, but older servers send none.

use serde::Deserialize;

use super::servers::DataCenterServers;
use super::{from_slice, Parsed, PayloadError};
use crate::domain::{
    Change, Participant, PrState, PullRequest, Repository, RepositoryKey, ReviewState, Role,
    Timestamp, User,
};

/// The pull-request event keys (`pr:reviewer:changes_requested` is on Atlassian's page, a live
/// 10.4 server rejects it and sends `needs_work`; both are accepted).
const PR_KEYS: &[&str] = &[
    "pr:opened",
    "pr:modified",
    "pr:from_ref_updated",
    "pr:reviewer:updated",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:reviewer:needs_work",
    "pr:reviewer:changes_requested",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
    "pr:comment:added",
    "pr:comment:edited",
    "pr:comment:deleted",
];

/// The "Test connection" button.
pub const PING_KEY: &str = "diagnostics:ping";

/// Event keys only Data Center sends besides `pr:*`, `diagnostics:*` and `mirror:*`
/// (Atlassian's "Event payload" page for Data Center, confluence.atlassian.com/bitbucketserver/
/// event-payload-938025882.html: repository, mirror and project events). Cloud's repository keys
/// are spelled otherwise (`repo:push`, `repo:fork`, `repo:updated`).
const OTHER_KEYS: &[&str] = &[
    "repo:refs_changed",
    "repo:modified",
    "repo:forked",
    "repo:comment:added",
    "repo:comment:edited",
    "repo:comment:deleted",
    "repo:secret_detected",
    "project:modified",
];

/// Whether only Data Center sends `event_key` (`pr:*`, `diagnostics:*`, `mirror:*` and the
/// repository and project keys Cloud spells otherwise).
pub fn sends_only(event_key: &str) -> bool {
    ["pr:", "diagnostics:", "mirror:"]
        .iter()
        .any(|prefix| event_key.starts_with(prefix))
        || OTHER_KEYS.contains(&event_key)
}

/// The Data Center event keys pr-reminder acts on.
pub fn handles(event_key: &str) -> bool {
    PR_KEYS.contains(&event_key)
}

/// Turns a Data Center payload into a domain change; `servers` decides which server it is from
/// (see `servers`: the links' host, a configured site, or `unknown`).
pub fn parse(
    event_key: &str,
    body: &[u8],
    servers: &DataCenterServers,
) -> Result<Parsed, PayloadError> {
    let envelope: Envelope = from_slice(body)?;
    Ok(Parsed::Change(Change::PullRequest(Box::new(
        envelope.into_domain(event_key, Server::Linked(servers))?,
    ))))
}

/// Where a snapshot's server comes from.
enum Server<'a> {
    /// A delivery: its links, as the configured servers read them.
    Linked(&'a DataCenterServers),
    /// A REST answer: the site it was asked of.
    Site(&'a str),
}

/// A pull request as the REST API answers it (`GET /rest/api/1.0/projects/{P}/repos/{r}/
/// pull-requests` items and `.../pull-requests/{id}`): the payload's `pullRequest` shape, turned
/// into the same snapshot by the same code.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ApiPullRequest(WirePr);

impl ApiPullRequest {
    /// The snapshot as the server showed it at `fetched_at` (the answer's `Date`). `server` is
    /// the configured site's `host[:port]`, which names the repository as a delivery's links do.
    ///
    /// A verdict does not move `updatedDate`, so the snapshot is dated by the later of
    /// `updatedDate` and `fetched_at`: the answer shows every verdict given before it, and a
    /// delivery of a later event still wins. Its activity time stays `updatedDate`.
    pub fn into_domain(
        self,
        server: &str,
        fetched_at: &Timestamp,
    ) -> Result<PullRequest, PayloadError> {
        let envelope = Envelope {
            date: Some(fetched_at.clone()),
            pull_request: self.0,
            participant: None,
        };
        envelope.into_domain("rest", Server::Site(server))
    }

    /// The PR's number.
    pub fn number(&self) -> i64 {
        self.0.id
    }

    /// The query of Data Center's default reviewers for this PR (`GET /rest/default-reviewers/
    /// 1.0/projects/{P}/repos/{r}/reviewers`): `sourceRepoId`, `targetRepoId`, `sourceRefId`,
    /// `targetRefId` from its `fromRef` and `toRef` (`id` is the full ref name, `repository.id`
    /// the repository's; a fork's source repository differs from the target). `None` when the
    /// answer lacks one of them.
    pub fn default_reviewers_query(&self) -> Option<[(&'static str, String); 4]> {
        let (from, to) = (&self.0.from_ref, &self.0.to_ref);
        Some([
            ("sourceRepoId", from.repository.as_ref()?.id.to_string()),
            ("targetRepoId", to.repository.as_ref()?.id.to_string()),
            ("sourceRefId", from.id.clone()?),
            ("targetRefId", to.id.clone()?),
        ])
    }

    /// The base URL the server writes in its links (`https://bitbucket.example.com`, with a
    /// context path if it has one): the PR's `links.self` up to `/projects/` or `/users/`, else
    /// the repository's. `None` when the answer has no such link.
    pub fn linked_base_url(&self) -> Option<String> {
        let pr = &self.0;
        pr.links
            .iter()
            .chain(pr.to_ref.repository.as_ref().and_then(|r| r.links.as_ref()))
            .filter_map(WireLinks::first_self)
            .find_map(base_url)
    }
}

/// `https://host[:port][/context]` of a Data Center web link
/// (`{base}/projects/PRJ/repos/api/...` or `{base}/users/alice/repos/...`).
fn base_url(href: &str) -> Option<String> {
    let url = reqwest::Url::parse(href).ok()?;
    crate::config::server_name(&url)?;
    let path = url.path();
    let cut = ["/projects/", "/users/"]
        .iter()
        .filter_map(|marker| path.find(marker))
        .min()?;
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    base.set_path(&path[..cut]);
    Some(base.as_str().trim_end_matches('/').to_owned())
}

/// `createdDate` / `updatedDate`: epoch milliseconds, or ISO text in some versions.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireTime {
    Millis(i64),
    Text(String),
}

impl WireTime {
    fn to_timestamp(&self, path: &str) -> Result<Timestamp, PayloadError> {
        match self {
            WireTime::Millis(ms) => Timestamp::from_epoch_millis(*ms)
                .ok_or_else(|| PayloadError(format!("{path}: {ms} is not a time"))),
            WireTime::Text(text) => {
                Timestamp::parse(text).map_err(|e| PayloadError(format!("{path}: {e}")))
            }
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    date: Option<Timestamp>,
    #[serde(rename = "pullRequest")]
    pull_request: WirePr,
    /// The reviewer whose verdict this event is about (`pr:reviewer:*`).
    participant: Option<WireParticipant>,
}

#[derive(Deserialize)]
struct WirePr {
    id: i64,
    title: String,
    state: String,
    #[serde(rename = "createdDate")]
    created_date: WireTime,
    #[serde(rename = "updatedDate")]
    updated_date: WireTime,
    #[serde(rename = "fromRef")]
    from_ref: WireRef,
    #[serde(rename = "toRef")]
    to_ref: WireRef,
    author: WireParticipant,
    #[serde(default)]
    reviewers: Vec<WireParticipant>,
    #[serde(default)]
    participants: Vec<WireParticipant>,
    draft: Option<bool>,
    /// The REST PR resource's `properties` (`openTaskCount`, ...); webhook payloads leave it
    /// out. https://developer.atlassian.com/server/bitbucket/rest/v906/api-group-pull-requests/
    properties: Option<WireProperties>,
    links: Option<WireLinks>,
}

/// The part of a PR's `properties` the turn needs.
#[derive(Deserialize)]
struct WireProperties {
    /// Open tasks (blocker comments) on the PR.
    #[serde(rename = "openTaskCount")]
    open_task_count: Option<u32>,
}

#[derive(Deserialize)]
struct WireRef {
    /// The full ref name (`refs/heads/main`).
    id: Option<String>,
    #[serde(rename = "displayId")]
    display_id: Option<String>,
    #[serde(rename = "latestCommit")]
    latest_commit: Option<String>,
    repository: Option<WireRepo>,
}

#[derive(Deserialize)]
struct WireRepo {
    id: i64,
    slug: String,
    project: WireProject,
    links: Option<WireLinks>,
}

#[derive(Deserialize)]
struct WireProject {
    key: String,
}

/// Some servers write `"self": [null]` (jenkins-x/go-scm's `pr_approved.json`): entries may be
/// null.
#[derive(Deserialize)]
struct WireLinks {
    #[serde(rename = "self", default)]
    self_: Vec<Option<WireHref>>,
    #[serde(default)]
    clone: Vec<Option<WireHref>>,
}

#[derive(Deserialize)]
struct WireHref {
    href: String,
}

#[derive(Deserialize)]
struct WireParticipant {
    user: WireUser,
    role: Option<String>,
    approved: Option<bool>,
    status: Option<String>,
    /// The source commit the reviewer's verdict was given on (`lastReviewedCommit`, in
    /// `pr:reviewer:*` payloads and the REST PR resource).
    #[serde(rename = "lastReviewedCommit")]
    last_reviewed_commit: Option<String>,
}

/// A user as Data Center's REST API answers it (`RestApplicationUser`: `id`, `name`, `slug`,
/// `displayName`, `emailAddress`), e.g. each item of the default reviewers of a PR.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ApiUser(WireUser);

impl ApiUser {
    /// The user as stored, keyed under `server` (`datacenter/{server}/user/{id}`), as a
    /// delivery's users are.
    pub fn into_domain(self, server: &str) -> Result<User, PayloadError> {
        self.0.into_domain(server, "user")
    }
}

#[derive(Deserialize)]
struct WireUser {
    id: Option<i64>,
    name: Option<String>,
    slug: Option<String>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "emailAddress")]
    email_address: Option<String>,
    links: Option<WireLinks>,
}

/// `host[:port]` of an http(s) link, as the server's name.
fn server_of(href: &str) -> Option<String> {
    crate::config::server_name(&reqwest::Url::parse(href).ok()?)
}

impl WireLinks {
    fn hrefs(&self) -> impl Iterator<Item = &str> {
        self.self_
            .iter()
            .chain(&self.clone)
            .flatten()
            .map(|h| h.href.as_str())
    }

    /// The first `self` link.
    fn first_self(&self) -> Option<&str> {
        self.self_.iter().flatten().next().map(|h| h.href.as_str())
    }
}

impl WireUser {
    fn into_domain(self, server: &str, path: &str) -> Result<User, PayloadError> {
        let id = match (self.id, self.name.as_deref()) {
            (Some(id), _) => id.to_string(),
            (None, Some(name)) => format!("name:{name}"),
            (None, None) => return Err(PayloadError(format!("{path}: user has no id or name"))),
        };
        Ok(User {
            key: format!("datacenter/{server}/user/{id}").into(),
            uuid: None,
            account_id: None,
            nickname: self.slug,
            username: self.name,
            display_name: self.display_name,
            email: self.email_address,
        })
    }
}

fn review_state(p: &WireParticipant) -> ReviewState {
    match p.status.as_deref() {
        Some("APPROVED") => ReviewState::Approved,
        Some("NEEDS_WORK") => ReviewState::ChangesRequested,
        Some(_) => ReviewState::None,
        None if p.approved == Some(true) => ReviewState::Approved,
        None => ReviewState::None,
    }
}

impl Envelope {
    /// A REST answer's server is the site's; a delivery's comes from its links.
    fn into_domain(self, event_key: &str, server: Server) -> Result<PullRequest, PayloadError> {
        let rest = matches!(server, Server::Site(_));
        let pr = self.pull_request;
        let repo = pr
            .to_ref
            .repository
            .ok_or_else(|| PayloadError("pullRequest.toRef.repository: missing field".into()))?;
        // The server: the site asked, or what the first http(s) link anywhere in the payload
        // names, as the configured servers read it.
        let server = match server {
            Server::Site(server) => server.to_owned(),
            Server::Linked(servers) => {
                let linked = pr
                    .links
                    .iter()
                    .chain(repo.links.iter())
                    .chain(pr.author.user.links.iter())
                    .flat_map(WireLinks::hrefs)
                    .find_map(server_of);
                servers.resolve(linked.as_deref())
            }
        };
        let full_name = format!("{}/{}", repo.project.key, repo.slug);
        let repository = Repository {
            key: RepositoryKey::datacenter(&server, repo.id),
            url: repo
                .links
                .as_ref()
                .and_then(WireLinks::first_self)
                .map(|href| href.trim_end_matches("/browse").to_owned()),
            full_name,
            uuid: None,
        };
        let state = if event_key == "pr:deleted" {
            PrState::Deleted
        } else {
            PrState::parse(&pr.state).ok_or_else(|| {
                PayloadError(format!(
                    "pullRequest.state: unknown state `{}` (expected OPEN, MERGED or DECLINED)",
                    pr.state
                ))
            })?
        };
        let created_on = pr.created_date.to_timestamp("pullRequest.createdDate")?;
        let updated = pr.updated_date.to_timestamp("pullRequest.updatedDate")?;
        // A verdict does not move `updatedDate`: the event's own time orders it.
        let updated_on = match self.date {
            Some(date) if date > updated => date,
            _ => updated.clone(),
        };
        let author = pr
            .author
            .user
            .into_domain(&server, "pullRequest.author.user")?;

        let mut participants: Vec<Participant> = Vec::new();
        let acting = self.participant;
        let lists = [
            (pr.reviewers, Role::Reviewer),
            (pr.participants, Role::Participant),
        ];
        for (list, role) in lists {
            let field = match role {
                Role::Reviewer => "reviewers",
                Role::Participant => "participants",
            };
            for (i, p) in list.into_iter().enumerate() {
                let state = review_state(&p);
                let reviewed_commit = p
                    .last_reviewed_commit
                    .as_deref()
                    .map(str::to_ascii_lowercase);
                let user = p
                    .user
                    .into_domain(&server, &format!("pullRequest.{field}[{i}].user"))?;
                if user.key == author.key || participants.iter().any(|q| q.user.key == user.key) {
                    continue;
                }
                participants.push(Participant {
                    user,
                    role,
                    state,
                    state_on: None,
                    reviewed_commit,
                });
            }
        }
        // The acting reviewer's verdict, as of this event (the list shows it too on the servers
        // seen; the event's own word wins).
        if let Some(p) = acting {
            let state = review_state(&p);
            let reviewed_commit = p
                .last_reviewed_commit
                .as_deref()
                .map(str::to_ascii_lowercase);
            let role = match p.role.as_deref() {
                Some("REVIEWER") => Role::Reviewer,
                _ => Role::Participant,
            };
            let user = p.user.into_domain(&server, "participant.user")?;
            if user.key != author.key {
                match participants.iter_mut().find(|q| q.user.key == user.key) {
                    Some(existing) => {
                        existing.state = state;
                        existing.state_on = Some(updated_on.clone());
                        if reviewed_commit.is_some() {
                            existing.reviewed_commit = reviewed_commit;
                        }
                    }
                    None => participants.push(Participant {
                        user,
                        role,
                        state,
                        state_on: Some(updated_on.clone()),
                        reviewed_commit,
                    }),
                }
            }
        }
        let url = pr
            .links
            .as_ref()
            .and_then(WireLinks::first_self)
            .map(str::to_owned);
        Ok(PullRequest {
            repository,
            number: pr.id,
            title: pr.title,
            author,
            source_branch: pr.from_ref.display_id,
            source_commit: pr.from_ref.latest_commit.map(|c| c.to_ascii_lowercase()),
            destination_branch: pr.to_ref.display_id,
            state,
            draft: pr.draft.unwrap_or(false),
            open_tasks: pr.properties.and_then(|p| p.open_task_count),
            created_on,
            activity_on: if rest { updated } else { updated_on.clone() },
            updated_on,
            url,
            participants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(status: &str, updated: &str, date: &str) -> String {
        format!(
            r#"{{"eventKey":"pr:reviewer:approved","date":"{date}",
            "participant":{{"user":{{"id":7,"name":"bob","slug":"bob","displayName":"Bob"}},"role":"REVIEWER","status":"{status}"}},
            "pullRequest":{{"id":3,"title":"T","state":"OPEN","createdDate":1551432675860,"updatedDate":{updated},
              "fromRef":{{"displayId":"feature","latestCommit":"ABCDEF0123","repository":{{"id":4,"slug":"api","project":{{"key":"PRJ"}}}}}},
              "toRef":{{"displayId":"main","repository":{{"id":4,"slug":"api","project":{{"key":"PRJ"}},
                "links":{{"self":[{{"href":"https://bb.example:7990/projects/PRJ/repos/api/browse"}}]}}}}}},
              "author":{{"user":{{"id":1,"name":"ann","displayName":"Ann"}},"role":"AUTHOR","status":"UNAPPROVED"}},
              "reviewers":[{{"user":{{"id":7,"name":"bob","slug":"bob","displayName":"Bob"}},"role":"REVIEWER","status":"UNAPPROVED"}}]}}}}"#
        )
    }

    fn pr(body: &str, key: &str) -> PullRequest {
        match parse(key, body.as_bytes(), &DataCenterServers::default()).unwrap() {
            Parsed::Change(Change::PullRequest(pr)) => *pr,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn keys_names_and_the_acting_reviewer() {
        let pr = pr(
            &body("NEEDS_WORK", "1551432675860", "2019-03-01T10:34:53+0100"),
            "pr:reviewer:needs_work",
        );
        assert_eq!(pr.repository.key.as_str(), "datacenter/bb.example:7990/4");
        assert_eq!(pr.repository.full_name, "PRJ/api");
        assert_eq!(
            pr.repository.url.as_deref(),
            Some("https://bb.example:7990/projects/PRJ/repos/api")
        );
        assert_eq!(pr.author.key.as_str(), "datacenter/bb.example:7990/user/1");
        assert_eq!(pr.source_commit.as_deref(), Some("abcdef0123"));
        let view: Vec<_> = pr
            .participants
            .iter()
            .map(|p| (p.user.key.as_str(), p.role, p.state))
            .collect();
        assert_eq!(
            view,
            vec![(
                "datacenter/bb.example:7990/user/7",
                Role::Reviewer,
                ReviewState::ChangesRequested
            )]
        );
        // The verdict's time, not the unchanged updatedDate, dates the snapshot.
        assert_eq!(pr.updated_on.as_str(), "2019-03-01T09:34:53.000000Z");
        assert_eq!(pr.created_on.as_str(), "2019-03-01T09:31:15.860000Z");
    }

    #[test]
    fn dates_in_every_format() {
        let iso = body(
            "APPROVED",
            "\"2019-03-01T09:40:00+0000\"",
            "2019-03-01T10:34:53+0100",
        );
        assert_eq!(
            pr(&iso, "pr:reviewer:approved").updated_on.as_str(),
            "2019-03-01T09:40:00.000000Z"
        );
        let bad = body("APPROVED", "\"yesterday\"", "2019-03-01T10:34:53+0100");
        let err = parse(
            "pr:reviewer:approved",
            bad.as_bytes(),
            &DataCenterServers::default(),
        )
        .unwrap_err();
        assert!(err.0.starts_with("pullRequest.updatedDate"), "{}", err.0);
    }

    #[test]
    fn deleted_is_its_own_state() {
        let b = body("UNAPPROVED", "1551432675860", "2019-03-01T10:34:53+0100");
        assert_eq!(pr(&b, "pr:deleted").state, PrState::Deleted);
        assert_eq!(pr(&b, "pr:modified").state, PrState::Open);
    }

    #[test]
    fn servers_without_links_are_unknown() {
        // Only http(s) links name the server; older servers send no links at all.
        let b = body("UNAPPROVED", "1551432675860", "2019-03-01T10:34:53+0100").replace(
            "https://bb.example:7990/projects/PRJ/repos/api/browse",
            "ssh://git@bb.example:7999/prj/api.git",
        );
        assert_eq!(
            pr(&b, "pr:opened").repository.key.as_str(),
            "datacenter/unknown/4"
        );
    }
}

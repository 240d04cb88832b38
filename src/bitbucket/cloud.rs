//! Bitbucket Cloud webhook payloads (`X-Event-Key: pullrequest:*`, `repo:commit_status_*`).
//!
//! The structs read only the fields pr-reminder needs (serde skips the rest, which is both
//! faster than a `serde_json::Value` and tolerant of fields Bitbucket adds later).

use serde::Deserialize;

use super::{from_slice, Parsed, PayloadError};
use crate::domain::{
    BuildState, Change, CommitStatus, Participant, PrState, PullRequest, Repository, RepositoryKey,
    RepositoryUpdate, ReviewState, Role, Timestamp, User,
};

/// The Cloud event keys pr-reminder acts on: pull-request events, build statuses and
/// `repo:updated` (DESIGN.md §4 "Bitbucket Cloud webhooks";
/// support.atlassian.com/bitbucket-cloud/docs/event-payloads). What `connect` subscribes hooks
/// to (`bitbucket::rest::hooks::CLOUD_EVENTS`).
pub const EVENT_KEYS: &[&str] = &[
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:approved",
    "pullrequest:unapproved",
    "pullrequest:changes_request_created",
    "pullrequest:changes_request_removed",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
    "repo:commit_status_created",
    "repo:commit_status_updated",
    "repo:updated",
];
const STATUS_KEYS: &[&str] = &["repo:commit_status_created", "repo:commit_status_updated"];
/// A repository's settings changed; pr-reminder reads its (new) name.
const REPOSITORY_KEY: &str = "repo:updated";

/// The Cloud event keys pr-reminder acts on (`EVENT_KEYS`).
pub fn handles(event_key: &str) -> bool {
    EVENT_KEYS.contains(&event_key)
}

/// Turns a Cloud payload into a domain change. `received_at` dates a `repo:updated`, whose
/// repository carries no time of its own.
pub fn parse(
    event_key: &str,
    body: &[u8],
    received_at: &Timestamp,
) -> Result<Parsed, PayloadError> {
    if event_key == REPOSITORY_KEY {
        let envelope: RepositoryEnvelope = from_slice(body)?;
        let updated_on = envelope
            .repository
            .updated_on
            .clone()
            .unwrap_or_else(|| received_at.clone());
        return Ok(Parsed::Change(Change::Repository(Box::new(
            RepositoryUpdate {
                repository: envelope.repository.into_domain(),
                updated_on,
            },
        ))));
    }
    if STATUS_KEYS.contains(&event_key) {
        let envelope: StatusEnvelope = from_slice(body)?;
        return Ok(Parsed::Change(Change::CommitStatus(Box::new(
            envelope.into_domain()?,
        ))));
    }
    let envelope: PrEnvelope = from_slice(body)?;
    Ok(Parsed::Change(Change::PullRequest(Box::new(
        envelope.into_domain(event_key)?,
    ))))
}

#[derive(Deserialize)]
struct PrEnvelope {
    pullrequest: WirePr,
    repository: Option<WireRepo>,
    comment: Option<WireComment>,
}

#[derive(Deserialize)]
struct WirePr {
    id: i64,
    title: String,
    state: String,
    author: WireUser,
    source: Option<WireEndpoint>,
    destination: Option<WireEndpoint>,
    #[serde(default)]
    participants: Vec<WireParticipant>,
    #[serde(default)]
    reviewers: Vec<WireUser>,
    created_on: Timestamp,
    updated_on: Timestamp,
    draft: Option<bool>,
    /// Open tasks on the PR ("task_count" in every PR resource and webhook payload:
    /// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/ -
    /// pullrequest schema).
    task_count: Option<u32>,
    links: Option<WireLinks>,
}

#[derive(Deserialize)]
struct WireEndpoint {
    branch: Option<WireBranch>,
    commit: Option<WireCommit>,
    repository: Option<WireRepo>,
}

#[derive(Deserialize)]
struct WireBranch {
    name: String,
}

#[derive(Deserialize)]
struct WireCommit {
    hash: String,
}

#[derive(Deserialize)]
struct WireRepo {
    full_name: String,
    uuid: Option<String>,
    links: Option<WireLinks>,
    /// Only in REST answers and some `repo:updated` bodies.
    updated_on: Option<Timestamp>,
}

/// `repo:updated`: the repository as it is now (its `changes` say what was before).
#[derive(Deserialize)]
struct RepositoryEnvelope {
    repository: WireRepo,
}

#[derive(Deserialize)]
struct WireLinks {
    html: Option<WireHref>,
    commit: Option<WireHref>,
}

#[derive(Deserialize)]
struct WireHref {
    href: String,
}

/// A user as Cloud's REST API answers it (`uuid`, `account_id`, `nickname`, `display_name`),
/// e.g. the `user` of each effective default reviewer.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ApiUser(WireUser);

impl ApiUser {
    /// The user as stored, keyed as a delivery's users are (`uuid`, else `account_id`, else
    /// `username`); an error names a user with none of them.
    pub fn into_domain(self) -> Result<User, PayloadError> {
        self.0.into_domain("user")
    }
}

#[derive(Deserialize)]
struct WireUser {
    uuid: Option<String>,
    account_id: Option<String>,
    nickname: Option<String>,
    username: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct WireParticipant {
    /// Absent in Atlassian's documentation templates, which list bare users here.
    user: Option<WireUser>,
    role: Option<String>,
    approved: Option<bool>,
    state: Option<String>,
    participated_on: Option<Timestamp>,
}

#[derive(Deserialize)]
struct WireComment {
    created_on: Option<Timestamp>,
}

#[derive(Deserialize)]
struct StatusEnvelope {
    commit_status: WireStatus,
    repository: WireRepo,
}

#[derive(Deserialize)]
struct WireStatus {
    key: String,
    state: String,
    name: Option<String>,
    url: Option<String>,
    updated_on: Timestamp,
    commit: Option<WireCommit>,
    links: Option<WireLinks>,
}

impl WireRepo {
    fn into_domain(self) -> Repository {
        Repository {
            key: RepositoryKey::cloud(self.uuid.as_deref(), &self.full_name),
            full_name: self.full_name,
            uuid: self.uuid,
            url: self.links.and_then(|l| l.html).map(|h| h.href),
        }
    }
}

impl WireUser {
    fn into_domain(self, path: &str) -> Result<User, PayloadError> {
        let key = self
            .uuid
            .clone()
            .or_else(|| self.account_id.clone())
            .or_else(|| self.username.clone())
            .ok_or_else(|| {
                PayloadError(format!("{path}: user has no uuid, account_id or username"))
            })?;
        Ok(User {
            key: key.into(),
            uuid: self.uuid,
            account_id: self.account_id,
            nickname: self.nickname,
            username: self.username,
            display_name: self.display_name,
            email: None,
        })
    }
}

impl PrEnvelope {
    fn into_domain(self, event_key: &str) -> Result<PullRequest, PayloadError> {
        let pr = self.pullrequest;
        let state = match PrState::parse(&pr.state) {
            Some(state) => state,
            // Atlassian's documentation templates say "OPEN|MERGED|DECLINED". Where the event
            // itself says what the state is we use that; elsewhere we refuse to guess.
            None => match event_key {
                "pullrequest:created" => PrState::Open,
                "pullrequest:fulfilled" => PrState::Merged,
                "pullrequest:rejected" => PrState::Declined,
                _ => {
                    return Err(PayloadError(format!(
                        "pullrequest.state: unknown state `{}` (expected OPEN, MERGED, DECLINED or SUPERSEDED)",
                        pr.state
                    )))
                }
            },
        };
        let (source_branch, source_commit) = endpoint_parts(pr.source);
        let destination_repo = pr.destination.as_ref().and_then(|d| d.repository.as_ref());
        let repository = match self.repository {
            Some(repo) => repo.into_domain(),
            None => match destination_repo {
                Some(repo) => Repository {
                    key: RepositoryKey::cloud(repo.uuid.as_deref(), &repo.full_name),
                    full_name: repo.full_name.clone(),
                    uuid: repo.uuid.clone(),
                    url: None,
                },
                None => return Err(PayloadError("repository: missing field".into())),
            },
        };
        let (destination_branch, _) = endpoint_parts(pr.destination);
        let author = pr.author.into_domain("pullrequest.author")?;

        let mut participants: Vec<Participant> = Vec::with_capacity(pr.participants.len());
        for (i, p) in pr.participants.into_iter().enumerate() {
            let Some(user) = p.user else { continue };
            let user = user.into_domain(&format!("pullrequest.participants[{i}].user"))?;
            let state = match p.state.as_deref() {
                Some("approved") => ReviewState::Approved,
                Some("changes_requested") => ReviewState::ChangesRequested,
                // Older payloads have no `state`, only the `approved` flag.
                _ if p.approved == Some(true) => ReviewState::Approved,
                _ => ReviewState::None,
            };
            let role = match p.role.as_deref() {
                Some("REVIEWER") => Role::Reviewer,
                _ => Role::Participant,
            };
            if participants.iter().any(|q| q.user.key == user.key) {
                continue;
            }
            participants.push(Participant {
                user,
                role,
                state,
                state_on: p.participated_on,
                reviewed_commit: None,
            });
        }
        // Requested reviewers who have not acted yet appear only in `reviewers`.
        for (i, r) in pr.reviewers.into_iter().enumerate() {
            let user = r.into_domain(&format!("pullrequest.reviewers[{i}]"))?;
            match participants.iter_mut().find(|p| p.user.key == user.key) {
                Some(existing) => existing.role = Role::Reviewer,
                None => participants.push(Participant {
                    user,
                    role: Role::Reviewer,
                    state: ReviewState::None,
                    state_on: None,
                    reviewed_commit: None,
                }),
            }
        }

        let mut activity_on = pr.updated_on.clone();
        if let Some(at) = self.comment.and_then(|c| c.created_on) {
            activity_on = activity_on.max(at);
        }
        let url = pr.links.and_then(|l| l.html).map(|h| h.href).or_else(|| {
            Some(format!(
                "https://bitbucket.org/{}/pull-requests/{}",
                repository.full_name, pr.id
            ))
        });
        Ok(PullRequest {
            repository,
            number: pr.id,
            title: pr.title,
            author,
            source_branch,
            source_commit,
            destination_branch,
            state,
            draft: pr.draft.unwrap_or(false),
            open_tasks: pr.task_count,
            created_on: pr.created_on,
            updated_on: pr.updated_on,
            activity_on,
            url,
            participants,
        })
    }
}

fn endpoint_parts(endpoint: Option<WireEndpoint>) -> (Option<String>, Option<String>) {
    match endpoint {
        Some(e) => (e.branch.map(|b| b.name), e.commit.map(|c| c.hash)),
        None => (None, None),
    }
}

impl StatusEnvelope {
    fn into_domain(self) -> Result<CommitStatus, PayloadError> {
        let status = self.commit_status;
        let state = BuildState::parse(&status.state).ok_or_else(|| {
            PayloadError(format!(
                "commit_status.state: unknown state `{}` (expected SUCCESSFUL, FAILED, INPROGRESS or STOPPED)",
                status.state
            ))
        })?;
        // Real deliveries carry `commit.hash`; Atlassian's templates only link to the commit.
        let commit_hash = status
            .commit
            .map(|c| c.hash)
            .or_else(|| {
                status
                    .links
                    .and_then(|l| l.commit)
                    .and_then(|h| h.href.rsplit('/').next().map(str::to_owned))
            })
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| PayloadError("commit_status.commit.hash: missing field".into()))?;
        Ok(CommitStatus {
            repository: self.repository.into_domain(),
            commit_hash: commit_hash.to_ascii_lowercase(),
            key: status.key,
            state,
            name: status.name,
            url: status.url,
            updated_on: status.updated_on,
        })
    }
}

/// A pull request as the REST API answers it (`GET /2.0/repositories/{ws}/{slug}/pullrequests`
/// items and `.../pullrequests/{id}`): the same shape as a payload's `pullrequest`, so the same
/// conversion makes the same snapshot (the repository is the destination's, keyed by its `uuid`).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ApiPullRequest(WirePr);

impl ApiPullRequest {
    /// The snapshot, dated by Bitbucket's `updated_on` (which an approval or a request for
    /// changes moves, as real deliveries show).
    pub fn into_domain(self) -> Result<PullRequest, PayloadError> {
        let envelope = PrEnvelope {
            pullrequest: self.0,
            repository: None,
            comment: None,
        };
        envelope.into_domain("rest")
    }

    /// The PR's number.
    pub fn number(&self) -> i64 {
        self.0.id
    }
}

/// A build status as the REST API answers it (`GET .../commit/{hash}/statuses` items): the
/// payload's `commit_status` shape.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ApiCommitStatus(WireStatus);

impl ApiCommitStatus {
    /// The status of a commit of `repository` (the one the pull request named, so that both
    /// carry the same key).
    pub fn into_domain(self, repository: &Repository) -> Result<CommitStatus, PayloadError> {
        let mut status = StatusEnvelope {
            commit_status: self.0,
            repository: WireRepo {
                full_name: repository.full_name.clone(),
                uuid: repository.uuid.clone(),
                links: None,
                updated_on: None,
            },
        }
        .into_domain()?;
        status.repository = repository.clone();
        Ok(status)
    }
}

/// A repository as `GET /2.0/repositories/{workspace}` lists it.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ApiRepository(WireRepo);

impl ApiRepository {
    /// `workspace/slug`.
    pub fn full_name(&self) -> &str {
        &self.0.full_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "repository": {"full_name": "acme/api"},
        "pullrequest": {
            "id": 7, "title": "Fix", "state": "OPEN",
            "author": {"uuid": "{a}", "display_name": "Ann"},
            "created_on": "2024-01-01T00:00:00+00:00",
            "updated_on": "2024-01-02T00:00:00+00:00",
            "participants": [
                {"user": {"uuid": "{b}"}, "role": "REVIEWER", "approved": true},
                {"user": {"username": "carl"}, "role": "PARTICIPANT", "state": "changes_requested", "approved": false}
            ],
            "reviewers": [{"uuid": "{b}"}, {"account_id": "557:d"}]
        }
    }"#;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-30T00:00:00Z").unwrap()
    }

    fn pr(body: &str, key: &str) -> PullRequest {
        match parse(key, body.as_bytes(), &Timestamp::now()).unwrap() {
            Parsed::Change(Change::PullRequest(pr)) => *pr,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn merges_participants_and_reviewers() {
        let pr = pr(MINIMAL, "pullrequest:updated");
        assert_eq!(pr.repository.full_name, "acme/api");
        assert_eq!(
            pr.url.as_deref(),
            Some("https://bitbucket.org/acme/api/pull-requests/7")
        );
        let view: Vec<_> = pr
            .participants
            .iter()
            .map(|p| (p.user.key.as_str(), p.role, p.state))
            .collect();
        assert_eq!(
            view,
            vec![
                ("{b}", Role::Reviewer, ReviewState::Approved),
                ("carl", Role::Participant, ReviewState::ChangesRequested),
                ("557:d", Role::Reviewer, ReviewState::None),
            ]
        );
    }

    #[test]
    fn errors_name_the_path() {
        let body = MINIMAL.replace(r#""id": 7"#, r#""id": "seven""#);
        let err = parse("pullrequest:created", body.as_bytes(), &now()).unwrap_err();
        assert!(
            err.0.starts_with("pullrequest.id: invalid type"),
            "{}",
            err.0
        );

        let body = MINIMAL.replace(r#""author": {"uuid": "{a}", "display_name": "Ann"},"#, "");
        let err = parse("pullrequest:created", body.as_bytes(), &now()).unwrap_err();
        assert_eq!(err.0, "pullrequest: missing field `author`");

        let body = MINIMAL.replace("2024-01-02T00:00:00+00:00", "soon");
        let err = parse("pullrequest:created", body.as_bytes(), &now()).unwrap_err();
        assert!(err.0.starts_with("pullrequest.updated_on: "), "{}", err.0);

        let err = parse("pullrequest:created", &MINIMAL.as_bytes()[..100], &now()).unwrap_err();
        assert!(err.0.starts_with("body is not valid JSON"), "{}", err.0);
    }

    #[test]
    fn template_state_only_where_the_key_decides() {
        let body = MINIMAL.replace(r#""state": "OPEN""#, r#""state": "OPEN|MERGED|DECLINED""#);
        assert_eq!(pr(&body, "pullrequest:fulfilled").state, PrState::Merged);
        assert_eq!(pr(&body, "pullrequest:rejected").state, PrState::Declined);
        let err = parse("pullrequest:approved", body.as_bytes(), &now()).unwrap_err();
        assert!(err.0.starts_with("pullrequest.state: unknown state"));
    }

    #[test]
    fn commit_status_hash_from_link() {
        let body = r#"{"repository": {"full_name": "a/b"}, "commit_status": {
            "key": "ci", "state": "FAILED", "updated_on": "2024-01-01T00:00:00Z",
            "links": {"commit": {"href": "https://api/commit/ABCDEF0123"}}}}"#;
        match parse("repo:commit_status_updated", body.as_bytes(), &now()).unwrap() {
            Parsed::Change(Change::CommitStatus(s)) => {
                assert_eq!(s.commit_hash, "abcdef0123");
                assert_eq!(s.state, BuildState::Failed);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

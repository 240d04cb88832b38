//! The model: repositories, users, pull requests, reviews, builds, and what a delivery or a
//! reconciliation pass changes.

use std::fmt;

use super::Timestamp;

/// What identifies a repository for good: Bitbucket never changes it, while the name
/// (`workspace/slug`) changes with a rename or a transfer.
///
/// Shapes (the flavour comes first, so a Cloud workspace and a Data Center project of the same
/// name can never collide):
/// - Bitbucket Cloud: `cloud/{uuid}`, the repository's `uuid` with its braces
///   (`cloud/{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}`). Every real Cloud payload carries it;
///   Atlassian's documentation templates do not, and then `cloud/name/{full_name}` stands in.
/// - Bitbucket Data Center: `datacenter/{server}/{id}`, the server's base URL host and the
///   numeric repository id.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RepositoryKey(String);

impl RepositoryKey {
    /// A Bitbucket Cloud repository: by `uuid`, else (templates only) by name.
    pub fn cloud(uuid: Option<&str>, full_name: &str) -> Self {
        match uuid.map(str::trim).filter(|u| !u.is_empty()) {
            Some(uuid) => Self(format!("cloud/{uuid}")),
            None => Self(format!("cloud/name/{full_name}")),
        }
    }

    /// A Bitbucket Data Center repository: its server (`host[:port]`, `unknown` when the payload
    /// names none) and its numeric id.
    pub fn datacenter(server: &str, id: i64) -> Self {
        Self(format!("datacenter/{server}/{id}"))
    }

    /// Which Bitbucket the repository lives on.
    pub fn flavour(&self) -> Flavour {
        if self.0.starts_with("datacenter/") {
            Flavour::DataCenter
        } else {
            Flavour::Cloud
        }
    }

    /// A Data Center key's server and repository id (`("bb.example:7990", 42)`); `None` for a
    /// Cloud key.
    pub fn datacenter_parts(&self) -> Option<(&str, i64)> {
        let rest = self.0.strip_prefix("datacenter/")?;
        let (server, id) = rest.rsplit_once('/')?;
        Some((server, id.parse().ok()?))
    }

    /// A key as the database holds it (written by this program, so already well-formed).
    pub fn from_stored(key: String) -> Self {
        Self(key)
    }

    /// The key as stored in `repositories.repository_key` (e.g. `cloud/{uuid}`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository: its lasting identity and its current name (`workspace/slug`, Bitbucket's
/// `full_name`), which is what people read and what routes match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The lasting identity, which survives renames and transfers.
    pub key: RepositoryKey,
    /// `workspace/slug` on Cloud (Bitbucket's `full_name`), `PROJECT/slug` on Data Center.
    pub full_name: String,
    /// Cloud's `repository.uuid`, with braces; `None` on Data Center and in documentation
    /// templates.
    pub uuid: Option<String>,
    /// The repository's web page (Cloud's `links.html.href`, Data Center's `links.self` without
    /// `/browse`), if the payload has one.
    pub url: Option<String>,
}

/// What identifies a Bitbucket account: the most stable identifier a payload carries, its
/// `uuid` (Cloud: `{...}` with braces), else its `account_id`, else the legacy `username`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct UserKey(String);

impl UserKey {
    /// The key as stored in `users.user_key`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same Data Center account on `server` (`datacenter/{server}/user/{id}`); a Cloud key
    /// is left as it is.
    fn on_server(&self, server: &str) -> UserKey {
        match self
            .0
            .strip_prefix("datacenter/")
            .and_then(|rest| rest.split_once("/user/"))
        {
            Some((_, id)) => UserKey(format!("datacenter/{server}/user/{id}")),
            None => self.clone(),
        }
    }
}

impl From<String> for UserKey {
    fn from(key: String) -> Self {
        Self(key)
    }
}

impl From<&str> for UserKey {
    fn from(key: &str) -> Self {
        Self(key.to_owned())
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Bitbucket account, with every name a payload showed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The lasting identity: see `UserKey`. On Data Center, `datacenter/{server}/user/{id}`.
    pub key: UserKey,
    /// Cloud's `uuid`, with braces (`{...}`).
    pub uuid: Option<String>,
    /// Cloud's Atlassian `account_id` (`557058:...`).
    pub account_id: Option<String>,
    /// Cloud's `nickname`; on Data Center, the user's `slug`.
    pub nickname: Option<String>,
    /// The legacy Cloud `username`; on Data Center, the login `name`.
    pub username: Option<String>,
    /// The name people read (`display_name` on Cloud, `displayName` on Data Center).
    pub display_name: Option<String>,
    /// Data Center's `emailAddress` (Cloud payloads carry none).
    pub email: Option<String>,
}

impl User {
    /// A user known by its key alone (every name unknown): stored names are kept, as the
    /// writer only fills in names a snapshot carries.
    pub fn keyed(key: UserKey) -> User {
        User {
            key,
            uuid: None,
            account_id: None,
            nickname: None,
            username: None,
            display_name: None,
            email: None,
        }
    }
}

/// A pull request's state as Bitbucket reports it (`OPEN`, `MERGED`, `DECLINED`, `SUPERSEDED`),
/// plus `DELETED` for Data Center's `pr:deleted`; stored in `pull_requests.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    /// `OPEN`: awaiting review or merge; the only state that is announced or reminded of.
    Open,
    /// `MERGED` (Cloud `pullrequest:fulfilled`, Data Center `pr:merged`).
    Merged,
    /// `DECLINED` (Cloud `pullrequest:rejected`, Data Center `pr:declined`).
    Declined,
    /// `SUPERSEDED`: Cloud only, replaced by another pull request.
    Superseded,
    /// Deleted on Data Center (`pr:deleted`): it leaves every list and is never announced again.
    Deleted,
}

impl PrState {
    /// The upper-case wire and database spelling (`OPEN`, ..., `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            PrState::Open => "OPEN",
            PrState::Merged => "MERGED",
            PrState::Declined => "DECLINED",
            PrState::Superseded => "SUPERSEDED",
            PrState::Deleted => "DELETED",
        }
    }

    /// Reads the exact upper-case spelling `as_str` writes; `None` for anything else (a
    /// documentation template's `OPEN|MERGED|DECLINED`, say).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OPEN" => Some(PrState::Open),
            "MERGED" => Some(PrState::Merged),
            "DECLINED" => Some(PrState::Declined),
            "SUPERSEDED" => Some(PrState::Superseded),
            "DELETED" => Some(PrState::Deleted),
            _ => None,
        }
    }
}

/// How someone is attached to a pull request (Bitbucket's `participants[].role`); stored in
/// `reviews.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `REVIEWER`: asked to review (listed in the PR's `reviewers`).
    Reviewer,
    /// `PARTICIPANT`: took part (commented, approved) without being asked.
    Participant,
}

impl Role {
    /// The upper-case wire and database spelling: `REVIEWER` or `PARTICIPANT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reviewer => "REVIEWER",
            Role::Participant => "PARTICIPANT",
        }
    }
}

/// A participant's verdict: Bitbucket Cloud's `participants[].state` (`approved`,
/// `changes_requested`, or null) or Data Center's `status` (`APPROVED`, `NEEDS_WORK`,
/// `UNAPPROVED`); stored in `reviews.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    /// Approved (Cloud `approved`, or the older `approved: true` flag; Data Center `APPROVED`).
    Approved,
    /// Changes requested (Cloud `changes_requested`, Data Center `NEEDS_WORK`).
    ChangesRequested,
    /// No verdict yet, or one withdrawn (Data Center `UNAPPROVED`).
    None,
}

impl ReviewState {
    /// The lower-case database spelling: `approved`, `changes_requested` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Approved => "approved",
            ReviewState::ChangesRequested => "changes_requested",
            ReviewState::None => "none",
        }
    }
}

/// Someone attached to a pull request: a requested reviewer, or anyone who took part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Who it is.
    pub user: User,
    /// Asked to review, or just taking part.
    pub role: Role,
    /// Their verdict as of this snapshot.
    pub state: ReviewState,
    /// When this person last acted on the PR (Bitbucket's `participated_on`), if known.
    pub state_on: Option<Timestamp>,
    /// Data Center's `lastReviewedCommit`: the source commit the verdict was given on (lower
    /// case); `None` on Cloud, which dates verdicts instead.
    pub reviewed_commit: Option<String>,
}

/// The whole of a pull request as one event showed it at `updated_on`.
///
/// Every Bitbucket pull-request event carries the full PR, so each one is applied as a snapshot:
/// it replaces what is stored only when it is not older, which makes arrival order irrelevant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The repository the PR targets (its destination), with the name the event carries.
    pub repository: Repository,
    /// The PR's `id`, numbered per repository.
    pub number: i64,
    /// The title as of this snapshot (a `WIP`-like title keeps it from being announced).
    pub title: String,
    /// Who opened the PR.
    pub author: User,
    /// The source branch name (Cloud `source.branch.name`, Data Center `fromRef.displayId`).
    pub source_branch: Option<String>,
    /// The source branch's head commit as Bitbucket gives it (Cloud: 12 hex digits; Data Center:
    /// `fromRef.latestCommit` in full, lower-cased), which builds are matched against.
    pub source_commit: Option<String>,
    /// The target branch name (Cloud `destination.branch.name`, Data Center `toRef.displayId`).
    pub destination_branch: Option<String>,
    /// Open, merged, declined, superseded or deleted.
    pub state: PrState,
    /// Bitbucket's `draft` flag (absent means false); drafts are not announced.
    pub draft: bool,
    /// Open tasks: Cloud's `task_count`, Data Center's open task count (REST
    /// `properties.openTaskCount`); `None` when the payload does not say.
    pub open_tasks: Option<u32>,
    /// When the PR was opened (Cloud `created_on`, Data Center `createdDate`).
    pub created_on: Timestamp,
    /// The snapshot's time, which orders snapshots: Cloud's `updated_on`, or on Data Center the
    /// later of `updatedDate` and the event's `date` (a verdict does not move `updatedDate`).
    pub updated_on: Timestamp,
    /// The latest activity this event shows (a comment's time, or `updated_on`).
    pub activity_on: Timestamp,
    /// The PR's web page (`links.html.href` on Cloud, `links.self` on Data Center).
    pub url: Option<String>,
    /// Reviewers and everyone who took part, one entry per user (the author excluded on Data
    /// Center).
    pub participants: Vec<Participant>,
}

impl PullRequest {
    /// The same Data Center PR as stored under `server` (another identity of the same server):
    /// its repository key and every Data Center user key name `server`. A Cloud PR is returned
    /// as it is.
    pub fn on_server(mut self, server: &str) -> PullRequest {
        let Some((_, id)) = self.repository.key.datacenter_parts() else {
            return self;
        };
        self.repository.key = RepositoryKey::datacenter(server, id);
        self.author.key = self.author.key.on_server(server);
        for p in &mut self.participants {
            p.user.key = p.user.key.on_server(server);
        }
        self
    }
}

/// A build's state as Bitbucket Cloud's `commit_status.state` reports it (`SUCCESSFUL`,
/// `FAILED`, `INPROGRESS`, `STOPPED`); stored in `commit_statuses.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildState {
    /// `SUCCESSFUL`: passed.
    Successful,
    /// `FAILED`: failed; any failing build makes the PR's combined build state failed.
    Failed,
    /// `INPROGRESS`: still running.
    InProgress,
    /// `STOPPED`: stopped before finishing (neither passed nor failed).
    Stopped,
}

impl BuildState {
    /// The upper-case wire and database spelling (`SUCCESSFUL`, ..., `STOPPED`).
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Successful => "SUCCESSFUL",
            BuildState::Failed => "FAILED",
            BuildState::InProgress => "INPROGRESS",
            BuildState::Stopped => "STOPPED",
        }
    }

    /// Reads the exact upper-case spelling `as_str` writes; `None` for any other state.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SUCCESSFUL" => Some(BuildState::Successful),
            "FAILED" => Some(BuildState::Failed),
            "INPROGRESS" => Some(BuildState::InProgress),
            "STOPPED" => Some(BuildState::Stopped),
            _ => None,
        }
    }
}

/// One build's result on one commit (`repo:commit_status_*`). Keyed by (commit, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The repository the commit belongs to.
    pub repository: Repository,
    /// The commit's full hash (`commit_status.commit.hash`, else the last segment of its link).
    pub commit_hash: String,
    /// The build's `key`, unique per commit: a later status with the same key replaces it.
    pub key: String,
    /// Passed, failed, running or stopped.
    pub state: BuildState,
    /// The build's human-readable `name`.
    pub name: Option<String>,
    /// Link to the build's results (`commit_status.url`).
    pub url: Option<String>,
    /// When the status last changed (`commit_status.updated_on`); orders statuses of one key.
    pub updated_on: Timestamp,
}

/// A repository's own news (Cloud `repo:updated`): its name as of `updated_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUpdate {
    /// The repository with its new name.
    pub repository: Repository,
    /// When it changed (`repository.updated_on`, else when it arrived); an older update never
    /// overwrites a newer name.
    pub updated_on: Timestamp,
}

/// What a verified, understood delivery (or a reconciliation pass) changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A snapshot of a whole pull request (any `pullrequest:*` or `pr:*` event).
    PullRequest(Box<PullRequest>),
    /// A build result (`repo:commit_status_created` or `_updated`).
    CommitStatus(Box<CommitStatus>),
    /// A repository's new name (`repo:updated`).
    Repository(Box<RepositoryUpdate>),
}

impl Change {
    /// The repository it concerns, with the name it carries.
    pub fn repository(&self) -> &Repository {
        match self {
            Change::PullRequest(pr) => &pr.repository,
            Change::CommitStatus(status) => &status.repository,
            Change::Repository(update) => &update.repository,
        }
    }

    /// When the change happened by Bitbucket's clock: the newest of two changes to the same
    /// thing wins, whatever their arrival order.
    pub fn updated_on(&self) -> &Timestamp {
        match self {
            Change::PullRequest(pr) => &pr.updated_on,
            Change::CommitStatus(status) => &status.updated_on,
            Change::Repository(update) => &update.updated_on,
        }
    }

    /// The pull request's number, for a pull-request change; `None` for the others.
    pub fn pr_number(&self) -> Option<i64> {
        match self {
            Change::PullRequest(pr) => Some(pr.number),
            Change::CommitStatus(_) | Change::Repository(_) => None,
        }
    }
}

/// How a delivery ended, as recorded in the `deliveries` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Understood and folded into state (unless it is a redelivery).
    Processed(Change),
    /// Authentic but of no interest (an event key we do not handle).
    Ignored { reason: String },
    /// Refused: bad signature, oversize, malformed. `reason` is what the sender was told.
    Rejected { reason: String },
}

impl Outcome {
    /// The word stored in `deliveries.outcome`: `processed`, `ignored` or `rejected`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Processed(_) => "processed",
            Outcome::Ignored { .. } => "ignored",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

/// One HTTP delivery from Bitbucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Cloud or Data Center, told apart by the headers.
    pub flavour: Flavour,
    /// `X-Request-UUID` (Cloud) or `X-Request-Id` (Data Center); the de-duplication key.
    pub request_id: Option<String>,
    /// `X-Event-Key`, e.g. `pullrequest:created` or `pr:opened`.
    pub event_key: Option<String>,
    /// `X-Attempt-Number`: 1 for the first try, higher for Bitbucket's retries (Cloud only).
    pub attempt: Option<i64>,
    /// When the request arrived, by this server's clock.
    pub received_at: Timestamp,
    /// Processed, ignored or rejected, and why.
    pub outcome: Outcome,
}

/// Which Bitbucket sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Bitbucket Cloud (bitbucket.org).
    Cloud,
    /// Bitbucket Data Center (formerly Server), self-hosted.
    DataCenter,
}

impl Flavour {
    /// The lower-case spelling used in keys and records: `cloud` or `datacenter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Cloud => "cloud",
            Flavour::DataCenter => "datacenter",
        }
    }
}

/// Who started a piece of periodic work (recorded, e.g. in `sweeps.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /sweep` (and, next, `POST /reconcile`) from a scheduler.
    Http,
    /// `pr-reminder sweep` on the command line.
    Cli,
    /// The built-in schedule.
    Schedule,
}

impl Trigger {
    /// The spelling stored in `sweeps.trigger`: `http`, `cli` or `schedule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Cli => "cli",
            Trigger::Schedule => "schedule",
        }
    }
}

/// Where a change comes from, which decides how the writer records and de-duplicates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A webhook delivery: recorded in `deliveries`, de-duplicated by its request id.
    Delivery(Delivery),
    /// A reconciliation pass over the REST API: nothing to record or de-duplicate; snapshot
    /// ordering alone keeps an older answer from overwriting newer state.
    Reconciliation(Change),
}

/// One unit of work for the writer: a change with its origin, and whether the rooms may hear
/// about it (a backfill must not announce thirty old PRs as new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// A delivery or a reconciliation pass, with the change it carries.
    pub origin: Origin,
    /// Whether the change may queue notifications (false for a backfill).
    pub announce: bool,
}

impl Submission {
    /// A webhook delivery, announced.
    pub fn delivery(delivery: Delivery) -> Self {
        Submission {
            origin: Origin::Delivery(delivery),
            announce: true,
        }
    }

    /// A change found by reconciliation; `announce` false for a backfill.
    pub fn reconciliation(change: Change, announce: bool) -> Self {
        Submission {
            origin: Origin::Reconciliation(change),
            announce,
        }
    }

    /// The change it carries, if any (an ignored or rejected delivery carries none).
    pub fn change(&self) -> Option<&Change> {
        match &self.origin {
            Origin::Delivery(Delivery {
                outcome: Outcome::Processed(change),
                ..
            })
            | Origin::Reconciliation(change) => Some(change),
            Origin::Delivery(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datacenter_pr_moves_to_another_identity_of_its_server() {
        let user = |key: &str| User::keyed(UserKey::from(key));
        let at = Timestamp::parse("2026-11-24T10:00:00Z").unwrap();
        let pr = PullRequest {
            repository: Repository {
                key: RepositoryKey::datacenter("unknown", 17),
                full_name: "PRJ/api".into(),
                uuid: None,
                url: None,
            },
            number: 2,
            title: "T".into(),
            author: user("datacenter/unknown/user/1"),
            source_branch: None,
            source_commit: None,
            destination_branch: None,
            state: PrState::Open,
            draft: false,
            open_tasks: None,
            created_on: at.clone(),
            updated_on: at.clone(),
            activity_on: at,
            url: None,
            participants: vec![Participant {
                user: user("datacenter/unknown/user/name:bob"),
                role: Role::Reviewer,
                state: ReviewState::Approved,
                state_on: None,
                reviewed_commit: None,
            }],
        };
        assert_eq!(pr.repository.key.datacenter_parts(), Some(("unknown", 17)));
        let moved = pr.on_server("bb.example:7990");
        assert_eq!(
            moved.repository.key.as_str(),
            "datacenter/bb.example:7990/17"
        );
        assert_eq!(
            moved.author.key.as_str(),
            "datacenter/bb.example:7990/user/1"
        );
        assert_eq!(
            moved.participants[0].user.key.as_str(),
            "datacenter/bb.example:7990/user/name:bob"
        );
        assert_eq!(
            RepositoryKey::cloud(Some("{u}"), "a/b").datacenter_parts(),
            None
        );
    }
}

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

    /// A key as the database holds it (written by this program, so already well-formed).
    pub fn from_stored(key: String) -> Self {
        Self(key)
    }

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
    pub key: RepositoryKey,
    pub full_name: String,
    pub uuid: Option<String>,
    pub url: Option<String>,
}

/// What identifies a Bitbucket account: the most stable identifier a payload carries, its
/// `uuid` (Cloud: `{...}` with braces), else its `account_id`, else the legacy `username`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct UserKey(String);

impl UserKey {
    pub fn as_str(&self) -> &str {
        &self.0
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
    pub key: UserKey,
    pub uuid: Option<String>,
    pub account_id: Option<String>,
    pub nickname: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// Data Center's `emailAddress` (Cloud payloads carry none).
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Merged,
    Declined,
    Superseded,
    /// Deleted on Data Center (`pr:deleted`): it leaves every list and is never announced again.
    Deleted,
}

impl PrState {
    pub fn as_str(self) -> &'static str {
        match self {
            PrState::Open => "OPEN",
            PrState::Merged => "MERGED",
            PrState::Declined => "DECLINED",
            PrState::Superseded => "SUPERSEDED",
            PrState::Deleted => "DELETED",
        }
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Reviewer,
    Participant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reviewer => "REVIEWER",
            Role::Participant => "PARTICIPANT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    None,
}

impl ReviewState {
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
    pub user: User,
    pub role: Role,
    pub state: ReviewState,
    /// When this person last acted on the PR (Bitbucket's `participated_on`), if known.
    pub state_on: Option<Timestamp>,
}

/// The whole of a pull request as one event showed it at `updated_on`.
///
/// Every Bitbucket pull-request event carries the full PR, so each one is applied as a snapshot:
/// it replaces what is stored only when it is not older, which makes arrival order irrelevant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub repository: Repository,
    pub number: i64,
    pub title: String,
    pub author: User,
    pub source_branch: Option<String>,
    pub source_commit: Option<String>,
    pub destination_branch: Option<String>,
    pub state: PrState,
    pub draft: bool,
    pub created_on: Timestamp,
    pub updated_on: Timestamp,
    /// The latest activity this event shows (a comment's time, or `updated_on`).
    pub activity_on: Timestamp,
    pub url: Option<String>,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildState {
    Successful,
    Failed,
    InProgress,
    Stopped,
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Successful => "SUCCESSFUL",
            BuildState::Failed => "FAILED",
            BuildState::InProgress => "INPROGRESS",
            BuildState::Stopped => "STOPPED",
        }
    }

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
    pub repository: Repository,
    pub commit_hash: String,
    pub key: String,
    pub state: BuildState,
    pub name: Option<String>,
    pub url: Option<String>,
    pub updated_on: Timestamp,
}

/// A repository's own news (Cloud `repo:updated`): its name as of `updated_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUpdate {
    pub repository: Repository,
    pub updated_on: Timestamp,
}

/// What a verified, understood delivery (or a reconciliation pass) changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PullRequest(Box<PullRequest>),
    CommitStatus(Box<CommitStatus>),
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
    pub event_key: Option<String>,
    pub attempt: Option<i64>,
    pub received_at: Timestamp,
    pub outcome: Outcome,
}

/// Which Bitbucket sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Cloud,
    DataCenter,
}

impl Flavour {
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
    pub origin: Origin,
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

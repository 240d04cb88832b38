use super::Timestamp;

/// A repository, named `workspace/slug` as Bitbucket's `full_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub full_name: String,
    pub uuid: Option<String>,
    pub url: Option<String>,
}

/// A Bitbucket account. `key` is the most stable identifier the payload carries: the `uuid`,
/// else the `account_id`, else the legacy `username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub key: String,
    pub uuid: Option<String>,
    pub account_id: Option<String>,
    pub nickname: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

impl User {
    /// The name people recognise: display name, else nickname, else username, else the key.
    pub fn label(&self) -> &str {
        self.display_name
            .as_deref()
            .or(self.nickname.as_deref())
            .or(self.username.as_deref())
            .unwrap_or(&self.key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Merged,
    Declined,
    Superseded,
}

impl PrState {
    pub fn as_str(self) -> &'static str {
        match self {
            PrState::Open => "OPEN",
            PrState::Merged => "MERGED",
            PrState::Declined => "DECLINED",
            PrState::Superseded => "SUPERSEDED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OPEN" => Some(PrState::Open),
            "MERGED" => Some(PrState::Merged),
            "DECLINED" => Some(PrState::Declined),
            "SUPERSEDED" => Some(PrState::Superseded),
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

/// What a verified, understood delivery changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PullRequest(Box<PullRequest>),
    CommitStatus(Box<CommitStatus>),
}

impl Change {
    pub fn repository(&self) -> &str {
        match self {
            Change::PullRequest(pr) => &pr.repository.full_name,
            Change::CommitStatus(status) => &status.repository.full_name,
        }
    }

    pub fn pr_number(&self) -> Option<i64> {
        match self {
            Change::PullRequest(pr) => Some(pr.number),
            Change::CommitStatus(_) => None,
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
    /// `X-Request-UUID` (Cloud) or `X-Request-Id` (Data Center); the de-duplication key.
    pub request_id: Option<String>,
    pub event_key: Option<String>,
    pub attempt: Option<i64>,
    pub received_at: Timestamp,
    pub outcome: Outcome,
}

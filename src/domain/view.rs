//! How people see a pull request: one view type for a chat message, a digest line and a
//! `/reviews` answer, filled from the store and rendered by `notify`.

use chrono::{DateTime, Utc};

use super::{BuildState, RepositoryKey, Turn};

/// A requested reviewer who has not acted yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviewer {
    /// The name people recognise (display name, nickname, username, else the key).
    pub name: String,
    /// The account's identifiers a `[[users]]` mapping may name: key, account id, nickname,
    /// username, e-mail (empty ones left out).
    pub ids: Vec<String>,
    /// HipChat mention name, where `[[users]]` maps the account.
    pub hipchat: Option<String>,
    /// Slack member id, where `[[users]]` maps the account.
    pub slack: Option<String>,
    /// Google Chat user id (`123456789`, without `users/`), where `[[users]]` maps the account.
    pub google_chat: Option<String>,
    /// Microsoft Teams user principal name or object id, where `[[users]]` maps the account.
    pub teams: Option<String>,
}

/// A pull request as a message shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullRequestView {
    /// The repository's lasting key.
    pub key: RepositoryKey,
    /// The repository's current name, `workspace/slug`.
    pub repository: String,
    /// The PR's number in its repository.
    pub number: i64,
    /// The title, as stored (plain text; each chat's formatter makes it safe for its markup).
    pub title: String,
    /// The PR's web page, if known.
    pub url: Option<String>,
    /// The author's name.
    pub author: String,
    /// When the PR was opened; digests show its age from this.
    pub created_on: DateTime<Utc>,
    /// Approvals that count (never the author's own).
    pub approvals: u32,
    /// Who approved, oldest verdict first.
    pub approved_by: Vec<String>,
    /// Approvals the PR's route requires.
    pub required_approvals: u32,
    /// Who asked for changes, by name.
    pub changes_requested_by: Vec<String>,
    /// Combined build state of the source commit (any failing: failed; else any running:
    /// running; else any stopped: stopped; else passed), or none reported.
    pub build_state: Option<BuildState>,
    /// (name, url) of the failing builds on the source commit.
    pub failed_builds: Vec<(String, Option<String>)>,
    /// The owed reviewers (issue 23): requested reviewers with neither an approval that counts
    /// nor a standing request for changes, in the order their verdicts came (none first).
    pub waiting_for: Vec<Reviewer>,
    /// The author as a person a `[[users]]` mapping may name (for "Alice's turn").
    pub author_as: Reviewer,
    /// Whose turn it is, where the details were read (`TurnFacts::turn`).
    pub turn: Option<Turn>,
    /// Since when it has been that turn (`TurnFacts::since`).
    pub turn_since: Option<DateTime<Utc>>,
    /// Open tasks, where Bitbucket told.
    pub open_tasks: Option<u32>,
}

/// What one room's digest (or one person's list) holds: the oldest PRs of each list, and how
/// many there are in all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomDigest {
    /// Short of approvals, nobody asking for changes.
    pub waiting_review: Vec<PullRequestView>,
    /// Changes requested: the author has the next move.
    pub waiting_author: Vec<PullRequestView>,
    /// How many PRs wait for review in all, including those beyond the listed ones.
    pub review_total: usize,
    /// How many PRs wait for their author in all, including those beyond the listed ones.
    pub author_total: usize,
    /// Approvals met, nothing blocking (turn `merge`, issue 23): the author can merge.
    pub ready_to_merge: Vec<PullRequestView>,
    /// How many PRs are ready to merge in all, including those beyond the listed ones.
    pub merge_total: usize,
}

impl RoomDigest {
    /// Nothing waits in this room: the digest would say "all clear" (or nothing).
    pub fn is_empty(&self) -> bool {
        self.review_total == 0 && self.author_total == 0 && self.merge_total == 0
    }

    /// Every PR the digest shows.
    pub fn views_mut(&mut self) -> impl Iterator<Item = &mut PullRequestView> {
        self.waiting_review
            .iter_mut()
            .chain(self.waiting_author.iter_mut())
            .chain(self.ready_to_merge.iter_mut())
    }
}

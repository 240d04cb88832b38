//! The review flow in numbers (issue 28): how long pull requests wait, for whom, and whether it
//! is getting better.
//!
//! Everything here is pure. The store reads the dated facts of the PRs a window touches
//! (`PrFacts`, `TurnSpan`, `ReviewRequest`, one read each) and `ReviewFlow::compute` turns them
//! into figures. Every time is a span between two of Bitbucket's own dates (creation,
//! participants' `participated_on`, the snapshot's `updated_on`, the close), never the time
//! pr-reminder received a delivery, so a backfill yields the same figures as live webhooks.
//!
//! Statistics: a `median` is the middle value of the sorted sample, or the mean of the two
//! middle values when the count is even (rounded down to the second); a `p90` is the
//! nearest-rank 90th percentile (the value at rank ⌈0.9·n⌉ of the sorted sample). Both are
//! `None` for an empty sample.

use super::{PrState, RepositoryKey, Timestamp, UserKey};

/// The dated facts of one pull request, kept after the PR's own rows are pruned
/// (`pull_request_facts`, one row per PR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrFacts {
    /// The repository the PR targets.
    pub repository: RepositoryKey,
    /// The repository's full name as shown (`team/api`, `PROJ/repo`).
    pub repository_name: String,
    /// The PR's id in its repository.
    pub number: i64,
    /// The title as last seen.
    pub title: String,
    /// The PR's web page, if known.
    pub url: Option<String>,
    /// Who opened it.
    pub author: UserKey,
    /// When it was opened (Cloud `created_on`, Data Center `createdDate`).
    pub created_on: Timestamp,
    /// When the review clock started: `created_on`, or the `updated_on` of the first snapshot
    /// that showed it out of draft when it was opened as a draft.
    pub ready_on: Option<Timestamp>,
    /// The first approval, request for changes or comment by someone other than the author
    /// (the earliest `participated_on` of such a participant ever seen).
    pub first_review_on: Option<Timestamp>,
    /// When the approvals that count first reached the required number.
    pub approved_on: Option<Timestamp>,
    /// Merged, declined, superseded, deleted, or still open.
    pub state: PrState,
    /// When it left `OPEN` (the `updated_on` of the closing snapshot; Data Center
    /// `closedDate` where given).
    pub closed_on: Option<Timestamp>,
    /// Approvals that counted when it closed (or now, while open).
    pub approvals: u32,
    /// Approvals its route required.
    pub required_approvals: u32,
    /// Review rounds: requests for changes followed by a new commit.
    pub rounds: u32,
}

/// One stretch of a PR's life during which the same party had the turn
/// (`pull_request_turns`): `turn` is `reviewers`, `author` or `merge` (`Turn::label`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnSpan {
    /// The PR.
    pub repository: RepositoryKey,
    /// The PR's id.
    pub number: i64,
    /// `reviewers`, `author` or `merge`.
    pub turn: String,
    /// When the turn passed to this party (a Bitbucket date).
    pub since: Timestamp,
    /// When it passed on; `None` while it is still theirs.
    pub until: Option<Timestamp>,
}

/// A reviewer being asked for a review on a PR, and when they gave it
/// (`pull_request_review_requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    /// The PR.
    pub repository: RepositoryKey,
    /// The PR's id.
    pub number: i64,
    /// Who was asked.
    pub reviewer: UserKey,
    /// Their display name, as last seen.
    pub reviewer_name: String,
    /// When they were first seen as a requested reviewer (the snapshot's `updated_on`, or the
    /// PR's `ready_on` when they were requested before it was ready).
    pub asked_on: Timestamp,
    /// Their first approval or request for changes (`participated_on`), if any.
    pub reviewed_on: Option<Timestamp>,
}

/// A sample's size, median and 90th percentile, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stat {
    /// How many values the sample has.
    pub count: u32,
    /// The median, in seconds (see the module's definition).
    pub median_seconds: Option<i64>,
    /// The nearest-rank 90th percentile, in seconds.
    pub p90_seconds: Option<i64>,
}

/// A sample of review-round counts: its size, median and 90th percentile (same definitions as
/// `Stat`, over counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rounds {
    /// How many PRs the sample has.
    pub count: u32,
    /// The median number of rounds.
    pub median: Option<i64>,
    /// The nearest-rank 90th percentile of rounds.
    pub p90: Option<i64>,
}

/// The figures of one group of PRs (everything, one repository, or one room's PRs) over a
/// window. A PR counts in a time's sample when the end of that time falls in the window
/// (a merge in the window counts in `time_to_merge`, whenever the PR was opened).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// PRs opened in the window.
    pub opened: u32,
    /// PRs merged in the window.
    pub merged: u32,
    /// PRs declined in the window.
    pub declined: u32,
    /// PRs merged in the window with fewer approvals than required.
    pub merged_under_approved: u32,
    /// From ready (`ready_on`) to the first review.
    pub time_to_first_review: Stat,
    /// From ready to the approvals required.
    pub time_to_approval: Stat,
    /// From ready to merge.
    pub time_to_merge: Stat,
    /// Review rounds of the PRs merged or declined in the window (counts, not seconds).
    pub rounds: Rounds,
    /// Total time with the reviewers, per PR closed in the window.
    pub reviewers_turn: Stat,
    /// Total time with the author, per PR closed in the window.
    pub author_turn: Stat,
    /// Total time waiting to be merged, per PR closed in the window.
    pub merge_turn: Stat,
}

/// A named group's figures: one repository or one room (a team).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    /// The repository's full name or the room's name.
    pub name: String,
    /// Its figures, flattened into the group's JSON object.
    #[serde(flatten)]
    pub summary: Summary,
}

/// One reviewer's load over the window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReviewerLoad {
    /// The reviewer's user key.
    pub reviewer: String,
    /// Their display name.
    pub name: String,
    /// Reviews given in the window (first verdicts on PRs they were asked to review).
    pub reviews: u32,
    /// Median time from being asked to reviewing, over those reviews, in seconds.
    pub median_response_seconds: Option<i64>,
    /// Open PRs whose turn is with the reviewers and that still wait on them now.
    pub waiting: u32,
}

/// One week's medians, for the trend chart and the weekly report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Week {
    /// Monday 00:00 UTC that starts the week (RFC 3339).
    pub starts_on: Timestamp,
    /// Time to first review of the first reviews that week.
    pub time_to_first_review: Stat,
    /// Time to merge of the merges that week.
    pub time_to_merge: Stat,
}

/// An open PR waiting on its reviewers now, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Waiting {
    /// The repository's full name.
    pub repository: String,
    /// The PR's id.
    pub number: i64,
    /// Its title.
    pub title: String,
    /// Its web page.
    pub url: Option<String>,
    /// How long the current reviewers' turn has lasted, in seconds.
    pub seconds: i64,
}

/// Everything the report, the page and the weekly message show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReviewFlow {
    /// The window's start (inclusive).
    pub since: Timestamp,
    /// The window's end (exclusive): now.
    pub until: Timestamp,
    /// Whether times count working days only (`[analytics] working_hours_only`).
    pub working_hours_only: bool,
    /// All PRs the filter admits.
    pub overall: Summary,
    /// Per repository (`name` is its full name), sorted by name.
    pub repositories: Vec<Group>,
    /// Per team: per room (`name` is the `[[rooms]]` name), the PRs of the repositories whose
    /// route sends to it, in the configuration's order of rooms; only rooms with PRs.
    pub rooms: Vec<Group>,
    /// Per reviewer, most reviews first, then by name.
    pub reviewers: Vec<ReviewerLoad>,
    /// The last 12 weeks, oldest first (the current week last, partial).
    pub weeks: Vec<Week>,
    /// Open PRs whose turn is with the reviewers, longest wait first.
    pub waiting: Vec<Waiting>,
}

/// What the store reads for one report (`store::analytics::read`, one query per table): the
/// facts of every PR open now or closed (or opened) at or after the earliest instant asked
/// for, with their turn spans and review requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowRows {
    /// One per PR.
    pub facts: Vec<PrFacts>,
    /// The turn spans of those PRs, by PR then `since`.
    pub turns: Vec<TurnSpan>,
    /// The review requests of those PRs.
    pub requests: Vec<ReviewRequest>,
}

//! Whose turn: for each open pull request, who must act next (issue 23).
//!
//! A PR's turn is computed from facts pr-reminder already stores: the requested reviewers and
//! their verdicts, the approvals the route requires, the combined build state of the source
//! commit, the draft flag, the open task count and when the latest new commit arrived. It is a
//! pure function of those facts, so it changes only when one of them changes, and it is dated by
//! the facts (`Turn::since`).
//!
//! The SQL view `open_pull_requests` (migrations `20261208000000_default_reviewers.sql`) applies
//! the same rules for people who query the database, and the lists' first pass counts by them in
//! SQL (`store::review_queue`, checked against this model in every test by
//! `review_queue::agrees`).

use std::cmp::Ordering;

use super::{BuildState, ReviewState, Role, Timestamp, UserKey};

/// Why it is the author's turn, in the order they are told (the first that applies is named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthorReason {
    /// Bitbucket's `draft` flag: nobody reviews a draft; the author publishes it.
    Draft,
    /// A reviewer asked for changes (Cloud `changes_requested`, Data Center `NEEDS_WORK`) on
    /// the current state of the PR: neither withdrawn nor superseded by a newer commit.
    ChangesRequested,
    /// The combined build state of the source commit is `FAILED`.
    BuildFailed,
    /// The combined build state of the source commit is `STOPPED`: the author restarts it.
    BuildStopped,
    /// Approvals are met but open tasks remain (Cloud `task_count`, Data Center's open task
    /// count).
    OpenTasks,
}

/// Who must act next on an open PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// The author must act, for `reason`.
    Author(AuthorReason),
    /// Approvals are short of the required count: the reviewers must act. `owed` are the
    /// requested reviewers (never the author) who have neither an approval that counts nor a
    /// standing request for changes, in the order of `TurnFacts::reviewers`, then, when too few
    /// were requested, the default reviewers (`TurnFacts::owed`).
    Reviewers {
        /// Who owes a review (user keys).
        owed: Vec<UserKey>,
    },
    /// Approvals met, nothing blocking, the build green, running or absent: the author (or
    /// whoever merges) can merge.
    Merge,
}

impl Turn {
    /// The word stored and shown in `open_pull_requests.turn` and the metric's `turn` label:
    /// `author`, `reviewers` or `merge`.
    pub fn label(&self) -> &'static str {
        match self {
            Turn::Author(_) => "author",
            Turn::Reviewers { .. } => "reviewers",
            Turn::Merge => "merge",
        }
    }

    /// The three labels, in the order lists show them.
    pub const LABELS: [&'static str; 3] = ["reviewers", "author", "merge"];
}

/// A turn without its owed reviewers: what a first pass over every open PR can decide from
/// counts alone (`TurnCounts::kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    /// The author must act, for this reason.
    Author(AuthorReason),
    /// The reviewers must act.
    Reviewers,
    /// Whoever merges can merge.
    Merge,
}

/// The counts a turn's kind follows from, by the rules of `TurnFacts` (which builds one with
/// `TurnFacts::counts`): a list over every open PR reads them in SQL, so that it sorts PRs by
/// turn before cutting its lists, and reads the whole facts only of the PRs it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnCounts {
    /// Bitbucket's draft flag.
    pub draft: bool,
    /// Requests for changes that still stand (`TurnFacts::standing_changes_requested`).
    pub changes_requested: u32,
    /// The combined build state of the source commit, if any status was reported.
    pub build: Option<BuildState>,
    /// Approvals that count (`TurnFacts::counted_approvals`).
    pub approvals: u32,
    /// Approvals the route requires.
    pub required_approvals: u32,
    /// Open tasks, if known.
    pub open_tasks: Option<u32>,
}

impl TurnCounts {
    /// The author's reasons to act, in the order `AuthorReason` lists them.
    pub fn author_reasons(&self) -> Vec<AuthorReason> {
        let approvals_met = self.approvals >= self.required_approvals;
        let mut reasons = Vec::new();
        if self.draft {
            reasons.push(AuthorReason::Draft);
        }
        if self.changes_requested > 0 {
            reasons.push(AuthorReason::ChangesRequested);
        }
        match self.build {
            Some(BuildState::Failed) => reasons.push(AuthorReason::BuildFailed),
            Some(BuildState::Stopped) => reasons.push(AuthorReason::BuildStopped),
            _ => {}
        }
        if approvals_met && self.open_tasks.unwrap_or(0) > 0 {
            reasons.push(AuthorReason::OpenTasks);
        }
        reasons
    }

    /// Whose turn it is: the author's first reason, else the reviewers' while approvals are
    /// short, else merge.
    pub fn kind(&self) -> TurnKind {
        if let Some(reason) = self.author_reasons().first() {
            return TurnKind::Author(*reason);
        }
        if self.approvals < self.required_approvals {
            return TurnKind::Reviewers;
        }
        TurnKind::Merge
    }
}

/// One person attached to the PR, as the turn needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewerFacts {
    /// Who.
    pub key: UserKey,
    /// Requested reviewer (`REVIEWER`) or someone who just took part (`PARTICIPANT`).
    pub role: Role,
    /// Their verdict.
    pub state: ReviewState,
    /// When they gave it (Cloud's `participated_on`; Data Center dates only the acting
    /// reviewer's verdict).
    pub state_on: Option<Timestamp>,
    /// Data Center's `lastReviewedCommit`: the source commit their verdict was given on.
    pub reviewed_commit: Option<String>,
}

/// Everything the turn is computed from, for one open PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnFacts {
    /// The author (whose own verdicts never count).
    pub author: UserKey,
    /// Everyone attached, requested reviewers first in the order they should be named.
    pub reviewers: Vec<ReviewerFacts>,
    /// The repository's default reviewers for this PR, in Bitbucket's order, as a
    /// reconciliation pass read them (Cloud `effective-default-reviewers`, Data Center's
    /// default-reviewer conditions for its refs); empty without a configured site.
    pub default_reviewers: Vec<UserKey>,
    /// Approvals the route requires.
    pub required_approvals: u32,
    /// The route's `approvals_after_last_push`: an approval given before the latest new commit
    /// does not count.
    pub approvals_after_last_push: bool,
    /// The source branch's head commit (as Bitbucket gives it: Cloud 12 hex digits, Data Center
    /// 40).
    pub source_commit: Option<String>,
    /// When that commit arrived (the snapshot that first showed it), if known.
    pub pushed_on: Option<Timestamp>,
    /// The combined build state of the source commit, and its newest status's time.
    pub build: Option<(BuildState, Timestamp)>,
    /// Bitbucket's draft flag.
    pub draft: bool,
    /// Open tasks, where the payload or the REST API told (`None`: unknown, counted as none).
    pub open_tasks: Option<u32>,
    /// When the PR was opened.
    pub created_on: Timestamp,
    /// The newest snapshot's time (dates the draft flag and the task count, which carry none of
    /// their own).
    pub updated_on: Timestamp,
}

/// Whether `a` names the same commit as `b`: Cloud gives 12 hex digits where Data Center and
/// build statuses give 40, so a prefix match, in any case.
fn same_commit(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    !a.is_empty() && !b.is_empty() && (a.starts_with(&b) || b.starts_with(&a))
}

impl TurnFacts {
    /// Whether a verdict was given on the current state of the PR: not before the latest new
    /// commit. Data Center's `lastReviewedCommit` decides when present; else the verdict's date
    /// against `pushed_on`; a verdict with neither (or a PR with no known push) is current.
    fn current(&self, r: &ReviewerFacts) -> bool {
        if let (Some(reviewed), Some(head)) = (&r.reviewed_commit, &self.source_commit) {
            return same_commit(reviewed, head);
        }
        match (&r.state_on, &self.pushed_on) {
            (Some(on), Some(pushed)) => on >= pushed,
            _ => true,
        }
    }

    fn others(&self) -> impl Iterator<Item = &ReviewerFacts> {
        self.reviewers.iter().filter(|r| r.key != self.author)
    }

    /// Approvals that count: anyone but the author; with `approvals_after_last_push`, only
    /// those given on the current state.
    pub fn counted_approvals(&self) -> Vec<&ReviewerFacts> {
        self.others()
            .filter(|r| r.state == ReviewState::Approved)
            .filter(|r| !self.approvals_after_last_push || self.current(r))
            .collect()
    }

    /// Requests for changes that still stand: not withdrawn, and not superseded by a newer
    /// commit.
    pub fn standing_changes_requested(&self) -> Vec<&ReviewerFacts> {
        self.others()
            .filter(|r| r.state == ReviewState::ChangesRequested && self.current(r))
            .collect()
    }

    /// Who owes a review: the requested reviewers with neither a counted approval nor a standing
    /// request for changes, then, when fewer reviewers were requested than approvals are
    /// required, the default reviewers who are neither the author, nor requested, nor hold such
    /// a verdict.
    pub fn owed(&self) -> Vec<UserKey> {
        let approved = self.counted_approvals();
        let blocking = self.standing_changes_requested();
        let settled = |key: &UserKey| {
            approved.iter().any(|a| &a.key == key) || blocking.iter().any(|b| &b.key == key)
        };
        let requested: Vec<&ReviewerFacts> =
            self.others().filter(|r| r.role == Role::Reviewer).collect();
        let mut owed: Vec<UserKey> = requested
            .iter()
            .filter(|r| !settled(&r.key))
            .map(|r| r.key.clone())
            .collect();
        if u32::try_from(requested.len()).unwrap_or(u32::MAX) < self.required_approvals {
            for key in &self.default_reviewers {
                if *key != self.author
                    && !requested.iter().any(|r| &r.key == key)
                    && !settled(key)
                    && !owed.contains(key)
                {
                    owed.push(key.clone());
                }
            }
        }
        owed
    }

    /// The counts the turn's kind is decided by.
    pub fn counts(&self) -> TurnCounts {
        TurnCounts {
            draft: self.draft,
            changes_requested: u32::try_from(self.standing_changes_requested().len())
                .unwrap_or(u32::MAX),
            build: self.build.as_ref().map(|b| b.0),
            approvals: self.approvals(),
            required_approvals: self.required_approvals,
            open_tasks: self.open_tasks,
        }
    }

    /// The author's reasons to act, in the order `AuthorReason` lists them.
    fn author_reasons(&self) -> Vec<AuthorReason> {
        self.counts().author_reasons()
    }

    /// How many approvals count.
    pub fn approvals(&self) -> u32 {
        u32::try_from(self.counted_approvals().len()).unwrap_or(u32::MAX)
    }

    /// The PR's turn.
    pub fn turn(&self) -> Turn {
        match self.counts().kind() {
            TurnKind::Author(reason) => Turn::Author(reason),
            TurnKind::Reviewers => Turn::Reviewers { owed: self.owed() },
            TurnKind::Merge => Turn::Merge,
        }
    }

    /// Since when it has been this turn, dated by the facts themselves:
    /// - the author's: the oldest of the standing reasons' dates (a request for changes by its
    ///   verdict's date, a red build by its newest status, a draft or open tasks by the
    ///   snapshot that shows them);
    /// - the reviewers': the newest of the PR's opening, its latest new commit and its build's
    ///   newest status (a build going green hands the turn back);
    /// - merge: the newest of those and of the counted approvals.
    ///
    /// Never before the PR was opened.
    pub fn since(&self) -> Timestamp {
        let opened = self.created_on.clone();
        let at_least_opened = |t: Timestamp| t.max(opened.clone());
        let build_on = self.build.as_ref().map(|b| b.1.clone());
        let base = [
            Some(opened.clone()),
            self.pushed_on.clone(),
            build_on.clone(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_else(|| opened.clone());
        match self.turn() {
            Turn::Author(_) => {
                let dates = self
                    .author_reasons()
                    .into_iter()
                    .map(|reason| match reason {
                        AuthorReason::Draft | AuthorReason::OpenTasks => self.updated_on.clone(),
                        AuthorReason::ChangesRequested => self
                            .standing_changes_requested()
                            .iter()
                            .filter_map(|r| r.state_on.clone())
                            .min()
                            .unwrap_or_else(|| self.updated_on.clone()),
                        AuthorReason::BuildFailed | AuthorReason::BuildStopped => {
                            build_on.clone().unwrap_or_else(|| self.updated_on.clone())
                        }
                    });
                at_least_opened(dates.min().unwrap_or_else(|| self.updated_on.clone()))
            }
            Turn::Reviewers { .. } => base,
            Turn::Merge => self
                .counted_approvals()
                .iter()
                .filter_map(|r| r.state_on.clone())
                .max()
                .map_or(base.clone(), |t| t.max(base)),
        }
    }
}

/// Orders names as lists show them: case-insensitively, then exactly (a stable order).
pub fn name_order(a: &str, b: &str) -> Ordering {
    a.to_lowercase()
        .cmp(&b.to_lowercase())
        .then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> Timestamp {
        Timestamp::parse(&format!("2026-12-01T{hour:02}:00:00Z")).unwrap()
    }

    fn reviewer(key: &str) -> ReviewerFacts {
        ReviewerFacts {
            key: key.into(),
            role: Role::Reviewer,
            state: ReviewState::None,
            state_on: None,
            reviewed_commit: None,
        }
    }

    /// Alice's PR, opened at 01:00 on commit aaa pushed then, Bob and Carol asked, two
    /// approvals required.
    fn facts() -> TurnFacts {
        TurnFacts {
            author: "alice".into(),
            reviewers: vec![reviewer("bob"), reviewer("carol")],
            default_reviewers: Vec::new(),
            required_approvals: 2,
            approvals_after_last_push: false,
            source_commit: Some("aaaaaaaaaaaa".into()),
            pushed_on: Some(at(1)),
            build: None,
            draft: false,
            open_tasks: None,
            created_on: at(1),
            updated_on: at(1),
        }
    }

    fn verdict(f: &mut TurnFacts, key: &str, state: ReviewState, on: u32) {
        let r = f
            .reviewers
            .iter_mut()
            .find(|r| r.key.as_str() == key)
            .unwrap();
        r.state = state;
        r.state_on = Some(at(on));
        f.updated_on = f.updated_on.clone().max(at(on));
    }

    fn push(f: &mut TurnFacts, commit: &str, on: u32) {
        f.source_commit = Some(commit.into());
        f.pushed_on = Some(at(on));
        f.updated_on = at(on);
    }

    fn owed(keys: &[&str]) -> Turn {
        Turn::Reviewers {
            owed: keys.iter().map(|k| UserKey::from(*k)).collect(),
        }
    }

    #[test]
    fn requested_reviewers_owe_until_they_approve_then_it_is_merge() {
        let mut f = facts();
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
        assert_eq!(f.since(), at(1));
        verdict(&mut f, "bob", ReviewState::Approved, 2);
        assert_eq!(f.turn(), owed(&["carol"]));
        verdict(&mut f, "carol", ReviewState::Approved, 3);
        assert_eq!(f.turn(), Turn::Merge);
        assert_eq!(
            f.since(),
            at(3),
            "merge since the approval that met the count"
        );
        assert_eq!(f.turn().label(), "merge");
    }

    #[test]
    fn a_new_commit_keeps_approvals_by_default() {
        let mut f = facts();
        verdict(&mut f, "bob", ReviewState::Approved, 2);
        verdict(&mut f, "carol", ReviewState::Approved, 3);
        push(&mut f, "bbbbbbbbbbbb", 4);
        assert_eq!(f.turn(), Turn::Merge, "Bitbucket's own count");
        assert_eq!(f.approvals(), 2);
        assert_eq!(f.since(), at(4));
    }

    #[test]
    fn with_approvals_after_last_push_a_new_commit_makes_them_owed_again() {
        let mut f = facts();
        f.approvals_after_last_push = true;
        verdict(&mut f, "bob", ReviewState::Approved, 2);
        verdict(&mut f, "carol", ReviewState::Approved, 3);
        assert_eq!(f.turn(), Turn::Merge);
        push(&mut f, "bbbbbbbbbbbb", 4);
        assert_eq!(f.approvals(), 0);
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
        assert_eq!(f.since(), at(4), "their turn since the push");
        verdict(&mut f, "bob", ReviewState::Approved, 5);
        assert_eq!(f.turn(), owed(&["carol"]));
        verdict(&mut f, "carol", ReviewState::Approved, 6);
        assert_eq!(f.turn(), Turn::Merge);
        assert_eq!(f.since(), at(6));
    }

    #[test]
    fn data_center_last_reviewed_commit_decides_without_dates() {
        let mut f = facts();
        f.approvals_after_last_push = true;
        f.source_commit = Some("b".repeat(40));
        f.pushed_on = None;
        for r in &mut f.reviewers {
            r.state = ReviewState::Approved;
            r.reviewed_commit = Some("a".repeat(40));
        }
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
        f.reviewers[0].reviewed_commit = Some("B".repeat(40));
        assert_eq!(f.turn(), owed(&["carol"]), "any case, Bob's is current");
        f.approvals_after_last_push = false;
        assert_eq!(f.turn(), Turn::Merge);
    }

    #[test]
    fn changes_requested_is_the_authors_turn_until_a_new_commit() {
        let mut f = facts();
        verdict(&mut f, "bob", ReviewState::Approved, 2);
        verdict(&mut f, "carol", ReviewState::ChangesRequested, 3);
        assert_eq!(f.turn(), Turn::Author(AuthorReason::ChangesRequested));
        assert_eq!(f.since(), at(3));
        push(&mut f, "bbbbbbbbbbbb", 4);
        assert_eq!(
            f.turn(),
            owed(&["carol"]),
            "superseded: Carol owes a new look"
        );
        assert_eq!(f.since(), at(4));
    }

    #[test]
    fn withdrawn_changes_request_hands_the_turn_back() {
        let mut f = facts();
        verdict(&mut f, "carol", ReviewState::ChangesRequested, 3);
        assert_eq!(f.turn().label(), "author");
        verdict(&mut f, "carol", ReviewState::None, 4);
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
    }

    #[test]
    fn data_center_needs_work_on_an_older_commit_no_longer_stands() {
        let mut f = facts();
        f.source_commit = Some("b".repeat(40));
        f.pushed_on = None;
        f.reviewers[1].state = ReviewState::ChangesRequested;
        f.reviewers[1].reviewed_commit = Some("b".repeat(40));
        assert_eq!(f.turn(), Turn::Author(AuthorReason::ChangesRequested));
        f.reviewers[1].reviewed_commit = Some("a".repeat(40));
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
    }

    #[test]
    fn a_red_build_is_the_authors_turn_and_green_gives_it_back() {
        let mut f = facts();
        verdict(&mut f, "bob", ReviewState::Approved, 2);
        f.build = Some((BuildState::Failed, at(3)));
        assert_eq!(f.turn(), Turn::Author(AuthorReason::BuildFailed));
        assert_eq!(f.since(), at(3));
        f.build = Some((BuildState::Successful, at(5)));
        assert_eq!(f.turn(), owed(&["carol"]));
        assert_eq!(
            f.since(),
            at(5),
            "back to the reviewers when the build went green"
        );
        verdict(&mut f, "carol", ReviewState::Approved, 6);
        assert_eq!(f.turn(), Turn::Merge);
        f.build = Some((BuildState::InProgress, at(7)));
        assert_eq!(f.turn(), Turn::Merge, "a running build blocks nobody");
        f.build = Some((BuildState::Stopped, at(8)));
        assert_eq!(f.turn(), Turn::Author(AuthorReason::BuildStopped));
    }

    #[test]
    fn open_tasks_block_only_once_approvals_are_met() {
        let mut f = facts();
        f.open_tasks = Some(1);
        verdict(&mut f, "bob", ReviewState::Approved, 2);
        assert_eq!(f.turn(), owed(&["carol"]), "reviewers first while short");
        verdict(&mut f, "carol", ReviewState::Approved, 3);
        assert_eq!(f.turn(), Turn::Author(AuthorReason::OpenTasks));
        assert_eq!(f.since(), at(3));
        f.open_tasks = Some(0);
        f.updated_on = at(4);
        assert_eq!(f.turn(), Turn::Merge);
    }

    #[test]
    fn a_draft_is_the_authors_whatever_else() {
        let mut f = facts();
        f.draft = true;
        f.updated_on = at(2);
        assert_eq!(f.turn(), Turn::Author(AuthorReason::Draft));
        assert_eq!(f.since(), at(2));
        f.build = Some((BuildState::Failed, at(1)));
        verdict(&mut f, "carol", ReviewState::ChangesRequested, 3);
        assert_eq!(
            f.turn(),
            Turn::Author(AuthorReason::Draft),
            "the first reason is named"
        );
        assert_eq!(f.since(), at(1), "the author's since the oldest reason");
        f.draft = false;
        assert_eq!(f.turn(), Turn::Author(AuthorReason::ChangesRequested));
    }

    #[test]
    fn a_removed_reviewer_no_longer_owes() {
        let mut f = facts();
        f.reviewers.retain(|r| r.key.as_str() != "bob");
        assert_eq!(f.turn(), owed(&["carol"]));
        f.reviewers[0].role = Role::Participant;
        assert_eq!(f.turn(), owed(&[]), "nobody named: anyone may review");
    }

    #[test]
    fn default_reviewers_owe_only_when_too_few_were_requested() {
        // Two approvals needed, only Bob requested: the default reviewers (Dave, Carol, the
        // author Alice and Bob himself among them) fill in, in Bitbucket's order, never the
        // author, never twice.
        let mut f = facts();
        f.reviewers.retain(|r| r.key.as_str() != "carol");
        f.default_reviewers = ["dave", "alice", "bob", "carol"]
            .map(UserKey::from)
            .to_vec();
        assert_eq!(f.turn(), owed(&["bob", "dave", "carol"]));
        // A default reviewer who approved (as a participant) no longer owes; one whose request
        // for changes stands makes it the author's turn.
        f.reviewers.push(ReviewerFacts {
            role: Role::Participant,
            ..reviewer("dave")
        });
        verdict(&mut f, "dave", ReviewState::Approved, 2);
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
        // Enough reviewers requested: the defaults owe nothing.
        f.reviewers.push(reviewer("erin"));
        assert_eq!(f.turn(), owed(&["bob", "erin"]));
        // A new commit supersedes Dave's approval only with approvals_after_last_push.
        f.reviewers.retain(|r| r.key.as_str() != "erin");
        f.approvals_after_last_push = true;
        push(&mut f, "bbbbbbbbbbbb", 3);
        assert_eq!(f.turn(), owed(&["bob", "dave", "carol"]));
    }

    #[test]
    fn the_authors_own_verdicts_never_count_and_they_never_owe() {
        let mut f = facts();
        f.required_approvals = 1;
        f.reviewers.push(ReviewerFacts {
            state: ReviewState::Approved,
            ..reviewer("alice")
        });
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
        f.reviewers.last_mut().unwrap().state = ReviewState::ChangesRequested;
        assert_eq!(f.turn(), owed(&["bob", "carol"]));
    }

    #[test]
    fn a_participant_approval_counts_and_owes_nothing() {
        let mut f = facts();
        f.required_approvals = 1;
        f.reviewers.push(ReviewerFacts {
            role: Role::Participant,
            state: ReviewState::Approved,
            state_on: Some(at(2)),
            ..reviewer("dave")
        });
        assert_eq!(f.turn(), Turn::Merge);
    }

    #[test]
    fn names_order_case_insensitively_then_exactly() {
        let mut names = vec!["carol", "Bob", "bob", "Alice"];
        names.sort_by(|a, b| name_order(a, b));
        assert_eq!(names, ["Alice", "Bob", "bob", "carol"]);
    }
}

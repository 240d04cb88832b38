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

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};

use super::calendar::Calendar;
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

/// How `ReviewFlow::compute` reads the rows: the window, the clock it counts in, and which
/// rooms (teams) each repository belongs to.
pub struct FlowOptions<'a> {
    /// The window's start (inclusive).
    pub since: DateTime<Utc>,
    /// The window's end (exclusive): now, for the current state (`waiting`, the last week).
    pub until: DateTime<Utc>,
    /// `Some`: count only this calendar's working days (`[analytics] working_hours_only`, with
    /// `[sweep]`'s calendar); `None`: wall-clock time.
    pub calendar: Option<&'a Calendar>,
    /// The rooms a repository's PRs are routed to, from its key and full name (the first
    /// matching route's rooms; none when no route matches).
    pub rooms_of: &'a dyn Fn(&RepositoryKey, &str) -> Vec<String>,
    /// Every room's name, in the configuration's order: the order of `ReviewFlow::rooms`.
    pub room_order: &'a [String],
}

/// How many weeks `ReviewFlow::weeks` covers, the current one included.
pub const WEEKS: i64 = 12;

/// Monday 00:00 UTC of the week holding `at`.
pub fn week_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let day = at.date_naive() - Duration::days(i64::from(at.weekday().num_days_from_monday()));
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The earliest instant whose facts a report over [`since`, `until`) needs: the window's start
/// or the start of the oldest of the `WEEKS` weeks, whichever is earlier (`FlowRows` are read
/// from there on).
pub fn earliest(since: DateTime<Utc>, until: DateTime<Utc>) -> DateTime<Utc> {
    since.min(week_start(until) - Duration::weeks(WEEKS - 1))
}

/// The median of a sorted sample (mean of the two middle values, rounded down, when even).
fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]).div_euclid(2)),
    }
}

/// The nearest-rank 90th percentile of a sorted sample: the value at rank ⌈0.9·n⌉.
fn p90(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (9 * n).div_ceil(10);
    Some(sorted[rank - 1])
}

impl Stat {
    /// The statistics of `values` (any order), in seconds.
    pub fn of(mut values: Vec<i64>) -> Stat {
        values.sort_unstable();
        Stat {
            count: values.len() as u32,
            median_seconds: median(&values),
            p90_seconds: p90(&values),
        }
    }
}

impl Rounds {
    /// The statistics of `values` (any order).
    pub fn of(mut values: Vec<i64>) -> Rounds {
        values.sort_unstable();
        Rounds {
            count: values.len() as u32,
            median: median(&values),
            p90: p90(&values),
        }
    }
}

/// The span between two instants in whole seconds, by the options' clock; never negative.
fn span(options: &FlowOptions<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let length = match options.calendar {
        Some(calendar) => calendar.working_time(from, to),
        None => to - from,
    };
    length.num_seconds().max(0)
}

/// Whether `at` falls in [`from`, `to`).
fn within(at: Option<&Timestamp>, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    at.is_some_and(|at| {
        let at = at.to_datetime();
        at >= from && at < to
    })
}

type PrKey<'r> = (&'r str, i64);

impl PrFacts {
    /// When the review clock started: `ready_on`, else `created_on`.
    pub fn start(&self) -> DateTime<Utc> {
        self.ready_on
            .as_ref()
            .unwrap_or(&self.created_on)
            .to_datetime()
    }

    fn key(&self) -> PrKey<'_> {
        (self.repository.as_str(), self.number)
    }

    /// Whether it was merged, or declined, at an instant in [`from`, `to`).
    fn closed_within(&self, state: PrState, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.state == state && within(self.closed_on.as_ref(), from, to)
    }

    /// Merged or declined (not superseded or deleted) in [`from`, `to`).
    fn finished_within(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.closed_within(PrState::Merged, from, to)
            || self.closed_within(PrState::Declined, from, to)
    }
}

/// The rows of one report, indexed by PR.
struct Index<'r> {
    turns: HashMap<PrKey<'r>, Vec<&'r TurnSpan>>,
}

impl<'r> Index<'r> {
    fn new(rows: &'r FlowRows) -> Self {
        let mut turns: HashMap<PrKey<'r>, Vec<&'r TurnSpan>> = HashMap::new();
        for t in &rows.turns {
            turns
                .entry((t.repository.as_str(), t.number))
                .or_default()
                .push(t);
        }
        Index { turns }
    }

    /// The PR's span that is still open, if it is one of the reviewers' now.
    fn waiting_since(&self, pr: &PrFacts) -> Option<DateTime<Utc>> {
        if pr.state != PrState::Open {
            return None;
        }
        self.turns
            .get(&pr.key())?
            .iter()
            .filter(|t| t.until.is_none())
            .max_by(|a, b| a.since.cmp(&b.since))
            .filter(|t| t.turn == "reviewers")
            .map(|t| t.since.to_datetime())
    }

    /// Seconds the PR spent in each turn (`reviewers`, `author`, `merge`), spans still open
    /// counted up to its close (or to `until`).
    fn turn_totals(&self, pr: &PrFacts, options: &FlowOptions<'_>) -> [i64; 3] {
        let mut totals = [0; 3];
        let end = pr
            .closed_on
            .as_ref()
            .map_or(options.until, Timestamp::to_datetime);
        for t in self.turns.get(&pr.key()).into_iter().flatten() {
            let Some(slot) = ["reviewers", "author", "merge"]
                .iter()
                .position(|label| *label == t.turn)
            else {
                continue;
            };
            let until = t.until.as_ref().map_or(end, Timestamp::to_datetime);
            totals[slot] += span(options, t.since.to_datetime(), until);
        }
        totals
    }
}

/// The figures of `prs` over [`from`, `to`).
fn summarise(
    prs: &[&PrFacts],
    index: &Index<'_>,
    options: &FlowOptions<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Summary {
    let mut summary = Summary::default();
    let (mut first_review, mut approval, mut merge) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rounds, mut turns) = (Vec::new(), [Vec::new(), Vec::new(), Vec::new()]);
    for pr in prs {
        if within(Some(&pr.created_on), from, to) {
            summary.opened += 1;
        }
        if within(pr.first_review_on.as_ref(), from, to) {
            first_review.push(span(
                options,
                pr.start(),
                pr.first_review_on.as_ref().unwrap().to_datetime(),
            ));
        }
        if within(pr.approved_on.as_ref(), from, to) {
            approval.push(span(
                options,
                pr.start(),
                pr.approved_on.as_ref().unwrap().to_datetime(),
            ));
        }
        if pr.closed_within(PrState::Merged, from, to) {
            summary.merged += 1;
            if pr.approvals < pr.required_approvals {
                summary.merged_under_approved += 1;
            }
            merge.push(span(
                options,
                pr.start(),
                pr.closed_on.as_ref().unwrap().to_datetime(),
            ));
        }
        if pr.closed_within(PrState::Declined, from, to) {
            summary.declined += 1;
        }
        if pr.finished_within(from, to) {
            rounds.push(i64::from(pr.rounds));
            for (list, total) in turns.iter_mut().zip(index.turn_totals(pr, options)) {
                list.push(total);
            }
        }
    }
    let [reviewers_turn, author_turn, merge_turn] = turns.map(Stat::of);
    Summary {
        time_to_first_review: Stat::of(first_review),
        time_to_approval: Stat::of(approval),
        time_to_merge: Stat::of(merge),
        rounds: Rounds::of(rounds),
        reviewers_turn,
        author_turn,
        merge_turn,
        ..summary
    }
}

impl ReviewFlow {
    /// The figures of `rows` over the options' window: pure, so the same rows always give the
    /// same figures. Times are counted from each PR's `start` (ready for review); see the module
    /// for the statistics and `Summary` for which PRs count where.
    pub fn compute(rows: &FlowRows, options: &FlowOptions<'_>) -> ReviewFlow {
        let (since, until) = (options.since, options.until);
        let index = Index::new(rows);
        let all: Vec<&PrFacts> = rows.facts.iter().collect();

        let mut by_repository: BTreeMap<&str, Vec<&PrFacts>> = BTreeMap::new();
        let mut by_room: HashMap<String, Vec<&PrFacts>> = HashMap::new();
        for pr in &all {
            by_repository
                .entry(pr.repository_name.as_str())
                .or_default()
                .push(pr);
            for room in (options.rooms_of)(&pr.repository, &pr.repository_name) {
                by_room.entry(room).or_default().push(pr);
            }
        }
        let group = |name: &str, prs: &[&PrFacts]| {
            let summary = summarise(prs, &index, options, since, until);
            let waits = prs.iter().any(|pr| index.waiting_since(pr).is_some());
            (summary != Summary::default() || waits).then(|| Group {
                name: name.to_owned(),
                summary,
            })
        };
        let repositories = by_repository
            .iter()
            .filter_map(|(name, prs)| group(name, prs))
            .collect();
        let rooms = options
            .room_order
            .iter()
            .filter_map(|room| group(room, by_room.get(room)?))
            .collect();

        let weeks = (0..WEEKS)
            .map(|i| {
                let start = week_start(until) - Duration::weeks(WEEKS - 1 - i);
                let end = start + Duration::weeks(1);
                let s = summarise(&all, &index, options, start, end);
                Week {
                    starts_on: Timestamp::from_datetime(start),
                    time_to_first_review: s.time_to_first_review,
                    time_to_merge: s.time_to_merge,
                }
            })
            .collect();

        let mut waiting: Vec<Waiting> = all
            .iter()
            .filter_map(|pr| {
                let waiting_since = index.waiting_since(pr)?;
                Some(Waiting {
                    repository: pr.repository_name.clone(),
                    number: pr.number,
                    title: pr.title.clone(),
                    url: pr.url.clone(),
                    seconds: span(options, waiting_since, until),
                })
            })
            .collect();
        waiting.sort_by(|a, b| {
            b.seconds
                .cmp(&a.seconds)
                .then_with(|| a.repository.cmp(&b.repository))
                .then_with(|| a.number.cmp(&b.number))
        });

        ReviewFlow {
            since: Timestamp::from_datetime(since),
            until: Timestamp::from_datetime(until),
            working_hours_only: options.calendar.is_some(),
            overall: summarise(&all, &index, options, since, until),
            repositories,
            rooms,
            reviewers: reviewer_loads(rows, &index, options),
            weeks,
            waiting,
        }
    }
}

/// Per reviewer: first verdicts in the window and how long they took from being asked, and the
/// open PRs in the reviewers' turn that still wait on them.
fn reviewer_loads(
    rows: &FlowRows,
    index: &Index<'_>,
    options: &FlowOptions<'_>,
) -> Vec<ReviewerLoad> {
    let waiting_prs: HashSet<PrKey<'_>> = rows
        .facts
        .iter()
        .filter(|pr| index.waiting_since(pr).is_some())
        .map(PrFacts::key)
        .collect();
    let mut by_reviewer: BTreeMap<&str, (&str, Vec<i64>, u32)> = BTreeMap::new();
    for request in &rows.requests {
        let entry = by_reviewer.entry(request.reviewer.as_str()).or_insert((
            request.reviewer_name.as_str(),
            Vec::new(),
            0,
        ));
        if within(request.reviewed_on.as_ref(), options.since, options.until) {
            let reviewed_on = request.reviewed_on.as_ref().unwrap().to_datetime();
            entry
                .1
                .push(span(options, request.asked_on.to_datetime(), reviewed_on));
        }
        let key = (request.repository.as_str(), request.number);
        if request.reviewed_on.is_none() && waiting_prs.contains(&key) {
            entry.2 += 1;
        }
    }
    let mut loads: Vec<ReviewerLoad> = by_reviewer
        .into_iter()
        .filter(|(_, (_, reviews, waiting))| !reviews.is_empty() || *waiting > 0)
        .map(|(reviewer, (name, reviews, waiting))| ReviewerLoad {
            reviewer: reviewer.to_owned(),
            name: name.to_owned(),
            reviews: reviews.len() as u32,
            median_response_seconds: Stat::of(reviews).median_seconds,
            waiting,
        })
        .collect();
    loads.sort_by(|a, b| {
        b.reviews
            .cmp(&a.reviews)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.reviewer.cmp(&b.reviewer))
    });
    loads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn pr(repository: &str, number: i64, created: &str) -> PrFacts {
        PrFacts {
            repository: RepositoryKey::from_stored(format!("key:{repository}")),
            repository_name: repository.to_owned(),
            number,
            title: format!("PR {number}"),
            url: None,
            author: UserKey::from("author"),
            created_on: at(created),
            ready_on: None,
            first_review_on: None,
            approved_on: None,
            state: PrState::Open,
            closed_on: None,
            approvals: 0,
            required_approvals: 2,
            rounds: 0,
        }
    }

    fn closed(mut facts: PrFacts, state: PrState, on: &str, approvals: u32) -> PrFacts {
        facts.state = state;
        facts.closed_on = Some(at(on));
        facts.approvals = approvals;
        facts
    }

    fn turn(
        repository: &str,
        number: i64,
        turn: &str,
        since: &str,
        until: Option<&str>,
    ) -> TurnSpan {
        TurnSpan {
            repository: RepositoryKey::from_stored(format!("key:{repository}")),
            number,
            turn: turn.to_owned(),
            since: at(since),
            until: until.map(at),
        }
    }

    fn asked(
        repository: &str,
        number: i64,
        reviewer: &str,
        asked_on: &str,
        reviewed_on: Option<&str>,
    ) -> ReviewRequest {
        ReviewRequest {
            repository: RepositoryKey::from_stored(format!("key:{repository}")),
            number,
            reviewer: UserKey::from(reviewer.to_lowercase()),
            reviewer_name: reviewer.to_owned(),
            asked_on: at(asked_on),
            reviewed_on: reviewed_on.map(at),
        }
    }

    /// Six PR histories over November 2026 (the window is Mon 2 Nov to Mon 30 Nov, UTC):
    /// A merged fast, B opened as a draft and sent back once, C on team/web waited over a
    /// weekend and was declined, D opened in October and merged in the window, E waits on its
    /// reviewers, F is a draft.
    fn rows() -> FlowRows {
        let a = PrFacts {
            first_review_on: Some(at("2026-11-02T11:00:00Z")),
            approved_on: Some(at("2026-11-03T09:00:00Z")),
            ..closed(
                pr("team/api", 1, "2026-11-02T09:00:00Z"),
                PrState::Merged,
                "2026-11-03T12:00:00Z",
                2,
            )
        };
        let b = PrFacts {
            ready_on: Some(at("2026-11-10T10:00:00Z")),
            first_review_on: Some(at("2026-11-10T14:00:00Z")),
            approved_on: Some(at("2026-11-12T10:00:00Z")),
            rounds: 1,
            ..closed(
                pr("team/api", 2, "2026-11-09T10:00:00Z"),
                PrState::Merged,
                "2026-11-13T10:00:00Z",
                1,
            )
        };
        let c = PrFacts {
            first_review_on: Some(at("2026-11-23T08:00:00Z")),
            ..closed(
                pr("team/web", 3, "2026-11-20T08:00:00Z"),
                PrState::Declined,
                "2026-11-24T08:00:00Z",
                0,
            )
        };
        let d = PrFacts {
            first_review_on: Some(at("2026-10-21T10:00:00Z")),
            approved_on: Some(at("2026-11-04T10:00:00Z")),
            rounds: 2,
            ..closed(
                pr("team/api", 4, "2026-10-20T10:00:00Z"),
                PrState::Merged,
                "2026-11-05T10:00:00Z",
                2,
            )
        };
        let e = PrFacts {
            title: "Add search".to_owned(),
            url: Some("https://bitbucket.example/team/api/pull-requests/5".to_owned()),
            ..pr("team/api", 5, "2026-11-25T09:00:00Z")
        };
        let f = pr("team/api", 6, "2026-11-26T12:00:00Z");
        FlowRows {
            facts: vec![a, b, c, d, e, f],
            turns: vec![
                turn(
                    "team/api",
                    1,
                    "reviewers",
                    "2026-11-02T09:00:00Z",
                    Some("2026-11-03T09:00:00Z"),
                ),
                turn(
                    "team/api",
                    1,
                    "merge",
                    "2026-11-03T09:00:00Z",
                    Some("2026-11-03T12:00:00Z"),
                ),
                turn(
                    "team/api",
                    2,
                    "author",
                    "2026-11-09T10:00:00Z",
                    Some("2026-11-10T10:00:00Z"),
                ),
                turn(
                    "team/api",
                    2,
                    "reviewers",
                    "2026-11-10T10:00:00Z",
                    Some("2026-11-11T10:00:00Z"),
                ),
                turn(
                    "team/api",
                    2,
                    "author",
                    "2026-11-11T10:00:00Z",
                    Some("2026-11-11T16:00:00Z"),
                ),
                turn(
                    "team/api",
                    2,
                    "reviewers",
                    "2026-11-11T16:00:00Z",
                    Some("2026-11-12T10:00:00Z"),
                ),
                turn(
                    "team/api",
                    2,
                    "merge",
                    "2026-11-12T10:00:00Z",
                    Some("2026-11-13T10:00:00Z"),
                ),
                turn(
                    "team/web",
                    3,
                    "reviewers",
                    "2026-11-20T08:00:00Z",
                    Some("2026-11-24T08:00:00Z"),
                ),
                turn(
                    "team/api",
                    4,
                    "reviewers",
                    "2026-10-20T10:00:00Z",
                    Some("2026-10-21T10:00:00Z"),
                ),
                turn(
                    "team/api",
                    4,
                    "author",
                    "2026-10-21T10:00:00Z",
                    Some("2026-11-04T10:00:00Z"),
                ),
                turn(
                    "team/api",
                    4,
                    "merge",
                    "2026-11-04T10:00:00Z",
                    Some("2026-11-05T10:00:00Z"),
                ),
                turn("team/api", 5, "reviewers", "2026-11-25T09:00:00Z", None),
                turn("team/api", 6, "author", "2026-11-26T12:00:00Z", None),
            ],
            requests: vec![
                asked(
                    "team/api",
                    1,
                    "Alice",
                    "2026-11-02T09:00:00Z",
                    Some("2026-11-02T11:00:00Z"),
                ),
                asked(
                    "team/api",
                    1,
                    "Bob",
                    "2026-11-02T09:00:00Z",
                    Some("2026-11-03T09:00:00Z"),
                ),
                asked(
                    "team/api",
                    2,
                    "Alice",
                    "2026-11-10T10:00:00Z",
                    Some("2026-11-10T14:00:00Z"),
                ),
                asked(
                    "team/web",
                    3,
                    "Bob",
                    "2026-11-20T08:00:00Z",
                    Some("2026-11-23T08:00:00Z"),
                ),
                asked(
                    "team/api",
                    4,
                    "Carol",
                    "2026-10-20T10:00:00Z",
                    Some("2026-10-21T10:00:00Z"),
                ),
                asked("team/api", 5, "Bob", "2026-11-25T09:00:00Z", None),
                asked("team/api", 5, "Carol", "2026-11-25T09:00:00Z", None),
            ],
        }
    }

    fn rooms_of(_: &RepositoryKey, name: &str) -> Vec<String> {
        match name {
            "team/api" => vec!["backend".to_owned()],
            "team/web" => vec!["frontend".to_owned()],
            _ => Vec::new(),
        }
    }

    fn compute(calendar: Option<&Calendar>) -> ReviewFlow {
        let rooms = [
            "frontend".to_owned(),
            "backend".to_owned(),
            "ops".to_owned(),
        ];
        ReviewFlow::compute(
            &rows(),
            &FlowOptions {
                since: at("2026-11-02T00:00:00Z").to_datetime(),
                until: at("2026-11-30T00:00:00Z").to_datetime(),
                calendar,
                rooms_of: &rooms_of,
                room_order: &rooms,
            },
        )
    }

    fn stat(count: u32, median: i64, p90: i64) -> Stat {
        Stat {
            count,
            median_seconds: Some(median),
            p90_seconds: Some(p90),
        }
    }

    const H: i64 = 3600;

    #[test]
    fn medians_and_p90s_by_hand() {
        let flow = compute(None);
        assert_eq!(
            flow.overall,
            Summary {
                // A, B, C, E, F (D was opened in October).
                opened: 5,
                merged: 3,
                declined: 1,
                // B: 1 approval of 2.
                merged_under_approved: 1,
                // A 2h, B 4h (from ready), C 72h; D's was in October.
                time_to_first_review: stat(3, 4 * H, 72 * H),
                // A 24h, B 48h, D 15 days.
                time_to_approval: stat(3, 48 * H, 360 * H),
                // A 27h, B 72h, D 16 days.
                time_to_merge: stat(3, 72 * H, 384 * H),
                // A 0, B 1, C 0, D 2: median (0 + 1) / 2 rounded down.
                rounds: Rounds {
                    count: 4,
                    median: Some(0),
                    p90: Some(2),
                },
                // A 24h, B 24h + 18h, C 96h, D 24h.
                reviewers_turn: stat(4, 33 * H, 96 * H),
                // A 0, B 24h + 6h, C 0, D 14 days.
                author_turn: stat(4, 15 * H, 336 * H),
                // A 3h, B 24h, C 0, D 24h.
                merge_turn: stat(4, 27 * H / 2, 24 * H),
            }
        );
        let names: Vec<&str> = flow.repositories.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["team/api", "team/web"]);
        assert_eq!(
            flow.repositories[1].summary.time_to_first_review,
            stat(1, 72 * H, 72 * H)
        );
        // Rooms in the configuration's order; "ops" has no PRs.
        let rooms: Vec<&str> = flow.rooms.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(rooms, ["frontend", "backend"]);
        assert_eq!(flow.rooms[1].summary.merged, 3);
        assert_eq!(
            flow.reviewers,
            [
                ReviewerLoad {
                    reviewer: "alice".to_owned(),
                    name: "Alice".to_owned(),
                    reviews: 2,
                    median_response_seconds: Some(3 * H),
                    waiting: 0,
                },
                ReviewerLoad {
                    reviewer: "bob".to_owned(),
                    name: "Bob".to_owned(),
                    reviews: 2,
                    median_response_seconds: Some(48 * H),
                    waiting: 1,
                },
                ReviewerLoad {
                    reviewer: "carol".to_owned(),
                    name: "Carol".to_owned(),
                    reviews: 0,
                    median_response_seconds: None,
                    waiting: 1,
                },
            ]
        );
        assert_eq!(
            flow.waiting,
            [Waiting {
                repository: "team/api".to_owned(),
                number: 5,
                title: "Add search".to_owned(),
                url: Some("https://bitbucket.example/team/api/pull-requests/5".to_owned()),
                // Wed 25 Nov 09:00 to Mon 30 Nov 00:00.
                seconds: 111 * H,
            }]
        );
    }

    #[test]
    fn twelve_weeks_oldest_first_ending_with_the_current_one() {
        let flow = compute(None);
        assert_eq!(flow.weeks.len(), 12);
        assert_eq!(flow.weeks[0].starts_on, at("2026-09-14T00:00:00Z"));
        assert_eq!(flow.weeks[11].starts_on, at("2026-11-30T00:00:00Z"));
        // The week of 2 Nov: A's first review; A's and D's merges (27h and 384h).
        let week = &flow.weeks[7];
        assert_eq!(week.starts_on, at("2026-11-02T00:00:00Z"));
        assert_eq!(week.time_to_first_review, stat(1, 2 * H, 2 * H));
        assert_eq!(week.time_to_merge, stat(2, (27 + 384) * H / 2, 384 * H));
        // D's first review, in the week of 19 Oct.
        assert_eq!(flow.weeks[5].time_to_first_review, stat(1, 24 * H, 24 * H));
        assert_eq!(flow.weeks[11].time_to_merge, Stat::default());
    }

    #[test]
    fn working_days_only_skip_the_weekend() {
        let calendar = Calendar::default();
        let flow = compute(Some(&calendar));
        assert!(flow.working_hours_only);
        // C: Fri 20 Nov 08:00 to Mon 23 Nov 08:00 is 16h on Friday and 8h on Monday.
        assert_eq!(
            flow.repositories[1].summary.time_to_first_review,
            stat(1, 24 * H, 24 * H)
        );
        // C's reviewers' turn to Tue 24 Nov 08:00: 16h + 24h + 8h.
        assert_eq!(
            flow.repositories[1].summary.reviewers_turn,
            stat(1, 48 * H, 48 * H)
        );
        // E: Wed 09:00 to Mon 00:00 is 15h + 24h + 24h.
        assert_eq!(flow.waiting[0].seconds, 63 * H);
        // Weekday-only spans are unchanged: A's 2h.
        assert_eq!(flow.weeks[7].time_to_first_review, stat(1, 2 * H, 2 * H));
    }

    #[test]
    fn statistics_follow_their_definitions() {
        assert_eq!(Stat::of(Vec::new()), Stat::default());
        assert_eq!(Stat::of(vec![5]), stat(1, 5, 5));
        assert_eq!(Stat::of(vec![4, 1]), stat(2, 2, 4));
        // Ten values: the 90th percentile is the 9th.
        assert_eq!(Stat::of((1..=10).rev().collect()), stat(10, 5, 9));
        // Eleven: rank ⌈9.9⌉ = 10.
        assert_eq!(Stat::of((1..=11).collect()), stat(11, 6, 10));
    }

    #[test]
    fn an_empty_database_gives_empty_figures() {
        let rooms: [String; 0] = [];
        let flow = ReviewFlow::compute(
            &FlowRows::default(),
            &FlowOptions {
                since: at("2026-11-02T00:00:00Z").to_datetime(),
                until: at("2026-11-30T00:00:00Z").to_datetime(),
                calendar: None,
                rooms_of: &rooms_of,
                room_order: &rooms,
            },
        );
        assert_eq!(flow.overall, Summary::default());
        assert!(
            flow.repositories.is_empty() && flow.reviewers.is_empty() && flow.waiting.is_empty()
        );
        assert_eq!(flow.weeks.len(), 12);
    }

    #[test]
    fn the_read_starts_early_enough_for_twelve_weeks() {
        let until = at("2026-11-30T00:00:00Z").to_datetime();
        let since = at("2026-11-02T00:00:00Z").to_datetime();
        assert_eq!(
            earliest(since, until),
            at("2026-09-14T00:00:00Z").to_datetime()
        );
        let long_ago = at("2026-01-01T00:00:00Z").to_datetime();
        assert_eq!(earliest(long_ago, until), long_ago);
        assert_eq!(
            week_start(at("2026-12-06T23:59:00Z").to_datetime()),
            at("2026-11-30T00:00:00Z").to_datetime()
        );
    }
}

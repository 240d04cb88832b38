//! The dated facts of one pull request (issue 28), folded from its snapshots as the writer
//! applies them: `fold` takes what is stored (`FactsState`, the PR's `ReviewRequest`s) and the
//! batch's snapshots of the PR, and returns the rows to write.
//!
//! Every date is one of Bitbucket's own (`created_on`, `updated_on`, participants'
//! `participated_on`), never the time a delivery arrived, so a backfill of a PR's final state
//! gives the same facts as its live history when each reviewer acted once. Facts that are
//! minimums (`ready_on`, `first_review_on`, `approved_on`, a request's `asked_on` and
//! `reviewed_on`) take every snapshot into account, older ones included, so arrival order does
//! not matter; the rest (state, title, rounds, turns) follow only snapshots at least as new as
//! the newest folded (`FactsState::updated_on`), as the PR's own row does.

use super::analytics::{PrFacts, ReviewRequest, TurnSpan};
use super::{
    BuildState, PrState, PullRequest, ReviewState, ReviewerFacts, Role, Timestamp, TurnFacts, User,
};

/// A PR's facts as stored, with the writer's bookkeeping (`pull_request_facts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsState {
    /// The figures' facts.
    pub facts: PrFacts,
    /// The newest snapshot folded in (`updated_on`).
    pub updated_on: Timestamp,
    /// Its source commit, as Bitbucket gives it.
    pub source_commit: Option<String>,
    /// When that commit first showed (the snapshot's `updated_on`; `created_on` at first).
    pub pushed_on: Option<Timestamp>,
    /// Whether a request for changes stood on the newest snapshot
    /// (`TurnFacts::standing_changes_requested`).
    pub blocked: bool,
    /// The open turn span's turn (`Turn::label`); `None` once closed.
    pub turn: Option<String>,
    /// The open turn span's start.
    pub turn_since: Option<Timestamp>,
}

/// What the fold needs to know of the PR's repository and build, besides its snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldContext {
    /// Approvals the PR's route requires.
    pub required_approvals: u32,
    /// The route's `approvals_after_last_push`.
    pub approvals_after_last_push: bool,
    /// The combined build state of the newest snapshot's source commit and its newest status's
    /// time, if any status is known.
    pub build: Option<(BuildState, Timestamp)>,
}

/// The rows one fold writes, and the points the PR reached (for the histograms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// The new facts row.
    pub state: FactsState,
    /// Turn spans to upsert by their start (`since`): the open one closed, new ones opened.
    pub spans: Vec<TurnSpan>,
    /// The PR's review requests that are new or changed.
    pub requests: Vec<ReviewRequest>,
    /// Seconds from ready to the first review, when this fold gave the PR its first review.
    pub first_review_seconds: Option<i64>,
    /// Seconds from ready (else opening) to the merge, when this fold merged the PR.
    pub merge_seconds: Option<i64>,
}

/// The name shown for a user: display name, else nickname, else username, else the key.
pub fn display_name(user: &User) -> String {
    user.display_name
        .clone()
        .or_else(|| user.nickname.clone())
        .or_else(|| user.username.clone())
        .unwrap_or_else(|| user.key.as_str().to_owned())
}

fn seconds(from: &Timestamp, to: &Timestamp) -> i64 {
    (to.to_datetime() - from.to_datetime()).num_seconds().max(0)
}

fn min_some(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn turn_facts(
    pr: &PullRequest,
    pushed_on: Option<Timestamp>,
    ctx: &FoldContext,
    build: Option<(BuildState, Timestamp)>,
) -> TurnFacts {
    TurnFacts {
        author: pr.author.key.clone(),
        reviewers: pr
            .participants
            .iter()
            .map(|p| ReviewerFacts {
                key: p.user.key.clone(),
                role: p.role,
                state: p.state,
                state_on: p.state_on.clone(),
                reviewed_commit: p.reviewed_commit.clone(),
            })
            .collect(),
        default_reviewers: Vec::new(),
        required_approvals: ctx.required_approvals,
        approvals_after_last_push: ctx.approvals_after_last_push,
        source_commit: pr.source_commit.clone(),
        pushed_on,
        build,
        draft: pr.draft,
        open_tasks: pr.open_tasks,
        created_on: pr.created_on.clone(),
        updated_on: pr.updated_on.clone(),
    }
}

/// When the counted approvals of `turn` reached the required number: the date of the
/// `required`-th earliest counted approval (its `participated_on`, else the snapshot's time);
/// `ready` when none is required; `None` while short.
fn approved_on(turn: &TurnFacts, ready: Option<&Timestamp>) -> Option<Timestamp> {
    let required = usize::try_from(turn.required_approvals).unwrap_or(usize::MAX);
    if required == 0 {
        return Some(ready.unwrap_or(&turn.created_on).clone());
    }
    let mut dates: Vec<Timestamp> = turn
        .counted_approvals()
        .iter()
        .map(|r| {
            r.state_on
                .clone()
                .unwrap_or_else(|| turn.updated_on.clone())
        })
        .collect();
    if dates.len() < required {
        return None;
    }
    dates.sort();
    Some(dates[required - 1].clone())
}

/// Folds the batch's `snapshots` of one PR (any order) into its stored facts (`stored`, `None`
/// for a PR never seen) and stored review requests. See the module's documentation for the
/// rules; each is the definition its field documents in `domain::analytics`.
pub fn fold(
    stored: Option<FactsState>,
    stored_requests: &[ReviewRequest],
    snapshots: &[&PullRequest],
    ctx: &FoldContext,
) -> Option<Folded> {
    let mut snapshots: Vec<&PullRequest> = snapshots.to_vec();
    snapshots.sort_by(|a, b| a.updated_on.cmp(&b.updated_on));
    let first = snapshots.first()?;
    let before = stored.clone();
    let mut state = stored.unwrap_or_else(|| FactsState {
        facts: PrFacts {
            repository: first.repository.key.clone(),
            repository_name: first.repository.full_name.clone(),
            number: first.number,
            title: first.title.clone(),
            url: first.url.clone(),
            author: first.author.key.clone(),
            created_on: first.created_on.clone(),
            ready_on: (!first.draft).then(|| first.created_on.clone()),
            first_review_on: None,
            approved_on: None,
            state: PrState::Open,
            closed_on: None,
            approvals: 0,
            required_approvals: ctx.required_approvals,
            rounds: 0,
        },
        updated_on: first.updated_on.clone(),
        source_commit: first.source_commit.clone(),
        pushed_on: Some(first.created_on.clone()),
        blocked: false,
        turn: None,
        turn_since: None,
    });
    let mut first_seen = before.is_none();
    let mut requests: Vec<ReviewRequest> = stored_requests.to_vec();
    let mut changed_requests: Vec<usize> = Vec::new();
    let mut spans: Vec<TurnSpan> = Vec::new();
    let newest = snapshots.last().map(|pr| pr.updated_on.clone());

    for pr in snapshots {
        let stale = pr.updated_on < state.updated_on;
        let f = &mut state.facts;
        // Minimums, from every snapshot.
        if !pr.draft {
            f.ready_on = min_some(f.ready_on.take(), Some(pr.updated_on.clone()));
        }
        let reviewed = pr
            .participants
            .iter()
            .filter(|p| p.user.key != pr.author.key)
            .filter_map(|p| p.state_on.clone())
            .min();
        f.first_review_on = min_some(f.first_review_on.take(), reviewed);
        // A new commit dates the verdicts given before it (as the PR's `pushed_on`).
        let new_commit = !stale
            && !first_seen
            && pr.source_commit.is_some()
            && pr.source_commit != state.source_commit;
        let pushed_on = if stale {
            None
        } else if new_commit {
            Some(pr.updated_on.clone())
        } else {
            state.pushed_on.clone()
        };
        let build = if Some(&pr.updated_on) == newest.as_ref() {
            ctx.build.clone()
        } else {
            None
        };
        let turn = turn_facts(pr, pushed_on.clone(), ctx, build);
        let reached = approved_on(&turn, f.ready_on.as_ref());
        f.approved_on = min_some(f.approved_on.take(), reached);
        let seen = if first_seen {
            pr.created_on.clone()
        } else {
            pr.updated_on.clone()
        };
        for p in &pr.participants {
            if p.user.key == pr.author.key {
                continue;
            }
            let verdict = match p.state {
                ReviewState::Approved | ReviewState::ChangesRequested => p.state_on.clone(),
                ReviewState::None => None,
            };
            let at = requests.iter().position(|r| r.reviewer == p.user.key);
            let i = match at {
                Some(i) => i,
                None if p.role == Role::Reviewer => {
                    requests.push(ReviewRequest {
                        repository: pr.repository.key.clone(),
                        number: pr.number,
                        reviewer: p.user.key.clone(),
                        reviewer_name: display_name(&p.user),
                        asked_on: seen.clone(),
                        reviewed_on: None,
                    });
                    changed_requests.push(requests.len() - 1);
                    requests.len() - 1
                }
                None => continue,
            };
            let r = &mut requests[i];
            let old = r.clone();
            if p.role == Role::Reviewer {
                r.asked_on = r.asked_on.clone().min(seen.clone());
            }
            r.reviewed_on = min_some(r.reviewed_on.take(), verdict);
            if !stale {
                r.reviewer_name = display_name(&p.user);
            }
            if *r != old && !changed_requests.contains(&i) {
                changed_requests.push(i);
            }
        }
        if stale {
            continue;
        }
        // The newest snapshot so far: state, rounds and turns follow it.
        if new_commit {
            if state.blocked {
                f.rounds += 1;
            }
            state.source_commit = pr.source_commit.clone();
            state.pushed_on = pushed_on;
        }
        f.repository_name = pr.repository.full_name.clone();
        f.title = pr.title.clone();
        f.url = pr.url.clone().or(f.url.take());
        f.author = pr.author.key.clone();
        f.created_on = pr.created_on.clone();
        state.updated_on = pr.updated_on.clone();
        state.blocked = !turn.standing_changes_requested().is_empty();
        let was_open = first_seen || f.state == PrState::Open;
        if pr.state == PrState::Open {
            f.state = PrState::Open;
            f.closed_on = None;
            f.approvals = turn.approvals();
            f.required_approvals = ctx.required_approvals;
            let label = turn.turn().label();
            if state.turn.as_deref() != Some(label) {
                let since = match (&state.turn, &state.turn_since) {
                    (Some(open), Some(open_since)) => {
                        spans.push(TurnSpan {
                            repository: pr.repository.key.clone(),
                            number: pr.number,
                            turn: open.clone(),
                            since: open_since.clone(),
                            until: Some(pr.updated_on.clone()),
                        });
                        pr.updated_on.clone()
                    }
                    // The first span starts when the facts say this turn began.
                    _ if first_seen => turn.since().min(pr.updated_on.clone()),
                    _ => pr.updated_on.clone(),
                };
                spans.push(TurnSpan {
                    repository: pr.repository.key.clone(),
                    number: pr.number,
                    turn: label.to_owned(),
                    since: since.clone(),
                    until: None,
                });
                state.turn = Some(label.to_owned());
                state.turn_since = Some(since);
            }
        } else {
            if was_open || f.state != pr.state {
                f.closed_on = Some(pr.updated_on.clone());
                f.approvals = turn.approvals();
                f.required_approvals = ctx.required_approvals;
            }
            f.state = pr.state;
            if let (Some(open), Some(open_since)) = (state.turn.take(), state.turn_since.take()) {
                spans.push(TurnSpan {
                    repository: pr.repository.key.clone(),
                    number: pr.number,
                    turn: open,
                    since: open_since,
                    until: f.closed_on.clone(),
                });
            }
        }
        first_seen = false;
    }
    // Asked before the review clock started: asked when it started.
    if let Some(ready) = &state.facts.ready_on {
        for (i, r) in requests.iter_mut().enumerate() {
            if r.asked_on < *ready {
                r.asked_on = ready.clone();
                if !changed_requests.contains(&i) {
                    changed_requests.push(i);
                }
            }
        }
    }
    // One write per span start: the last one wins (a turn that changed twice at one instant).
    let mut deduped: Vec<TurnSpan> = Vec::with_capacity(spans.len());
    for span in spans {
        deduped.retain(|s| s.since != span.since);
        deduped.push(span);
    }
    let was = before.as_ref().map(|b| &b.facts);
    let f = &state.facts;
    let first_review_seconds = match (
        was.and_then(|w| w.first_review_on.as_ref()),
        &f.first_review_on,
        &f.ready_on,
    ) {
        (None, Some(reviewed), Some(ready)) => Some(seconds(ready, reviewed)),
        _ => None,
    };
    let merge_seconds = match (was.map(|w| w.state), f.state, &f.closed_on) {
        (Some(PrState::Merged), _, _) => None,
        (_, PrState::Merged, Some(closed)) => Some(seconds(
            f.ready_on.as_ref().unwrap_or(&f.created_on),
            closed,
        )),
        _ => None,
    };
    changed_requests.sort_unstable();
    Some(Folded {
        requests: changed_requests
            .into_iter()
            .map(|i| requests[i].clone())
            .collect(),
        state,
        spans: deduped,
        first_review_seconds,
        merge_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Participant, Repository, RepositoryKey, UserKey};

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn person(key: &str, role: Role, state: ReviewState, on: Option<&str>) -> Participant {
        Participant {
            user: User::keyed(UserKey::from(key)),
            role,
            state,
            state_on: on.map(at),
            reviewed_commit: None,
        }
    }

    fn snapshot(updated: &str, state: PrState, people: Vec<Participant>) -> PullRequest {
        PullRequest {
            repository: Repository {
                key: RepositoryKey::from_stored("cloud/{r}".into()),
                full_name: "acme/api".into(),
                uuid: None,
                url: None,
            },
            number: 1,
            title: "t".into(),
            author: User::keyed(UserKey::from("ann")),
            source_branch: None,
            source_commit: Some("aaaaaaaaaaaa".into()),
            destination_branch: None,
            state,
            draft: false,
            open_tasks: None,
            created_on: at("2026-11-02T09:00:00Z"),
            updated_on: at(updated),
            activity_on: at(updated),
            url: None,
            participants: people,
        }
    }

    fn ctx(required: u32) -> FoldContext {
        FoldContext {
            required_approvals: required,
            approvals_after_last_push: false,
            build: None,
        }
    }

    /// Folds `order` of `snapshots` one batch each, as deliveries arriving in that order.
    fn one_by_one(snapshots: &[PullRequest], order: &[usize]) -> (FactsState, Vec<ReviewRequest>) {
        let (mut state, mut requests): (Option<FactsState>, Vec<ReviewRequest>) = (None, vec![]);
        for &i in order {
            let folded = fold(state, &requests, &[&snapshots[i]], &ctx(2)).unwrap();
            for r in folded.requests {
                requests.retain(|q| q.reviewer != r.reviewer);
                requests.push(r);
            }
            requests.sort_by(|a, b| a.reviewer.cmp(&b.reviewer));
            state = Some(folded.state);
        }
        (state.unwrap(), requests)
    }

    #[test]
    fn arrival_order_does_not_change_the_dated_facts() {
        let (r, a) = (Role::Reviewer, ReviewState::Approved);
        let snapshots = vec![
            snapshot(
                "2026-11-02T09:00:00Z",
                PrState::Open,
                vec![
                    person("bob", r, ReviewState::None, None),
                    person("cy", r, ReviewState::None, None),
                ],
            ),
            snapshot(
                "2026-11-02T11:00:00Z",
                PrState::Open,
                vec![
                    person("bob", r, a, Some("2026-11-02T11:00:00Z")),
                    person("cy", r, ReviewState::None, None),
                ],
            ),
            snapshot(
                "2026-11-02T13:00:00Z",
                PrState::Open,
                vec![
                    person("bob", r, a, Some("2026-11-02T11:00:00Z")),
                    person("cy", r, a, Some("2026-11-02T13:00:00Z")),
                ],
            ),
            snapshot(
                "2026-11-02T15:00:00Z",
                PrState::Merged,
                vec![
                    person("bob", r, a, Some("2026-11-02T11:00:00Z")),
                    person("cy", r, a, Some("2026-11-02T13:00:00Z")),
                ],
            ),
        ];
        let (live, live_requests) = one_by_one(&snapshots, &[0, 1, 2, 3]);
        assert_eq!(live.facts.first_review_on, Some(at("2026-11-02T11:00:00Z")));
        assert_eq!(live.facts.approved_on, Some(at("2026-11-02T13:00:00Z")));
        assert_eq!(live.facts.closed_on, Some(at("2026-11-02T15:00:00Z")));
        assert_eq!(live.facts.state, PrState::Merged);
        assert_eq!(
            live_requests
                .iter()
                .map(|q| (q.asked_on.clone(), q.reviewed_on.clone()))
                .collect::<Vec<_>>(),
            [
                (at("2026-11-02T09:00:00Z"), Some(at("2026-11-02T11:00:00Z"))),
                (at("2026-11-02T09:00:00Z"), Some(at("2026-11-02T13:00:00Z"))),
            ]
        );
        // Backwards, and the merge first: the same facts.
        for order in [[3, 2, 1, 0], [3, 0, 2, 1]] {
            let (state, requests) = one_by_one(&snapshots, &order);
            assert_eq!(state.facts, live.facts, "{order:?}");
            assert_eq!(requests, live_requests, "{order:?}");
        }
        // All four in one batch.
        let all: Vec<&PullRequest> = snapshots.iter().rev().collect();
        let folded = fold(None, &[], &all, &ctx(2)).unwrap();
        assert_eq!(folded.state.facts, live.facts);
        assert_eq!(folded.first_review_seconds, Some(7200));
        assert_eq!(folded.merge_seconds, Some(6 * 3600));
    }

    #[test]
    fn a_new_commit_on_a_standing_request_for_changes_is_a_round() {
        let r = Role::Reviewer;
        let changes = person(
            "bob",
            r,
            ReviewState::ChangesRequested,
            Some("2026-11-02T10:00:00Z"),
        );
        let asked = snapshot("2026-11-02T10:00:00Z", PrState::Open, vec![changes.clone()]);
        let mut pushed = snapshot("2026-11-02T12:00:00Z", PrState::Open, vec![changes]);
        pushed.source_commit = Some("bbbbbbbbbbbb".into());
        let first = fold(None, &[], &[&asked], &ctx(1)).unwrap();
        assert_eq!(first.state.turn.as_deref(), Some("author"));
        let second = fold(Some(first.state), &[], &[&pushed], &ctx(1)).unwrap();
        assert_eq!(second.state.facts.rounds, 1);
        // The request for changes predates the commit: the reviewers' turn again.
        assert_eq!(second.state.turn.as_deref(), Some("reviewers"));
        assert_eq!(
            second.spans,
            [
                TurnSpan {
                    repository: RepositoryKey::from_stored("cloud/{r}".into()),
                    number: 1,
                    turn: "author".into(),
                    since: at("2026-11-02T10:00:00Z"),
                    until: Some(at("2026-11-02T12:00:00Z")),
                },
                TurnSpan {
                    repository: RepositoryKey::from_stored("cloud/{r}".into()),
                    number: 1,
                    turn: "reviewers".into(),
                    since: at("2026-11-02T12:00:00Z"),
                    until: None,
                },
            ]
        );
    }
}

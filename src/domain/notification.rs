//! Which state changes are worth a chat message. Pure: compares what was stored with what a
//! newer snapshot says.

use std::collections::{BTreeSet, HashMap};

use super::event::NotifyEvent;
use super::routing::Routing;
use super::{BuildState, CommitStatus, PrState, PullRequest, RepositoryKey, ReviewState, UserKey};

/// What was stored about a PR before a batch: the fields the transitions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPr {
    /// The stored state.
    pub state: PrState,
    /// The stored draft flag.
    pub draft: bool,
    /// The stored title (a WIP-like title makes the PR unreviewable).
    pub title: String,
    /// The stored snapshot's `updated_on` (UTC RFC 3339 text).
    pub updated_on: String,
    /// The PR's author, whose own verdicts do not count.
    pub author: UserKey,
    /// (user key, state) of everyone attached with a verdict.
    pub reviews: Vec<(UserKey, ReviewState)>,
}

fn verdicts<'a>(
    author: &str,
    reviews: impl Iterator<Item = (&'a str, ReviewState)>,
    wanted: ReviewState,
) -> BTreeSet<&'a str> {
    reviews
        .filter(|(user, state)| *user != author && *state == wanted)
        .map(|(user, _)| user)
        .collect()
}

/// The events between `before` (None: never seen) and the newer snapshot `after`.
/// `quiet(title, draft)` says whether a PR announces nothing in that state (drafts, WIP titles).
pub fn pr_events(
    before: Option<&StoredPr>,
    after: &PullRequest,
    quiet: impl Fn(&str, bool) -> bool,
) -> Vec<NotifyEvent> {
    let was_reviewable =
        before.is_some_and(|b| b.state == PrState::Open && !quiet(&b.title, b.draft));
    let mut events = Vec::new();
    match after.state {
        PrState::Open => {
            if quiet(&after.title, after.draft) {
                return events;
            }
            let Some(before) = before.filter(|_| was_reviewable) else {
                events.push(NotifyEvent::Opened);
                return events;
            };
            let old = before.reviews.iter().map(|(u, s)| (u.as_str(), *s));
            let new = || {
                after
                    .participants
                    .iter()
                    .map(|p| (p.user.key.as_str(), p.state))
            };
            let old_approvals =
                verdicts(before.author.as_str(), old.clone(), ReviewState::Approved);
            let new_approvals = verdicts(after.author.key.as_str(), new(), ReviewState::Approved);
            if old_approvals != new_approvals {
                events.push(NotifyEvent::Approvals);
            }
            let old_changes = verdicts(before.author.as_str(), old, ReviewState::ChangesRequested);
            let new_changes = verdicts(
                after.author.key.as_str(),
                new(),
                ReviewState::ChangesRequested,
            );
            if !new_changes.is_subset(&old_changes) {
                events.push(NotifyEvent::ChangesRequested);
            }
        }
        PrState::Merged if was_reviewable => events.push(NotifyEvent::Merged),
        PrState::Declined if was_reviewable => events.push(NotifyEvent::Declined),
        _ => {}
    }
    events
}

/// A build as stored before a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuild {
    /// The build's stored state.
    pub state: BuildState,
    /// When it last changed (UTC RFC 3339 text).
    pub updated_on: String,
}

/// An open PR whose source commit a build of the batch is on, as stored before the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrOnCommit {
    /// The repository's lasting key.
    pub repository: RepositoryKey,
    /// The repository's current name (routes match it).
    pub full_name: String,
    /// The PR's number in that repository.
    pub number: i64,
    /// Lower case, as Bitbucket gave it (Cloud PRs: 12 hex digits).
    pub source_commit: String,
    /// The PR's stored title.
    pub title: String,
    /// The PR's stored draft flag.
    pub draft: bool,
}

/// What was stored before a batch, as far as planning needs it.
#[derive(Debug, Default, Clone)]
pub struct Before {
    /// By (repository, PR number): every PR the batch touches that was already stored.
    pub prs: HashMap<(RepositoryKey, i64), StoredPr>,
    /// By (full commit hash, build key).
    pub builds: HashMap<(String, String), StoredBuild>,
    /// Open PRs whose source commit one of the batch's builds is on.
    pub prs_on_commits: Vec<PrOnCommit>,
}

/// One chat message to queue: `event` happened to a PR, and `room` wants to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The room's name.
    pub room: String,
    /// The PR's repository.
    pub repository: RepositoryKey,
    /// The PR's number.
    pub number: i64,
    /// What happened.
    pub event: NotifyEvent,
}

/// A PR that stopped being reviewable with nothing announced: a message still waiting for it in
/// `room` would announce a state that no longer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The room's name.
    pub room: String,
    /// The PR's repository.
    pub repository: RepositoryKey,
    /// The PR's number.
    pub number: i64,
}

/// Who hears what after a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NotificationPlan {
    /// Messages to queue (or to merge into a pending one for the same PR).
    pub notifications: Vec<Notification>,
    /// Pending messages to drop.
    pub withdrawals: Vec<Withdrawal>,
}

/// Plans the messages a batch causes, from the newest snapshot of each PR and build in it (with
/// whether its source may announce) against what was stored before.
///
/// - A snapshot older than the stored one changes nothing, so it announces nothing.
/// - A PR is routed by its current name; an unrouted repository is heard nowhere.
/// - A route's switches (`announce_*`) choose the events; drafts and work-in-progress titles are
///   quiet (`CompiledRoute::reviewable`).
/// - A PR that stops being reviewable without an announcement is withdrawn, announcing or not.
/// - A build event reaches every open, reviewable PR on that commit, except one withdrawn in the
///   same batch.
pub fn plan(
    prs: &[(&PullRequest, bool)],
    builds: &[(&CommitStatus, bool)],
    before: &Before,
    routing: &Routing,
) -> NotificationPlan {
    let mut plan = NotificationPlan::default();
    for &(pr, announce) in prs {
        let stored = before.prs.get(&(pr.repository.key.clone(), pr.number));
        if stored.is_some_and(|s| pr.updated_on.as_str() < s.updated_on.as_str()) {
            continue;
        }
        let Some(route) = routing.route(pr.repository.key.flavour(), &pr.repository.full_name)
        else {
            continue;
        };
        let quiet = |title: &str, draft: bool| !route.reviewable(PrState::Open, title, draft);
        // The rooms that got news of this PR (a room that edits its PR messages hears a merge
        // its route does not announce: `Routing::hears`).
        let mut announced: Vec<&str> = Vec::new();
        if announce {
            for event in pr_events(stored, pr, quiet) {
                for room in &route.rooms {
                    if routing.hears(route, room, event) {
                        plan.notifications.push(Notification {
                            room: room.clone(),
                            repository: pr.repository.key.clone(),
                            number: pr.number,
                            event,
                        });
                        announced.push(room);
                    }
                }
            }
        }
        let was_reviewable = stored.is_some_and(|s| route.reviewable(s.state, &s.title, s.draft));
        if was_reviewable && !route.reviewable(pr.state, &pr.title, pr.draft) {
            for room in route
                .rooms
                .iter()
                .filter(|r| !announced.contains(&r.as_str()))
            {
                // A room that edits its message about the PR shows it withdrawn (back to
                // draft, deleted) rather than dropping what it had queued.
                if routing.edits(room) {
                    plan.notifications.push(Notification {
                        room: room.clone(),
                        repository: pr.repository.key.clone(),
                        number: pr.number,
                        event: NotifyEvent::Withdrawn,
                    });
                    continue;
                }
                plan.withdrawals.push(Withdrawal {
                    room: room.clone(),
                    repository: pr.repository.key.clone(),
                    number: pr.number,
                });
            }
        }
    }
    for &(status, announce) in builds {
        let stored = before
            .builds
            .get(&(status.commit_hash.clone(), status.key.clone()));
        if !announce || stored.is_some_and(|b| status.updated_on.as_str() < b.updated_on.as_str()) {
            continue;
        }
        let Some(event) = build_event(stored.map(|b| b.state), status.state) else {
            continue;
        };
        for pr in &before.prs_on_commits {
            if pr.source_commit.is_empty() || !status.commit_hash.starts_with(&pr.source_commit) {
                continue;
            }
            let Some(route) = routing.route(pr.repository.flavour(), &pr.full_name) else {
                continue;
            };
            let withdrawn = plan
                .withdrawals
                .iter()
                .any(|w| w.repository == pr.repository && w.number == pr.number);
            if withdrawn || !route.announce.wants(event) {
                continue;
            }
            if route.reviewable(PrState::Open, &pr.title, pr.draft) {
                for room in &route.rooms {
                    plan.notifications.push(Notification {
                        room: room.clone(),
                        repository: pr.repository.clone(),
                        number: pr.number,
                        event,
                    });
                }
            }
        }
    }
    plan
}

/// A build's new state on a commit, given its previous state for the same build key.
pub fn build_event(before: Option<BuildState>, after: BuildState) -> Option<NotifyEvent> {
    match (before, after) {
        (Some(BuildState::Failed), BuildState::Failed) => None,
        (_, BuildState::Failed) => Some(NotifyEvent::BuildFailed),
        (Some(BuildState::Failed), BuildState::Successful) => Some(NotifyEvent::BuildRecovered),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Participant, Repository, Role, Timestamp, User};

    fn user(key: &str) -> User {
        User::keyed(key.into())
    }

    fn snapshot(
        state: PrState,
        draft: bool,
        title: &str,
        reviews: &[(&str, ReviewState)],
    ) -> PullRequest {
        let t = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        PullRequest {
            repository: Repository {
                key: RepositoryKey::cloud(Some("{r}"), "a/b"),
                full_name: "a/b".into(),
                uuid: None,
                url: None,
            },
            number: 1,
            title: title.into(),
            author: user("author"),
            source_branch: None,
            source_commit: None,
            destination_branch: None,
            state,
            draft,
            open_tasks: None,
            created_on: t.clone(),
            updated_on: t.clone(),
            activity_on: t,
            url: None,
            participants: reviews
                .iter()
                .map(|(k, s)| Participant {
                    user: user(k),
                    role: Role::Reviewer,
                    state: *s,
                    state_on: None,
                    reviewed_commit: None,
                })
                .collect(),
        }
    }

    fn stored(pr: &PullRequest) -> StoredPr {
        StoredPr {
            state: pr.state,
            draft: pr.draft,
            title: pr.title.clone(),
            updated_on: String::new(),
            author: pr.author.key.clone(),
            reviews: pr
                .participants
                .iter()
                .map(|p| (p.user.key.clone(), p.state))
                .collect(),
        }
    }

    fn quiet(title: &str, draft: bool) -> bool {
        draft || title.starts_with("WIP")
    }

    use NotifyEvent::*;
    use ReviewState::{Approved, ChangesRequested as Cr, None as Nothing};

    #[test]
    fn opened_then_approvals_then_changes() {
        let open = snapshot(PrState::Open, false, "t", &[("bob", Nothing)]);
        assert_eq!(pr_events(None, &open, quiet), vec![Opened]);
        let approved = snapshot(PrState::Open, false, "t", &[("bob", Approved)]);
        assert_eq!(
            pr_events(Some(&stored(&open)), &approved, quiet),
            vec![Approvals]
        );
        let asked = snapshot(
            PrState::Open,
            false,
            "t",
            &[("bob", Approved), ("carl", Cr)],
        );
        assert_eq!(
            pr_events(Some(&stored(&approved)), &asked, quiet),
            vec![ChangesRequested]
        );
        // Same verdicts again (a comment, a title edit): nothing to say.
        assert_eq!(pr_events(Some(&stored(&asked)), &asked, quiet), vec![]);
        // The author approving their own PR is not news.
        let selfish = snapshot(
            PrState::Open,
            false,
            "t",
            &[("bob", Approved), ("carl", Cr), ("author", Approved)],
        );
        assert_eq!(pr_events(Some(&stored(&asked)), &selfish, quiet), vec![]);
    }

    #[test]
    fn drafts_and_wip_are_quiet_until_they_leave_that_state() {
        let draft = snapshot(PrState::Open, true, "t", &[]);
        assert_eq!(pr_events(None, &draft, quiet), vec![]);
        let approved_draft = snapshot(PrState::Open, true, "t", &[("bob", Approved)]);
        assert_eq!(
            pr_events(Some(&stored(&draft)), &approved_draft, quiet),
            vec![]
        );
        let ready = snapshot(PrState::Open, false, "t", &[("bob", Approved)]);
        assert_eq!(
            pr_events(Some(&stored(&approved_draft)), &ready, quiet),
            vec![Opened]
        );
        let wip = snapshot(PrState::Open, false, "WIP t", &[]);
        assert_eq!(pr_events(None, &wip, quiet), vec![]);
        let merged_wip = snapshot(PrState::Merged, false, "WIP t", &[]);
        assert_eq!(pr_events(Some(&stored(&wip)), &merged_wip, quiet), vec![]);
    }

    #[test]
    fn merged_and_declined_only_after_being_open() {
        let open = snapshot(PrState::Open, false, "t", &[]);
        let merged = snapshot(PrState::Merged, false, "t", &[]);
        assert_eq!(
            pr_events(Some(&stored(&open)), &merged, quiet),
            vec![Merged]
        );
        assert_eq!(
            pr_events(None, &merged, quiet),
            vec![],
            "first seen merged: not news"
        );
        let declined = snapshot(PrState::Declined, false, "t", &[]);
        assert_eq!(
            pr_events(Some(&stored(&open)), &declined, quiet),
            vec![Declined]
        );
        let reopened = snapshot(PrState::Open, false, "t", &[]);
        assert_eq!(
            pr_events(Some(&stored(&declined)), &reopened, quiet),
            vec![Opened]
        );
    }

    #[test]
    fn builds() {
        use BuildState::*;
        assert_eq!(build_event(None, Failed), Some(BuildFailed));
        assert_eq!(build_event(Some(InProgress), Failed), Some(BuildFailed));
        assert_eq!(build_event(Some(Failed), Failed), None);
        assert_eq!(build_event(Some(Failed), Successful), Some(BuildRecovered));
        assert_eq!(build_event(Some(InProgress), Successful), None);
        assert_eq!(build_event(None, InProgress), None);
    }

    mod planning {
        use super::*;
        use crate::domain::routing::{Announce, Route};
        use crate::domain::CommitStatus;

        fn routing() -> Routing {
            let route = |globs: &[&str], room: &str, announce: Announce| Route {
                repositories: globs.iter().map(|g| g.to_string()).collect(),
                rooms: vec![room.into()],
                required_approvals: None,
                approvals_after_last_push: false,
                room_reminders: true,
                announce,
                ignore_title_patterns: vec!["WIP".into()],
            };
            Routing::new(
                &[
                    route(&["a/*"], "alpha", Announce::default()),
                    route(
                        &["m/*"],
                        "merges",
                        Announce {
                            merged: true,
                            ..Announce::default()
                        },
                    ),
                ],
                2,
            )
            .unwrap()
        }

        fn pr(name: &str, updated: &str, state: PrState, title: &str) -> PullRequest {
            let mut pr = snapshot(state, false, title, &[]);
            pr.repository.key = RepositoryKey::cloud(Some(&format!("{{{name}}}")), name);
            pr.repository.full_name = name.into();
            pr.updated_on = Timestamp::parse(updated).unwrap();
            pr
        }

        fn before_with(prs: &[&PullRequest]) -> Before {
            let mut before = Before::default();
            for pr in prs {
                let mut s = stored(pr);
                s.updated_on = pr.updated_on.as_str().to_owned();
                before.prs.insert((pr.repository.key.clone(), pr.number), s);
            }
            before
        }

        fn notes(planned: &NotificationPlan) -> Vec<(&str, &str, i64, NotifyEvent)> {
            planned
                .notifications
                .iter()
                .map(|n| (n.room.as_str(), n.repository.as_str(), n.number, n.event))
                .collect()
        }

        #[test]
        fn routes_by_the_current_name_and_only_what_may_announce() {
            let routing = routing();
            let new = pr("a/x", "2026-01-01T00:00:00Z", PrState::Open, "t");
            let unrouted = pr("z/x", "2026-01-01T00:00:00Z", PrState::Open, "t");
            let planned = plan(
                &[(&new, true), (&unrouted, true)],
                &[],
                &Before::default(),
                &routing,
            );
            assert_eq!(notes(&planned), vec![("alpha", "cloud/{a/x}", 1, Opened)]);
            assert!(planned.withdrawals.is_empty());
            // A backfill writes the same state and announces nothing.
            let quiet = plan_of(&[(&new, false)], &Before::default(), &routing);
            assert_eq!(quiet, NotificationPlan::default());
        }

        fn plan_of(
            prs: &[(&PullRequest, bool)],
            before: &Before,
            routing: &Routing,
        ) -> NotificationPlan {
            plan(prs, &[], before, routing)
        }

        #[test]
        fn a_route_with_two_rooms_tells_both() {
            let mut route = Route {
                repositories: vec!["*".into()],
                rooms: vec!["old-chat".into(), "new-chat".into()],
                required_approvals: None,
                approvals_after_last_push: false,
                room_reminders: true,
                announce: Announce::default(),
                ignore_title_patterns: vec![],
            };
            let routing = Routing::new(std::slice::from_ref(&route), 2).unwrap();
            let new = pr("a/x", "2026-01-01T00:00:00Z", PrState::Open, "t");
            let planned = plan_of(&[(&new, true)], &Before::default(), &routing);
            assert_eq!(
                notes(&planned),
                vec![
                    ("old-chat", "cloud/{a/x}", 1, Opened),
                    ("new-chat", "cloud/{a/x}", 1, Opened)
                ]
            );
            route.announce = Announce::NOTHING;
            let quiet = Routing::new(&[route], 2).unwrap();
            let merged = pr("a/x", "2026-01-02T00:00:00Z", PrState::Merged, "t");
            let planned = plan_of(&[(&merged, true)], &before_with(&[&new]), &quiet);
            let rooms: Vec<&str> = planned
                .withdrawals
                .iter()
                .map(|w| w.room.as_str())
                .collect();
            assert_eq!(rooms, ["old-chat", "new-chat"]);
        }

        /// A room that edits its PR messages (`Routing::with_final_edits`) hears the merge its
        /// route does not announce, for the final edit; the route's other room has its waiting
        /// message withdrawn as before. Opened news is unchanged for both.
        #[test]
        fn a_room_that_edits_hears_the_merge_for_its_final_edit() {
            let route = Route {
                repositories: vec!["*".into()],
                rooms: vec!["webhook".into(), "living".into()],
                required_approvals: None,
                approvals_after_last_push: false,
                room_reminders: true,
                announce: Announce::default(),
                ignore_title_patterns: vec![],
            };
            let routing = Routing::new(&[route], 2)
                .unwrap()
                .with_final_edits(["living".to_owned()]);
            let open = pr("a/x", "2026-01-01T00:00:00Z", PrState::Open, "t");
            let planned = plan_of(&[(&open, true)], &Before::default(), &routing);
            assert_eq!(
                notes(&planned),
                vec![
                    ("webhook", "cloud/{a/x}", 1, Opened),
                    ("living", "cloud/{a/x}", 1, Opened)
                ]
            );
            for state in [PrState::Merged, PrState::Declined] {
                let closed = pr("a/x", "2026-01-02T00:00:00Z", state, "t");
                let planned = plan_of(&[(&closed, true)], &before_with(&[&open]), &routing);
                let event = if state == PrState::Merged {
                    Merged
                } else {
                    Declined
                };
                assert_eq!(notes(&planned), vec![("living", "cloud/{a/x}", 1, event)]);
                assert_eq!(
                    planned.withdrawals,
                    vec![Withdrawal {
                        room: "webhook".into(),
                        repository: open.repository.key.clone(),
                        number: 1
                    }]
                );
            }
            // Back to draft, deleted (Data Center) or superseded (Cloud): the room that edits
            // shows it (`Withdrawn`), the other drops what it had queued.
            let mut draft = pr("a/x", "2026-01-02T00:00:00Z", PrState::Open, "t");
            draft.draft = true;
            let deleted = pr("a/x", "2026-01-02T00:00:00Z", PrState::Deleted, "t");
            let superseded = pr("a/x", "2026-01-02T00:00:00Z", PrState::Superseded, "t");
            for gone in [draft, deleted, superseded] {
                let planned = plan_of(&[(&gone, true)], &before_with(&[&open]), &routing);
                assert_eq!(
                    notes(&planned),
                    vec![("living", "cloud/{a/x}", 1, Withdrawn)],
                    "{gone:?}"
                );
                assert_eq!(planned.withdrawals.len(), 1);
                assert_eq!(planned.withdrawals[0].room, "webhook");
            }
        }

        #[test]
        fn an_older_snapshot_announces_nothing() {
            let routing = routing();
            let stored_pr = pr("a/x", "2026-01-02T00:00:00Z", PrState::Open, "t");
            let older = pr("a/x", "2026-01-01T00:00:00Z", PrState::Merged, "t");
            let planned = plan_of(&[(&older, true)], &before_with(&[&stored_pr]), &routing);
            assert_eq!(planned, NotificationPlan::default());
        }

        #[test]
        fn leaving_review_withdraws_unless_announced() {
            let routing = routing();
            let open = pr("a/x", "2026-01-01T00:00:00Z", PrState::Open, "t");
            let merged = pr("a/x", "2026-01-02T00:00:00Z", PrState::Merged, "t");
            let planned = plan_of(&[(&merged, true)], &before_with(&[&open]), &routing);
            assert!(planned.notifications.is_empty());
            assert_eq!(
                planned.withdrawals,
                vec![Withdrawal {
                    room: "alpha".into(),
                    repository: open.repository.key.clone(),
                    number: 1
                }]
            );
            // Back to work in progress: withdrawn too, even from a source that may not announce.
            let wip = pr("a/x", "2026-01-02T00:00:00Z", PrState::Open, "WIP: t");
            let planned = plan_of(&[(&wip, false)], &before_with(&[&open]), &routing);
            assert_eq!(planned.withdrawals.len(), 1);
            // A route that announces merges says so instead of withdrawing.
            let open = pr("m/x", "2026-01-01T00:00:00Z", PrState::Open, "t");
            let merged = pr("m/x", "2026-01-02T00:00:00Z", PrState::Merged, "t");
            let planned = plan_of(&[(&merged, true)], &before_with(&[&open]), &routing);
            assert_eq!(notes(&planned), vec![("merges", "cloud/{m/x}", 1, Merged)]);
            assert!(planned.withdrawals.is_empty());
        }

        #[test]
        fn builds_reach_reviewable_prs_on_their_commit() {
            let routing = routing();
            let status = |hash: &str, state: BuildState| CommitStatus {
                repository: pr("a/x", "2026-01-01T00:00:00Z", PrState::Open, "t").repository,
                commit_hash: hash.into(),
                key: "ci".into(),
                state,
                name: None,
                url: None,
                updated_on: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            };
            let on_commit = |name: &str, number: i64, title: &str, draft: bool| PrOnCommit {
                repository: RepositoryKey::cloud(Some(&format!("{{{name}}}")), name),
                full_name: name.into(),
                number,
                source_commit: "abcdef012345".into(),
                title: title.into(),
                draft,
            };
            let before = Before {
                prs_on_commits: vec![
                    on_commit("a/x", 1, "t", false),
                    on_commit("a/x", 2, "WIP t", false),
                    on_commit("a/x", 3, "t", true),
                    on_commit("z/x", 4, "t", false),
                ],
                ..Before::default()
            };
            let failed = status(
                "abcdef0123456789abcdef0123456789abcdef01",
                BuildState::Failed,
            );
            let planned = plan(&[], &[(&failed, true)], &before, &routing);
            assert_eq!(
                notes(&planned),
                vec![("alpha", "cloud/{a/x}", 1, BuildFailed)]
            );
            let elsewhere = status(
                "ffffff0123456789abcdef0123456789abcdef01",
                BuildState::Failed,
            );
            assert!(plan_of_builds(&elsewhere, &before, &routing)
                .notifications
                .is_empty());
            // Not announcing, or failing again: nothing.
            assert!(plan(&[], &[(&failed, false)], &before, &routing)
                .notifications
                .is_empty());
            let mut again = before.clone();
            again.builds.insert(
                (failed.commit_hash.clone(), "ci".into()),
                StoredBuild {
                    state: BuildState::Failed,
                    updated_on: "2025-01-01T00:00:00.000000Z".into(),
                },
            );
            assert!(plan_of_builds(&failed, &again, &routing)
                .notifications
                .is_empty());
        }

        fn plan_of_builds(
            status: &CommitStatus,
            before: &Before,
            routing: &Routing,
        ) -> NotificationPlan {
            plan(&[], &[(status, true)], before, routing)
        }
    }
}

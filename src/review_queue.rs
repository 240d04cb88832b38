//! The review queue: which open PRs wait for review in which room, as the sweep and `/reviews`
//! list them. Selection streams the open PRs oldest first and keeps, per room, only what a
//! message can show (plus counts), so memory stays bounded however many PRs there are; then the
//! details of those kept are read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::UserMapping;
use crate::domain::routing::Routing;
use crate::domain::{
    PrState, PullRequestView, RepositoryKey, RoomDigest, Timestamp, Turn, TurnKind,
};
use crate::store::{self, review_queue::OpenPr, Db};

/// PRs kept per list per room: more than any 10,000-character message can show.
pub const KEEP: usize = 80;

/// Whose view a selection takes: a room's sweep (anyone's snooze hides a PR), or one person's
/// `/reviews` (only the PRs on which they owe a review, as a requested or a default reviewer:
/// never their own, those they approved or those they snoozed).
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Only this room's PRs.
    pub room: Option<String>,
    /// The asker's Bitbucket `user_key`.
    pub asker: Option<String>,
    /// A room's scheduled digest: the PRs of routes with `room_reminders = false` are left out.
    pub reminders: bool,
}

/// How much a selection keeps: the digests' few, or the status page's whole picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// PRs kept per list per room (the counts cover every one).
    pub keep: usize,
    /// Also keep, apart, the drafts (and work-in-progress titles) and the snoozed PRs that
    /// would otherwise wait for review; `false` leaves them out, as digests do.
    pub apart: bool,
}

impl Selection {
    /// What a digest or a `/reviews` answer shows.
    pub const DIGEST: Selection = Selection {
        keep: KEEP,
        apart: false,
    };
    /// Everything, drafts and snoozed PRs apart (the status page).
    pub const EVERYTHING: Selection = Selection {
        keep: usize::MAX,
        apart: true,
    };
}

/// One room's queue in full: its digest, plus the PRs kept apart (`Selection::apart`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomQueue {
    /// Waiting for review, waiting on the author and ready to merge, as a digest lists them (the
    /// status page's has no PR ready to merge).
    pub digest: RoomDigest,
    /// Drafts and work-in-progress titles, oldest first, whatever their approvals.
    pub drafts: Vec<PullRequestView>,
    /// Snoozed PRs that would otherwise wait for review (or on their author), oldest first.
    pub snoozed: Vec<PullRequestView>,
}

/// Every open PR that needs review, sorted into the rooms its route names.
pub async fn select(
    db: &Db,
    routing: &Routing,
    users: &[UserMapping],
    now: DateTime<Utc>,
    scope: &Scope,
) -> anyhow::Result<HashMap<String, RoomDigest>> {
    let queues = select_with(db, routing, users, now, scope, Selection::DIGEST).await?;
    Ok(queues
        .into_iter()
        .map(|(room, queue)| (room, queue.digest))
        .collect())
}

/// As `select`, keeping what `selection` says: the one selection behind digests, `/reviews` and
/// the status page.
pub async fn select_with(
    db: &Db,
    routing: &Routing,
    users: &[UserMapping],
    now: DateTime<Utc>,
    scope: &Scope,
    selection: Selection,
) -> anyhow::Result<HashMap<String, RoomQueue>> {
    let keep = selection.keep;
    let mut routes: HashMap<String, Option<usize>> = HashMap::new();
    let mut digests: HashMap<String, RoomQueue> = HashMap::new();
    let now = Timestamp::from_datetime(now);
    let asker = scope.asker.as_deref();
    store::review_queue::for_each_open_with(db, &now, asker, selection.apart, |pr: OpenPr| {
        // A person's list (issue 23) shows only the reviews they owe: never their own PRs.
        if pr.excluded || (asker.is_some() && !pr.owes) {
            return;
        }
        let index = match routes.get(&pr.repository_key) {
            Some(index) => *index,
            None => {
                let flavour = RepositoryKey::from_stored(pr.repository_key.clone()).flavour();
                let index = routing.route_index(flavour, &pr.full_name);
                routes.insert(pr.repository_key.clone(), index);
                index
            }
        };
        let Some(route) = index.and_then(|i| routing.route_at(i)) else {
            return;
        };
        if scope.reminders && !route.room_reminders {
            return;
        }
        // Sorted by turn before any list is cut, so that every count and every kept PR follows
        // the turn (issue 23), not Bitbucket's raw approval count.
        let kind = pr.turn_counts(route.required_approvals).kind();
        // A draft or a work-in-progress title: never in a digest or a person's list; the status
        // page keeps it apart. A snoozed PR there is kept apart unless it is ready to merge.
        let draft = !route.reviewable(PrState::Open, &pr.title, pr.draft);
        let apart = selection.apart && (draft || (pr.snoozed && kind != TurnKind::Merge));
        if !apart {
            let listed = match kind {
                _ if draft => false,
                TurnKind::Reviewers => true,
                // A person's list holds only reviews owed.
                TurnKind::Author(_) => asker.is_none(),
                // Ready to merge: in a room's digest; not on the status page.
                TurnKind::Merge => asker.is_none() && !selection.apart,
            };
            if !listed {
                return;
            }
        }
        let view = pr.into_view(route.required_approvals);
        // A PR is listed in every room of its route (or the one room asked about).
        for room in &route.rooms {
            if scope.room.as_deref().is_some_and(|wanted| wanted != room) {
                continue;
            }
            let queue = match digests.get_mut(room) {
                Some(queue) => queue,
                None => digests.entry(room.clone()).or_default(),
            };
            let digest = &mut queue.digest;
            let (list, total) = match kind {
                _ if apart && draft => (&mut queue.drafts, None),
                _ if apart => (&mut queue.snoozed, None),
                TurnKind::Reviewers => (&mut digest.waiting_review, Some(&mut digest.review_total)),
                TurnKind::Author(_) => (&mut digest.waiting_author, Some(&mut digest.author_total)),
                TurnKind::Merge => (&mut digest.ready_to_merge, Some(&mut digest.merge_total)),
            };
            if let Some(total) = total {
                *total += 1;
            }
            if list.len() < keep {
                list.push(view.clone());
            }
        }
    })
    .await?;
    // A room with only PRs kept apart has an empty digest, as before.
    let mut views: Vec<&mut PullRequestView> = Vec::new();
    for queue in digests.values_mut() {
        views.extend(queue.digest.views_mut());
        views.extend(queue.drafts.iter_mut());
        views.extend(queue.snoozed.iter_mut());
    }
    fill(db, views.into_iter(), users).await?;
    for queue in digests.values() {
        agrees(&queue.digest);
    }
    Ok(digests)
}

/// In debug builds (every test), that each listed PR's turn as its details give it
/// (`TurnFacts`, in Rust) is the turn the first pass sorted it by (`TurnCounts`, from SQL): the
/// two must never disagree.
fn agrees(digest: &RoomDigest) {
    if cfg!(debug_assertions) {
        let lists = [
            ("reviewers", &digest.waiting_review),
            ("author", &digest.waiting_author),
            ("merge", &digest.ready_to_merge),
        ];
        for (label, list) in lists {
            for view in list {
                let turn = view.turn.as_ref().map(Turn::label);
                assert!(
                    turn.is_none_or(|t| t == label),
                    "{} #{} listed as {label} but its turn is {turn:?}",
                    view.repository,
                    view.number
                );
            }
        }
    }
}

/// The asker's own open PRs, whatever their approvals (drafts too).
pub async fn authored(
    db: &Db,
    routing: &Routing,
    users: &[UserMapping],
    author: &str,
) -> anyhow::Result<RoomDigest> {
    let mut digest = RoomDigest::default();
    for pr in store::review_queue::authored_open(db, author).await? {
        let flavour = RepositoryKey::from_stored(pr.repository_key.clone()).flavour();
        let required = routing.required_approvals(flavour, &pr.full_name);
        let kind = pr.turn_counts(required).kind();
        let view = pr.into_view(required);
        let (list, total) = match kind {
            TurnKind::Reviewers => (&mut digest.waiting_review, &mut digest.review_total),
            TurnKind::Author(_) => (&mut digest.waiting_author, &mut digest.author_total),
            TurnKind::Merge => (&mut digest.ready_to_merge, &mut digest.merge_total),
        };
        *total += 1;
        if list.len() < KEEP {
            list.push(view);
        }
    }
    fill(db, digest.views_mut(), users).await?;
    agrees(&digest);
    Ok(digest)
}

/// Reads the details of the PRs a message shows, and gives requested reviewers their chat names
/// where `[[users]]` maps their account.
async fn fill<'a>(
    db: &Db,
    views: impl Iterator<Item = &'a mut PullRequestView>,
    users: &[UserMapping],
) -> anyhow::Result<()> {
    let mut views: Vec<&mut PullRequestView> = views.collect();
    store::review_queue::fill_details(db, views.iter_mut().map(|v| &mut **v)).await?;
    for view in views {
        mention_people(view, users);
    }
    Ok(())
}

/// Gives the owed reviewers and the author of `view` their chat names where `[[users]]` maps
/// their account (any of its identifiers, any case).
pub fn mention_people(view: &mut PullRequestView, users: &[UserMapping]) {
    for person in view
        .waiting_for
        .iter_mut()
        .chain(std::iter::once(&mut view.author_as))
    {
        let mapping = users.iter().find(|u| {
            person
                .ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&u.bitbucket))
        });
        person.hipchat = mapping.and_then(|m| m.hipchat.clone());
        person.slack = mapping.and_then(|m| m.slack.clone());
        person.google_chat = mapping
            .and_then(|m| m.google_chat.as_deref())
            .map(|id| id.trim().trim_start_matches("users/").to_owned());
        person.teams = mapping.and_then(|m| m.teams.clone().or_else(|| m.email.clone()));
    }
}

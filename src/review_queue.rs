//! The review queue: which open PRs wait for review in which room, as the sweep and `/reviews`
//! list them. Selection streams the open PRs oldest first and keeps, per room, only what a
//! message can show (plus counts), so memory stays bounded however many PRs there are; then the
//! details of those kept are read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::UserMapping;
use crate::domain::routing::Routing;
use crate::domain::{PrState, PullRequestView, RepositoryKey, RoomDigest, Timestamp, Turn};
use crate::store::{self, review_queue::OpenPr, Db};

/// PRs kept per list per room: more than any 10,000-character message can show.
pub const KEEP: usize = 80;

/// Whose view a selection takes: a room's sweep (anyone's snooze hides a PR), or one person's
/// `/reviews` (only the PRs they were asked to review, never their own, those they approved or
/// those they snoozed; `reviews` then keeps those on which they owe a review).
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Only this room's PRs.
    pub room: Option<String>,
    /// The asker's Bitbucket `user_key`.
    pub asker: Option<String>,
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
    /// Waiting for review and waiting on the author, as a digest lists them.
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
    // Per room, the PRs the asker was asked to review, kept apart to be listed first.
    let mut asked: HashMap<String, Vec<PullRequestView>> = HashMap::new();
    let now = Timestamp::from_datetime(now);
    let asker = scope.asker.as_deref();
    store::review_queue::for_each_open_with(db, &now, asker, selection.apart, |pr: OpenPr| {
        // A person's list (issue 23) shows only what they owe, and an owed reviewer is always a
        // requested one: the others are not kept, so the per-room cap never cuts an owed review.
        if pr.excluded || (asker.is_some() && !pr.asked) {
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
        let approvals = u32::try_from(pr.approvals).unwrap_or(0);
        // Kept apart (status page): drafts whatever their approvals, snoozed ones that would
        // otherwise be listed.
        let draft = !route.reviewable(PrState::Open, &pr.title, pr.draft);
        let apart = selection.apart && (draft || pr.snoozed);
        // A room's digest (not a person's list, not the status page) also lists the PRs whose
        // approvals are met: ready to merge, or their author's turn (issue 23); `by_turn` sorts
        // them once their details are read.
        let approved = !apart
            && !selection.apart
            && scope.asker.is_none()
            && !draft
            && approvals >= route.required_approvals;
        if !apart && !approved && !route.needs_review(PrState::Open, &pr.title, pr.draft, approvals)
        {
            return;
        }
        if apart && !draft && approvals >= route.required_approvals {
            return;
        }
        let (changes, asked_me) = (pr.changes_requested, pr.asked);
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
            if apart {
                let list = if draft {
                    &mut queue.drafts
                } else {
                    &mut queue.snoozed
                };
                if list.len() < keep {
                    list.push(view.clone());
                }
                continue;
            }
            let digest = &mut queue.digest;
            if approved {
                digest.merge_total += 1;
                if digest.ready_to_merge.len() < keep {
                    digest.ready_to_merge.push(view.clone());
                }
                continue;
            }
            if changes > 0 {
                digest.author_total += 1;
                if digest.waiting_author.len() < keep {
                    digest.waiting_author.push(view.clone());
                }
                continue;
            }
            digest.review_total += 1;
            if asked_me {
                let first = asked.entry(room.clone()).or_default();
                if first.len() < keep {
                    first.push(view.clone());
                }
            } else if digest.waiting_review.len() < keep {
                digest.waiting_review.push(view.clone());
            }
        }
    })
    .await?;
    for (room, mut first) in asked {
        if let Some(queue) = digests.get_mut(&room) {
            first.append(&mut queue.digest.waiting_review);
            first.truncate(keep);
            queue.digest.waiting_review = first;
        }
    }
    // A room with only PRs kept apart has an empty digest, as before.
    let mut views: Vec<&mut PullRequestView> = Vec::new();
    for queue in digests.values_mut() {
        views.extend(queue.digest.views_mut());
        views.extend(queue.drafts.iter_mut());
        views.extend(queue.snoozed.iter_mut());
    }
    fill(db, views.into_iter(), users).await?;
    for queue in digests.values_mut() {
        by_turn(&mut queue.digest);
    }
    Ok(digests)
}

/// Sorts a digest's listed PRs by their turn (issue 23), now that it is known: one whose turn is
/// its author's (a failed build, a request for changes still standing, open tasks) is not
/// waiting for review, one whose requests for changes a new commit superseded waits for its
/// reviewers again, and one whose approvals are met is ready to merge unless something makes it
/// its author's turn. A PR whose turn is unknown stays where the selection put it. Each list
/// stays oldest first; the totals follow the PRs moved.
fn by_turn(digest: &mut RoomDigest) {
    const REVIEW: usize = 0;
    const AUTHOR: usize = 1;
    const MERGE: usize = 2;
    let mut totals = [digest.review_total, digest.author_total, digest.merge_total];
    // The review list keeps its order (on `/reviews`, the asker's own requests first); those
    // handed back to the reviewers follow, oldest first.
    let (mut review, mut to_review, mut author, mut merge) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let lists = [
        (REVIEW, std::mem::take(&mut digest.waiting_review)),
        (AUTHOR, std::mem::take(&mut digest.waiting_author)),
        (MERGE, std::mem::take(&mut digest.ready_to_merge)),
    ];
    for (origin, list) in lists {
        for view in list {
            let dest = match view.turn {
                Some(Turn::Reviewers { .. }) => REVIEW,
                Some(Turn::Author(_)) => AUTHOR,
                Some(Turn::Merge) => MERGE,
                None => origin,
            };
            if dest != origin {
                totals[origin] = totals[origin].saturating_sub(1);
                totals[dest] += 1;
            }
            match dest {
                REVIEW if origin == REVIEW => review.push(view),
                REVIEW => to_review.push(view),
                AUTHOR => author.push(view),
                _ => merge.push(view),
            }
        }
    }
    let oldest_first = |mut list: Vec<PullRequestView>| {
        list.sort_by_key(|v| v.created_on);
        list
    };
    digest.waiting_review = [review, oldest_first(to_review)].concat();
    digest.waiting_author = oldest_first(author);
    digest.ready_to_merge = oldest_first(merge);
    [digest.review_total, digest.author_total, digest.merge_total] = totals;
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
        let changes = pr.changes_requested;
        let flavour = RepositoryKey::from_stored(pr.repository_key.clone()).flavour();
        let required = routing.required_approvals(flavour, &pr.full_name);
        let view = pr.into_view(required);
        let (list, total) = if changes > 0 {
            (&mut digest.waiting_author, &mut digest.author_total)
        } else {
            (&mut digest.waiting_review, &mut digest.review_total)
        };
        *total += 1;
        if list.len() < KEEP {
            list.push(view);
        }
    }
    fill(db, digest.views_mut(), users).await?;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuthorReason;

    fn pr(number: i64, hours_old: i64, turn: Turn) -> PullRequestView {
        PullRequestView {
            number,
            created_on: DateTime::<Utc>::from_timestamp(1_800_000_000 - hours_old * 3600, 0)
                .unwrap(),
            turn: Some(turn),
            ..PullRequestView::default()
        }
    }

    fn numbers(list: &[PullRequestView]) -> Vec<i64> {
        list.iter().map(|v| v.number).collect()
    }

    #[test]
    fn a_digest_lists_each_pr_under_its_turn() {
        let reviewers = || Turn::Reviewers { owed: Vec::new() };
        let mut digest = RoomDigest {
            // #1 waits for review; #2's build failed (its author's turn); #5 is not listed
            // (beyond the kept ones) but counted.
            waiting_review: vec![
                pr(1, 50, reviewers()),
                pr(2, 40, Turn::Author(AuthorReason::BuildFailed)),
            ],
            // #3's request for changes stands; a new commit superseded #4's.
            waiting_author: vec![
                pr(3, 45, Turn::Author(AuthorReason::ChangesRequested)),
                pr(4, 30, reviewers()),
            ],
            review_total: 3,
            author_total: 2,
            // Approvals met: #6 can be merged; #7 has open tasks (its author's turn).
            ready_to_merge: vec![
                pr(6, 20, Turn::Merge),
                pr(7, 60, Turn::Author(AuthorReason::OpenTasks)),
            ],
            merge_total: 2,
        };
        by_turn(&mut digest);
        assert_eq!(numbers(&digest.waiting_review), [1, 4]);
        assert_eq!(numbers(&digest.waiting_author), [7, 3, 2], "oldest first");
        assert_eq!(numbers(&digest.ready_to_merge), [6]);
        assert_eq!(
            (digest.review_total, digest.author_total, digest.merge_total),
            (3, 3, 1)
        );
    }
}

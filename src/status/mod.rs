//! The status page (`GET /status`): what waits for review in each room and repository, a chart
//! of open PRs by age, and the service's health. `gather` reads it (the review queue's own
//! selection, `review_queue::select_with`, plus `store::status`); `page::render` turns it into
//! HTML. Every age is measured from the service's `Clock`.

pub mod page;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::domain::routing::Routing;
use crate::domain::{PullRequestView, Timestamp};
use crate::notify::digest;
use crate::review_queue::{self, Scope, Selection};
use crate::store::outbox::OutboxRow;
use crate::store::status::{AgeBuckets, LastDelivery, LastSweep, Refusals, SiteReconciliation};
use crate::store::{self, Db};

/// Failed outbox messages shown (the newest).
pub const FAILED_SHOWN: i64 = 50;
/// Groups of refused deliveries shown (the most recent).
pub const REFUSALS_SHOWN: i64 = 50;

/// Everything the page shows, as of `now`.
#[derive(Debug, Clone)]
pub struct StatusPage {
    /// The instant every age is measured to.
    pub now: DateTime<Utc>,
    /// `sweep.escalate_after`: an age past it is shown red.
    pub escalate_after: Duration,
    /// Every configured room, by name, with what waits there.
    pub rooms: Vec<RoomSection>,
    /// Open PRs per repository by age (the chart).
    pub chart: Vec<AgeBuckets>,
    /// The last delivery per Bitbucket flavour.
    pub last_deliveries: Vec<LastDelivery>,
    /// Refused deliveries of the last 24 hours, grouped by flavour and reason.
    pub refusals: Vec<Refusals>,
    /// Failed outbox messages, newest first (at most `FAILED_SHOWN`).
    pub failed_messages: Vec<OutboxRow>,
    /// Each room's last sweep.
    pub sweeps: Vec<LastSweep>,
    /// Each configured site (`Site::name()`) and its last reconciliation, if any.
    pub sites: Vec<(String, Option<SiteReconciliation>)>,
    /// PostgreSQL: which replica sends each room's messages (`None` on SQLite: this process).
    pub leases: Option<Vec<store::leases::Lease>>,
    /// The built-in digest schedule and its zone (`0 9-17 * * Mon-Fri (Europe/Berlin)`), if
    /// any.
    pub schedule: Option<String>,
}

/// One room.
#[derive(Debug, Clone, Default)]
pub struct RoomSection {
    /// The room's configured name.
    pub room: String,
    /// Its repositories with something listed, by name.
    pub repositories: Vec<RepositorySection>,
}

/// One repository in one room; every list oldest first.
#[derive(Debug, Clone, Default)]
pub struct RepositorySection {
    /// The repository's current name.
    pub repository: String,
    /// Short of approvals, nobody asking for changes.
    pub waiting_review: Vec<PrLine>,
    /// Changes requested: the author has the next move.
    pub waiting_author: Vec<PrLine>,
    /// Drafts and work-in-progress titles.
    pub drafts: Vec<PrLine>,
    /// Hidden by a snooze for now.
    pub snoozed: Vec<PrLine>,
}

/// One PR as a row of the page.
#[derive(Debug, Clone)]
pub struct PrLine {
    /// The PR, filled as a digest fills it.
    pub view: PullRequestView,
    /// Since it was opened.
    pub age: Duration,
    /// Past `escalate_after` (counted as digests count it): shown red.
    pub late: bool,
    /// A snoozed PR's snoozes: `by Carol Reviewer until Tue 24 Nov 12:00 CET` (in the sweep's
    /// time zone), the soonest to end first; empty for the other lists.
    pub snoozes: Vec<String>,
}

/// Reads the whole page as of `now`.
pub async fn gather(
    db: &Db,
    routing: &Routing,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<StatusPage> {
    let mut queues = review_queue::select_with(
        db,
        routing,
        &settings.commands.users,
        now,
        &Scope::default(),
        Selection::EVERYTHING,
    )
    .await?;
    let line = |view: PullRequestView| {
        let (age, late) = digest::age(&view, &settings.sweep, now);
        PrLine {
            view,
            age,
            late,
            snoozes: Vec::new(),
        }
    };
    let snoozes = store::snoozes::current(db, &Timestamp::from_datetime(now)).await?;
    let mut rooms = Vec::with_capacity(settings.notify.rooms.len());
    for room in &settings.notify.rooms {
        let Some(queue) = queues.remove(&room.name) else {
            rooms.push(RoomSection {
                room: room.name.clone(),
                repositories: Vec::new(),
            });
            continue;
        };
        let mut by_repository: BTreeMap<String, RepositorySection> = BTreeMap::new();
        // Each list is oldest first already, and so stays per repository.
        for view in queue.digest.waiting_review {
            let l = line(view);
            section(&mut by_repository, &l.view).waiting_review.push(l);
        }
        for view in queue.digest.waiting_author {
            let l = line(view);
            section(&mut by_repository, &l.view).waiting_author.push(l);
        }
        for view in queue.drafts {
            let l = line(view);
            section(&mut by_repository, &l.view).drafts.push(l);
        }
        for view in queue.snoozed {
            let mut l = line(view);
            l.snoozes = snoozes
                .iter()
                .filter(|s| s.repository_key == l.view.key.as_str() && s.number == l.view.number)
                .map(|s| {
                    let until = Timestamp::parse(&s.until)
                        .map(|t| settings.sweep.calendar.show(t.to_datetime()))
                        .unwrap_or_else(|_| s.until.clone());
                    format!("by {} until {until}", s.snoozed_by)
                })
                .collect();
            section(&mut by_repository, &l.view).snoozed.push(l);
        }
        rooms.push(RoomSection {
            room: room.name.clone(),
            repositories: by_repository.into_values().collect(),
        });
    }
    let stamp = Timestamp::from_datetime(now);
    let day_ago = Timestamp::from_datetime(now - chrono::Duration::hours(24));
    let reconciled = store::status::reconciliations(db).await?;
    let sites = settings
        .bitbucket
        .iter()
        .map(|site| {
            let name = site.name().to_owned();
            let last = reconciled.iter().find(|r| r.site == name).cloned();
            (name, last)
        })
        .collect();
    Ok(StatusPage {
        now,
        escalate_after: settings.sweep.escalate_after,
        rooms,
        chart: store::status::open_by_age(db, &stamp).await?,
        last_deliveries: store::status::last_deliveries(db).await?,
        refusals: store::status::refusals_since(db, &day_ago, REFUSALS_SHOWN).await?,
        failed_messages: store::outbox::list(db, true, FAILED_SHOWN).await?,
        sweeps: store::status::last_sweeps(db).await?,
        sites,
        leases: store::leases::list(db).await?,
        schedule: settings
            .sweep
            .schedule
            .as_ref()
            .map(|s| format!("{s} ({})", settings.sweep.calendar.tz)),
    })
}

/// The section of `view`'s repository.
fn section<'a>(
    sections: &'a mut BTreeMap<String, RepositorySection>,
    view: &PullRequestView,
) -> &'a mut RepositorySection {
    sections
        .entry(view.repository.clone())
        .or_insert_with(|| RepositorySection {
            repository: view.repository.clone(),
            ..RepositorySection::default()
        })
}

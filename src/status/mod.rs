//! The status page (`GET /status`): what waits for review in each room and repository, a chart
//! of open PRs by age, and the service's health. `gather` reads it (the review queue's own
//! selection, `review_queue::select_with`, plus `store::status`); `page::render` turns it into
//! HTML. Every age is measured from the service's `Clock`.

pub mod direct;
pub mod page;
pub mod review_flow;
pub mod turns;
pub mod webhooks;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::bitbucket::servers::{DataCenterServers, UNKNOWN};
use crate::config::{server_name, Settings};
use crate::domain::routing::Routing;
use crate::domain::{PullRequestView, RepositoryKey, Timestamp};
use crate::notify::digest;
use crate::review_queue::{self, Scope, Selection};
use crate::store::identities::ServerDelivery;
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
    /// Whom the waiting PRs wait on (issue 23), the most loaded first.
    pub people: Vec<turns::PersonLoad>,
    /// Each `[[users]]` entry's direct messages and next reminder (issue 24).
    pub reminders: Vec<direct::ReminderLine>,
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
    /// Each Data Center server identity: the configured sites', then every other one stored.
    pub servers: Vec<ServerIdentity>,
    /// (site, base URL): a site's REST answers link to a base URL that is neither its `url` nor
    /// one of its `aliases` (its deliveries are then stored as another server).
    pub foreign_links: Vec<(String, String)>,
    /// The built-in digest schedule and its zone (`0 9-17 * * Mon-Fri (Europe/Berlin)`), if
    /// any.
    pub schedule: Option<String>,
    /// Webhook coverage per repository reconciliation checked (sites with a `webhook_url`).
    pub webhooks: Vec<webhooks::WebhookLine>,
    /// `webhook_silence_days`, as shown.
    pub webhook_silence_days: String,
}

/// One identity Data Center repositories are stored under (`datacenter/{server}/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// `host[:port]`, or `unknown`.
    pub server: String,
    /// What names it.
    pub known_as: KnownAs,
    /// Repositories stored under it.
    pub repositories: i64,
    /// Their open pull requests.
    pub open: i64,
    /// The last delivery stored under it.
    pub last_delivery: Option<ServerDelivery>,
}

/// Where a Data Center identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownAs {
    /// A `[[bitbucket]]` site: its URL and its aliases' servers.
    Site { url: String, aliases: Vec<String> },
    /// Payloads without links that belong to no single site.
    Unknown,
    /// The host a delivery's links name, which no site names.
    Links,
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
    let servers = datacenter_servers(db, settings).await?;
    let configured = DataCenterServers::from_sites(&settings.bitbucket);
    let foreign_links = store::status::linked_base_urls(db)
        .await?
        .into_iter()
        .filter(|(site, base)| {
            let linked = reqwest::Url::parse(base)
                .ok()
                .as_ref()
                .and_then(server_name);
            let Some(known) = configured.known().iter().find(|k| &k.site == site) else {
                return false;
            };
            linked.is_some_and(|l| !known.is_named(&l))
        })
        .collect();
    Ok(StatusPage {
        now,
        servers,
        foreign_links,
        escalate_after: settings.sweep.escalate_after,
        people: turns::people(&rooms),
        reminders: direct::lines(db, settings, now).await?,
        rooms,
        chart: store::status::open_by_age(db, &stamp).await?,
        last_deliveries: store::status::last_deliveries(db).await?,
        refusals: store::status::refusals_since(db, &day_ago, REFUSALS_SHOWN).await?,
        failed_messages: store::outbox::list(db, true, FAILED_SHOWN).await?,
        sweeps: store::status::last_sweeps(db).await?,
        sites,
        leases: store::leases::list(db).await?,
        webhooks: webhooks::lines(
            db,
            &settings
                .bitbucket
                .iter()
                .map(|s| s.name().to_owned())
                .collect::<Vec<_>>(),
            settings.monitoring.webhook_silence,
            now,
        )
        .await?,
        webhook_silence_days: format!(
            "{}",
            settings.monitoring.webhook_silence.as_secs_f64() / 86_400.0
        ),
        schedule: settings
            .sweep
            .schedule
            .as_ref()
            .map(|s| format!("{s} ({})", settings.sweep.calendar.tz)),
    })
}

/// The configured Data Center servers (even with nothing stored), then every other identity
/// stored, each with its repositories, open PRs and last delivery.
async fn datacenter_servers(db: &Db, settings: &Settings) -> anyhow::Result<Vec<ServerIdentity>> {
    let configured = DataCenterServers::from_sites(&settings.bitbucket);
    let mut out: Vec<ServerIdentity> = configured
        .known()
        .iter()
        .map(|k| ServerIdentity {
            server: k.server.clone(),
            known_as: KnownAs::Site {
                url: k.site.clone(),
                aliases: k.aliases.clone(),
            },
            repositories: 0,
            open: 0,
            last_delivery: None,
        })
        .collect();
    for (key, open) in store::status::datacenter_repositories(db).await? {
        let key = RepositoryKey::from_stored(key);
        let Some((server, _)) = key.datacenter_parts() else {
            continue;
        };
        let i = match out.iter().position(|s| s.server == server) {
            Some(i) => i,
            None => {
                out.push(ServerIdentity {
                    server: server.to_owned(),
                    known_as: if server == UNKNOWN {
                        KnownAs::Unknown
                    } else {
                        KnownAs::Links
                    },
                    repositories: 0,
                    open: 0,
                    last_delivery: None,
                });
                out.len() - 1
            }
        };
        out[i].repositories += 1;
        out[i].open += open;
    }
    for identity in &mut out {
        identity.last_delivery = store::identities::last_delivery(db, &identity.server).await?;
    }
    Ok(out)
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

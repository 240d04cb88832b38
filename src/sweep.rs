//! The periodic sweep: one digest per room of the PRs still short of their approvals, quiet on
//! non-working days and in quiet hours, at most once per `min_interval`. Selection is the review
//! queue's; escalation is decided before rendering, and only what will be posted is rendered. The
//! digest is queued in the outbox (pre-rendered) in the same transaction as the `sweeps` record
//! that makes a second sweep within `min_interval` post nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::domain::routing::Routing;
use crate::domain::{RoomDigest, Timestamp, Trigger};
use crate::notify::{digest, sink};
use crate::review_queue::{self, Scope};
use crate::store::sweeps::{self, Decision, SweepRecord};
use crate::store::Db;

/// What a sweep did in one room; part of `POST /sweep`'s JSON answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomReport {
    /// The room's name.
    pub room: String,
    /// `posted` or `skipped`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why nothing was posted (quiet hours, posted within `min_interval`, nothing waiting);
    /// absent when posted.
    pub reason: Option<String>,
    /// PRs short of their approvals with nobody asking for changes.
    pub waiting_review: usize,
    /// PRs where changes were requested: the author has the next move.
    pub waiting_on_author: usize,
    /// PRs whose approvals are met with nothing blocking (turn `merge`): the author can merge.
    pub ready_to_merge: usize,
    /// Some listed PR is older than `escalate_after`, so the digest is red.
    pub escalated: bool,
}

/// What a sweep did, room by room: the JSON answer of `POST /sweep` and, as text, the output of
/// `pr-reminder sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// When the sweep ran (UTC RFC 3339, as `Timestamp` writes it).
    pub at: String,
    /// Whether `force` overrode quiet hours and `min_interval`.
    pub forced: bool,
    /// One report per configured room.
    pub rooms: Vec<RoomReport>,
}

impl SweepReport {
    /// The report as a few lines for a terminal or a log: one line per room.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "sweep at {}{}\n",
            self.at,
            if self.forced { " (forced)" } else { "" }
        );
        for r in &self.rooms {
            out.push_str(&format!(
                "  {:<16} {:<8} {} waiting for review, {} waiting on author{}{}{}\n",
                r.room,
                r.status,
                r.waiting_review,
                r.waiting_on_author,
                if r.ready_to_merge > 0 {
                    format!(", {} ready to merge", r.ready_to_merge)
                } else {
                    String::new()
                },
                if r.escalated { ", escalated" } else { "" },
                r.reason
                    .as_deref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            ));
        }
        out
    }
}

/// Runs a sweep at `now`: quiet hours, idempotency window, selection, rendering, queueing.
pub async fn run(
    db: &Db,
    routing: &Routing,
    config: &Settings,
    now: DateTime<Utc>,
    trigger: Trigger,
    force: bool,
) -> anyhow::Result<SweepReport> {
    let (rooms, users, settings) = (&config.notify.rooms, &config.commands.users, &config.sweep);
    let at = Timestamp::from_datetime(now);
    let quiet = if force {
        None
    } else {
        settings.calendar.quiet_reason(now)
    };
    // Selected even when the sweep will be quiet: a skipped sweep reports (and records) what
    // is waiting, with the reason it posts nothing.
    let digests = review_queue::select(
        db,
        routing,
        users,
        now,
        &Scope {
            reminders: true,
            ..Scope::default()
        },
    )
    .await?;
    let mut reports = Vec::with_capacity(rooms.len());
    for room in rooms {
        let empty = RoomDigest::default();
        let digest = digests.get(&room.name).unwrap_or(&empty);
        let escalated = !digest.is_empty() && digest::escalated(digest, settings, now);
        let record = SweepRecord {
            room: &room.name,
            at: &at,
            trigger: trigger.as_str(),
            forced: force,
            waiting_review: digest.review_total,
            waiting_on_author: digest.author_total,
        };
        // Due at once (the dispatcher reads the same clock).
        let due = Timestamp::from_datetime(now);
        let decision = sweeps::record(db, &record, &due, |last_posted| {
            let since_last =
                last_posted.map(|t| (now - t.to_datetime()).to_std().unwrap_or_default());
            let skip = if let Some(q) = &quiet {
                Some(q.clone())
            } else if let Some(since) = since_last.filter(|s| !force && *s < settings.min_interval)
            {
                Some(format!(
                    "posted {} min ago (min_interval {} min); use force to post again",
                    since.as_secs() / 60,
                    settings.min_interval.as_secs() / 60
                ))
            } else if digest.is_empty() && !settings.all_clear {
                Some("nothing is waiting for review".to_owned())
            } else {
                None
            };
            Ok(match skip {
                Some(reason) => Decision::Skip { reason },
                None => {
                    // Stored as the room's chat will show it: its lists cut where that chat's
                    // formatter cuts them (the same "and N more"), so no PR that cannot be shown
                    // is stored.
                    let doc = digest::render(&room.name, digest, settings, now);
                    let shown = sink::format(&room.sink).shown(&doc);
                    let doc = if shown.is_empty() {
                        doc
                    } else {
                        doc.cut(&shown)
                    };
                    Decision::Post {
                        payload: serde_json::to_string(&doc)?,
                    }
                }
            })
        })
        .await
        .map_err(|err| err.context(format!("sweeping room {}", room.name)))?;
        let (status, reason) = match decision {
            Decision::Post { .. } => ("posted", None),
            Decision::Skip { reason } => ("skipped", Some(reason)),
        };
        reports.push(RoomReport {
            room: room.name.clone(),
            status,
            reason,
            waiting_review: digest.review_total,
            waiting_on_author: digest.author_total,
            ready_to_merge: digest.merge_total,
            escalated,
        });
    }
    Ok(SweepReport {
        at: at.to_string(),
        forced: force,
        rooms: reports,
    })
}

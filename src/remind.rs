//! Personal reminders (issue 24): each person's queue, at their hour, in a direct message.
//! `pr-reminder remind`, `POST /remind` and the built-in schedule (every minute) run
//! `run`, which queues what is due in `direct_outbox`; the direct dispatcher sends it.
//!
//! A person is a `[[users]]` entry; what they set with `/reviews dm|remind|away` overrides the
//! file (`store::direct::Preferences`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{parse_clock_time, parse_date, DirectChat, Settings, UserMapping};
use crate::domain::reminders::Schedule;
use crate::domain::routing::Routing;
use crate::domain::{PullRequestView, Timestamp, Turn};
use crate::notify::direct::format;
use crate::notify::personal;
use crate::review_queue::{self, Scope};
use crate::store::direct::{self, DirectKind, NewDirect, Preferences};
use crate::store::{self, Db};

/// One person as the service treats them now: where their DMs go and when their queue is due.
#[derive(Debug, Clone)]
pub struct Person<'a> {
    /// Their `[[users]]` entry.
    pub user: &'a UserMapping,
    /// Where their direct messages go (`None`: they get none).
    pub chat: Option<DirectChat>,
    /// When their queue is due.
    pub schedule: Schedule,
}

/// What the file, their own settings and Slack say of `user`: `prefs` over the file's values;
/// their zone from the file, else Slack's (`slack_zones`, by lower-case e-mail), else
/// `[sweep] timezone`; their working days from the file, else `[sweep] working_days`.
pub fn person<'a>(
    user: &'a UserMapping,
    prefs: Option<&Preferences>,
    settings: &Settings,
    slack_zones: &HashMap<String, String>,
) -> Person<'a> {
    let calendar = &settings.sweep.calendar;
    let chat = match prefs.and_then(|p| p.dm.as_deref()) {
        Some("off") => None,
        Some(_) => user
            .direct_chat(&settings.direct)
            .or_else(|| user.default_chat(&settings.direct)),
        None => user.direct_chat(&settings.direct),
    }
    .filter(|chat| settings.direct.configured(*chat));
    let tz = user
        .tz()
        .or_else(|| {
            let email = user.email.as_deref()?.trim().to_lowercase();
            slack_zones.get(&email)?.parse().ok()
        })
        .unwrap_or(calendar.tz);
    let times = match prefs.and_then(|p| p.remind_at.as_deref()) {
        Some(list) => {
            let mut times: Vec<_> = list
                .split(',')
                .filter(|t| !t.trim().is_empty())
                .filter_map(|t| parse_clock_time(t).ok())
                .collect();
            times.sort();
            times.dedup();
            times
        }
        None => user.remind_times(),
    };
    let away_until = match prefs.and_then(|p| p.away_until.as_deref()) {
        Some("") => None,
        Some(date) => parse_date(date).ok(),
        None => user.away_date(),
    };
    Person {
        user,
        chat,
        schedule: Schedule {
            tz,
            times,
            working_days: user.working_day_mask().unwrap_or(calendar.working_days),
            away_until,
        },
    }
}

/// Every `[[users]]` entry as `person` makes it, with the stored preferences and Slack zones.
pub async fn people<'a>(db: &Db, settings: &'a Settings) -> anyhow::Result<Vec<Person<'a>>> {
    let prefs = direct::preferences(db).await?;
    let zones = direct::slack_zones(db).await?;
    Ok(settings
        .commands
        .users
        .iter()
        .map(|u| person(u, prefs.get(&u.bitbucket), settings, &zones))
        .collect())
}

/// What a reminder run did for one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonReport {
    /// Their `[[users]] bitbucket` name.
    pub person: String,
    /// `queued`, `already sent` or `skipped`.
    pub status: &'static str,
    /// Why nothing was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The chat it goes through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<&'static str>,
    /// PRs on which they owe a review.
    pub owed: usize,
    /// Their own PRs whose turn is theirs.
    pub own: usize,
}

/// What a reminder run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemindReport {
    /// When it ran (UTC RFC 3339).
    pub at: String,
    /// Whether `force` sent queues whatever the hour.
    pub forced: bool,
    /// One entry per person looked at.
    pub people: Vec<PersonReport>,
}

impl RemindReport {
    /// A line per person: `carol: queued (slack, 2 to review, 1 of yours)`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for p in &self.people {
            out.push_str(&format!("{}: {}", p.person, p.status));
            match (&p.reason, p.chat) {
                (Some(reason), _) => out.push_str(&format!(" ({reason})")),
                (None, Some(chat)) => out.push_str(&format!(
                    " ({chat}, {} to review, {} of yours)",
                    p.owed, p.own
                )),
                (None, None) => {}
            }
            out.push('\n');
        }
        if self.people.is_empty() {
            out.push_str("no [[users]] to remind\n");
        }
        out
    }

    /// How many queues were queued.
    pub fn queued(&self) -> usize {
        self.people.iter().filter(|p| p.status == "queued").count()
    }
}

/// Why `run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RemindError {
    /// `--user` / `?user=` names nobody in `[[users]]`.
    #[error("no [[users]] entry is `{0}` (its bitbucket, slack, hipchat, mattermost or email)")]
    UnknownUser(String),
}

/// Whether `user` is the one `name` names: their Bitbucket name, a chat id or their e-mail.
fn names(user: &UserMapping, name: &str) -> bool {
    let name = name.trim().trim_start_matches('@');
    [
        Some(&user.bitbucket),
        user.slack.as_ref(),
        user.hipchat.as_ref(),
        user.mattermost.as_ref(),
        user.email.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|v| v.trim().trim_start_matches('@').eq_ignore_ascii_case(name))
}

/// Queues the queues due at `now` (of `only` when given): each person with a direct chat, on a
/// working day of theirs, not away, at one of their times (within `reminders::CATCH_UP`), once
/// per time (`dedupe`). `force`: now, whatever the hour or day (still not while away, still not
/// with DMs off). Nothing is queued for an empty queue.
pub async fn run(
    db: &Db,
    routing: &Routing,
    settings: &Settings,
    now: DateTime<Utc>,
    only: Option<&str>,
    force: bool,
) -> anyhow::Result<RemindReport> {
    if let Some(name) = only {
        if !settings.commands.users.iter().any(|u| names(u, name)) {
            return Err(RemindError::UnknownUser(name.to_owned()).into());
        }
    }
    let stamp = Timestamp::from_datetime(now);
    let mut reports = Vec::new();
    for person in people(db, settings).await? {
        let user = person.user;
        if only.is_some_and(|name| !names(user, name)) {
            continue;
        }
        let mut report = PersonReport {
            person: user.bitbucket.clone(),
            status: "skipped",
            reason: None,
            chat: person.chat.map(DirectChat::as_str),
            owed: 0,
            own: 0,
        };
        let Some(chat) = person.chat else {
            tracing::debug!(person = %user.bitbucket, "no direct chat (none configured for them, or DMs off): skipped");
            report.reason = Some("no direct chat".into());
            reports.push(report);
            continue;
        };
        if person.schedule.away(now) {
            report.reason = Some("away".into());
            reports.push(report);
            continue;
        }
        let due = if force {
            None
        } else {
            match person.schedule.due(now) {
                Some(due) => Some(due),
                None => {
                    // Not worth a line per person every minute: only asked-for runs say it.
                    if only.is_some() {
                        report.reason = Some("not due".into());
                        reports.push(report);
                    }
                    continue;
                }
            }
        };
        let Some(me) = store::users::find(db, &user.bitbucket).await? else {
            report.reason = Some("not seen in any pull request yet".into());
            reports.push(report);
            continue;
        };
        let (owed, mine) = queue_of(db, routing, settings, &user.bitbucket, &me, now).await?;
        report.owed = owed.len();
        report.own = mine.len();
        if owed.is_empty() && mine.is_empty() {
            report.reason = Some("nothing waiting".into());
            reports.push(report);
            continue;
        }
        let doc = personal::reminder(&owed, &mine, &settings.sweep, now);
        let shown = format(chat).shown(&doc);
        let doc = if shown.is_empty() {
            doc
        } else {
            doc.cut(&shown)
        };
        let dedupe = due.map(|due| {
            format!(
                "queue|{}|{}",
                user.bitbucket,
                Timestamp::from_datetime(due).as_str()
            )
        });
        let queued = direct::queue(
            db,
            &NewDirect {
                chat: chat.as_str(),
                person: &user.bitbucket,
                kind: DirectKind::Queue,
                pull_request: None,
                dedupe,
                payload: serde_json::to_string(&doc)?,
                created_at: &stamp,
                not_before: &stamp,
            },
        )
        .await?;
        report.status = if queued { "queued" } else { "already sent" };
        reports.push(report);
    }
    Ok(RemindReport {
        at: stamp.to_string(),
        forced: force,
        people: reports,
    })
}

/// A person's queue at `now`: the open PRs on which `me` (their `user_key`) owes a review,
/// oldest first, and their own whose turn is theirs, leaving out the PRs they muted.
pub async fn queue_of(
    db: &Db,
    routing: &Routing,
    settings: &Settings,
    person: &str,
    me: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<PullRequestView>, Vec<PullRequestView>)> {
    let users = &settings.commands.users;
    let muted: HashSet<(String, i64)> = direct::mutes(db, person).await?.into_iter().collect();
    let is_muted = |v: &PullRequestView| muted.contains(&(v.key.as_str().to_owned(), v.number));
    let scope = Scope {
        room: None,
        asker: Some(me.to_owned()),
    };
    let digests = review_queue::select(db, routing, users, now, &scope).await?;
    let mut seen = HashSet::new();
    let mut owed: Vec<PullRequestView> = digests
        .into_values()
        .flat_map(|d| d.waiting_review)
        .filter(|v| {
            matches!(&v.turn, Some(Turn::Reviewers { owed }) if owed.iter().any(|k| k.as_str() == me))
        })
        .filter(|v| !is_muted(v))
        .filter(|v| seen.insert((v.key.as_str().to_owned(), v.number)))
        .collect();
    owed.sort_by_key(|v| (v.turn_since.unwrap_or(v.created_on), v.created_on));
    let mine = review_queue::authored(db, routing, users, me).await?;
    let mut mine: Vec<PullRequestView> = mine
        .waiting_review
        .into_iter()
        .chain(mine.waiting_author)
        .filter(|v| matches!(v.turn, Some(Turn::Author(_) | Turn::Merge)))
        .filter(|v| !is_muted(v))
        .collect();
    mine.sort_by_key(|v| v.created_on);
    Ok((owed, mine))
}

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
use crate::domain::{AuthorReason, PullRequestView, Timestamp, Turn};
use crate::notify::direct::format;
use crate::notify::personal::{self, Why};
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
            quiet_hours: calendar.quiet_hours,
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
    /// Real-time messages queued: a turn that became someone's since the last look.
    pub news: Vec<NewsReport>,
}

/// One real-time message queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewsReport {
    /// The recipient's `[[users]] bitbucket` name.
    pub person: String,
    /// `repository #number`.
    pub pull_request: String,
    /// `review`, `changes_requested`, `build_failed` or `merge`.
    pub turn: &'static str,
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
        if self.people.is_empty() && self.news.is_empty() {
            out.push_str("no personal reminder is due now\n");
        }
        for n in &self.news {
            out.push_str(&format!(
                "{}: news of {} ({})\n",
                n.person, n.pull_request, n.turn
            ));
        }
        out
    }

    /// How many messages were queued: queues and news.
    pub fn queued(&self) -> usize {
        self.people.iter().filter(|p| p.status == "queued").count() + self.news.len()
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
    let news = if force {
        Vec::new()
    } else {
        watch(db, routing, settings, now, only).await?
    };
    Ok(RemindReport {
        at: stamp.to_string(),
        forced: force,
        people: reports,
        news,
    })
}

/// The turn words a person is watched for, and which of them are news.
fn turn_word(turn: &Option<Turn>) -> Option<(&'static str, Option<Why>)> {
    Some(match turn.as_ref()? {
        Turn::Reviewers { .. } => ("review", Some(Why::AskedToReview)),
        Turn::Merge => ("merge", Some(Why::ReadyToMerge)),
        Turn::Author(AuthorReason::ChangesRequested) => {
            ("changes_requested", Some(Why::ChangesRequested))
        }
        Turn::Author(AuthorReason::BuildFailed) => ("build_failed", Some(Why::BuildFailed)),
        Turn::Author(AuthorReason::BuildStopped) => ("build_stopped", None),
        Turn::Author(AuthorReason::OpenTasks) => ("open_tasks", None),
        Turn::Author(AuthorReason::Draft) => ("draft", None),
    })
}

/// How long before the last look a person's own part in a PR still makes them its actor:
/// Bitbucket's clock and ours may differ a little, and a look takes time.
const ACTOR_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Real-time messages: for each person with a direct chat (of `only`, if given), the PRs that
/// became theirs to act on since the last look (asked to review; their own with changes
/// requested, a failed build, or ready to merge) are news, queued to them, coalesced per person
/// per PR (`[notify] coalesce_seconds`) and held until their next working hour. Never to the
/// person who caused it (their own part in the PR dates from after the last look), never while
/// they are away, never for a PR they muted or snoozed. A person's first look records what is
/// theirs already and sends nothing.
pub async fn watch(
    db: &Db,
    routing: &Routing,
    settings: &Settings,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> anyhow::Result<Vec<NewsReport>> {
    let stamp = Timestamp::from_datetime(now);
    let coalesce = chrono::Duration::from_std(settings.notify.coalesce).unwrap_or_default();
    let mut news = Vec::new();
    for person in people(db, settings).await? {
        let user = person.user;
        if only.is_some_and(|name| !names(user, name)) {
            continue;
        }
        let Some(chat) = person.chat else {
            continue;
        };
        let Some(me) = store::users::find(db, &user.bitbucket).await? else {
            // Nothing is theirs yet: this look is their baseline, so their first PR is news.
            direct::looked(db, &user.bitbucket, &stamp).await?;
            continue;
        };
        let last_look = direct::looked_at(db, &user.bitbucket)
            .await?
            .and_then(|t| Timestamp::parse(&t).ok())
            .map(|t| t.to_datetime());
        let (owed, mine) = queue_of(db, routing, settings, &user.bitbucket, &me, now).await?;
        let seen = direct::seen_turns(db, &user.bitbucket).await?;
        let mut current = HashSet::new();
        for view in owed.iter().chain(&mine) {
            let Some((word, why)) = turn_word(&view.turn) else {
                continue;
            };
            let turn = direct::SeenTurn {
                repository_key: view.key.as_str().to_owned(),
                number: view.number,
                turn: word.to_owned(),
                since: view
                    .turn_since
                    .map(|t| Timestamp::from_datetime(t).to_string()),
            };
            current.insert((turn.repository_key.clone(), turn.number));
            // A reviewer who owes a review already is not told again when a new commit dates
            // the turn anew; an author is (a new failure, a new request for changes).
            let known = seen.iter().any(|s| {
                s.repository_key == turn.repository_key
                    && s.number == turn.number
                    && s.turn == turn.turn
                    && (word == "review" || s.since == turn.since)
            });
            if known {
                continue;
            }
            direct::see_turn(db, &user.bitbucket, &turn, &stamp).await?;
            let (Some(why), Some(last_look)) = (why, last_look) else {
                continue;
            };
            if person.schedule.away(now) {
                continue;
            }
            // Their own doing (they approved, withdrew, asked for changes...): not news to them.
            let acted = direct::participated_on(db, &me, &turn.repository_key, turn.number)
                .await?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) > last_look - ACTOR_MARGIN);
            if acted {
                tracing::debug!(person = %user.bitbucket, pr = %format!("{}#{}", view.repository, view.number), "their own doing: no direct message");
                continue;
            }
            let doc = personal::news(why, view, &settings.sweep, now);
            let shown = format(chat).shown(&doc);
            let doc = if shown.is_empty() {
                doc
            } else {
                doc.cut(&shown)
            };
            let due = Timestamp::from_datetime(person.schedule.next_working(now + coalesce));
            direct::queue(
                db,
                &NewDirect {
                    chat: chat.as_str(),
                    person: &user.bitbucket,
                    kind: DirectKind::News,
                    pull_request: Some((&turn.repository_key, turn.number)),
                    dedupe: None,
                    payload: serde_json::to_string(&doc)?,
                    created_at: &stamp,
                    not_before: &due,
                },
            )
            .await?;
            news.push(NewsReport {
                person: user.bitbucket.clone(),
                pull_request: format!("{} #{}", view.repository, view.number),
                turn: word,
            });
        }
        for gone in seen
            .iter()
            .filter(|s| !current.contains(&(s.repository_key.clone(), s.number)))
        {
            direct::forget_turn(db, &user.bitbucket, &gone.repository_key, gone.number).await?;
            direct::withdraw_news(db, &user.bitbucket, &gone.repository_key, gone.number).await?;
        }
        direct::looked(db, &user.bitbucket, &stamp).await?;
    }
    Ok(news)
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
        reminders: false,
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
        .chain(mine.ready_to_merge)
        .filter(|v| matches!(v.turn, Some(Turn::Author(_) | Turn::Merge)))
        .filter(|v| !is_muted(v))
        .collect();
    mine.sort_by_key(|v| v.created_on);
    Ok((owed, mine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persons_zone_is_theirs_else_slacks_else_the_teams() {
        let mut settings = Settings::with_defaults(crate::config::SignaturePolicy::Demo);
        settings.sweep.calendar.tz = chrono_tz::Europe::London;
        let mut user = UserMapping {
            bitbucket: "carol".into(),
            email: Some("Carol@Example.com".into()),
            ..UserMapping::default()
        };
        let zones: HashMap<String, String> = [(
            "carol@example.com".to_owned(),
            "America/New_York".to_owned(),
        )]
        .into();
        let none = HashMap::new();
        assert_eq!(
            person(&user, None, &settings, &zones).schedule.tz,
            chrono_tz::America::New_York,
            "Slack's, found by her e-mail"
        );
        assert_eq!(
            person(&user, None, &settings, &none).schedule.tz,
            chrono_tz::Europe::London
        );
        user.timezone = Some("Asia/Tokyo".into());
        assert_eq!(
            person(&user, None, &settings, &zones).schedule.tz,
            chrono_tz::Asia::Tokyo
        );
        // Her own settings win over the file's; `dm off` stops everything.
        user.remind_at = Some(vec!["09:30".into()]);
        let prefs = Preferences {
            dm: Some("off".into()),
            remind_at: Some("14:00,08:15".into()),
            away_until: Some(String::new()),
        };
        let p = person(&user, Some(&prefs), &settings, &zones);
        assert_eq!(p.chat, None);
        let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(p.schedule.times, [t(8, 15), t(14, 0)]);
        assert_eq!(p.schedule.away_until, None);
    }
}

//! The periodic digest: every open PR still short of approvals, one message per room.
//!
//! Selection streams the open PRs oldest first and keeps, per room, only what a message can show
//! (plus counts), so memory stays bounded however many PRs there are. Rendering is pure. The
//! digest is queued in the outbox (pre-rendered) in the same transaction as the `sweeps` record
//! that makes a second sweep within `min_interval` post nothing.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::SqlitePool;

use crate::config::{Settings, SweepSettings, UserMapping};
use crate::domain::routing::Router;
use crate::domain::Timestamp;
use crate::notify::message::{
    clip, escape_html, escape_slack, list, Color, Message, MAX_MESSAGE_CHARS,
};
use crate::store::PR_BUILD_STATE;

/// PRs kept per list per room: more than any 10,000-character message can show.
const KEEP: usize = 80;

/// A requested reviewer who has not approved yet, with their chat names when mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviewer {
    pub name: String,
    pub hipchat: Option<String>,
    pub slack: Option<String>,
}

/// A PR as the digest lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingPr {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub url: Option<String>,
    pub author: String,
    pub created_on: DateTime<Utc>,
    pub approvals: u32,
    pub approved_by: Vec<String>,
    pub required: u32,
    pub changes_requested_by: Vec<String>,
    pub build_state: Option<String>,
    /// Requested reviewers who have not approved (nor asked for changes) yet.
    pub waiting_for: Vec<Reviewer>,
}

/// What one room's digest holds: the oldest PRs of each list, and how many there are in all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomDigest {
    pub waiting_review: Vec<PendingPr>,
    pub waiting_author: Vec<PendingPr>,
    pub review_total: usize,
    pub author_total: usize,
}

impl RoomDigest {
    pub fn is_empty(&self) -> bool {
        self.review_total == 0 && self.author_total == 0
    }
}

/// Who triggered a sweep (recorded in `sweeps.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Http,
    Cli,
    Schedule,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Cli => "cli",
            Trigger::Schedule => "schedule",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomReport {
    pub room: String,
    /// `posted` or `skipped`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub waiting_review: usize,
    pub waiting_on_author: usize,
    pub escalated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub at: String,
    pub forced: bool,
    pub rooms: Vec<RoomReport>,
}

impl SweepReport {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "sweep at {}{}\n",
            self.at,
            if self.forced { " (forced)" } else { "" }
        );
        for r in &self.rooms {
            out.push_str(&format!(
                "  {:<16} {:<8} {} waiting for review, {} waiting on author{}{}\n",
                r.room,
                r.status,
                r.waiting_review,
                r.waiting_on_author,
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

/// Reads every open, non-draft PR and sorts the ones still short of approvals into their rooms.
///
/// Two passes: the first streams only what routing and counting need (oldest first) and keeps
/// at most `KEEP` PRs per list per room; the second reads the details of those kept only.
pub async fn collect(
    pool: &SqlitePool,
    router: &Router,
    users: &[UserMapping],
    now: DateTime<Utc>,
) -> anyhow::Result<HashMap<String, RoomDigest>> {
    select(pool, router, users, now, &Scope::default()).await
}

/// Whose view a selection takes: a room's sweep (anyone's snooze hides a PR), or one person's
/// `/reviews` (their own PRs, those they approved and those they snoozed are left out; those they
/// were asked to review come first).
#[derive(Debug, Default, Clone)]
pub struct Scope {
    pub room: Option<String>,
    pub asker: Option<String>,
}

/// The selection behind the sweep and `/reviews`.
pub async fn select(
    pool: &SqlitePool,
    router: &Router,
    users: &[UserMapping],
    now: DateTime<Utc>,
    scope: &Scope,
) -> anyhow::Result<HashMap<String, RoomDigest>> {
    let now = Timestamp::from_datetime(now);
    let mut rows = sqlx::query_as::<_, (String, i64, String, i64, i64, bool, bool)>(
        "SELECT p.repository, p.number, p.title, p.approvals, p.changes_requested,
                ?2 IS NOT NULL AND (p.author = ?2 OR EXISTS (SELECT 1 FROM reviews r
                    WHERE r.repository = p.repository AND r.number = p.number
                      AND r.user_key = ?2 AND r.state = 'approved')),
                ?2 IS NOT NULL AND EXISTS (SELECT 1 FROM reviews r
                    WHERE r.repository = p.repository AND r.number = p.number
                      AND r.user_key = ?2 AND r.role = 'REVIEWER')
           FROM pull_requests p
          WHERE p.state = 'OPEN' AND p.draft = 0
            AND NOT EXISTS (SELECT 1 FROM snoozes s
                             WHERE s.repository = p.repository AND s.number = p.number
                               AND s.until > ?1 AND (?2 IS NULL OR s.user_key = ?2))
          ORDER BY p.created_on, p.repository, p.number",
    )
    .bind(now.as_str())
    .bind(scope.asker.as_deref())
    .fetch(pool);

    let mut routes: HashMap<String, Option<usize>> = HashMap::new();
    let mut digests: HashMap<String, RoomDigest> = HashMap::new();
    // Per room, the PRs the asker was asked to review, kept apart to be listed first.
    let mut asked: HashMap<String, Vec<PendingPr>> = HashMap::new();
    while let Some((repository, number, title, approvals, changes, excluded, asked_me)) = rows
        .try_next()
        .await
        .context("reading open pull requests")?
    {
        if excluded {
            continue;
        }
        let index = match routes.get(&repository) {
            Some(index) => *index,
            None => {
                let index = router.route_index(&repository);
                routes.insert(repository.clone(), index);
                index
            }
        };
        let Some(route) = index.and_then(|i| router.route_at(i)) else {
            continue;
        };
        if scope.room.as_deref().is_some_and(|room| room != route.room) {
            continue;
        }
        let approvals = u32::try_from(approvals).unwrap_or(0);
        if approvals >= route.required_approvals || route.ignores_title(&title) {
            continue;
        }
        let digest = match digests.get_mut(&route.room) {
            Some(digest) => digest,
            None => digests.entry(route.room.clone()).or_default(),
        };
        // The rest (link, author, age, names) is read for the PRs kept only.
        let pr = PendingPr {
            repository,
            number,
            title,
            approvals,
            required: route.required_approvals,
            ..PendingPr::default()
        };
        if changes > 0 {
            digest.author_total += 1;
            if digest.waiting_author.len() < KEEP {
                digest.waiting_author.push(pr);
            }
            continue;
        }
        digest.review_total += 1;
        if asked_me {
            let first = asked.entry(route.room.clone()).or_default();
            if first.len() < KEEP {
                first.push(pr);
            }
        } else if digest.waiting_review.len() < KEEP {
            digest.waiting_review.push(pr);
        }
    }
    for (room, mut first) in asked {
        if let Some(digest) = digests.get_mut(&room) {
            first.append(&mut digest.waiting_review);
            first.truncate(KEEP);
            digest.waiting_review = first;
        }
    }
    drop(rows);
    fill_details(pool, &mut digests, users).await?;
    Ok(digests)
}

/// Link, author, age, build, and who approved or asked for changes, for the PRs a digest shows.
pub(crate) async fn fill_details(
    pool: &SqlitePool,
    digests: &mut HashMap<String, RoomDigest>,
    users: &[UserMapping],
) -> anyhow::Result<()> {
    let keys: Vec<(&str, i64)> = digests
        .values()
        .flat_map(|d| d.waiting_review.iter().chain(&d.waiting_author))
        .map(|pr| (pr.repository.as_str(), pr.number))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let keys = serde_json::to_string(&keys)?;
    type Detail = (String, i64, Option<String>, String, String, Option<String>);
    let details: Vec<Detail> = sqlx::query_as(&format!(
        "SELECT p.repository, p.number, p.url,
                coalesce(a.display_name, a.nickname, a.username, p.author), p.created_on,
                {PR_BUILD_STATE}
           FROM json_each(?1) j
           JOIN pull_requests p ON p.repository = j.value->>0 AND p.number = j.value->>1
           LEFT JOIN users a ON a.user_key = p.author"
    ))
    .bind(&keys)
    .fetch_all(pool)
    .await
    .context("reading the listed pull requests")?;
    // Everyone attached with a verdict, and the requested reviewers who have none yet (with
    // the identifiers a [[users]] mapping may use).
    type Name = (
        String,
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let names: Vec<Name> = sqlx::query_as(
        "SELECT r.repository, r.number, r.state, r.role,
                coalesce(u.display_name, u.nickname, u.username, r.user_key),
                r.user_key, coalesce(u.account_id, ''), coalesce(u.nickname, ''),
                coalesce(u.username, '')
           FROM json_each(?1) j
           JOIN pull_requests p ON p.repository = j.value->>0 AND p.number = j.value->>1
           JOIN reviews r ON r.repository = p.repository AND r.number = p.number
           LEFT JOIN users u ON u.user_key = r.user_key
          WHERE (r.state <> 'none' OR r.role = 'REVIEWER') AND r.user_key <> p.author
          ORDER BY r.state_on, r.user_key",
    )
    .bind(&keys)
    .fetch_all(pool)
    .await
    .context("reading reviewers")?;

    #[derive(Default)]
    struct People {
        approved: Vec<String>,
        changes: Vec<String>,
        waiting: Vec<Reviewer>,
    }
    type Key = (String, i64);
    let mut by_key: HashMap<Key, (Detail, People)> = details
        .into_iter()
        .map(|d| ((d.0.clone(), d.1), (d, People::default())))
        .collect();
    for (repo, number, state, _role, name, key, account_id, nickname, username) in names {
        let Some((_, people)) = by_key.get_mut(&(repo, number)) else {
            continue;
        };
        match state.as_str() {
            "approved" => people.approved.push(name),
            "changes_requested" => people.changes.push(name),
            _ => {
                let ids = [&key, &account_id, &nickname, &username];
                let mapping = users.iter().find(|u| {
                    ids.iter()
                        .any(|id| !id.is_empty() && id.eq_ignore_ascii_case(&u.bitbucket))
                });
                people.waiting.push(Reviewer {
                    name,
                    hipchat: mapping.and_then(|m| m.hipchat.clone()),
                    slack: mapping.and_then(|m| m.slack.clone()),
                });
            }
        }
    }
    for pr in digests.values_mut().flat_map(|d| {
        d.waiting_review
            .iter_mut()
            .chain(d.waiting_author.iter_mut())
    }) {
        if let Some(((_, _, url, author, created_on, build), people)) =
            by_key.remove(&(pr.repository.clone(), pr.number))
        {
            pr.url = url;
            pr.author = author;
            pr.created_on = Timestamp::parse(&created_on)
                .map(|t| t.to_datetime())
                .unwrap_or_default();
            pr.build_state = build;
            pr.approved_by = people.approved;
            pr.changes_requested_by = people.changes;
            pr.waiting_for = people.waiting;
        }
    }
    Ok(())
}

/// `5h`, `2d 3h`.
pub fn format_age(age: Duration) -> String {
    let hours = age.as_secs() / 3600;
    match (hours / 24, hours % 24) {
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

/// The digest message for one room. Pure: `now` and the settings decide ages and colour.
pub fn render(
    room: &str,
    digest: &RoomDigest,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Message {
    let heading = if digest.is_empty() {
        "All clear: no pull request is waiting for review".to_owned()
    } else {
        format!(
            "{} pull request{} waiting for review{}",
            digest.review_total,
            if digest.review_total == 1 { "" } else { "s" },
            if digest.author_total > 0 {
                format!(", {} waiting on their author", digest.author_total)
            } else {
                String::new()
            }
        )
    };
    render_list(&heading, Some(room), digest, settings, now)
}

/// A heading (bold; the room after it, if any), then the digest's PRs, each list cut to fit with
/// "and N more".
pub fn render_list(
    heading: &str,
    room: Option<&str>,
    digest: &RoomDigest,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Message {
    let age = |pr: &PendingPr| -> (Duration, bool) {
        let total = (now - pr.created_on).to_std().unwrap_or_default();
        let counted = if settings.escalate_working_days_only {
            settings
                .calendar
                .working_time(pr.created_on, now)
                .to_std()
                .unwrap_or_default()
        } else {
            total
        };
        (total, counted > settings.escalate_after)
    };
    let escalated = digest
        .waiting_review
        .iter()
        .chain(&digest.waiting_author)
        .any(|pr| age(pr).1);
    let color = if digest.is_empty() {
        Color::Green
    } else if escalated {
        Color::Red
    } else {
        Color::Yellow
    };

    struct Line {
        html: String,
        slack: String,
        text: String,
    }
    let line = |pr: &PendingPr, author_list: bool| -> Line {
        let (total, old) = age(pr);
        let title = clip(&pr.title);
        let place = format!("{} #{}", pr.repository, pr.number);
        let approvals = format!(
            "{}/{} approvals{}",
            pr.approvals,
            pr.required,
            if pr.approved_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", list(&pr.approved_by))
            }
        );
        let mut details = vec![approvals];
        if author_list && !pr.changes_requested_by.is_empty() {
            details.push(format!(
                "changes requested by {}",
                list(&pr.changes_requested_by)
            ));
        }
        let age_text = format!("{} old", format_age(total));
        let build = match pr.build_state.as_deref() {
            Some("FAILED") => Some("build FAILED".to_owned()),
            Some("INPROGRESS") => Some("build running".to_owned()),
            _ => None,
        };
        let author = clip(&pr.author);
        let mut html = match &pr.url {
            Some(url) => format!(
                "<a href=\"{}\">{}</a>",
                escape_html(url),
                escape_html(&title)
            ),
            None => escape_html(&title),
        };
        html.push_str(&format!(
            " ({}) by {} · {}",
            escape_html(&place),
            escape_html(&author),
            escape_html(&details.join(" · "))
        ));
        html.push_str(&if old {
            format!(" · <b>{age_text}</b>")
        } else {
            format!(" · {age_text}")
        });
        if let Some(b) = &build {
            html.push_str(&format!(" · <b>{b}</b>"));
        }
        // Requested reviewers still to act, as chat mentions where a [[users]] mapping says who
        // they are there.
        let waiting = (!author_list && !pr.waiting_for.is_empty()).then_some(&pr.waiting_for);
        if let Some(people) = waiting {
            let names: Vec<String> = people
                .iter()
                .map(|r| match &r.hipchat {
                    Some(m) => format!("@{}", escape_html(m.trim_start_matches('@'))),
                    None => escape_html(&clip(&r.name)),
                })
                .collect();
            html.push_str(&format!(" · waiting for {}", names.join(", ")));
        }
        let mut slack = match &pr.url {
            Some(url) => format!("<{}|{}>", escape_slack(url), escape_slack(&title)),
            None => escape_slack(&title),
        };
        slack.push_str(&format!(
            " ({}) by {} · {}",
            escape_slack(&place),
            escape_slack(&author),
            escape_slack(&details.join(" · "))
        ));
        slack.push_str(&if old {
            format!(" · *{age_text}*")
        } else {
            format!(" · {age_text}")
        });
        if let Some(b) = &build {
            slack.push_str(&format!(" · *{b}*"));
        }
        if let Some(people) = waiting {
            let names: Vec<String> = people
                .iter()
                .map(|r| match &r.slack {
                    Some(id) => format!("<@{}>", escape_slack(id)),
                    None => escape_slack(&clip(&r.name)),
                })
                .collect();
            slack.push_str(&format!(" · waiting for {}", names.join(", ")));
        }
        let mut text = format!(
            "{title} ({place}) by {author} · {} · {age_text}",
            details.join(" · ")
        );
        if let Some(b) = &build {
            text.push_str(&format!(" · {b}"));
        }
        if let Some(people) = waiting {
            let names: Vec<String> = people.iter().map(|r| clip(&r.name)).collect();
            text.push_str(&format!(" · waiting for {}", names.join(", ")));
        }
        if let Some(url) = &pr.url {
            text.push_str(&format!(" <{url}>"));
        }
        Line { html, slack, text }
    };

    let after = room.map(|r| format!(" ({r})")).unwrap_or_default();
    let mut html = format!("<b>{}</b>{}", escape_html(heading), escape_html(&after));
    let mut slack = format!("*{}*{}", escape_slack(heading), escape_slack(&after));
    let mut text = format!("{heading}{after}");
    // Room for the "and N more" lines and the second heading.
    let budget = MAX_MESSAGE_CHARS - 400;
    for (title, kept, total, author_list) in [
        (None, &digest.waiting_review, digest.review_total, false),
        (
            Some("Waiting on author (changes requested)"),
            &digest.waiting_author,
            digest.author_total,
            true,
        ),
    ] {
        if total == 0 {
            continue;
        }
        if let Some(t) = title {
            html.push_str(&format!("<br><b>{t}</b>"));
            slack.push_str(&format!("\n*{t}*"));
            text.push_str(&format!("\n{t}:"));
        }
        let mut shown = 0;
        for pr in kept.iter() {
            let l = line(pr, author_list);
            if html.chars().count() + l.html.chars().count() + 8 > budget {
                break;
            }
            html.push_str(&format!("<br>• {}", l.html));
            slack.push_str(&format!("\n• {}", l.slack));
            text.push_str(&format!("\n  - {}", l.text));
            shown += 1;
        }
        if total > shown {
            let more = format!("and {} more", total - shown);
            html.push_str(&format!("<br>{more}"));
            slack.push_str(&format!("\n{more}"));
            text.push_str(&format!("\n  {more}"));
        }
    }
    Message {
        color,
        notify: !digest.is_empty(),
        html,
        slack,
        text,
    }
}

/// Runs a sweep: quiet hours, idempotency window, selection, rendering, queueing.
pub async fn run(
    pool: &SqlitePool,
    router: &Router,
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
    let digests = match quiet {
        Some(_) => HashMap::new(),
        None => collect(pool, router, users, now).await?,
    };
    let mut reports = Vec::with_capacity(rooms.len());
    let mut conn = pool
        .acquire()
        .await
        .context("a database connection for the sweep")?;
    for room in rooms {
        let empty = RoomDigest::default();
        let digest = digests.get(&room.name).unwrap_or(&empty);
        let escalated_message =
            (!digest.is_empty()).then(|| render(&room.name, digest, settings, now));
        let mut report = RoomReport {
            room: room.name.clone(),
            status: "skipped",
            reason: None,
            waiting_review: digest.review_total,
            waiting_on_author: digest.author_total,
            escalated: escalated_message
                .as_ref()
                .is_some_and(|m| m.color == Color::Red),
        };
        // BEGIN IMMEDIATE: the check and the record are one step, even against a second
        // process (`pr-reminder sweep` next to the service), so retries never double-post.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .context("begin")?;
        let result: anyhow::Result<()> = async {
            let last: Option<String> = sqlx::query_scalar(
                "SELECT max(at) FROM sweeps WHERE room = ?1 AND outcome = 'posted'",
            )
            .bind(&room.name)
            .fetch_one(&mut *conn)
            .await?;
            let since_last = last
                .and_then(|t| Timestamp::parse(&t).ok())
                .map(|t| (now - t.to_datetime()).to_std().unwrap_or_default());
            report.reason = if let Some(q) = &quiet {
                Some(q.clone())
            } else if let Some(since) = since_last.filter(|s| !force && *s < settings.min_interval) {
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
            let mut outbox_id: Option<i64> = None;
            if report.reason.is_none() {
                let message = escalated_message
                    .clone()
                    .unwrap_or_else(|| render(&room.name, digest, settings, now));
                outbox_id = Some(
                    sqlx::query_scalar(
                        "INSERT INTO outbox (room, repository, number, events, created_at, not_before, payload)
                         VALUES (?1, '', 0, 'digest', ?2, ?4, ?3)
                         ON CONFLICT (room, repository, number) WHERE state = 'pending'
                         DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at
                         RETURNING id",
                    )
                    .bind(&room.name)
                    .bind(at.as_str())
                    .bind(serde_json::to_string(&message)?)
                    // Due at once by the dispatcher's (real) clock, whatever `now` says.
                    .bind(Timestamp::now().as_str())
                    .fetch_one(&mut *conn)
                    .await?,
                );
                report.status = "posted";
            }
            sqlx::query(
                "INSERT INTO sweeps (room, at, trigger, forced, outcome, reason, waiting_review,
                                     waiting_on_author, outbox_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .bind(&room.name)
            .bind(at.as_str())
            .bind(trigger.as_str())
            .bind(force)
            .bind(report.status)
            .bind(&report.reason)
            .bind(digest.review_total as i64)
            .bind(digest.author_total as i64)
            .bind(outbox_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                sqlx::query("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .context("commit")?;
            }
            Err(err) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                return Err(err.context(format!("sweeping room {}", room.name)));
            }
        }
        reports.push(report);
    }
    Ok(SweepReport {
        at: at.to_string(),
        forced: force,
        rooms: reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::local;
    use chrono::TimeZone;

    fn pr(
        n: i64,
        created: DateTime<Utc>,
        approvals: &[&str],
        changes: &[&str],
        build: Option<&str>,
    ) -> PendingPr {
        PendingPr {
            repository: "acme/api".into(),
            number: n,
            title: format!("Change <{n}> & more"),
            url: Some(format!("https://bitbucket.org/acme/api/pull-requests/{n}")),
            author: "Ann".into(),
            created_on: created,
            approvals: approvals.len() as u32,
            approved_by: approvals.iter().map(|s| s.to_string()).collect(),
            required: 2,
            changes_requested_by: changes.iter().map(|s| s.to_string()).collect(),
            build_state: build.map(str::to_owned),
            waiting_for: Vec::new(),
        }
    }

    #[test]
    fn a_mix_of_prs() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let h = |hours: i64| now - chrono::Duration::hours(hours);
        let digest = RoomDigest {
            waiting_review: vec![
                pr(1, h(50), &["Bob"], &[], Some("FAILED")),
                pr(2, h(5), &[], &[], None),
            ],
            waiting_author: vec![pr(3, h(30), &[], &["Carol"], Some("INPROGRESS"))],
            review_total: 2,
            author_total: 1,
        };
        let m = render("backend", &digest, &SweepSettings::default(), now);
        assert_eq!(m.color, Color::Yellow);
        assert_eq!(
            m.html,
            "<b>2 pull requests waiting for review, 1 waiting on their author</b> (backend)\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/1\">Change &lt;1&gt; &amp; more</a> (acme/api #1) by Ann · 1/2 approvals (Bob) · 2d 2h old · <b>build FAILED</b>\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/2\">Change &lt;2&gt; &amp; more</a> (acme/api #2) by Ann · 0/2 approvals · 5h old\
             <br><b>Waiting on author (changes requested)</b>\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/3\">Change &lt;3&gt; &amp; more</a> (acme/api #3) by Ann · 0/2 approvals · changes requested by Carol · 1d 6h old · <b>build running</b>"
        );
        assert_eq!(
            m.text,
            "2 pull requests waiting for review, 1 waiting on their author (backend)\n  \
             - Change <1> & more (acme/api #1) by Ann · 1/2 approvals (Bob) · 2d 2h old · build FAILED <https://bitbucket.org/acme/api/pull-requests/1>\n  \
             - Change <2> & more (acme/api #2) by Ann · 0/2 approvals · 5h old <https://bitbucket.org/acme/api/pull-requests/2>\n\
             Waiting on author (changes requested):\n  \
             - Change <3> & more (acme/api #3) by Ann · 0/2 approvals · changes requested by Carol · 1d 6h old · build running <https://bitbucket.org/acme/api/pull-requests/3>"
        );
        assert!(m.slack.contains(
            "<https://bitbucket.org/acme/api/pull-requests/1|Change &lt;1&gt; &amp; more>"
        ));
    }

    #[test]
    fn red_after_three_days() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let just_under = RoomDigest {
            waiting_review: vec![pr(1, now - chrono::Duration::hours(71), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        assert_eq!(
            render("r", &just_under, &SweepSettings::default(), now).color,
            Color::Yellow
        );
        let over = RoomDigest {
            waiting_review: vec![pr(1, now - chrono::Duration::hours(73), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        let m = render("r", &over, &SweepSettings::default(), now);
        assert_eq!(m.color, Color::Red);
        assert!(m.html.contains("<b>3d 1h old</b>"), "{}", m.html);
    }

    #[test]
    fn working_days_across_a_weekend() {
        let settings = SweepSettings {
            escalate_working_days_only: true,
            ..SweepSettings::default()
        };
        let tz = settings.calendar.tz;
        // Opened Thursday 09:00, now Monday 10:00: 97 h old, but only Thu+Fri+1 h on Monday
        // (49 h) of working time: not escalated. Wednesday 09:00 → 73 working hours: red.
        let now = local(tz, 2026, 11, 30, 10, 0);
        let thursday = RoomDigest {
            waiting_review: vec![pr(1, local(tz, 2026, 11, 26, 9, 0), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        assert_eq!(render("r", &thursday, &settings, now).color, Color::Yellow);
        assert_eq!(
            render("r", &thursday, &SweepSettings::default(), now).color,
            Color::Red
        );
        let wednesday = RoomDigest {
            waiting_review: vec![pr(1, local(tz, 2026, 11, 25, 9, 0), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        assert_eq!(render("r", &wednesday, &settings, now).color, Color::Red);
    }

    #[test]
    fn long_lists_are_cut_with_and_n_more() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let mut digest = RoomDigest::default();
        for n in 0..KEEP as i64 {
            let mut p = pr(n, now - chrono::Duration::hours(1), &[], &[], None);
            p.title =
                "A rather long title about a refactoring of the payment gateway adapters".into();
            digest.waiting_review.push(p);
        }
        digest.review_total = 5_000;
        let m = render("r", &digest, &SweepSettings::default(), now);
        assert!(
            m.html.chars().count() <= MAX_MESSAGE_CHARS,
            "{}",
            m.html.chars().count()
        );
        let shown = m.html.matches("<br>• ").count();
        assert!(shown > 10, "{shown}");
        assert!(
            m.html.ends_with(&format!("<br>and {} more", 5_000 - shown)),
            "{}",
            &m.html[m.html.len() - 40..]
        );
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(Duration::from_secs(5 * 3600 + 59)), "5h");
        assert_eq!(format_age(Duration::from_secs(48 * 3600)), "2d");
        assert_eq!(format_age(Duration::from_secs(50 * 3600)), "2d 2h");
    }
}

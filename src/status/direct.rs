//! The status page's personal reminders (issue 24): each `[[users]]` entry, whether direct
//! messages are on and through which chat, and when their next queue is due.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::config::Settings;
use crate::remind;
use crate::store::Db;

/// One person as the reminders see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderLine {
    /// Their `[[users]] bitbucket` name.
    pub person: String,
    /// The chat their direct messages go through (`None`: off, or no chat can reach them).
    pub chat: Option<&'static str>,
    /// Their time zone.
    pub tz: String,
    /// Their next scheduled queue (`None`: no `remind_at`, or none within four weeks).
    pub next: Option<DateTime<Utc>>,
    /// The first day they are back, while away.
    pub away_until: Option<String>,
}

/// Every `[[users]]` entry at `now`, in the file's order.
pub async fn lines(
    db: &Db,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<ReminderLine>> {
    Ok(remind::people(db, settings)
        .await?
        .into_iter()
        .map(|p| ReminderLine {
            person: p.user.bitbucket.clone(),
            chat: p.chat.map(|c| c.as_str()),
            tz: p.schedule.tz.to_string(),
            next: p.chat.and(p.schedule.next(now)),
            away_until: p
                .schedule
                .away(now)
                .then(|| p.schedule.away_until.map(|d| d.to_string()))
                .flatten(),
        })
        .collect())
}

/// The table: person, direct messages (chat or off), next reminder in their zone, away.
pub fn section(lines: &[ReminderLine]) -> Markup {
    html! {
        @if lines.is_empty() {
            p.muted { "No [[users]] entries: nobody gets personal reminders." }
        } @else {
            table.people {
                thead { tr { th { "Person" } th { "Direct messages" } th { "Next reminder" } th { "Away until" } } }
                tbody {
                    @for l in lines {
                        tr {
                            td data-label="Person" { (l.person) }
                            td data-label="Direct messages" {
                                @match l.chat {
                                    Some(chat) => { "on (" (chat) ")" }
                                    None => { span.muted { "off" } }
                                }
                            }
                            td data-label="Next reminder" {
                                @if let (Some(next), Ok(tz)) = (l.next, l.tz.parse::<chrono_tz::Tz>()) {
                                    time datetime=(next.to_rfc3339()) {
                                        (next.with_timezone(&tz).format("%a %-d %b %H:%M %Z").to_string())
                                    }
                                } @else {
                                    span.muted { "-" }
                                }
                            }
                            td data-label="Away until" {
                                @if let Some(until) = &l.away_until { (until) } @else { span.muted { "-" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

//! The status page's "whose turn" parts (issue 23): the turn cell of each PR row, and the
//! per-person view (how many PRs wait on each person, and since when the oldest has). Kept apart
//! from the page's other sections.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::RoomSection;
use crate::domain::{name_order, AuthorReason, PullRequestView, Turn};
use crate::notify::doc::format_age;

/// One person the listed PRs wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonLoad {
    /// Their name, as messages show it.
    pub name: String,
    /// PRs waiting on them: as an owed reviewer, or as the author whose turn it is.
    pub waiting: usize,
    /// Since when the oldest of them has been their turn.
    pub oldest: Option<DateTime<Utc>>,
}

/// Who must act on `v`: the owed reviewers, or the author.
fn acting(v: &PullRequestView) -> Vec<&str> {
    match &v.turn {
        Some(Turn::Reviewers { .. }) => v.waiting_for.iter().map(|r| r.name.as_str()).collect(),
        Some(Turn::Author(_) | Turn::Merge) => vec![v.author.as_str()],
        None => Vec::new(),
    }
}

/// Every person the rooms' waiting PRs (for review or on their author; drafts and snoozed PRs
/// left out) wait on, each PR counted once however many rooms list it: the most loaded first,
/// then by name.
pub fn people(rooms: &[RoomSection]) -> Vec<PersonLoad> {
    let mut seen = HashSet::new();
    let mut by_name: BTreeMap<String, PersonLoad> = BTreeMap::new();
    let lines = rooms
        .iter()
        .flat_map(|room| &room.repositories)
        .flat_map(|r| r.waiting_review.iter().chain(&r.waiting_author));
    for line in lines {
        let v = &line.view;
        if !seen.insert((v.key.clone(), v.number)) {
            continue;
        }
        for name in acting(v) {
            let load = by_name.entry(name.to_owned()).or_insert(PersonLoad {
                name: name.to_owned(),
                waiting: 0,
                oldest: None,
            });
            load.waiting += 1;
            load.oldest = match (load.oldest, v.turn_since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let mut loads: Vec<PersonLoad> = by_name.into_values().collect();
    loads.sort_by(|a, b| {
        b.waiting
            .cmp(&a.waiting)
            .then_with(|| name_order(&a.name, &b.name))
    });
    loads
}

/// The turn cell of a PR row: `reviewers: Bob, Carol`, `author (changes requested)`, `merge`,
/// and for how long.
pub fn turn_cell(v: &PullRequestView, now: DateTime<Utc>) -> Markup {
    let since = v
        .turn_since
        .map(|t| format_age((now - t).to_std().unwrap_or_default()));
    html! {
        td data-label="Turn" {
            @match &v.turn {
                Some(Turn::Reviewers { .. }) => {
                    "reviewers"
                    @if !v.waiting_for.is_empty() {
                        ": " (acting(v).join(", "))
                    }
                }
                Some(Turn::Author(reason)) => {
                    "author " span.muted { "(" (reason_words(*reason)) ")" }
                }
                Some(Turn::Merge) => { "merge" }
                None => span.muted { "unknown" },
            }
            @if let Some(since) = since {
                " " span.muted { "for " (since) }
            }
        }
    }
}

fn reason_words(reason: AuthorReason) -> &'static str {
    match reason {
        AuthorReason::Draft => "draft",
        AuthorReason::ChangesRequested => "changes requested",
        AuthorReason::BuildFailed => "build failed",
        AuthorReason::BuildStopped => "build stopped",
        AuthorReason::OpenTasks => "open tasks",
    }
}

/// The per-person view: who the waiting PRs wait on, how many each, and the oldest wait.
pub fn people_section(people: &[PersonLoad], now: DateTime<Utc>) -> Markup {
    html! {
        @if people.is_empty() {
            p.clear { "Nobody is waited on." }
        } @else {
            table.people {
                thead { tr { th { "Person" } th { "Waiting on them" } th { "Oldest" } } }
                tbody {
                    @for p in people {
                        tr {
                            td data-label="Person" { (p.name) }
                            td data-label="Waiting on them" { (p.waiting) }
                            td data-label="Oldest" {
                                @if let Some(oldest) = p.oldest {
                                    (format_age((now - oldest).to_std().unwrap_or_default()))
                                } @else {
                                    span.muted { "-" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

//! Personal messages (issue 24): a person's queue at their hour, rendered once as a chat
//! document and formatted for their direct chat when sent.

use chrono::{DateTime, Utc};

use super::digest;
use super::doc::{format_age, Block, Doc, Inline};
use crate::config::SweepSettings;
use crate::domain::PullRequestView;

/// A person's queue: the PRs on which they are an owed reviewer (`owed`, oldest first, each
/// with how long it has been their turn), then, titled `Your turn: N`, their own PRs whose turn
/// is theirs (`mine`). The lines are those of `/reviews` (`digest::render_personal`), without a
/// room (a direct message is about every room), and the message alerts: it is meant to be seen.
pub fn reminder(
    owed: &[PullRequestView],
    mine: &[PullRequestView],
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Doc {
    let mut doc = digest::render_personal("", owed, mine, settings, now);
    if let Some(headline) = &mut doc.headline {
        headline.room = None;
    }
    doc.notify = true;
    if let Some(Block::List(list)) = doc.blocks.first_mut().filter(|_| !owed.is_empty()) {
        for (item, pr) in list.items.iter_mut().zip(owed) {
            if let Some(since) = pr.turn_since {
                let waited = (now - since).to_std().unwrap_or_default();
                item.push(Inline::fixed(" · "));
                item.push(Inline::text(format!(
                    "your turn for {}",
                    format_age(waited)
                )));
            }
        }
    }
    doc
}

/// Why a person hears of a PR as it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// They were asked to review it (they are an owed reviewer now).
    AskedToReview,
    /// Their own PR: a reviewer asked for changes.
    ChangesRequested,
    /// Their own PR: its build failed.
    BuildFailed,
    /// Their own PR: approvals are met, nothing else holds it.
    ReadyToMerge,
}

/// A real-time direct message about one PR to the person who must act on it: what happened, in
/// their words (`Alice Author asked you to review`, `Changes requested by Dave on your pull
/// request`, `A build failed on your pull request`, `Your pull request is ready to merge`), then
/// the PR's line as their queue shows it (its state). Alerts.
pub fn news(why: Why, pr: &PullRequestView, settings: &SweepSettings, now: DateTime<Utc>) -> Doc {
    let names = |list: &[String]| list.join(", ");
    let (heading, owed, mine) = match why {
        Why::AskedToReview => (
            format!("{} asked you to review", pr.author),
            std::slice::from_ref(pr),
            &[][..],
        ),
        Why::ChangesRequested if !pr.changes_requested_by.is_empty() => (
            format!(
                "Changes requested by {} on your pull request",
                names(&pr.changes_requested_by)
            ),
            &[][..],
            std::slice::from_ref(pr),
        ),
        Why::ChangesRequested => (
            "Changes requested on your pull request".to_owned(),
            &[][..],
            std::slice::from_ref(pr),
        ),
        Why::BuildFailed => (
            "A build failed on your pull request".to_owned(),
            &[][..],
            std::slice::from_ref(pr),
        ),
        Why::ReadyToMerge => (
            "Your pull request is ready to merge".to_owned(),
            &[][..],
            std::slice::from_ref(pr),
        ),
    };
    let mut doc = reminder(owed, mine, settings, now);
    if let Some(headline) = &mut doc.headline {
        headline.text = heading;
    }
    for block in &mut doc.blocks {
        if let Block::List(list) = block {
            list.title = None;
        }
    }
    doc
}

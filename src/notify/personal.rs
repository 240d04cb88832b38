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

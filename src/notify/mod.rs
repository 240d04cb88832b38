//! Chat out, in one direction: renderers (`message` for a PR's news, `digest` for lists, and
//! `/reviews` in `crate::reviews`) build a chat document (`doc`); one formatter per kind of chat
//! (`format`) turns it into that chat's bytes, with all escaping and size limits; `sink` picks
//! the formatter for a room and carries the bytes; the `dispatcher` sends the outbox.

pub mod digest;
pub mod direct;
pub mod dispatcher;
pub mod doc;
pub mod format;
pub mod message;
pub mod personal;
pub mod sink;
pub mod slack_api;
pub mod weekly;

#[cfg(test)]
mod tests;

/// Sample values the renderers' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeSet;

    use crate::domain::{NotifyEvent, PullRequestView};
    use crate::notify::doc::{Color, Doc};
    use crate::notify::format::{google_chat, hipchat, plain, slack, teams};

    /// A document in every format.
    pub struct R {
        pub color: Color,
        pub notify: bool,
        pub html: String,
        pub slack: String,
        pub text: String,
        pub teams: String,
        pub google_chat: String,
    }

    /// `doc` in every format (Google Chat's without its colour emoji).
    pub fn r(doc: Doc) -> R {
        R {
            color: doc.color,
            notify: doc.notify,
            html: hipchat::html(&doc),
            slack: slack::text(&doc),
            text: plain::text(&doc),
            teams: teams::markdown(&doc),
            google_chat: google_chat::markup(&doc),
        }
    }

    /// acme/api #7 by Ann, approved by Bob of 2 required, with this title.
    pub fn pr(title: &str) -> PullRequestView {
        PullRequestView {
            repository: "acme/api".into(),
            number: 7,
            title: title.into(),
            url: Some("https://bitbucket.org/acme/api/pull-requests/7".into()),
            author: "Ann".into(),
            approved_by: vec!["Bob".into()],
            required_approvals: 2,
            ..PullRequestView::default()
        }
    }

    /// A set of events.
    pub fn events(list: &[NotifyEvent]) -> BTreeSet<NotifyEvent> {
        list.iter().copied().collect()
    }
}

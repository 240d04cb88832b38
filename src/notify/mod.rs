//! Chat out: rendering (`message` for a PR's news, `digest` for lists), sinks that carry the
//! bytes (HipChat, Slack-compatible, console), and the dispatcher that sends the outbox.

pub mod digest;
pub mod dispatcher;
pub mod google_chat;
pub mod message;
pub mod sink;
pub mod teams;

/// Sample values the renderers' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeSet;

    use crate::domain::{NotifyEvent, PullRequestView};

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

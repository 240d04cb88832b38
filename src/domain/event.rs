//! What can happen to a pull request that a room may hear about. Its own module so that routing
//! (which events a route announces) and notification planning (which happened) both use it
//! without either importing the other.

/// Something that happened to a pull request that a room may hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// Opened, or became reviewable (left draft / WIP, reopened, first seen while open).
    Opened,
    /// The set of approvers changed.
    Approvals,
    /// Someone new asked for changes.
    ChangesRequested,
    /// A build on the PR's source commit failed (and had not already failed).
    BuildFailed,
    /// A build that had failed passed again.
    BuildRecovered,
    /// Merged while reviewable (announced only where the route's `announce_merged` is on).
    Merged,
    /// Declined while reviewable (announced only where the route's `announce_declined` is on).
    Declined,
    /// Stopped being reviewable without a merge or decline: back to draft, a work-in-progress
    /// title, or the PR deleted or superseded. Heard only by rooms that edit their message
    /// about the PR (`Routing::with_final_edits`), to show it; other rooms drop what they had
    /// queued (a withdrawal).
    Withdrawn,
}

impl NotifyEvent {
    /// The spelling in `outbox.events` (comma-separated there): `opened`, `approvals`,
    /// `changes_requested`, `build_failed`, `build_recovered`, `merged`, `declined`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Opened => "opened",
            NotifyEvent::Approvals => "approvals",
            NotifyEvent::ChangesRequested => "changes_requested",
            NotifyEvent::BuildFailed => "build_failed",
            NotifyEvent::BuildRecovered => "build_recovered",
            NotifyEvent::Merged => "merged",
            NotifyEvent::Declined => "declined",
            NotifyEvent::Withdrawn => "withdrawn",
        }
    }

    /// Reads one spelling `as_str` writes; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "opened" => NotifyEvent::Opened,
            "approvals" => NotifyEvent::Approvals,
            "changes_requested" => NotifyEvent::ChangesRequested,
            "build_failed" => NotifyEvent::BuildFailed,
            "build_recovered" => NotifyEvent::BuildRecovered,
            "merged" => NotifyEvent::Merged,
            "declined" => NotifyEvent::Declined,
            "withdrawn" => NotifyEvent::Withdrawn,
            _ => return None,
        })
    }
}

//! The pure core: what a pull request, a review and a delivery are, and the review policy.
//! Nothing in here does I/O, so it is tested with plain unit tests.

pub mod calendar;
mod event;
mod notification;
mod policy;
pub mod routing;
mod time;

pub use event::{
    BuildState, Change, CommitStatus, Delivery, Outcome, Participant, PrState, PullRequest,
    Repository, ReviewState, Role, User,
};
pub use notification::{build_event, pr_events, NotifyEvent, StoredPr};
pub use policy::{ReviewSummary, DEFAULT_REQUIRED_APPROVALS};
pub use time::Timestamp;

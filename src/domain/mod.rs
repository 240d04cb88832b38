//! The pure core: what a pull request, a review and a delivery are, and the review policy.
//! Nothing in here does I/O, so it is tested with plain unit tests.

pub mod analytics;
pub mod calendar;
mod event;
pub mod flow_facts;
mod model;
mod notification;
mod policy;
pub mod reminders;
pub mod routing;
mod time;
mod turn;
mod view;

pub use event::NotifyEvent;
pub use model::{
    BuildState, Change, CommitStatus, Delivery, Flavour, Origin, Outcome, Participant, PrState,
    PullRequest, Repository, RepositoryKey, RepositoryUpdate, ReviewState, Role, Submission,
    Trigger, User, UserKey,
};
pub use notification::{
    build_event, plan, pr_events, Before, Notification, NotificationPlan, PrOnCommit, StoredBuild,
    StoredPr, Withdrawal,
};
pub use policy::{ReviewSummary, DEFAULT_REQUIRED_APPROVALS};
pub use time::{Now, Timestamp};
pub use turn::{name_order, AuthorReason, ReviewerFacts, Turn, TurnCounts, TurnFacts, TurnKind};
pub use view::{PullRequestView, Reviewer, RoomDigest};

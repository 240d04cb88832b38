//! Chat out: rendering (`message` for a PR's news, `digest` for lists), sinks that carry the
//! bytes (HipChat, Slack-compatible, console), and the dispatcher that sends the outbox.

pub mod digest;
pub mod dispatcher;
pub mod google_chat;
pub mod message;
pub mod sink;
pub mod teams;

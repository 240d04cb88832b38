//! Integration tests: each spawns the real application on port 0 with a fresh database and
//! talks to it over HTTP, then reads the database the way an operator would. A scenario is
//! written once, as `async fn name(on: On)` over `helpers::App`, and `on_both!` runs it on a
//! SQLite file and on a PostgreSQL database (where `PR_REMINDER_TEST_POSTGRES` names a server);
//! `postgres` holds only what PostgreSQL alone has.

mod analytics;
mod browser;
mod chats;
mod cli;
mod commands;
mod compose;
mod connect;
mod datacenter;
mod default_reviewers;
mod direct;
mod docs;
mod drift;
mod errors;
mod fake_chat;
mod fake_direct;
mod fake_slack;
mod fixtures;
mod helpers;
mod identity;
mod lifecycle;
mod living;
mod metrics;
mod notifications;
mod ordering;
mod postgres;
mod reconcile;
mod rename;
mod retention;
mod review_flow;
mod status;
mod sweep;
mod turns;

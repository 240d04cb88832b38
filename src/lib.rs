//! pr-reminder: Bitbucket pull-request webhooks folded into SQLite, so rooms can be reminded of
//! what still needs review. See README.md, and docs/architecture.md for the whole picture.
//!
//! The flow: `routes::webhook` → `signature` (verify) → `bitbucket` (headers, parse) →
//! `domain::Change` → `store::writer` (one transaction, with the outbox rows `domain::plan`
//! decides) → `notify::dispatcher` → `notify::sink`.

pub mod bitbucket;
pub mod clock;
pub mod config;
pub mod connect;
pub mod domain;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod reconcile;
pub mod remind;
pub mod report;
pub mod retention;
pub mod review_queue;
pub mod reviews;
pub mod routes;
pub mod signature;
pub mod startup;
pub mod status;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod weekly_report;

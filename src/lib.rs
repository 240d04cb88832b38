//! pr-reminder: Bitbucket pull-request webhooks folded into SQLite, so rooms can be reminded of
//! what still needs review. See README.md for the whole picture.

pub mod bitbucket;
pub mod commands;
pub mod config;
pub mod domain;
pub mod notify;
pub mod routes;
pub mod startup;
pub mod store;
pub mod sweep;
pub mod telemetry;

//! Integration tests: each spawns the real application on port 0 with a fresh SQLite file and
//! talks to it over HTTP, then reads the database the way an operator would.

mod browser;
mod chats;
mod cli;
mod commands;
mod compose;
mod connect;
mod datacenter;
mod docs;
mod errors;
mod fake_chat;
mod fixtures;
mod helpers;
mod identity;
mod lifecycle;
mod metrics;
mod notifications;
mod ordering;
mod postgres;
mod reconcile;
mod rename;
mod status;
mod sweep;
mod turns;

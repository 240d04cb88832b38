//! PostgreSQL's harness and what only PostgreSQL has: the real application in-process on a fresh
//! PostgreSQL database per test (`PR_REMINDER_TEST_POSTGRES`; see tests/common/postgres.rs).
//!
//! Every feature's scenarios are written once, in the feature's file, and run on both databases
//! (`on_both!` over `helpers::App`; `PgApp` below is its PostgreSQL side). What stays here has
//! no SQLite counterpart, each module saying why:
//! - `binary`: a connection string carries a password (`check-config`, logs at trace);
//! - `compose`: the compose `postgres` profile's two replicas on one database;
//! - `leases`: room leases, how replicas share the rooms;
//! - `status_page`: the page's table of which replica sends each room;
//! - `views`: the schema and operator views compared with SQLite's for the same deliveries.
//!
//! Without a server these tests say so (SKIPPED) and pass over it; under `CI=true` they fail.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use pr_reminder::clock::Clock;
use pr_reminder::config::Settings;
use pr_reminder::signature::sign;
use pr_reminder::startup::Application;
use pr_reminder::store::Database;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Row};

use crate::fake_chat::PATIENCE;
use crate::helpers::{output, post_webhook, Answer, PrRow, Served, PR_ROW_SELECT, SECRET};

#[path = "../common/postgres.rs"]
mod pg;
pub(crate) use pg::fresh_database;

mod binary;
mod compose;
mod leases;
mod status_page;
mod views;

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");

// ---------------------------------------------------------------------------------------------
// The harness: `TestApp`'s PostgreSQL sibling.

/// The running application on its own PostgreSQL database, and a pool on that database for the
/// assertions (what `psql` would show an operator).
pub(crate) struct PgApp {
    pub address: String,
    pub db: PgPool,
    /// The database's connection string (with its password), for the binary.
    pub url: String,
    pub client: reqwest::Client,
}

/// The application on a fresh database named after `label`, with one webhook secret (`SECRET`),
/// settings adjusted by `adjust`, and `clock`; `None` when there is no test server (SKIPPED was
/// printed).
pub(crate) async fn spawn_pg(
    label: &str,
    adjust: impl FnOnce(&mut Settings),
    clock: Clock,
) -> Option<PgApp> {
    let url = pg::fresh_database(label).await?;
    Some(spawn_pg_at(url, adjust, clock).await)
}

/// The application on the PostgreSQL database `url` (migrated at start): another start on the
/// database of a running app, or on one a test wrote.
pub(crate) async fn spawn_pg_at(
    url: String,
    adjust: impl FnOnce(&mut Settings),
    clock: Clock,
) -> PgApp {
    let mut settings =
        crate::helpers::test_settings(Database::Postgres(SecretString::from(url.clone())), &clock);
    adjust(&mut settings);
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("the app builds on PostgreSQL");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("the test's own connection");
    PgApp {
        address,
        db,
        url,
        client: reqwest::Client::new(),
    }
}

impl PgApp {
    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Polls `sql` (a count) until it is `want`.
    async fn wait_count(&self, sql: &str, want: i64) {
        let started = Instant::now();
        loop {
            let got = self.count(sql).await;
            if got == want {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{sql}: expected {want}, got {got}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A stored pull request by its repository's current name, as `TestApp::pull_request` reads
    /// it (`draft` as 0/1).
    async fn pull_request(&self, repository: &str, number: i64) -> Option<PrRow> {
        sqlx::query_as(&format!(
            "{PR_ROW_SELECT} WHERE r.full_name = $1 AND p.number = $2"
        ))
        .bind(repository)
        .bind(number)
        .fetch_optional(&self.db)
        .await
        .unwrap()
    }

    /// (user_key, role, state) for a PR, ordered by user key.
    async fn reviews(&self, repository: &str, number: i64) -> Vec<(String, String, String)> {
        sqlx::query_as(
            "SELECT v.user_key, v.role, v.state FROM reviews v \
             JOIN repositories r ON r.repository_key = v.repository_key \
             WHERE r.full_name = $1 AND v.number = $2 ORDER BY v.user_key",
        )
        .bind(repository)
        .bind(number)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }
}

impl Served for PgApp {
    fn address(&self) -> &str {
        &self.address
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn query_rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(sql)
            .fetch_all(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn review_rows(&self, repository: &str, number: i64) -> Vec<(String, String, String)> {
        self.reviews(repository, number).await
    }

    async fn pull_request_row(&self, repository: &str, number: i64) -> Option<PrRow> {
        self.pull_request(repository, number).await
    }
}

/// Sends one delivery to the app at `address` as its flavour's server sends it; the answer.
async fn send_as(
    client: &reqwest::Client,
    address: &str,
    flavour: &str,
    event_key: &str,
    request_id: &str,
    body: &[u8],
) -> Answer {
    let signature = sign(SECRET, body);
    let id_header = if flavour == "data-center" {
        "X-Request-Id"
    } else {
        "X-Request-UUID"
    };
    post_webhook(
        client,
        address,
        &[
            ("X-Event-Key", event_key),
            (id_header, request_id),
            ("X-Hub-Signature", &signature),
        ],
        body.to_vec(),
    )
    .await
}

/// The binary with a clean environment (nothing from the caller's), on this database.
fn command(database: &str) -> Command {
    let mut cmd = crate::helpers::clean_command(BIN);
    cmd.env("PR_REMINDER_DATABASE", database);
    cmd
}

/// The password of a connection string (`scheme://user:password@host/...`).
pub(crate) fn password_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let userinfo = rest.split_once('@').expect("a user in the URL").0;
    userinfo
        .split_once(':')
        .expect("a password in the URL")
        .1
        .to_owned()
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

//! A fresh PostgreSQL database per test, on the server `PR_REMINDER_TEST_POSTGRES` names (an
//! administrator's connection string; `scripts/test-postgres.sh start` starts a throw-away
//! cluster and prints it).
//!
//! Without that variable the PostgreSQL tests say so and pass over it; under `CI=true` a missing
//! server is a failure (`.ci/run` starts one).

#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// The administrator's connection string, or `None` (after saying so on stderr) when this
/// machine has no test server and `CI` is not `true`.
pub fn server() -> Option<String> {
    match std::env::var("PR_REMINDER_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but PR_REMINDER_TEST_POSTGRES is unset: start a server with \
             `eval \"$(scripts/test-postgres.sh start)\"`"
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: no PostgreSQL server (PR_REMINDER_TEST_POSTGRES unset; see \
                 scripts/test-postgres.sh); the PostgreSQL tests pass over it"
            );
            None
        }
    }
}

/// Creates an empty database named after `label` (plus the process id and a counter, so that
/// test runs and tests never share one) and returns its connection string. `None` as `server`.
pub async fn fresh_database(label: &str) -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = server()?;
    let name = format!(
        "prr_{}_{}_{}",
        label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            })
            .collect::<String>(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connecting to PR_REMINDER_TEST_POSTGRES");
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\"").as_str())
        .await
        .expect("dropping an old test database");
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("creating a test database");
    let _ = conn.close().await;
    Some(with_database(&admin, &name))
}

/// `url` with its path (the database) replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

//! A fresh PostgreSQL database per test, on the server `PR_REMINDER_TEST_POSTGRES` names (an
//! administrator's connection string; `scripts/test-postgres.sh start` starts a throw-away
//! cluster and prints it).
//!
//! Without that variable the PostgreSQL tests say so and pass over it; under `CI=true` a missing
//! server is a failure (`.ci/run` starts one).

#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if !SWEPT.swap(true, Ordering::Relaxed) {
        drop_orphans(&mut conn).await;
    }
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\"").as_str())
        .await
        .expect("dropping an old test database");
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("creating a test database");
    let _ = conn.close().await;
    Some(with_database(&admin, &name))
}

/// Drops the test databases of earlier test processes that have ended (`prr_<label>_<pid>_<n>`
/// whose process is gone), so that a cluster used for many runs does not fill the disk. A test
/// process running beside this one keeps its databases. Where `/proc` does not exist (not
/// Linux), nothing is dropped.
async fn drop_orphans(conn: &mut PgConnection) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname::text FROM pg_database WHERE datname LIKE 'prr\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let mut parts = name.rsplitn(3, '_');
        let (Some(_counter), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Best effort: a database still in use by a leftover server process stays for later.
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await;
    }
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

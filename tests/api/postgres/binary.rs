//! The binary on PostgreSQL: `migrate`, `check-config`, and the logs of a served app at trace.

use super::*;

/// `pr-reminder migrate` on an empty PostgreSQL database applies the PostgreSQL migrations
/// (recorded by sqlx), names the database without its password, and is a no-op the
/// second time.
#[tokio::test]
async fn migrate_applies_the_postgres_schema_once() {
    let Some(url) = pg::fresh_database("migrate").await else {
        return;
    };
    let password = password_of(&url);
    let shown = url.replace(&format!(":{password}@"), ":[redacted]@");
    let files = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
    )
    .unwrap()
    .count();
    for round in 0..2 {
        let (code, stdout, stderr) = run_cli(&url, &["migrate"]).await;
        assert_eq!(code, 0, "round {round}: {stdout}{stderr}");
        let said = match round {
            0 => format!("database {shown}: applied {files} migrations; it is up to date\n"),
            _ => format!("database {shown} is up to date (no migration to apply)\n"),
        };
        assert_eq!(stdout, said);
        assert!(!stdout.contains(&password) && !stderr.contains(&password));
    }
    let db = PgPoolOptions::new().connect(&url).await.unwrap();
    let applied: Vec<(i64, String, bool)> = sqlx::query_as(
        "SELECT version, description, success FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    // Every file of migrations/postgres/, once: `{version}_{description}.sql`.
    let mut files: Vec<(i64, String, bool)> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
    )
    .unwrap()
    .map(|entry| {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (version, rest) = name.split_once('_').unwrap();
        let description = rest.trim_end_matches(".sql").replace('_', " ");
        (version.parse().unwrap(), description, true)
    })
    .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    assert_eq!(applied, files);
    let relations: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, table_type::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let table = |name: &str| (name.to_owned(), "BASE TABLE".to_owned());
    let view = |name: &str| (name.to_owned(), "VIEW".to_owned());
    assert_eq!(
        relations,
        vec![
            table("commit_statuses"),
            table("deliveries"),
            table("missing_repositories"),
            view("open_pull_requests"),
            table("outbox"),
            view("pending_reviews"),
            view("pull_request_builds"),
            view("pull_request_reviews"),
            table("pull_requests"),
            table("reconciled_commits"),
            table("reconciled_repositories"),
            table("repositories"),
            table("reviews"),
            table("room_leases"),
            table("settings"),
            table("snoozes"),
            table("sweeps"),
            table("users"),
        ]
    );
}

/// `check-config` with a PostgreSQL connection string shows it with the password redacted.
#[tokio::test]
async fn check_config_shows_the_connection_string_without_its_password() {
    let Some(admin) = pg::server() else { return };
    let url = pg::with_database(&admin, "pr_reminder");
    let password = password_of(&url);
    assert!(password.len() >= 8, "a password worth looking for");
    let check = |database: String| {
        let mut cmd = command(&database);
        cmd.env("PR_REMINDER_WEBHOOK_SECRET", SECRET)
            .arg("check-config");
        output(cmd)
    };
    let (code, stdout, stderr) = check(url.clone()).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let shown = url.replace(&format!(":{password}@"), ":[redacted]@");
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("database = \"{shown}\"")),
        "{stdout}"
    );
    assert!(!stdout.contains(&password), "{stdout}");
    assert!(!stderr.contains(&password), "{stderr}");

    // A password given as a query parameter is redacted too.
    let (host, _) = url.split_once('?').unwrap_or((&url, ""));
    let without = host.replace(&format!(":{password}@"), "@");
    let query_form = format!("{without}?password={password}&sslmode=disable");
    let (code, stdout, stderr) = check(query_form).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("database = \"{without}?password=[redacted]&sslmode=disable\"")),
        "{stdout}"
    );
    assert!(!stdout.contains(&password), "{stdout}");
}

/// `serve` on PostgreSQL at `RUST_LOG=trace` (every log line of every crate, sqlx's
/// connections and statements too): the connection string appears only redacted, and the
/// password on no line, while deliveries are stored, refused and read back.
#[tokio::test]
async fn the_password_is_on_no_log_line_of_a_served_app_at_trace() {
    use std::io::{BufRead, BufReader};
    let Some(url) = pg::fresh_database("trace").await else {
        return;
    };
    let password = password_of(&url);
    let child = command(&url)
        .args(["--log-format", "json", "serve"])
        .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
        .env("PR_REMINDER_WEBHOOK_SECRET", SECRET)
        .env("PR_REMINDER_STATUS_TOKEN", "status-token-0123456789")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Served(child);
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let stderr = served.0.stderr.take().unwrap();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if let Some(port) = value["fields"]["port"].as_u64() {
                    let _ = port_tx.send(port as u16);
                }
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let port = tokio::task::spawn_blocking(move || port_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    let Ok(port) = port else {
        panic!("no port logged:\n{}", log.lock().unwrap());
    };
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let body =
        serde_json::to_vec(&crate::helpers::own_fixture("pullrequest_created.json")).unwrap();
    let stored = send_as(
        &client,
        &address,
        "cloud",
        "pullrequest:created",
        "trace-1",
        &body,
    )
    .await;
    assert_eq!(stored.body["status"], "processed", "{}", stored.body);
    let refused = post_webhook(
        &client,
        &address,
        &[
            ("X-Event-Key", "pullrequest:created"),
            ("X-Request-UUID", "trace-2"),
            ("X-Hub-Signature", "sha256=00"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let status = client
        .get(format!("{address}/status"))
        .bearer_auth("status-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert!(status.text().await.unwrap().contains("acme/payments-api"));
    let db = PgPoolOptions::new().connect(&url).await.unwrap();
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM deliveries ORDER BY request_id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(outcomes, ["processed", "rejected"]);

    let _ = Command::new("kill")
        .args(["-TERM", &served.0.id().to_string()])
        .status();
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = served.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "still running after SIGTERM:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(exit.success(), "{exit:?}\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"TRACE\"")),
        "trace lines were written: {} lines",
        lines.len()
    );
    assert!(
        lines.iter().any(|l| l.contains("sqlx")),
        "sqlx's own lines are in: {} lines",
        lines.len()
    );
    let shown = url.replace(&format!(":{password}@"), ":[redacted]@");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("\"database\":\"{shown}\""))),
        "the listening line names the database, redacted"
    );
    let leaked: Vec<&&str> = lines.iter().filter(|l| l.contains(&password)).collect();
    assert!(
        leaked.is_empty(),
        "the password on {} line(s): {leaked:#?}",
        leaked.len()
    );
}

/// A served binary, killed when dropped still running: a failed assertion leaves no process
/// behind.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

//! The binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");

/// The binary with a clean environment: no PR_REMINDER_* leaks in from the caller.
fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["check-config", "--help"],
    ] {
        let out = command(dir.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: pr-reminder"),
            "{args:?}"
        );
    }
}

#[test]
fn check_config_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .arg("check-config")
        .env("PR_REMINDER_WEBHOOK_SECRET", "hunter2-old,hunter2-new")
        .env("PR_REMINDER_REQUIRED_APPROVALS", "3")
        .env("PR_REMINDER_SWEEP_TOKEN", "hunter2-sweep-token-123")
        .env("PR_REMINDER_COMMAND_TOKEN", "hunter2-command-token-123")
        .env(
            "PR_REMINDER_SLACK_SIGNING_SECRET",
            "hunter2-slack-signing-secret",
        )
        .env(
            "PR_REMINDER_MATTERMOST_TOKEN",
            "hunter2-mattermost-token-12",
        )
        .env(
            "PR_REMINDER_HIPCHAT_URL",
            "https://team.hipchat.com/v2/room/12/notification?auth_token=hunter2tok",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("hipchat https://team.hipchat.com/[redacted]"),
        "{text}"
    );
    assert!(text.contains("hipchat_token = \"[redacted]\""), "{text}");
    assert!(
        text.contains("webhook_secret = \"[redacted: 2 secret(s)]\""),
        "{text}"
    );
    assert!(text.contains("required_approvals = 3"), "{text}");
}

#[test]
fn invalid_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .arg("check-config")
        .env("PR_REMINDER_WEBHOOK_SECRET", "s")
        .env("PR_REMINDER_REQUIRED_APPROVALS", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PR_REMINDER_REQUIRED_APPROVALS"));

    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "required_approvals = \"two\"\n").unwrap();
    let out = command(dir.path())
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_configured_service_without_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .arg("serve")
        .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PR_REMINDER_WEBHOOK_SECRET"), "{err}");
    assert!(
        !dir.path().join("pr-reminder.db").exists(),
        "nothing created before validation"
    );
}

#[test]
fn migrate_creates_the_database_without_needing_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub/state.db");
    let out = command(dir.path())
        .arg("migrate")
        .env("PR_REMINDER_DATABASE", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    // Running it again is a no-op.
    let again = command(dir.path())
        .arg("migrate")
        .env("PR_REMINDER_DATABASE", &db)
        .env("PR_REMINDER_WEBHOOK_SECRET", "s")
        .output()
        .unwrap();
    assert!(again.status.success());
}

/// serve: JSON logs carrying the delivery span, no secret in them, and a clean stop on SIGTERM.
#[test]
fn serve_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "very-secret-value-123";
    let mut child = command(dir.path())
        .args(["--log-format", "json", "serve"])
        .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
        .env("PR_REMINDER_WEBHOOK_SECRET", secret)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let port = loop {
        let line = lines.next().expect("server printed its port").unwrap();
        log.push_str(&line);
        log.push('\n');
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if let Some(port) = value["fields"]["port"].as_u64() {
            break port;
        }
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/webhooks/bitbucket"))
            .header("X-Event-Key", "pullrequest:created")
            .header("X-Request-UUID", "cli-1")
            .header("X-Hub-Signature", format!("sha256={}", "0".repeat(64)))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 401);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(!log.contains(secret), "{log}");
    let rejected = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "delivery rejected")
        .unwrap_or_else(|| panic!("no rejection logged:\n{log}"));
    assert_eq!(rejected["span"]["request_id"], "cli-1");
    assert_eq!(rejected["span"]["event_key"], "pullrequest:created");
    assert!(log.contains("\"stopped\""), "{log}");
    let db = dir.path().join("pr-reminder.db");
    let rows: i64 = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE outcome = 'rejected'")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    assert_eq!(rows, 1, "the refused delivery was recorded before the stop");
}

#[test]
fn outbox_list_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let run = |args: &[&str]| {
        command(dir.path())
            .args(args)
            .env("PR_REMINDER_DATABASE", &db)
            .output()
            .unwrap()
    };
    assert!(run(&["migrate"]).status.success());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}", db.display());
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO repositories (repository_key, full_name) VALUES ('cloud/{api}', 'acme/api'); \
             INSERT INTO outbox (id, room, repository_key, number, events, state, created_at, not_before, attempts, last_error) VALUES \
             (7, 'backend', 'cloud/{api}', 3, 'opened', 'failed', '2026-11-20T10:00:00.000000Z', '2026-11-20T10:00:00.000000Z', 1, 'HTTP 401 Unauthorized'), \
             (8, 'backend', 'cloud/{api}', 4, 'approvals', 'sent', '2026-11-20T10:00:00.000000Z', '2026-11-20T10:00:00.000000Z', 1, NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
    });

    let out = run(&["outbox", "list", "--failed"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("acme/api#3") && text.contains("HTTP 401 Unauthorized"),
        "{text}"
    );
    assert!(!text.contains("acme/api#4"), "only failed rows: {text}");
    let all = String::from_utf8_lossy(&run(&["outbox", "list"]).stdout).to_string();
    assert!(all.contains("acme/api#4"), "{all}");

    let missing = run(&["outbox", "retry", "8"]);
    assert_eq!(missing.status.code(), Some(1), "a sent row is not retried");
    assert_eq!(
        run(&["outbox", "retry"]).status.code(),
        Some(2),
        "id or --failed is required"
    );
    let out = run(&["outbox", "retry", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 notification(s) requeued"));
    let state: (String, i64, Option<String>) = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_as("SELECT state, attempts, last_error FROM outbox WHERE id = 7")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    assert_eq!(state, ("retrying".to_owned(), 0, None));
}

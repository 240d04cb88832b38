//! The binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");

/// The binary with a clean environment: no PR_REMINDER_* leaks in from the caller.
pub(crate) fn command(dir: &std::path::Path) -> Command {
    let mut cmd = crate::helpers::clean_command(BIN);
    cmd.current_dir(dir);
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

/// Each subcommand's help shows its usage line and lists its own flags.
#[test]
fn sweep_and_outbox_help_name_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    for (args, usage, flags) in [
        (
            vec!["sweep", "--help"],
            "Usage: pr-reminder sweep [OPTIONS]",
            vec!["--force", "--json"],
        ),
        (
            vec!["outbox", "--help"],
            "Usage: pr-reminder outbox [OPTIONS] <COMMAND>",
            vec!["list", "retry"],
        ),
        (
            vec!["outbox", "list", "--help"],
            "Usage: pr-reminder outbox list [OPTIONS]",
            vec!["--failed", "--limit <LIMIT>"],
        ),
        (
            vec!["outbox", "retry", "--help"],
            "Usage: pr-reminder outbox retry [OPTIONS] [ID]",
            vec!["--failed", "[ID]"],
        ),
    ] {
        let out = command(dir.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().any(|l| l == usage), "{args:?}:\n{text}");
        for flag in flags {
            // An entry of the Options/Commands/Arguments list: indented, the flag first.
            assert!(
                text.lines()
                    .any(|l| l.starts_with("  ") && l.trim_start().starts_with(flag)),
                "{args:?} does not list {flag}:\n{text}"
            );
        }
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
        .env("PR_REMINDER_METRICS_TOKEN", "hunter2-metrics-token-123")
        .env("PR_REMINDER_STATUS_TOKEN", "hunter2-status-token-1234")
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
        text.contains(
            "[monitoring]\nmetrics_token = \"[redacted]\"\nstatus_token = \"[redacted]\"\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("webhook_secret = [\"[redacted]\", \"[redacted]\"]"),
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
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "pr-reminder: invalid configuration: PR_REMINDER_REQUIRED_APPROVALS: \
         `lots` is not a whole number\n"
    );

    // A value of the right type but out of range, from the file: the file key is named.
    let file = dir.path().join("range.toml");
    std::fs::write(&file, "[notify]\nmax_attempts = 0\n").unwrap();
    let out = command(dir.path())
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .env("PR_REMINDER_WEBHOOK_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "pr-reminder: invalid configuration: notify.max_attempts: 0 is not between 1 and 1000\n"
    );

    // A wrong type in the file: toml's check names the file and the line.
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "required_approvals = \"two\"\n").unwrap();
    let out = command(dir.path())
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "pr-reminder: invalid configuration: {}: required_approvals: invalid type: \
             string \"two\", expected i64 (line 1)\n",
            file.display()
        )
    );
}

/// `ConfigError` promises to name the key: a wrong type in the file names the file, the key and
/// the line.
#[test]
fn a_wrong_type_in_the_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\nrequired_approvals = \"two\"\n",
    )
    .unwrap();
    let out = command(dir.path())
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("pr-reminder: invalid configuration: "),
        "{err}"
    );
    assert!(err.contains("required_approvals"), "the key: {err}");
    assert!(err.contains("bad.toml"), "the file: {err}");
    assert!(err.contains("line 2"), "the line: {err}");
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

crate::helpers::on_both!(migrate_applies_every_migration_once_without_the_secret);

/// `pr-reminder migrate` on a database nothing was written to (on SQLite a file whose folder
/// does not exist yet), without a webhook secret: it applies every file of the database's
/// migrations (recorded by sqlx in `_sqlx_migrations`), names the database (a connection
/// string without its password), and is a no-op the second time. The schema's tables and views
/// are then there.
async fn migrate_applies_every_migration_once_without_the_secret(on: crate::helpers::On) {
    use crate::helpers::{On, Served as _};
    let Some(fresh) = crate::helpers::fresh_database(on, "migrate").await else {
        return;
    };
    let database = fresh.database.clone();
    let (shown, password, folder) = match on {
        On::Sqlite => (database.clone(), None, "sqlite"),
        On::Postgres => {
            let password = crate::postgres::password_of(&database);
            let shown = database.replace(&format!(":{password}@"), ":[redacted]@");
            (shown, Some(password), "postgres")
        }
    };
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let count = std::fs::read_dir(&migrations).unwrap().count();
    assert!(count > 1, "{count} migrations");
    for round in 0..2 {
        let (code, stdout, stderr) = crate::helpers::run_binary(&database, &["migrate"]).await;
        assert_eq!(code, 0, "round {round}: {stdout}{stderr}");
        let said = match round {
            0 => format!("database {shown}: applied {count} migrations; it is up to date\n"),
            _ => format!("database {shown} is up to date (no migration to apply)\n"),
        };
        assert_eq!(stdout, said);
        if let Some(password) = &password {
            assert!(!stdout.contains(password) && !stderr.contains(password));
        }
    }
    if on == On::Sqlite {
        assert!(std::path::Path::new(&database).exists(), "{database}");
    }

    // Read as the service reads it (its own start migrates nothing more).
    let app =
        crate::helpers::spawn_at(on, &database, |_| {}, pr_reminder::clock::Clock::system()).await;
    let applied: Vec<(i64, String, bool)> = app
        .query_rows("SELECT version, description, success FROM _sqlx_migrations ORDER BY version")
        .await;
    // Every file of the migrations folder, once: `{version}_{description}.sql`.
    let mut files: Vec<(i64, String, bool)> = std::fs::read_dir(&migrations)
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let (version, rest) = name.split_once('_').unwrap();
            let description = rest.trim_end_matches(".sql").replace('_', " ");
            (version.parse().unwrap(), description, true)
        })
        .collect();
    files.sort();
    assert_eq!(applied, files);
    let relations: Vec<(String, String)> = app
        .query_rows(match on {
            On::Sqlite => {
                "SELECT name, CASE type WHEN 'view' THEN 'VIEW' ELSE 'BASE TABLE' END \
                 FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name"
            }
            On::Postgres => {
                "SELECT table_name::text, table_type::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' \
                 ORDER BY table_name"
            }
        })
        .await;
    let table = |name: &str| (name.to_owned(), "BASE TABLE".to_owned());
    let view = |name: &str| (name.to_owned(), "VIEW".to_owned());
    let mut expected = vec![
        table("chat_digests"),
        table("chat_messages"),
        table("commit_statuses"),
        table("default_reviewers"),
        table("deliveries"),
        table("direct_mutes"),
        table("direct_outbox"),
        table("direct_preferences"),
        table("direct_turns"),
        table("direct_watch"),
        table("missing_repositories"),
        view("open_pull_requests"),
        table("outbox"),
        view("pending_reviews"),
        view("pull_request_builds"),
        table("pull_request_facts"),
        table("pull_request_review_requests"),
        view("pull_request_reviews"),
        table("pull_request_turns"),
        table("pull_requests"),
        table("reconciled_commits"),
        table("reconciled_repositories"),
        table("repositories"),
        table("repository_deliveries"),
        table("reviews"),
        table("room_leases"),
        table("settings"),
        table("slack_users"),
        table("snoozes"),
        table("sweeps"),
        table("users"),
        table("webhook_coverage"),
    ];
    if on == On::Sqlite {
        // Room leases are how PostgreSQL's replicas share the rooms; one SQLite process sends
        // every room.
        expected.retain(|(name, _)| name != "room_leases");
    }
    assert_eq!(relations, expected);
}

/// Five processes started at once on a fresh SQLite file (say `serve` and a `sweep` from cron
/// at boot, or replicas of a test) all start: one applies the migrations, the others wait for
/// it and find nothing to do. Three rounds, each on a new file.
#[test]
fn five_processes_started_at_once_on_a_fresh_file_all_start() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fresh.db");
        let mut children: Vec<std::process::Child> = (0..5)
            .map(|_| {
                command(dir.path())
                    .args(["--log-format", "json", "serve"])
                    .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
                    .env("PR_REMINDER_DATABASE", &db)
                    .env("PR_REMINDER_WEBHOOK_SECRET", "a-secret")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Each says its port once listening, or ends (its log says why).
        let mut applied = 0;
        for child in &mut children {
            let mut log = String::new();
            let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
            let listening = loop {
                let Some(Ok(line)) = lines.next() else {
                    break false;
                };
                log.push_str(&line);
                log.push('\n');
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                if value["fields"]["message"] == "database migrated" {
                    applied += 1;
                }
                if value["fields"]["port"].as_u64().is_some() {
                    break true;
                }
            };
            assert!(listening, "round {round}: a process did not start:\n{log}");
            // The rest of its log is not read: keep the pipe drained.
            std::thread::spawn(move || lines.for_each(drop));
        }
        assert_eq!(applied, 1, "round {round}: one of them migrated");
        for child in &mut children {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
        }
        for child in &mut children {
            let status = child.wait().unwrap();
            assert!(status.success(), "round {round}: {status:?}");
        }
    }
}

/// `PR_REMINDER_CONFIG` is `--config` (containers have no command line to add it to); empty,
/// it is unset, as every variable is.
#[test]
fn pr_reminder_config_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.toml");
    std::fs::write(
        &file,
        "required_approvals = 4\n[sweep]\nschedule = \"0 9 * * *\"\n",
    )
    .unwrap();
    let check = |vars: &[(&str, &std::ffi::OsStr)], args: &[&str]| {
        let mut cmd = command(dir.path());
        cmd.env("PR_REMINDER_WEBHOOK_SECRET", "a-secret");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.args(args).arg("check-config").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "no warning about the variable"
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let by_flag = check(&[], &["--config", file.to_str().unwrap()]);
    assert!(by_flag.contains("\nrequired_approvals = 4\n"), "{by_flag}");
    assert!(
        by_flag.contains("\nschedule = \"0 9 * * *\"\n"),
        "{by_flag}"
    );
    let by_variable = check(&[("PR_REMINDER_CONFIG", file.as_os_str())], &[]);
    assert_eq!(by_variable, by_flag);
    let empty = check(&[("PR_REMINDER_CONFIG", std::ffi::OsStr::new(""))], &[]);
    assert!(empty.contains("\nrequired_approvals = 2\n"), "{empty}");
    // A missing file is named.
    let out = command(dir.path())
        .arg("check-config")
        .env("PR_REMINDER_CONFIG", dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `check-config` prints is a file `check-config` reads back to the same output; its
/// secrets are placeholders, which nothing but `check-config` accepts (the variables that
/// carry the real ones make it runnable again).
#[test]
fn check_config_output_reads_back_and_only_check_config_takes_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.toml");
    std::fs::write(
        &file,
        "[sweep]\ntimezone = \"Europe/Berlin\"\nquiet_hours = \"19:00-08:00\"\n\
         [[rooms]]\nname = \"web\"\nslack_webhook_url = \"https://hooks.example:8443/T/B/hunter2\"\n\
         [[users]]\nbitbucket = \"carol\"\nslack = \"UCAROL\"\n",
    )
    .unwrap();
    let run = |config: &std::path::Path, args: &[&str], secret: bool| {
        let mut cmd = command(dir.path());
        cmd.env("PR_REMINDER_DATABASE", dir.path().join("state.db"))
            .env("PR_REMINDER_SWEEP_TOKEN", "hunter2-sweep-token-123")
            .args(["--config", config.to_str().unwrap()])
            .args(args);
        if secret {
            cmd.env("PR_REMINDER_WEBHOOK_SECRET", "hunter2-webhook");
        }
        cmd.output().unwrap()
    };
    let first = run(&file, &["check-config"], true);
    assert!(first.status.success());
    let printed = String::from_utf8(first.stdout).unwrap();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("slack_webhook_url = \"https://hooks.example:8443/[redacted]\""),
        "{printed}"
    );
    let copy = dir.path().join("printed.toml");
    std::fs::write(&copy, &printed).unwrap();
    let again = run(&copy, &["check-config"], true);
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "pr-reminder: note: these settings are valid, but the other commands refuse them: \
         invalid configuration: rooms[0].slack_webhook_url: is \"[redacted]\", the placeholder \
         check-config prints for a secret: put the secret itself there, or set its variable\n"
    );
    // Without the variable, the webhook secret is a placeholder too; serve and migrate refuse,
    // naming the first.
    for args in [&["serve"][..], &["migrate"][..]] {
        let out = run(&copy, args, false);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "pr-reminder: invalid configuration: webhook_secret (PR_REMINDER_WEBHOOK_SECRET): is \
             \"[redacted]\", the placeholder check-config prints for a secret: put the secret \
             itself there, or set its variable (and 1 more: rooms[0].slack_webhook_url)\n"
        );
    }
    assert!(!dir.path().join("state.db").exists(), "nothing was opened");
}

/// The example configuration at the repository's root loads as it is (every setting commented,
/// so: the defaults), as check-config shows it.
#[test]
fn the_example_configuration_loads() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pr-reminder.example.toml");
    let out = command(dir.path())
        .args(["--config", example.to_str().unwrap(), "check-config"])
        .env("PR_REMINDER_WEBHOOK_SECRET", "a-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let defaults = command(dir.path())
        .arg("check-config")
        .env("PR_REMINDER_WEBHOOK_SECRET", "a-secret")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&defaults.stdout)
    );
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

crate::helpers::on_both!(outbox_list_and_retry_on_rows_another_process_wrote);

/// `outbox list|retry` on a database no service runs on, whose rows another process wrote (a
/// failed message and a sent one): `list --failed` shows only the failed one, `list` both; a sent
/// message is not retried (exit 1, the error said once, as a plain line or one JSON log line);
/// `retry` alone is a usage error (exit 2); `retry <id>` of the failed one puts it back as
/// `retrying` with its attempts and error cleared.
async fn outbox_list_and_retry_on_rows_another_process_wrote(on: crate::helpers::On) {
    use crate::helpers::{execute_at, query_at, run_binary};
    let Some(fresh) = crate::helpers::fresh_database(on, "outboxrows").await else {
        return;
    };
    let db = fresh.database.clone();
    let (code, stdout, stderr) = run_binary(&db, &["migrate"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    execute_at(
        on,
        &db,
        "INSERT INTO repositories (repository_key, full_name) VALUES ('cloud/{api}', 'acme/api'); \
         INSERT INTO outbox (id, room, repository_key, number, events, state, created_at, not_before, attempts, last_error) VALUES \
         (7, 'backend', 'cloud/{api}', 3, 'opened', 'failed', '2026-11-20T10:00:00.000000Z', '2026-11-20T10:00:00.000000Z', 1, 'HTTP 401 Unauthorized'), \
         (8, 'backend', 'cloud/{api}', 4, 'approvals', 'sent', '2026-11-20T10:00:00.000000Z', '2026-11-20T10:00:00.000000Z', 1, NULL)",
    )
    .await;

    let (code, text, stderr) = run_binary(&db, &["outbox", "list", "--failed"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("acme/api#3") && text.contains("HTTP 401 Unauthorized"),
        "{text}"
    );
    assert!(!text.contains("acme/api#4"), "only failed rows: {text}");
    let (code, all, stderr) = run_binary(&db, &["outbox", "list"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        all.contains("acme/api#3") && all.contains("acme/api#4"),
        "{all}"
    );

    let (code, _, stderr) = run_binary(&db, &["outbox", "retry", "8"]).await;
    assert_eq!(code, 1, "a sent row is not retried");
    // A fatal error is said once: a plain line, or (JSON logs) one log line.
    assert_eq!(
        stderr,
        "pr-reminder: notification 8 does not exist or has not failed\n"
    );
    let (code, _, stderr) =
        run_binary(&db, &["--log-format", "json", "outbox", "retry", "8"]).await;
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert_eq!(
        lines[0]["fields"]["error"],
        "notification 8 does not exist or has not failed"
    );
    let (code, _, _) = run_binary(&db, &["outbox", "retry"]).await;
    assert_eq!(code, 2, "id or --failed is required");
    let (code, stdout, stderr) = run_binary(&db, &["outbox", "retry", "7"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 notification(s) requeued"), "{stdout}");
    let state: Vec<(String, i64, Option<String>)> = query_at(
        on,
        &db,
        "SELECT state, attempts, last_error FROM outbox WHERE id = 7",
    )
    .await;
    assert_eq!(state, [("retrying".to_owned(), 0, None)]);
}

crate::helpers::on_both!(a_failed_message_is_listed_and_retried_by_id_and_all_failed);

/// (id, state, attempts, room, created_at, events, last_error, first_failed_at) of an outbox row.
type OutboxRow = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// `outbox list`'s table: its header and one line per row, as the binary lays them out.
fn outbox_table(lines: &[String]) -> String {
    let mut out = format!(
        "{:>6}  {:<9} {:>3}  {:<12} {:<40} {:<28} {}\n",
        "id", "state", "try", "room", "pull request", "created", "events / last error"
    );
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `outbox list`'s line of `row`, about the pull request `pr`.
fn outbox_line(row: &OutboxRow, pr: &str) -> String {
    let detail = match &row.6 {
        Some(error) => format!("{} / {error}", row.5),
        None => row.5.clone(),
    };
    format!(
        "{:>6}  {:<9} {:>3}  {:<12} {:<40} {:<28} {}",
        row.0, row.1, row.2, row.3, pr, row.4, detail
    )
}

/// A message the room refuses (404) is failed; `outbox list [--failed]`, run beside the service
/// on its database, shows it with its error; `outbox retry 999` names what it cannot retry
/// (exit 1), `outbox retry` alone is a usage error (exit 2); `outbox retry <id>` and `outbox
/// retry --failed` put it back with its attempts at zero, and the running service sends it
/// (here refused once more, then accepted); a sent message is not retried (exit 1).
async fn a_failed_message_is_listed_and_retried_by_id_and_all_failed(on: crate::helpers::On) {
    use crate::fake_chat::{hipchat_ok, Fake, PATIENCE};
    use crate::helpers::{run_binary, Served as _};
    use crate::notifications::{hipchat, one_room};

    let fake = Fake::start(vec![
        wiremock::ResponseTemplate::new(404).set_body_string("no such room"),
        wiremock::ResponseTemplate::new(404).set_body_string("no such room"),
        hipchat_ok(),
    ])
    .await;
    let url = fake.url("/v2/room/payments/notification?auth_token=outbox-secret-token");
    let Some(app) = crate::helpers::spawn_on(
        on,
        "outbox",
        move |s| {
            s.notify = one_room(hipchat("payments", url));
        },
        pr_reminder::clock::Clock::system(),
    )
    .await
    else {
        return;
    };
    let database = app.database();
    let cli = |args: &'static [&'static str]| run_binary(&database, args);
    // Waits until the one row is in `state`.
    let wait_state = |state: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            loop {
                let rows: Vec<OutboxRow> = app
                    .query_rows(
                        "SELECT id, state, attempts, room, created_at, events, last_error, \
                         first_failed_at FROM outbox",
                    )
                    .await;
                assert_eq!(rows.len(), 1, "{rows:?}");
                if rows[0].1 == state {
                    return rows[0].clone();
                }
                assert!(started.elapsed() < PATIENCE, "never {state}: {rows:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let body = crate::lifecycle::pr_event(
        1,
        "2026-11-20T10:00:00.000000+00:00",
        "OPEN",
        "One",
        "9b2c4e6f8a10",
        &[],
    );
    app.processed("pullrequest:created", &body).await;
    let failed = wait_state("failed").await;
    assert_eq!(
        (failed.2, failed.5.as_str(), failed.6.as_deref()),
        (1, "opened", Some("HTTP 404 Not Found: no such room"))
    );
    assert!(failed.7.is_some(), "first_failed_at: {failed:?}");
    let pr = "acme/payments-api#1";

    for args in [&["outbox", "list", "--failed"][..], &["outbox", "list"][..]] {
        let (code, stdout, stderr) = run_binary(&database, args).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(
            stdout,
            outbox_table(&[outbox_line(&failed, pr)]),
            "{args:?}"
        );
    }
    let (code, stdout, stderr) = cli(&["outbox", "retry", "999"]).await;
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    // The fatal error said once; nothing else (on PostgreSQL: no notice of its own about the
    // migrations table).
    assert_eq!(
        stderr,
        "pr-reminder: notification 999 does not exist or has not failed\n"
    );
    let (code, _, stderr) = cli(&["outbox", "retry"]).await;
    assert_eq!(code, 2, "id or --failed is required: {stderr}");

    // By id: requeued, refused once more.
    let id = failed.0.to_string();
    let (code, stdout, stderr) = run_binary(&database, &["outbox", "retry", &id]).await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "1 notification(s) requeued\n"),
        "{stderr}"
    );
    fake.wait_for_hits(2).await;
    let again = wait_state("failed").await;
    assert_eq!(again.2, 1, "attempts started again from zero: {again:?}");

    // All failed ones: requeued, and sent by the service.
    let (code, stdout, stderr) = cli(&["outbox", "retry", "--failed"]).await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "1 notification(s) requeued\n"),
        "{stderr}"
    );
    let sent = wait_state("sent").await;
    assert_eq!(
        (sent.2, sent.6.as_deref(), sent.7.as_deref()),
        (1, None, None),
        "one attempt since the retry, no error, no failure"
    );
    assert_eq!(fake.exactly(3).await.len(), 3);
    let (_, stdout, _) = cli(&["outbox", "list", "--failed"]).await;
    assert_eq!(stdout, outbox_table(&["(no notifications)".to_owned()]));
    let (_, stdout, _) = cli(&["outbox", "list"]).await;
    assert_eq!(stdout, outbox_table(&[outbox_line(&sent, pr)]));
    assert!(!stdout.contains("outbox-secret-token"));

    // A sent message is not retried.
    let (code, stdout, stderr) = run_binary(&database, &["outbox", "retry", &id]).await;
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert_eq!(
        stderr,
        format!("pr-reminder: notification {id} does not exist or has not failed\n")
    );
    assert_eq!(fake.exactly(3).await.len(), 3, "nothing more was sent");
}

/// `serve` started with JSON logs on a free port; its standard error is read by a thread of its
/// own (so a chatty server never blocks on a full pipe) and kept for the assertions.
pub(crate) struct Served {
    child: std::process::Child,
    pub(crate) port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    stdout: Option<std::sync::mpsc::Receiver<String>>,
}

pub(crate) fn serve(mut cmd: Command, capture_stdout: bool) -> Served {
    cmd.args(["--log-format", "json", "serve"])
        .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().map(|out| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    });
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(port) = value["fields"]["port"].as_u64() {
                    let _ = port_tx.send(port as u16);
                }
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("no port logged:\n{}", log.lock().unwrap()));
    Served {
        child,
        port,
        log,
        stdout,
    }
}

impl Served {
    pub(crate) fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal}");
    }

    /// Waits for the exit (at most `within`); the status and the whole log.
    pub(crate) fn wait(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {within:?} after the signal:\n{}",
                    self.log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread sees the end of the pipe soon after the exit.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log.lock().unwrap().clone())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM or SIGINT in the middle of a burst: every delivery either was answered 2xx and is
/// stored (its delivery row processed and its pull request there), or was not answered 2xx
/// (refused, connection closed) and left nothing behind. Never half. The process exits 0.
fn a_stop_in_the_middle_of_a_burst(signal: &str) {
    use crate::helpers::own_fixture;
    use pr_reminder::signature::sign;

    const BURST: usize = 200;
    const SLOW: usize = 4;
    let secret = "burst-secret";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut cmd = command(dir.path());
    cmd.env("PR_REMINDER_DATABASE", &db)
        .env("PR_REMINDER_WEBHOOK_SECRET", secret);
    let mut served = serve(cmd, false);
    let url = format!("http://127.0.0.1:{}/webhooks/bitbucket", served.port);

    // Delivery i creates PR 1000 + i, under request id burst-i.
    let body = |i: usize| {
        let mut body = own_fixture("pullrequest_created.json");
        body["pullrequest"]["id"] = serde_json::json!(1000 + i);
        serde_json::to_vec(&body).unwrap()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let outcomes: Vec<(usize, Result<u16, String>)> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        // A few deliveries whose body is only half sent when the signal comes.
        let mut rest = Vec::new();
        for i in BURST..BURST + SLOW {
            let bytes = body(i);
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
            let half = bytes.len() / 2;
            tx.send(Ok(bytes[..half].to_vec())).await.unwrap();
            rest.push((tx, bytes[half..].to_vec()));
            let request = client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Event-Key", "pullrequest:created")
                .header("X-Request-UUID", format!("burst-{i}"))
                .header("X-Hub-Signature", sign(secret, &bytes))
                .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)));
            tasks.push(tokio::spawn(async move {
                (
                    i,
                    request
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .map_err(|e| format!("{e:?}")),
                )
            }));
        }
        // Let the slow ones reach the server (their headers are read, their bodies wait).
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..BURST {
            let bytes = body(i);
            let request = client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Event-Key", "pullrequest:created")
                .header("X-Request-UUID", format!("burst-{i}"))
                .header("X-Hub-Signature", sign(secret, &bytes))
                .body(bytes);
            let answered = answered.clone();
            tasks.push(tokio::spawn(async move {
                let result = request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| format!("{e:?}"));
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (i, result)
            }));
        }
        // The signal comes once the burst is under way, with most of it still in flight.
        let started = Instant::now();
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 10
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        served.signal(signal);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (tx, second_half) in rest {
            let _ = tx.send(Ok(second_half)).await;
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    });
    let answered_before_signal = answered.load(std::sync::atomic::Ordering::SeqCst);
    let (exit, log) = served.wait(Duration::from_secs(15));
    assert_eq!(exit.code(), Some(0), "exit {exit:?}\n{log}");
    assert!(log.contains("\"stopped\""), "{log}");

    let (stored, pull_requests): (Vec<(String, String, Option<i64>)>, i64) =
        runtime.block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
                .await
                .unwrap();
            let stored = sqlx::query_as(
                "SELECT d.request_id, d.outcome, p.number FROM deliveries d \
                 LEFT JOIN pull_requests p ON p.number = d.pr_number",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let count = sqlx::query_scalar("SELECT count(*) FROM pull_requests")
                .fetch_one(&pool)
                .await
                .unwrap();
            (stored, count)
        });
    let mut ok = 0;
    for (i, result) in &outcomes {
        let id = format!("burst-{i}");
        let rows: Vec<_> = stored.iter().filter(|r| r.0 == id).collect();
        match result {
            Ok(status) if (200..300).contains(status) => {
                ok += 1;
                assert_eq!(
                    rows,
                    [&(id.clone(), "processed".to_owned(), Some(1000 + *i as i64))],
                    "{id} was answered {status}: stored with its pull request"
                );
            }
            _ => assert!(
                rows.iter().all(|r| r.1 != "processed"),
                "{id} was not answered 2xx ({result:?}) but is stored: {rows:?}"
            ),
        }
    }
    assert_eq!(
        pull_requests, ok as i64,
        "as many pull requests as 2xx answers (nothing stored without its answer)"
    );
    assert!(
        ok >= 10.min(answered_before_signal),
        "the deliveries answered before the signal were 2xx: {outcomes:?}"
    );
    eprintln!(
        "{signal}: {ok} of {} deliveries answered 2xx and stored, {} not; the slow ones: {:?}",
        outcomes.len(),
        outcomes.len() - ok,
        &outcomes[..SLOW]
    );
}

/// A stream of the chunks sent on `rx`, for a request body sent in parts.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[test]
fn sigterm_with_deliveries_in_flight_answers_and_commits_or_refuses() {
    a_stop_in_the_middle_of_a_burst("-TERM");
}

#[test]
fn sigint_with_deliveries_in_flight_answers_and_commits_or_refuses() {
    a_stop_in_the_middle_of_a_burst("-INT");
}

/// The console room (no room configured): a delivered PR becomes one line on standard output,
/// after the coalescing window.
#[test]
fn the_console_room_prints_the_message_on_stdout() {
    use crate::helpers::own_fixture;
    use pr_reminder::signature::sign;

    let secret = "console-secret";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pr-reminder.toml");
    std::fs::write(&config, "[notify]\ncoalesce_seconds = 0.2\n").unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--config", config.to_str().unwrap()])
        .env("PR_REMINDER_DATABASE", dir.path().join("state.db"))
        .env("PR_REMINDER_WEBHOOK_SECRET", secret);
    let mut served = serve(cmd, true);

    let body = serde_json::to_vec(&own_fixture("pullrequest_created.json")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/webhooks/bitbucket",
                served.port
            ))
            .header("Content-Type", "application/json")
            .header("X-Event-Key", "pullrequest:created")
            .header("X-Request-UUID", "console-1")
            .header("X-Hub-Signature", sign(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);

    let stdout = served.stdout.take().unwrap();
    let line = stdout
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("nothing printed:\n{}", served.log.lock().unwrap()));
    assert_eq!(
        line,
        "[pr-reminder → console] Needs review from Bob Reviewer, Carol Reviewer: Retry card captures on gateway timeouts \
         (acme/payments-api #42) by Alice Author \
         <https://bitbucket.org/acme/payments-api/pull-requests/42> — 0/2 approvals"
    );
    served.signal("-TERM");
    let (exit, log) = served.wait(Duration::from_secs(15));
    assert!(exit.success(), "exit {exit:?}\n{log}");
    let rest: Vec<String> = stdout.try_iter().collect();
    assert_eq!(
        rest,
        Vec::<String>::new(),
        "one line, nothing else on stdout"
    );
}

/// Under a low open-file limit (320 here: 64 connections), 80 clients that send a head and then
/// stall their bodies would hold every connection for `body_timeout` (4 s here), and a health
/// check would wait behind them. Past half the cap in slow bodies a body gets 0.5 s instead, so
/// the slots turn over and the health check is answered well before the slow bodies' timeout.
#[test]
fn slow_bodies_cannot_hold_a_low_connection_cap() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::helpers::clean_command("sh");
    cmd.current_dir(dir.path())
        .env("PR_REMINDER_WEBHOOK_SECRET", "a-secret")
        .args([
            "-c",
            "ulimit -Sn 320 && ulimit -Hn 320 && exec \"$0\" \"$@\"",
            BIN,
            "--config",
            "config.toml",
        ]);
    std::fs::write(dir.path().join("config.toml"), "body_timeout_seconds = 4\n").unwrap();
    let served = serve(cmd, false);
    let address = format!("127.0.0.1:{}", served.port);
    let head = format!(
        "POST /webhooks/bitbucket HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         X-Event-Key: pullrequest:created\r\nContent-Length: 1000\r\n\r\n{{\"pullrequest\":"
    );
    let slow: Vec<std::net::TcpStream> = (0..80)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Let the server take in what it will.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut health = std::net::TcpStream::connect(&address).unwrap();
    health
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    health
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    health.read_to_string(&mut answer).unwrap();
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited < Duration::from_secs(3),
        "the health check waited {waited:?} behind slow bodies:\n{}",
        served.log.lock().unwrap()
    );
    // The slow ones were told why: 0.5 s while more than 32 were being read, 4 s after.
    let (mut quick, mut cut) = (0, 0);
    for mut stream in slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        cut += 1;
        if answer.contains("the body did not arrive within 500 ms") {
            quick += 1;
        } else {
            assert!(answer.contains("within 4000 ms"), "{answer}");
        }
    }
    assert_eq!(cut, 80, "every slow body got 408");
    assert!(quick > 32, "{quick} cut short under pressure");
}

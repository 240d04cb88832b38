//! docker-compose.yml as it runs: each pr-reminder service started exactly as compose starts its
//! container (the image's entrypoint and environment from the Dockerfile, the service's command,
//! `.env` made from .env.example as a person fills it in, the service's `environment`
//! interpolated from it, and ./pr-reminder.toml made from pr-reminder.example.toml mounted
//! where the service mounts it), with the real binary. Only what a container has of its own
//! differs: the listening port (0: the host has other services on 8080), the host folders behind
//! the mounts, and (PostgreSQL) the address of the `postgres` service.
//!
//! The settings file asks for the digest every 3 seconds on every day of the week with no quiet
//! hours, so the outcome is the same at any instant; the digest must reach a fake chat room on
//! that schedule, by the service's own clock (the sweep's recorded time falls on a scheduled
//! instant the service logged). No engine is needed: CI validates the file with `docker compose
//! config` and runs this test.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_norway::Value as Yaml;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::own_fixture;
use pr_reminder::signature::sign;

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");
/// The webhook secret the person puts in `.env`.
pub(crate) const SECRET: &str = "compose-webhook-secret-0123456789";
/// The schedule they put in pr-reminder.toml for this test: every 3 seconds.
const SCHEDULE: &str = "*/3 * * * * *";

fn repository_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// docker-compose.yml with its anchors resolved and its `<<` merge keys applied.
fn compose_file() -> Yaml {
    let text = std::fs::read_to_string(repository_file("docker-compose.yml")).unwrap();
    let mut value: Yaml = serde_norway::from_str(&text).unwrap();
    // A merged mapping may hold a merge key of its own (a replica merges `x-pr-reminder-replica`,
    // which merges `x-pr-reminder`): merge until none is left.
    for _ in 0..8 {
        let before = value.clone();
        value.apply_merge().unwrap();
        if value == before {
            return value;
        }
    }
    panic!("merge keys nested deeper than 8")
}

/// The Dockerfile's runtime stage: ENTRYPOINT, ENV and WORKDIR.
struct Image {
    entrypoint: Vec<String>,
    env: BTreeMap<String, String>,
    workdir: String,
}

fn image() -> Image {
    let text = std::fs::read_to_string(repository_file("Dockerfile")).unwrap();
    // The last stage is the one that runs.
    let runtime = &text[text.rfind("\nFROM ").expect("a FROM")..];
    // Instructions with their continuation lines joined.
    let joined = runtime.replace("\\\n", " ");
    let mut image = Image {
        entrypoint: Vec::new(),
        env: BTreeMap::new(),
        workdir: "/".into(),
    };
    for line in joined.lines().map(str::trim) {
        if let Some(json) = line.strip_prefix("ENTRYPOINT ") {
            image.entrypoint = serde_json::from_str(json).expect("ENTRYPOINT in exec form");
        } else if let Some(pairs) = line.strip_prefix("ENV ") {
            for pair in pairs.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV key=value");
                image.env.insert(k.into(), v.into());
            }
        } else if let Some(dir) = line.strip_prefix("WORKDIR ") {
            image.workdir = dir.trim().into();
        }
    }
    assert_eq!(
        image.entrypoint,
        ["pr-reminder"],
        "the image runs the binary"
    );
    image
}

/// `.env` as a person fills in .env.example: its lines, with `values` set (uncommented where
/// the example has them commented, added otherwise).
pub(crate) fn dotenv(values: &[(&str, &str)]) -> BTreeMap<String, String> {
    let example = std::fs::read_to_string(repository_file(".env.example")).unwrap();
    let mut env = BTreeMap::new();
    for line in example.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').expect("KEY=value");
        env.insert(k.to_owned(), v.to_owned());
    }
    for (k, v) in values {
        assert!(
            example.contains(&format!("#{k}=")) || example.contains(&format!("\n{k}=")),
            ".env.example does not tell of {k}"
        );
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// Compose's interpolation of `text`: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$$`.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').expect("closed ${...}");
            let expr = &body[..end];
            rest = &body[end + 1..];
            let value = if let Some((name, default)) = expr.split_once(":-") {
                vars.get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_owned())
            } else if let Some((name, default)) = expr.split_once('-') {
                vars.get(name)
                    .cloned()
                    .unwrap_or_else(|| default.to_owned())
            } else {
                vars.get(expr).cloned().unwrap_or_default()
            };
            out.push_str(&value);
        } else {
            panic!("unsupported interpolation in {text}");
        }
    }
    out.push_str(rest);
    out
}

fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's container as compose would start it: its program and arguments, environment and
/// working folder, with container paths moved to the host folders `mounts` gives for them.
pub(crate) struct Container {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: PathBuf,
}

/// Service `name` of docker-compose.yml, with `.env` = `dotenv` (compose reads it both for
/// interpolation and as the service's `env_file`), each mount target at the host path `mounts`
/// gives (every mount of the service must have one), and `addresses` rewriting other services'
/// addresses in the environment (compose's network).
pub(crate) fn container(
    name: &str,
    dotenv: &BTreeMap<String, String>,
    mounts: &HashMap<&str, PathBuf>,
    addresses: &[(String, String)],
) -> Container {
    let compose = compose_file();
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "no service {name}");
    let image = image();
    assert_eq!(
        scalar(&service["image"]),
        "pr-reminder:latest",
        "{name} runs the image the Dockerfile builds"
    );
    assert!(
        service.get("entrypoint").is_none(),
        "{name} keeps the image's entrypoint"
    );
    let command: Vec<String> = service["command"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} says its command"))
        .iter()
        .map(scalar)
        .collect();

    // Image ENV, then env_file (.env), then environment: compose's order of precedence.
    let mut env = image.env.clone();
    let env_files: Vec<String> = service["env_file"]
        .as_sequence()
        .map(|files| {
            files
                .iter()
                .map(|f| scalar(if f.is_mapping() { &f["path"] } else { f }))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(env_files, [".env"], "{name} reads .env");
    env.extend(dotenv.clone());
    for (k, v) in service["environment"].as_mapping().expect("environment") {
        env.insert(scalar(k), interpolate(&scalar(v), dotenv));
    }

    // Every mount target, at its host path.
    let mut targets: Vec<String> = Vec::new();
    for volume in service["volumes"].as_sequence().into_iter().flatten() {
        let target = match volume {
            Yaml::String(short) => short.split(':').nth(1).expect("source:target").to_owned(),
            long => {
                if scalar(&long["type"]) == "bind" {
                    assert_eq!(
                        long["read_only"],
                        Yaml::Bool(true),
                        "{name}: bind mounts are read-only"
                    );
                }
                scalar(&long["target"])
            }
        };
        targets.push(target);
    }
    for tmpfs in service["tmpfs"].as_sequence().into_iter().flatten() {
        targets.push(scalar(tmpfs));
    }
    let host = |target: &str| {
        mounts
            .get(target)
            .unwrap_or_else(|| panic!("{name} mounts {target}: give its host path"))
            .clone()
    };
    let moved = |value: &str| -> String {
        // The longest mount target that the value is under.
        let mut best: Option<&String> = None;
        for target in &targets {
            let under = value == target || value.starts_with(&format!("{target}/"));
            if under && best.is_none_or(|b| b.len() < target.len()) {
                best = Some(target);
            }
        }
        match best {
            Some(target) => format!("{}{}", host(target).display(), &value[target.len()..]),
            None => value.to_owned(),
        }
    };
    let mut env: BTreeMap<String, String> = env
        .into_iter()
        .map(|(k, v)| {
            let mut v = moved(&v);
            for (from, to) in addresses {
                v = v.replace(from, to);
            }
            (k, v)
        })
        .collect();
    // The port is the container's own; here the host's other services may hold 8080.
    let listen = env
        .get_mut("PR_REMINDER_LISTEN")
        .expect("the service listens");
    let (address, _) = listen.rsplit_once(':').unwrap();
    *listen = format!("{address}:0");

    Container {
        program: image.entrypoint[0].clone(),
        args: command,
        env,
        workdir: PathBuf::from(moved(&image.workdir)),
    }
}

/// pr-reminder.toml as a person makes it from pr-reminder.example.toml for this test: the time
/// zone, every day a working day, and the schedule, uncommented and set (each line must be in
/// the example as it ships).
pub(crate) fn settings_file() -> String {
    let mut text = std::fs::read_to_string(repository_file("pr-reminder.example.toml")).unwrap();
    for (line, set) in [
        (
            "# timezone = \"UTC\"",
            "timezone = \"Europe/Berlin\"".to_owned(),
        ),
        (
            "# working_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]",
            "working_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]"
                .to_owned(),
        ),
        ("# schedule = \"\"", format!("schedule = \"{SCHEDULE}\"")),
    ] {
        assert_eq!(text.matches(line).count(), 1, "the example's `{line}`");
        text = text.replace(line, &set);
    }
    text
}

/// A running container: its process and its log lines (JSON), read by a thread of its own.
pub(crate) struct Running {
    child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<Value>>>,
}

impl Container {
    /// Starts it (`pr-reminder` is the binary under test) and waits until it listens.
    pub(crate) fn start(&self) -> Running {
        assert_eq!(self.program, "pr-reminder");
        std::fs::create_dir_all(&self.workdir).unwrap();
        let mut command = Command::new(BIN);
        command.args(&self.args).env_clear().envs(&self.env);
        // The test run's clock, as every process a test starts gets it: libfaketime's variables
        // and TZ (.ci/run runs the API tests again on a shifted clock). Nothing else of the
        // test's environment.
        for (name, value) in std::env::vars_os() {
            let clock = name.to_str().is_some_and(|n| {
                matches!(n, "LD_PRELOAD" | "FAKETIME" | "TZ") || n.starts_with("FAKETIME_")
            });
            if clock {
                command.env(name, value);
            }
        }
        let mut child = command
            .current_dir(&self.workdir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line.clone()));
                if let Some(port) = value["fields"]["port"].as_u64() {
                    let _ = port_tx.send(port as u16);
                }
                lines.lock().unwrap().push(value);
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("did not start: {:#?}", log.lock().unwrap()));
        Running { child, port, log }
    }
}

impl Running {
    /// The instants the service said its schedule would sweep at (`next scheduled sweep`).
    pub(crate) fn scheduled(&self) -> Vec<chrono::DateTime<chrono::Utc>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["fields"]["message"] == "next scheduled sweep")
            .map(|v| {
                let next = v["fields"]["next"].as_str().unwrap();
                chrono::NaiveDateTime::parse_from_str(next, "%Y-%m-%d %H:%M:%S UTC")
                    .unwrap_or_else(|e| panic!("{next}: {e}"))
                    .and_utc()
            })
            .collect()
    }

    /// SIGTERM, then the exit status (a graceful stop: success).
    pub(crate) fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{status:?}: {:#?}",
                    self.log.lock().unwrap()
                );
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fake Slack-compatible room (an incoming webhook: 200 `ok`).
pub(crate) async fn fake_room() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    server
}

/// The digests the fake room got: (the text it got).
pub(crate) async fn digests(room: &MockServer) -> Vec<String> {
    room.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|body| body.to_string())
        .filter(|text| text.contains("waiting for review"))
        .collect()
}

/// A Bitbucket Cloud delivery of the fixture PR (#42 of acme/payments-api), signed with
/// `SECRET`, to the service on `port`: asserted processed.
pub(crate) async fn deliver(port: u16) {
    let body = serde_json::to_vec(&own_fixture("pullrequest_created.json")).unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/bitbucket"))
        .header("Content-Type", "application/json")
        .header("X-Event-Key", "pullrequest:created")
        .header("X-Request-UUID", "compose-1")
        .header("X-Hub-Signature", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "processed", "{answer}");
}

/// Waits (at most 20 s) until the room has `n` digests.
pub(crate) async fn wait_for_digests(room: &MockServer, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let got = digests(room).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} digest(s) after 20 s",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one posted sweep: it was the schedule's, for the room `slack`, at an instant the service
/// said it would sweep at (within the moment a sweep takes).
pub(crate) fn assert_posted_on_schedule(
    posted: &[(String, String, String)],
    scheduled: &[chrono::DateTime<chrono::Utc>],
) {
    assert_eq!(posted.len(), 1, "one posted digest: {posted:?}");
    let (room, trigger, at) = &posted[0];
    assert_eq!((room.as_str(), trigger.as_str()), ("slack", "schedule"));
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc();
    assert!(
        scheduled
            .iter()
            .any(|next| at >= *next && at - *next < chrono::Duration::seconds(2)),
        "posted at {at}, scheduled {scheduled:?}"
    );
    // Every scheduled instant is one of the schedule's: a multiple of 3 seconds.
    assert!(scheduled.len() >= 2, "{scheduled:?}");
    for next in scheduled {
        assert_eq!(chrono::Timelike::second(next) % 3, 0, "{next}");
    }
}

/// The SQLite service: started as compose starts `pr-reminder`, it takes a delivery and, on the
/// configured schedule, posts the digest to the room `.env` names.
#[tokio::test]
async fn the_compose_service_posts_the_digest_on_its_schedule() {
    let room = fake_room().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("pr-reminder.toml");
    std::fs::write(&settings, settings_file()).unwrap();
    let data = dir.path().join("data");
    let mounts = HashMap::from([
        ("/data", data.clone()),
        ("/config/pr-reminder.toml", settings),
    ]);
    let room_url = format!("{}/services/T0/B0/secret", room.uri());
    let env = dotenv(&[
        ("PR_REMINDER_WEBHOOK_SECRET", SECRET),
        ("PR_REMINDER_SLACK_WEBHOOK_URL", &room_url),
        ("PR_REMINDER_LOG_FORMAT", "json"),
    ]);
    let container = container("pr-reminder", &env, &mounts, &[]);
    assert_eq!(container.args, ["serve"]);
    assert_eq!(
        container.env["PR_REMINDER_CONFIG"],
        mounts["/config/pr-reminder.toml"].display().to_string()
    );
    let running = container.start();

    deliver(running.port).await;
    let got = wait_for_digests(&room, 1).await;
    assert!(
        got[0].contains("1 pull request waiting for review")
            && got[0].contains("Retry card captures on gateway timeouts"),
        "{got:?}"
    );
    let posted: Vec<(String, String, String)> = {
        let db = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}?mode=ro",
            data.join("pr-reminder.db").display()
        ))
        .await
        .unwrap();
        sqlx::query_as("SELECT room, trigger, at FROM sweeps WHERE outcome = 'posted'")
            .fetch_all(&db)
            .await
            .unwrap()
    };
    assert_posted_on_schedule(&posted, &running.scheduled());
    running.stop();
}

/// .env.example holds secrets and compose's own variables only: a setting there would win over
/// pr-reminder.toml (every PR_REMINDER_* variable does) without a person seeing it.
#[test]
fn the_env_example_sets_nothing_but_the_webhook_secret() {
    let set = dotenv(&[]);
    assert_eq!(
        set.keys().collect::<Vec<_>>(),
        ["PR_REMINDER_WEBHOOK_SECRET"],
        "{set:?}"
    );
}

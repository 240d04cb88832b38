//! What the replicas test runs against: the real binary as separate processes (each its own
//! configuration, the same database), a fake HipChat server that records which replica sent
//! what and when, and the Cloud deliveries it sends.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_pr-reminder");

/// The webhook secret every replica verifies `X-Hub-Signature` against.
pub const SECRET: &str = "replicas-webhook-secret";
/// The bearer token of `POST /sweep` on every replica.
pub const SWEEP_TOKEN: &str = "replicas-sweep-token-0123456789";
/// The two rooms and the repository globs routed to each: "in order per room" is checked per
/// room, one room holding two repositories.
pub const ROOMS: [(&str, &str); 2] = [("backend", "acme/*"), ("web", "web/*")];
/// How long the fake chat takes to answer: long enough that a replica is often caught with a
/// message in flight.
pub const CHAT_DELAY: Duration = Duration::from_millis(30);

/// Log lines kept per replica for failure messages: the last ones, and the last warnings and
/// errors (the info lines of a thousand deliveries would bury them).
const LOG_LINES: usize = 20;

/// One `pr-reminder serve` process.
pub struct Replica {
    /// `replica-N`: also the `auth_token` of its room URLs, so the fake chat knows the sender.
    pub name: String,
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    child: Child,
    log: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    last: VecDeque<String>,
    troubles: VecDeque<String>,
}

impl Log {
    fn push(&mut self, line: String, trouble: bool) {
        for (ring, keep) in [(&mut self.last, true), (&mut self.troubles, trouble)] {
            if keep {
                if ring.len() == LOG_LINES {
                    ring.pop_front();
                }
                ring.push_back(line.clone());
            }
        }
    }

    fn tail(&self) -> String {
        let lines = |ring: &VecDeque<String>| ring.iter().cloned().collect::<Vec<_>>().join("\n");
        format!(
            "last warnings and errors:\n{}\nlast lines:\n{}",
            lines(&self.troubles),
            lines(&self.last)
        )
    }
}

impl Replica {
    /// Starts replica `index` on `database` with rooms at `chat` (the fake's address); blocks
    /// until it logs its port (it has applied the migrations by then), at most 30 s.
    pub fn start(index: usize, dir: &Path, database: &str, chat: &str) -> Replica {
        let name = format!("replica-{index}");
        let config = write_config(dir, &name, chat);
        let mut child = crate::command::clean_command(BIN)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .env("PR_REMINDER_LISTEN", "127.0.0.1:0")
            .env("PR_REMINDER_DATABASE", database)
            .env("PR_REMINDER_WEBHOOK_SECRET", SECRET)
            .env("PR_REMINDER_SWEEP_TOKEN", SWEEP_TOKEN)
            .args(["--config", config.to_str().unwrap()])
            .args(["--log-format", "json", "serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting pr-reminder");
        let log = Arc::new(Mutex::new(Log::default()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str::<Value>(&line).unwrap_or(Value::Null);
                if let Some(port) = value["fields"]["port"].as_u64() {
                    let _ = port_tx.send(port as u16);
                }
                let trouble = !matches!(value["level"].as_str(), Some("INFO" | "DEBUG" | "TRACE"));
                sink.lock().unwrap().push(line, trouble);
            }
        });
        let port = match port_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} logged no port:\n{}", log.lock().unwrap().tail());
            }
        };
        Replica {
            address: format!("http://127.0.0.1:{port}"),
            name,
            child,
            log,
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the killed replica");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The last log lines, for a failure message.
    pub fn log_tail(&self) -> String {
        format!("--- {} ---\n{}", self.name, self.log.lock().unwrap().tail())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration file of replica `name`: two HipChat rooms at the fake (its `auth_token`
/// names the replica), a 200 ms coalescing window, the highest room rate, quick retries, and
/// sweeps on every day of the week with no quiet hours (the test runs on the wall clock).
fn write_config(dir: &Path, name: &str, chat: &str) -> PathBuf {
    let mut text = String::from(
        "[notify]\ncoalesce_seconds = 0.2\nmax_attempts = 10\ntimeout_seconds = 5\n\
         retry_min_ms = 50\nretry_max_seconds = 1\nroom_rate_per_minute = 6000\n\n\
         [sweep]\nworking_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n",
    );
    for (room, _) in ROOMS {
        text.push_str(&format!(
            "\n[[rooms]]\nname = \"{room}\"\n\
             hipchat_url = \"{chat}/v2/room/{room}/notification?auth_token={name}\"\n"
        ));
    }
    for (room, glob) in ROOMS {
        text.push_str(&format!(
            "\n[[routes]]\nrepositories = [\"{glob}\"]\nroom = \"{room}\"\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing a replica's configuration");
    path
}

/// One request the fake chat received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// When it arrived (before the fake's answer, which comes `CHAT_DELAY` later).
    pub at: Instant,
    /// The room in its path (`/v2/room/{room}/notification`).
    pub room: String,
    /// The replica that sent it (its `auth_token`).
    pub sender: String,
    /// HipChat's `message` (HTML).
    pub html: String,
}

impl Hit {
    /// The PRs the message links to, in order, each once: `workspace/slug#number`.
    pub fn prs(&self) -> Vec<String> {
        linked_prs(&self.html)
    }
}

/// The PRs an HTML message links to (`<a href="https://bitbucket.org/{repo}/pull-requests/{n}">`),
/// in order of first mention, each once.
pub fn linked_prs(html: &str) -> Vec<String> {
    const LINK: &str = "href=\"https://bitbucket.org/";
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for chunk in html.split(LINK).skip(1) {
        let Some(end) = chunk.find('"') else { continue };
        if let Some((repository, number)) = chunk[..end].split_once("/pull-requests/") {
            let key = format!("{repository}#{number}");
            if seen.insert(key.clone()) {
                out.push(key);
            }
        }
    }
    out
}

/// Records every request, answers 204 (HipChat's yes) after `CHAT_DELAY`.
struct Recorder(Arc<Mutex<Vec<Hit>>>);

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let sender = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "auth_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.0.lock().unwrap().push(Hit {
            at: Instant::now(),
            room: request
                .url
                .path()
                .split('/')
                .nth(3)
                .unwrap_or_default()
                .to_owned(),
            sender,
            html: body["message"].as_str().unwrap_or_default().to_owned(),
        });
        ResponseTemplate::new(204).set_delay(CHAT_DELAY)
    }
}

/// The fake HipChat server all rooms of all replicas post to.
pub struct FakeChat {
    server: MockServer,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl FakeChat {
    pub async fn start() -> FakeChat {
        let server = MockServer::start().await;
        let hits = Arc::new(Mutex::new(Vec::new()));
        Mock::given(any())
            .respond_with(Recorder(hits.clone()))
            .mount(&server)
            .await;
        FakeChat { server, hits }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Every request so far, in order of arrival.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// The repository a delivery's PR is in: three, two of them routed to `backend`.
pub const REPOSITORIES: [&str; 3] = ["acme/payments-api", "acme/billing", "web/site"];

/// The room a repository is routed to.
pub fn room_of(repository: &str) -> &'static str {
    if repository.starts_with("acme/") {
        "backend"
    } else {
        "web"
    }
}

/// A Cloud `pullrequest:created` delivery for a new PR, `number` in `repository`: the project's
/// own fixture (`tests/fixtures/cloud/pullrequest_created.json`, Bitbucket's documented shape)
/// moved to that repository and number, created two hours ago, two reviewers, no approval.
pub fn pr_created(template: &Value, repository: &str, number: i64) -> Vec<u8> {
    let mut body = template.clone();
    let uuid = format!("{{repo:{repository}}}");
    for path in [
        "/repository",
        "/pullrequest/source/repository",
        "/pullrequest/destination/repository",
    ] {
        let place = body.pointer_mut(path).expect("a repository in the fixture");
        place["full_name"] = json!(repository);
        place["uuid"] = json!(uuid);
    }
    let now = chrono::Utc::now();
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
    let pr = &mut body["pullrequest"];
    pr["id"] = json!(number);
    pr["title"] = json!(format!("Replicated change {number}"));
    pr["created_on"] = json!(stamp(now - chrono::Duration::hours(2)));
    pr["updated_on"] = json!(stamp(now - chrono::Duration::hours(1)));
    pr["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{repository}/pull-requests/{number}"
    ));
    serde_json::to_vec(&body).unwrap()
}

/// The fixture the deliveries are made from.
pub fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloud/pullrequest_created.json");
    serde_json::from_slice(&std::fs::read(&path).expect("reading the PR fixture")).unwrap()
}

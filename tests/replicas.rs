//! Three replicas of the binary on loopback sharing one PostgreSQL database (issue 14).
//!
//! 1,000 signed Cloud deliveries (each a new PR, in three repositories routed to two HipChat
//! rooms) are spread over the replicas, some redelivered to another replica once acknowledged
//! and some sent to all three at the same instant. With one third still to go, the replica that
//! is sending chat messages is killed with SIGKILL; the rest goes to the two survivors, and the
//! killed one is started again (a new process) once the ingest is over. Then:
//! - every acknowledged request id is one `processed` row in `deliveries`, and nothing else is;
//!   every redelivery was answered as a duplicate;
//! - the outbox drains completely (every row `sent`, none failed or stuck) within a bound;
//! - every PR is announced exactly once, and in each room in outbox id order; the one exception
//!   the contract allows is a message the killed replica had posted but not yet recorded as sent
//!   (its last request to that room), whose PRs may be announced once more by its successor;
//! - three `POST /sweep` at the same instant, one per replica, post one digest per room.
//!
//! More than 10 PRs' news due at once in a room go out as ONE summary listing each PR's message
//! (oldest first), and at this rate most news does: the announcements are therefore counted by
//! the PR links in every message (a single announcement or a summary alike), and the order is the
//! order of those links across the room's messages.
//!
//! Without a PostgreSQL server (`PR_REMINDER_TEST_POSTGRES`, see `scripts/test-postgres.sh`) the
//! test says so and passes over it; under `CI=true` it fails instead.

#[path = "common/command.rs"]
mod command;
#[path = "replicas/harness.rs"]
mod harness;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pr_reminder::signature::sign;
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

use harness::{room_of, FakeChat, Hit, Replica, CHAT_DELAY, REPOSITORIES, ROOMS, SWEEP_TOKEN};

/// Deliveries of new PRs, each with its own request id.
const DELIVERIES: usize = 1000;
/// Requests in flight at once, over all replicas.
const CONCURRENCY: usize = 24;
/// The delivery at which a replica is killed: one third are still to go.
const KILL_AT: usize = DELIVERIES * 2 / 3;
/// If no replica is caught with a chat message in flight within this many more deliveries, the
/// last one that sent a message is killed anyway.
const KILL_WITHIN: usize = 60;
/// Every `REDELIVER_EVERY`th delivery is sent again, to another replica, once acknowledged.
const REDELIVER_EVERY: usize = 7;
/// Every `RACE_EVERY`th delivery of the first half is sent to all three replicas at once.
const RACE_EVERY: usize = 25;
/// How long the outbox may take to drain once the ingest is over.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);
/// A message the chat answered this long before the kill has been recorded as sent.
const RECORDED_WITHIN: Duration = Duration::from_secs(1);
/// How soon after the kill a room the killed replica was sending to gets its next message from
/// another replica: its lease is taken over at once when its holder dies (a survivor looks every
/// 2 s), with room for a loaded machine.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Sent to one replica (another if that one cannot be reached).
    Once,
    /// Sent once, then again to another replica after its acknowledgment.
    Redelivered,
    /// Sent to every live replica at the same instant.
    Raced,
}

/// One delivery.
struct Item {
    index: usize,
    request_id: String,
    repository: &'static str,
    number: i64,
    body: Vec<u8>,
    signature: String,
    kind: Kind,
}

impl Item {
    fn key(&self) -> String {
        format!("{}#{}", self.repository, self.number)
    }
}

/// One request to a replica's webhook route and how it ended.
#[derive(Debug)]
struct Sent {
    request_id: String,
    replica: usize,
    /// Whether it was the redelivery of an acknowledged delivery.
    redelivery: bool,
    /// (status, JSON answer), or why no answer came.
    result: Result<(u16, Value), String>,
}

/// What the delivering tasks share.
struct Ingest {
    client: reqwest::Client,
    addresses: Vec<String>,
    alive: Vec<AtomicBool>,
    sent: Mutex<Vec<Sent>>,
    acknowledged: AtomicUsize,
}

impl Ingest {
    /// The first live replica from `start` on, in rotation.
    fn live_from(&self, start: usize) -> usize {
        let n = self.addresses.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&r| self.alive[r].load(Ordering::SeqCst))
            .expect("a live replica")
    }

    async fn post(&self, replica: usize, item: &Item, redelivery: bool) -> bool {
        let result = self
            .client
            .post(format!("{}/webhooks/bitbucket", self.addresses[replica]))
            .header("Content-Type", "application/json")
            .header("X-Event-Key", "pullrequest:created")
            .header("X-Request-UUID", &item.request_id)
            .header("X-Hub-Signature", &item.signature)
            .header("X-Attempt-Number", if redelivery { "2" } else { "1" })
            .body(item.body.clone())
            .send()
            .await;
        let result = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Ok(text) => Ok((
                        status,
                        serde_json::from_str(&text).unwrap_or_else(|_| json!({"not json": text})),
                    )),
                    Err(err) => Err(format!("reading the answer: {err}")),
                }
            }
            Err(err) => Err(format!("{err}")),
        };
        let acknowledged = matches!(result, Ok((200..=299, _)));
        self.sent.lock().unwrap().push(Sent {
            request_id: item.request_id.clone(),
            replica,
            redelivery,
            result,
        });
        acknowledged
    }

    /// Sends until some live replica acknowledges it (at most 6 tries); the replica that did.
    async fn deliver(&self, item: &Item, first: usize, redelivery: bool) -> Option<usize> {
        let mut target = first;
        for _ in 0..6 {
            let replica = self.live_from(target);
            if self.post(replica, item, redelivery).await {
                return Some(replica);
            }
            target = replica + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    async fn run(&self, item: Item) {
        let acknowledged = match item.kind {
            Kind::Raced => {
                let live: Vec<usize> = (0..self.addresses.len())
                    .filter(|&r| self.alive[r].load(Ordering::SeqCst))
                    .collect();
                let answers = futures_util::future::join_all(
                    live.iter().map(|&r| self.post(r, &item, false)),
                )
                .await;
                if answers.iter().any(|&ok| ok) {
                    Some(live[0])
                } else {
                    self.deliver(&item, item.index, false).await
                }
            }
            Kind::Once | Kind::Redelivered => self.deliver(&item, item.index, false).await,
        };
        if let (Kind::Redelivered, Some(by)) = (item.kind, acknowledged) {
            self.deliver(&item, by + 1, true).await;
        }
        if acknowledged.is_some() {
            self.acknowledged.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn items() -> Vec<Item> {
    let template = harness::template();
    (0..DELIVERIES)
        .map(|index| {
            let repository = REPOSITORIES[index % REPOSITORIES.len()];
            let number = (index / REPOSITORIES.len()) as i64 + 1;
            let body = harness::pr_created(&template, repository, number);
            let kind = if index % RACE_EVERY == 0 && index < DELIVERIES / 2 {
                Kind::Raced
            } else if index % REDELIVER_EVERY == 3 {
                Kind::Redelivered
            } else {
                Kind::Once
            };
            Item {
                index,
                request_id: format!("{{7e0a1c4e-0000-4000-8000-{index:012}}}"),
                repository,
                number,
                signature: sign(harness::SECRET, &body),
                body,
                kind,
            }
        })
        .collect()
}

/// The replica to kill now, if any: the one whose chat message is in flight (it has claimed
/// rows and holds its room), or, once `force`, the last one that sent anything (else the third).
fn victim(fake: &FakeChat, force: bool) -> Option<usize> {
    let hits = fake.hits();
    let last = hits.last();
    let index = |hit: &Hit| {
        hit.sender
            .strip_prefix("replica-")
            .and_then(|n| n.parse().ok())
            .expect("a replica's token")
    };
    match last {
        Some(hit) if hit.at.elapsed() < CHAT_DELAY => Some(index(hit)),
        _ if force => Some(last.map_or(2, index)),
        _ => None,
    }
}

/// Outbox rows by state.
async fn outbox_states(db: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT state::text, count(*) FROM outbox GROUP BY state")
        .fetch_all(db)
        .await
        .expect("reading the outbox")
        .into_iter()
        .collect()
}

/// The PRs whose news was sent to `room`, in outbox id order: `workspace/slug#number`.
async fn sent_in_order(db: &PgPool, room: &str) -> Vec<String> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT r.full_name, o.number::bigint FROM outbox o \
           JOIN repositories r ON r.repository_key = o.repository_key \
          WHERE o.room = $1 AND o.state = 'sent' AND o.kind = 'pull_request' ORDER BY o.id",
    )
    .bind(room)
    .fetch_all(db)
    .await
    .expect("reading the sent outbox rows")
    .into_iter()
    .map(|(repository, number)| format!("{repository}#{number}"))
    .collect()
}

/// A chat message in a line: who sent it when, its heading, how many PRs it lists.
fn describe(hit: &Hit, started: Instant, killed_at: Instant) -> String {
    let heading = hit.html.split("<br>").next().unwrap_or_default();
    let when = |at: Instant| at.saturating_duration_since(started).as_millis();
    format!(
        "{} at {} ms{}: {heading} ({} PRs)",
        hit.sender,
        when(hit.at),
        if hit.at > killed_at {
            " (after the kill)"
        } else {
            ""
        },
        hit.prs().len()
    )
}

fn logs(replicas: &[Replica]) -> String {
    replicas
        .iter()
        .map(Replica::log_tail)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `got` is `want`, element by element; on a difference, says where, with a few around it.
fn assert_same_sequence(what: &str, got: &[String], want: &[String]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let around = |v: &[String]| v[at.saturating_sub(3)..(at + 4).min(v.len())].to_vec();
    let (got_set, want_set): (HashSet<_>, HashSet<_>) =
        (got.iter().collect(), want.iter().collect());
    panic!(
        "{what}: the sequences differ first at position {at} (of {} received, {} expected)\n\
         received around it: {:?}\nexpected around it: {:?}\n\
         received but not expected: {:?}\nexpected but not received: {:?}",
        got.len(),
        want.len(),
        around(got),
        around(want),
        got_set.difference(&want_set).take(10).collect::<Vec<_>>(),
        want_set.difference(&got_set).take(10).collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_database() {
    let Some(database) = postgres::fresh_database("replicas").await else {
        return;
    };
    let started = Instant::now();
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&database)
        .await
        .expect("connecting to the test database");
    let fake = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();

    // Three replicas started at the same time: each applies the migrations at start.
    let mut replicas: Vec<Replica> = {
        let starts: Vec<_> = (0..3)
            .map(|i| {
                let (dir, database, chat) = (dir.path().to_owned(), database.clone(), fake.uri());
                tokio::task::spawn_blocking(move || Replica::start(i, &dir, &database, &chat))
            })
            .collect();
        let mut replicas = Vec::new();
        for start in starts {
            replicas.push(start.await.expect("a replica started"));
        }
        replicas
    };
    // They migrated this database (and not, say, a file of that name), all three at once.
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables \
          WHERE table_name IN ('deliveries', 'outbox', 'sweeps', 'pull_requests')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        tables,
        4,
        "the replicas did not create their tables in database {}\n{}",
        database.rsplit('/').next().unwrap_or_default(),
        logs(&replicas)
    );
    let ingest = Arc::new(Ingest {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        addresses: replicas.iter().map(|r| r.address.clone()).collect(),
        alive: (0..3).map(|_| AtomicBool::new(true)).collect(),
        sent: Mutex::new(Vec::new()),
        acknowledged: AtomicUsize::new(0),
    });

    // ---------------------------------------------------------------------------------------
    // Ingest, with a replica killed on the way.
    let items = items();
    let expected: Vec<(String, String, Kind)> = items
        .iter()
        .map(|i| (i.request_id.clone(), i.key(), i.kind))
        .collect();
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut killed: Option<(usize, Instant)> = None;
    for item in items {
        if item.index >= KILL_AT && killed.is_none() {
            let force = item.index >= KILL_AT + KILL_WITHIN;
            if let Some(v) = victim(&fake, force) {
                ingest.alive[v].store(false, Ordering::SeqCst);
                replicas[v].kill();
                killed = Some((v, Instant::now()));
                eprintln!(
                    "killed replica-{v} (SIGKILL) at {} ms, delivery {}, {} acknowledged, {}",
                    started.elapsed().as_millis(),
                    item.index,
                    ingest.acknowledged.load(Ordering::SeqCst),
                    if force {
                        "the last one to post to the chat"
                    } else {
                        "while its chat message was in flight"
                    }
                );
            }
        }
        let permit = limit.clone().acquire_owned().await.unwrap();
        let ingest = ingest.clone();
        tasks.spawn(async move {
            ingest.run(item).await;
            drop(permit);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a delivering task");
    }
    let (victim, killed_at) = killed.expect("a replica was killed");
    eprintln!(
        "ingest done in {:.1} s; {} requests",
        started.elapsed().as_secs_f64(),
        ingest.sent.lock().unwrap().len()
    );

    // The killed replica comes back as a new process (as an orchestrator restarts it) while the
    // outbox is still draining; it gets its own token, so its messages are told apart.
    let restarted = {
        let (dir, database, chat) = (dir.path().to_owned(), database.clone(), fake.uri());
        tokio::task::spawn_blocking(move || Replica::start(3, &dir, &database, &chat))
            .await
            .expect("the killed replica restarted")
    };
    replicas.push(restarted);

    // ---------------------------------------------------------------------------------------
    // Every answer, and every acknowledged delivery stored once.
    let sent = std::mem::take(&mut *ingest.sent.lock().unwrap());
    let mut by_id: HashMap<&str, Vec<&Sent>> = HashMap::new();
    for s in &sent {
        by_id.entry(s.request_id.as_str()).or_default().push(s);
        match &s.result {
            Ok((200, body)) => {
                let status = body["status"].as_str().unwrap_or_default();
                if status == "duplicate" {
                    assert_eq!(
                        body,
                        &json!({"status": "duplicate", "request_id": s.request_id})
                    );
                } else {
                    assert_eq!(status, "processed", "replica-{}: {body}", s.replica);
                    assert_eq!(body["request_id"], s.request_id.as_str(), "{body}");
                }
            }
            Ok((status, body)) => panic!(
                "replica-{} answered {status} to {}: {body}\n{}",
                s.replica,
                s.request_id,
                logs(&replicas)
            ),
            Err(err) => assert_eq!(
                s.replica, victim,
                "only the killed replica may fail to answer; {}: {err}",
                s.request_id
            ),
        }
    }
    let status_of = |s: &Sent| match &s.result {
        Ok((_, body)) => body["status"].as_str().unwrap_or_default().to_owned(),
        Err(_) => "no answer".to_owned(),
    };
    let (mut redelivered, mut raced, mut unanswered) = (0, 0, 0);
    for (request_id, _, kind) in &expected {
        let attempts = by_id.get(request_id.as_str()).map_or(&[][..], |v| &v[..]);
        let statuses: Vec<String> = attempts.iter().map(|s| status_of(s)).collect();
        let processed = statuses.iter().filter(|s| *s == "processed").count();
        let acknowledged = statuses
            .iter()
            .filter(|s| *s == "processed" || *s == "duplicate")
            .count();
        assert!(
            acknowledged >= 1,
            "{request_id} never acknowledged: {statuses:?}"
        );
        // Processed at most once; never processed means the killed replica stored it without
        // answering, so a survivor called the retry a duplicate.
        assert!(processed <= 1, "{request_id} processed twice: {statuses:?}");
        if processed == 0 {
            assert!(
                attempts
                    .iter()
                    .any(|s| s.replica == victim && s.result.is_err()),
                "{request_id} acknowledged only as a duplicate of nothing: {statuses:?}"
            );
            unanswered += 1;
        }
        // A redelivery after the acknowledgment, to another replica: a duplicate.
        for (k, s) in attempts.iter().enumerate().filter(|(_, s)| s.redelivery) {
            let original = attempts[..k]
                .iter()
                .rev()
                .find(|o| !o.redelivery && o.result.is_ok())
                .expect("the redelivered original");
            assert_ne!(
                s.replica, original.replica,
                "{request_id}: not another replica"
            );
            if s.result.is_ok() {
                assert_eq!(status_of(s), "duplicate", "{request_id}: {statuses:?}");
                redelivered += 1;
            }
        }
        // Sent to the three at once (before the kill): one processed it, two called it a duplicate.
        if *kind == Kind::Raced {
            assert_eq!(attempts.len(), 3, "{request_id}: {statuses:?}");
            let replicas: HashSet<usize> = attempts.iter().map(|s| s.replica).collect();
            assert_eq!(replicas.len(), 3, "{request_id}");
            assert_eq!(
                (processed, acknowledged),
                (1, 3),
                "{request_id}: {statuses:?}"
            );
            raced += 1;
        }
    }
    let redeliveries = expected
        .iter()
        .filter(|(_, _, kind)| *kind == Kind::Redelivered)
        .count();
    assert_eq!(
        redelivered, redeliveries,
        "every redelivery answered as a duplicate"
    );
    assert_eq!(raced, DELIVERIES / 2 / RACE_EVERY);
    eprintln!(
        "{redelivered} cross-replica redeliveries and {} of the raced ones answered duplicate; \
         {unanswered} stored by the killed replica without an answer",
        raced * 2
    );

    let stored: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT request_id, outcome::text, count(*) FROM deliveries GROUP BY request_id, outcome",
    )
    .fetch_all(&db)
    .await
    .expect("reading deliveries");
    let stored: BTreeMap<String, (String, i64)> = stored
        .into_iter()
        .map(|(id, outcome, n)| (id, (outcome, n)))
        .collect();
    let want: BTreeMap<String, (String, i64)> = expected
        .iter()
        .map(|(id, _, _)| (id.clone(), ("processed".to_owned(), 1)))
        .collect();
    if stored != want {
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !stored.contains_key(*k))
            .take(10)
            .collect();
        let wrong: Vec<_> = stored
            .iter()
            .filter(|(k, v)| want.get(*k) != Some(v))
            .take(10)
            .collect();
        panic!(
            "deliveries: {} request ids stored, {} expected; missing {missing:?}; \
             stored otherwise than once as processed: {wrong:?}",
            stored.len(),
            want.len()
        );
    }
    let prs: i64 = sqlx::query_scalar("SELECT count(*) FROM pull_requests")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(prs, DELIVERIES as i64, "one row per PR");

    // ---------------------------------------------------------------------------------------
    // The outbox drains: every row sent, none failed, pending, retrying or left 'sending'.
    let drained_from = Instant::now();
    loop {
        let states = outbox_states(&db).await;
        if states == BTreeMap::from([("sent".to_owned(), DELIVERIES as i64)]) {
            break;
        }
        assert!(
            !states.contains_key("failed"),
            "failed outbox rows: {states:?}\n{}",
            logs(&replicas)
        );
        assert!(
            drained_from.elapsed() < DRAIN_WITHIN,
            "the outbox did not drain within {DRAIN_WITHIN:?}: {states:?}\n{}",
            logs(&replicas)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "outbox drained {:.1} s after the ingest",
        drained_from.elapsed().as_secs_f64()
    );
    // Nothing more arrives once the outbox is drained (a late second copy would).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let announcements = fake.hits();
    assert!(
        replicas
            .iter_mut()
            .enumerate()
            .all(|(i, r)| i == victim || r.running()),
        "a replica died\n{}",
        logs(&replicas)
    );

    // ---------------------------------------------------------------------------------------
    // Every PR announced exactly once, in outbox id order per room.
    let mut per_sender: BTreeMap<&str, usize> = BTreeMap::new();
    for hit in &announcements {
        *per_sender.entry(hit.sender.as_str()).or_default() += 1;
    }
    eprintln!(
        "{} chat messages before the sweep, by sender: {per_sender:?}",
        announcements.len()
    );
    let victim_name = format!("replica-{victim}");
    // The rooms the killed replica was sending to, and how long each then waited for a message.
    let mut takeovers: Vec<(&str, Option<Duration>)> = Vec::new();
    for (room, _) in ROOMS {
        let hits: Vec<&Hit> = announcements.iter().filter(|h| h.room == room).collect();
        // The killed replica's last message to this room, if it was still unanswered or just
        // answered at the kill: it may not have been recorded as sent, and then its PRs are
        // posted again by the next holder of the room. (One answered well before the kill was
        // recorded: its PRs must not come again.)
        let limbo = hits
            .iter()
            .rposition(|h| h.sender == victim_name && h.at <= killed_at)
            .filter(|&k| killed_at.duration_since(hits[k].at) < CHAT_DELAY + RECORDED_WITHIN);
        if hits
            .iter()
            .rfind(|h| h.at <= killed_at)
            .is_some_and(|h| h.sender == victim_name)
        {
            let next = hits.iter().find(|h| h.at > killed_at);
            takeovers.push((room, next.map(|h| h.at.duration_since(killed_at))));
        }
        let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
        let mut received = Vec::new();
        for (k, hit) in hits.iter().enumerate() {
            for pr in hit.prs() {
                let at = seen.entry(pr.clone()).or_default();
                if at.is_empty() {
                    received.push(pr);
                }
                at.push(k);
            }
        }
        let mut again = 0;
        for (pr, at) in &seen {
            if at.len() == 1 {
                continue;
            }
            assert!(
                at.len() == 2 && Some(at[0]) == limbo && hits[at[1]].sender != victim_name,
                "{room}: {pr} announced {} times, in messages {at:?} of the room; the killed \
                 replica's last one before the kill ({} ms) is {limbo:?}. The room's messages:\n{}",
                at.len(),
                killed_at.duration_since(started).as_millis(),
                hits.iter()
                    .enumerate()
                    .map(|(k, hit)| format!("{k}: {}", describe(hit, started, killed_at)))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            again += 1;
        }
        let wanted: Vec<String> = expected
            .iter()
            .filter(|(_, key, _)| room_of(key) == room)
            .map(|(_, key, _)| key.clone())
            .collect();
        let in_order = sent_in_order(&db, room).await;
        let (mut a, mut b) = (in_order.clone(), wanted);
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "{room}: the outbox holds one sent row per PR routed here"
        );
        assert_same_sequence(
            &format!("{room}: PRs announced vs outbox id order"),
            &received,
            &in_order,
        );
        eprintln!(
            "{room}: {} messages announced {} PRs in outbox id order; {again} announced again \
             after the kill (the killed replica's last message {})",
            hits.len(),
            received.len(),
            if limbo.is_some() {
                "to this room"
            } else {
                "went elsewhere"
            }
        );
    }

    // ---------------------------------------------------------------------------------------
    // Three sweeps at the same instant, one per live replica: one digest per room.
    let live: Vec<String> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| r.address.clone())
        .collect();
    assert_eq!(live.len(), 3);
    let barrier = Arc::new(Barrier::new(live.len()));
    let sweeps = live.iter().map(|address| {
        let (barrier, client) = (barrier.clone(), ingest.client.clone());
        let request = client
            .post(format!("{address}/sweep"))
            .header("Authorization", format!("Bearer {SWEEP_TOKEN}"));
        async move {
            barrier.wait().await;
            let response = request.send().await.expect("POST /sweep");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.expect("a JSON report"),
            )
        }
    });
    let reports = futures_util::future::join_all(sweeps).await;
    let waiting: HashMap<&str, usize> = ROOMS
        .iter()
        .map(|(room, _)| {
            let n = expected
                .iter()
                .filter(|(_, key, _)| room_of(key) == *room)
                .count();
            (*room, n)
        })
        .collect();
    for (room, _) in ROOMS {
        let mut outcomes = Vec::new();
        for (status, report) in &reports {
            assert_eq!(*status, 200, "{report}");
            let entry = report["rooms"]
                .as_array()
                .and_then(|rooms| rooms.iter().find(|r| r["room"] == room))
                .unwrap_or_else(|| panic!("{room} missing from {report}"));
            assert_eq!(entry["waiting_review"], waiting[room], "{entry}");
            outcomes.push(entry["status"].as_str().unwrap_or_default().to_owned());
        }
        outcomes.sort();
        assert_eq!(
            outcomes,
            ["posted", "skipped", "skipped"],
            "{room}: {reports:?}"
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT outcome::text, count(*) FROM sweeps WHERE room = $1 GROUP BY outcome ORDER BY outcome",
        )
        .bind(room)
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(
            rows,
            [("posted".to_owned(), 1), ("skipped".to_owned(), 2)],
            "{room}: sweeps"
        );
    }
    // The digests reach the chat: one per room, and nothing else.
    let waited = Instant::now();
    let digests = loop {
        let hits = fake.hits();
        let digests = hits[announcements.len()..].to_vec();
        if digests.len() >= ROOMS.len() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            break fake.hits()[announcements.len()..].to_vec();
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "digests received: {digests:?}\n{}",
            logs(&replicas)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut rooms: Vec<&str> = digests.iter().map(|h| h.room.as_str()).collect();
    rooms.sort();
    assert_eq!(
        rooms,
        ["backend", "web"],
        "one digest per room: {digests:#?}"
    );
    for hit in &digests {
        let heading = format!(
            "<b>{} pull requests waiting for review</b> ({})",
            waiting[hit.room.as_str()],
            hit.room
        );
        assert!(hit.html.starts_with(&heading), "{}", hit.html);
    }
    let digest_rows: Vec<(String, String)> =
        sqlx::query_as("SELECT room, state::text FROM outbox WHERE kind = 'digest' ORDER BY room")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        digest_rows,
        [
            ("backend".to_owned(), "sent".to_owned()),
            ("web".to_owned(), "sent".to_owned())
        ]
    );
    db.close().await;

    // Last, as it says nothing about the rest: the killed replica's rooms were taken over at once.
    eprintln!("rooms the killed replica was sending to, and their wait for the next message: {takeovers:?}");
    assert!(
        !takeovers.is_empty(),
        "the killed replica was sending to no room"
    );
    for (room, waited) in takeovers {
        let waited = waited.expect("a message after the kill");
        assert!(
            waited <= TAKEOVER_WITHIN,
            "{room}: the next message came {waited:?} after its sender was killed (bound \
             {TAKEOVER_WITHIN:?}): the room's lease was not taken over at once"
        );
    }
    eprintln!(
        "three replicas: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

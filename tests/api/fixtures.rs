//! Real Bitbucket Cloud deliveries published by other projects (`../shared/fixtures/bitbucket`),
//! sent to the running service: each is answered as the parser decides, and the database then
//! holds what the parsed change says.
//!
//! What the parser reads out of each payload is pinned by the snapshots of `tests/parser.rs`;
//! here the parser is the expectation, and these tests check the path from HTTP to SQLite.

use std::collections::HashMap;

use pr_reminder::bitbucket::{self, Parsed};
use pr_reminder::domain::{
    Change, CommitStatus, Flavour, PrState, PullRequest, ReviewSummary, Timestamp,
    DEFAULT_REQUIRED_APPROVALS,
};
use serde_json::Value;

use crate::helpers::{shared_fixtures, spawn_app, spawn_app_with, uuid_like, Answer, TestApp};

/// A Cloud payload of the shared index.
struct Payload {
    file: String,
    event_key: String,
    body: Vec<u8>,
}

/// The index's Cloud webhook payloads, in its order.
fn cloud_payloads(dir: &std::path::Path) -> Vec<Payload> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let payloads: Vec<Payload> = index["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["flavor"] == "cloud")
        .map(|e| {
            let file = e["file"].as_str().unwrap().to_owned();
            Payload {
                event_key: e["event_key"].as_str().unwrap().to_owned(),
                body: std::fs::read(dir.join(&file)).unwrap(),
                file,
            }
        })
        .collect();
    assert!(
        payloads.len() >= 48,
        "only {} cloud payloads in the index",
        payloads.len()
    );
    payloads
}

/// What the service's own parser makes of a payload: the expectation for the service's answer.
fn parse(payload: &Payload) -> Result<Parsed, String> {
    bitbucket::parse(
        Flavour::Cloud,
        &payload.event_key,
        &payload.body,
        &Timestamp::now(),
    )
    .map_err(|e| e.0)
}

/// The answer matches the parse: `processed` naming the repository and PR, `ignored` with the
/// parser's reason, or 400 with the parser's reason (which names the field at fault).
fn assert_answer(name: &str, request_id: &str, parsed: &Result<Parsed, String>, answer: &Answer) {
    let body = &answer.body;
    match parsed {
        Ok(Parsed::Change(change)) => {
            assert_eq!(answer.status, 200, "{name}: {body}");
            assert_eq!(body["status"], "processed", "{name}: {body}");
            assert_eq!(body["request_id"], request_id, "{name}");
            assert_eq!(
                body["repository"].as_str(),
                Some(change.repository().full_name.as_str()),
                "{name}"
            );
            assert_eq!(body["pull_request"].as_i64(), change.pr_number(), "{name}");
        }
        Ok(Parsed::Ignored(reason)) => {
            assert_eq!(answer.status, 200, "{name}: {body}");
            assert_eq!(body["status"], "ignored", "{name}: {body}");
            assert_eq!(body["reason"].as_str(), Some(reason.as_str()), "{name}");
        }
        Err(reason) => {
            assert_eq!(answer.status, 400, "{name}: {body}");
            assert_eq!(body["status"], "rejected", "{name}: {body}");
            assert_eq!(body["reason"].as_str(), Some(reason.as_str()), "{name}");
        }
    }
}

/// What the database holds about a PR, found by its lasting key.
#[derive(Debug, PartialEq, Eq)]
struct StoredPr {
    full_name: String,
    title: String,
    author: String,
    state: String,
    draft: bool,
    source_branch: Option<String>,
    source_commit: Option<String>,
    destination_branch: Option<String>,
    url: Option<String>,
    created_on: String,
    updated_on: String,
    /// (user_key, role, state), by user key.
    reviews: Vec<(String, String, String)>,
}

impl StoredPr {
    /// The row a parsed snapshot should leave.
    fn expected(pr: &PullRequest) -> StoredPr {
        let mut reviews: Vec<(String, String, String)> = pr
            .participants
            .iter()
            .map(|p| {
                (
                    p.user.key.to_string(),
                    p.role.as_str().to_owned(),
                    p.state.as_str().to_owned(),
                )
            })
            .collect();
        reviews.sort();
        StoredPr {
            full_name: pr.repository.full_name.clone(),
            title: pr.title.clone(),
            author: pr.author.key.to_string(),
            state: pr.state.as_str().to_owned(),
            draft: pr.draft,
            source_branch: pr.source_branch.clone(),
            source_commit: pr.source_commit.clone(),
            destination_branch: pr.destination_branch.clone(),
            url: pr.url.clone(),
            created_on: pr.created_on.as_str().to_owned(),
            updated_on: pr.updated_on.as_str().to_owned(),
            reviews,
        }
    }

    async fn read(app: &TestApp, repository_key: &str, number: i64) -> Option<StoredPr> {
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            String,
            String,
            String,
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
        )> = sqlx::query_as(
            "SELECT r.full_name, p.title, p.author, p.state, p.draft, p.source_branch, \
                    p.source_commit, p.destination_branch, p.url, p.created_on, p.updated_on \
               FROM pull_requests p JOIN repositories r ON r.repository_key = p.repository_key \
              WHERE p.repository_key = ?1 AND p.number = ?2",
        )
        .bind(repository_key)
        .bind(number)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        let row = row?;
        let reviews = sqlx::query_as(
            "SELECT user_key, role, state FROM reviews \
              WHERE repository_key = ?1 AND number = ?2 ORDER BY user_key, role, state",
        )
        .bind(repository_key)
        .bind(number)
        .fetch_all(&app.db)
        .await
        .unwrap();
        Some(StoredPr {
            full_name: row.0,
            title: row.1,
            author: row.2,
            state: row.3,
            draft: row.4,
            source_branch: row.5,
            source_commit: row.6,
            destination_branch: row.7,
            url: row.8,
            created_on: row.9,
            updated_on: row.10,
            reviews,
        })
    }
}

/// The PR row under the parsed repository key and number is the parsed snapshot.
async fn assert_stored_pr(app: &TestApp, name: &str, pr: &PullRequest) {
    let key = pr.repository.key.as_str();
    let stored = StoredPr::read(app, key, pr.number)
        .await
        .unwrap_or_else(|| panic!("{name}: no row for {key}#{}", pr.number));
    assert_eq!(stored, StoredPr::expected(pr), "{name}");
}

/// The commit status row (by commit and build key) is the parsed one.
async fn assert_stored_status(app: &TestApp, name: &str, status: &CommitStatus) {
    let row: Option<(String, String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT c.repository_key, r.full_name, c.state, c.name, c.updated_on \
           FROM commit_statuses c JOIN repositories r ON r.repository_key = c.repository_key \
          WHERE c.commit_hash = ?1 AND c.key = ?2",
    )
    .bind(&status.commit_hash)
    .bind(&status.key)
    .fetch_optional(&app.db)
    .await
    .unwrap();
    assert_eq!(
        row,
        Some((
            status.repository.key.as_str().to_owned(),
            status.repository.full_name.clone(),
            status.state.as_str().to_owned(),
            status.name.clone(),
            status.updated_on.as_str().to_owned(),
        )),
        "{name}: {}/{}",
        status.commit_hash,
        status.key
    );
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.count(&format!("SELECT count(*) FROM {table}")).await
}

/// Each payload on its own, into a fresh service: answered as the parser decides, and the
/// database holds exactly what the parsed change says (or nothing, for one that is not acted on).
#[tokio::test]
async fn every_shared_cloud_payload_gives_the_rows_it_describes() {
    let Some(dir) = shared_fixtures() else { return };
    let mut tally: HashMap<&str, usize> = HashMap::new();
    for payload in cloud_payloads(&dir) {
        let name = payload.file.as_str();
        let parsed = parse(&payload);
        let app = spawn_app().await;
        let request_id = uuid_like("fixture");
        let answer = app
            .deliver(&payload.event_key, &request_id, &payload.body)
            .await;
        assert_answer(name, &request_id, &parsed, &answer);

        let (prs, statuses, repositories) = match &parsed {
            Ok(Parsed::Change(Change::PullRequest(pr))) => {
                *tally.entry("pr").or_default() += 1;
                assert_stored_pr(&app, name, pr).await;
                // The review queue shows it exactly when it is open and short of approvals.
                let approvals = ReviewSummary::new(&pr.author, &pr.participants).approvals();
                let pending = app.pending().await;
                if pr.state == PrState::Open && approvals < DEFAULT_REQUIRED_APPROVALS {
                    assert_eq!(pending.len(), 1, "{name}: {pending:?}");
                    assert_eq!(pending[0].repository, pr.repository.full_name, "{name}");
                    assert_eq!(pending[0].number, pr.number, "{name}");
                    assert_eq!(pending[0].approvals, i64::from(approvals), "{name}");
                } else {
                    assert!(pending.is_empty(), "{name}: {pending:?}");
                }
                (1, 0, 1)
            }
            Ok(Parsed::Change(Change::CommitStatus(status))) => {
                *tally.entry("status").or_default() += 1;
                assert_stored_status(&app, name, status).await;
                (0, 1, 1)
            }
            Ok(Parsed::Change(Change::Repository(update))) => {
                let stored: Option<String> = sqlx::query_scalar(
                    "SELECT full_name FROM repositories WHERE repository_key = ?1",
                )
                .bind(update.repository.key.as_str())
                .fetch_optional(&app.db)
                .await
                .unwrap();
                assert_eq!(
                    stored.as_ref(),
                    Some(&update.repository.full_name),
                    "{name}"
                );
                (0, 0, 1)
            }
            Ok(Parsed::Ignored(_)) => {
                *tally.entry("ignored").or_default() += 1;
                (0, 0, 0)
            }
            Err(_) => {
                *tally.entry("rejected").or_default() += 1;
                (0, 0, 0)
            }
        };
        assert_eq!(count(&app, "pull_requests").await, prs, "{name}");
        assert_eq!(count(&app, "commit_statuses").await, statuses, "{name}");
        assert_eq!(count(&app, "repositories").await, repositories, "{name}");

        // The delivery itself is recorded once, with its outcome (a refusal is recorded without
        // making the sender wait, hence the poll).
        let (outcome, reason) = match &parsed {
            Ok(Parsed::Change(_)) => ("processed", None),
            Ok(Parsed::Ignored(reason)) => ("ignored", Some(reason.clone())),
            Err(reason) => ("rejected", Some(reason.clone())),
        };
        let deliveries = app.wait_for_deliveries(1).await;
        assert_eq!(
            deliveries,
            vec![(
                Some(request_id.clone()),
                Some(payload.event_key.clone()),
                outcome.to_owned(),
                reason
            )],
            "{name}"
        );
        app.assert_still_serving().await;
    }
    // The set as it is today (a payload added later only raises these): a parser that refused
    // or ignored everything would fail here, before the snapshots are even read.
    for (kind, least) in [("pr", 36), ("status", 4), ("rejected", 4), ("ignored", 4)] {
        let seen = tally.get(kind).copied().unwrap_or(0);
        assert!(
            seen >= least,
            "only {seen} {kind} payloads (expected {least}+)"
        );
    }
}

/// The newest of a thing's changes, the later arrival winning a tie (the writer's `>=`).
fn keep_newest<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    at: impl Fn(&V) -> &Timestamp,
) {
    match map.get(&key) {
        Some(kept) if at(kept) > at(&value) => {}
        _ => {
            map.insert(key, value);
        }
    }
}

/// All of them into one database, in the index's order: each answered as the parser decides,
/// and in the end exactly one row per distinct PR, build and repository, each at its newest
/// snapshot.
#[tokio::test]
async fn all_shared_cloud_payloads_into_one_database() {
    let Some(dir) = shared_fixtures() else { return };
    let app = spawn_app().await;
    let mut prs: HashMap<(String, i64), Box<PullRequest>> = HashMap::new();
    let mut statuses: HashMap<(String, String), Box<CommitStatus>> = HashMap::new();
    let mut names: HashMap<String, (String, Timestamp)> = HashMap::new();
    let (mut processed, mut processed_prs, mut ignored, mut rejected) = (0, 0, 0, 0);
    for payload in cloud_payloads(&dir) {
        let name = payload.file.as_str();
        let parsed = parse(&payload);
        let request_id = uuid_like("all");
        let answer = app
            .deliver(&payload.event_key, &request_id, &payload.body)
            .await;
        assert_answer(name, &request_id, &parsed, &answer);
        match parsed {
            Ok(Parsed::Change(change)) => {
                processed += 1;
                let repository = change.repository().clone();
                let at = change.updated_on().clone();
                keep_newest(
                    &mut names,
                    repository.key.as_str().to_owned(),
                    (repository.full_name, at),
                    |v| &v.1,
                );
                match change {
                    Change::PullRequest(pr) => {
                        processed_prs += 1;
                        let key = (pr.repository.key.as_str().to_owned(), pr.number);
                        keep_newest(&mut prs, key, pr, |p| &p.updated_on);
                    }
                    Change::CommitStatus(status) => {
                        let key = (status.commit_hash.clone(), status.key.clone());
                        keep_newest(&mut statuses, key, status, |s| &s.updated_on);
                    }
                    Change::Repository(_) => {}
                }
            }
            Ok(Parsed::Ignored(_)) => ignored += 1,
            Err(_) => rejected += 1,
        }
    }
    // Several payloads are snapshots of the same PR (the index has fewer PRs than PR payloads).
    assert!(processed_prs >= 36 && prs.len() >= 15 && prs.len() < processed_prs);
    assert!(statuses.len() >= 2 && rejected >= 4 && ignored >= 4);

    assert_eq!(count(&app, "pull_requests").await, prs.len() as i64);
    for pr in prs.values() {
        assert_stored_pr(&app, "newest snapshot", pr).await;
    }
    assert_eq!(count(&app, "commit_statuses").await, statuses.len() as i64);
    for status in statuses.values() {
        assert_stored_status(&app, "newest status", status).await;
    }
    let stored: HashMap<String, String> =
        sqlx::query_as("SELECT repository_key, full_name FROM repositories")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let expected: HashMap<String, String> = names
        .into_iter()
        .map(|(key, (name, _))| (key, name))
        .collect();
    assert_eq!(stored, expected);

    // Every delivery recorded once with its outcome; refusals land without the sender waiting.
    let total = processed + ignored + rejected;
    app.wait_for_deliveries(total).await;
    for (outcome, expected) in [
        ("processed", processed),
        ("ignored", ignored),
        ("rejected", rejected),
    ] {
        let sql = format!("SELECT count(*) FROM deliveries WHERE outcome = '{outcome}'");
        assert_eq!(app.count(&sql).await, expected as i64, "{outcome}");
    }
    assert_eq!(count(&app, "deliveries").await, total as i64);
}

/// The Jenkins plugin's HMAC test vector: a real body, secret and X-Hub-Signature.
#[tokio::test]
async fn published_signature_test_vector_verifies() {
    let Some(dir) = shared_fixtures() else { return };
    let body =
        std::fs::read(dir.join("cloud/jenkinsci-bitbucket-branch-source/signed_payload.json"))
            .unwrap();
    let app = spawn_app_with(|s| {
        s.signature =
            pr_reminder::config::SignaturePolicy::Verify(vec![secrecy::SecretString::from(
                "Gkvl$k$wyNpQAF42".to_owned(),
            )])
    })
    .await;
    let signature = "sha256=f205c729821c6954aff2afe72b965c34015b4baf96ea8ddc2cc44999c014a035";
    let answer = app
        .post(
            &[
                ("X-Event-Key", "repo:push"),
                ("X-Request-UUID", "vector-1"),
                ("X-Hub-Signature", signature),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["status"], "ignored");
    let mut tampered = body;
    tampered[10] ^= 1;
    let answer = app
        .post(
            &[
                ("X-Event-Key", "repo:push"),
                ("X-Request-UUID", "vector-2"),
                ("X-Hub-Signature", signature),
            ],
            tampered,
        )
        .await;
    assert_eq!(answer.status, 401);
}

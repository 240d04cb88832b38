//! Real Bitbucket Cloud deliveries published by other projects (`../shared/fixtures/bitbucket`):
//! each is accepted and produces exactly the rows its content says.

use serde_json::Value;

use crate::helpers::{shared_fixtures, spawn_app, spawn_app_with, uuid_like, TestApp};

const PR_KEYS: &[&str] = &[
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:approved",
    "pullrequest:unapproved",
    "pullrequest:changes_request_created",
    "pullrequest:changes_request_removed",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
];

fn user_key(user: &Value) -> String {
    ["uuid", "account_id", "username"]
        .iter()
        .find_map(|k| user[*k].as_str())
        .expect("fixture user has an id")
        .to_owned()
}

/// The review rows a PR payload implies, worked out independently of the service's parser.
fn expected_reviews(pr: &Value) -> Vec<(String, String, String)> {
    let reviewers: Vec<String> = pr["reviewers"]
        .as_array()
        .map(|a| a.iter().map(user_key).collect())
        .unwrap_or_default();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for p in pr["participants"].as_array().into_iter().flatten() {
        if p.get("user").is_none() {
            continue; // documentation templates list bare users here
        }
        let key = user_key(&p["user"]);
        if rows.iter().any(|r| r.0 == key) {
            continue;
        }
        let state = match p["state"].as_str() {
            Some("approved") => "approved",
            Some("changes_requested") => "changes_requested",
            _ if p["approved"] == Value::Bool(true) => "approved",
            _ => "none",
        };
        let role = if p["role"] == "REVIEWER" || reviewers.contains(&key) {
            "REVIEWER"
        } else {
            "PARTICIPANT"
        };
        rows.push((key, role.to_owned(), state.to_owned()));
    }
    for key in reviewers {
        if !rows.iter().any(|r| r.0 == key) {
            rows.push((key, "REVIEWER".into(), "none".into()));
        }
    }
    rows.sort();
    rows
}

async fn check_pull_request(
    app: &TestApp,
    name: &str,
    key: &str,
    payload: &Value,
    answer: &crate::helpers::Answer,
) {
    let pr = &payload["pullrequest"];
    let raw_state = pr["state"].as_str().unwrap();
    let state = match (raw_state, key) {
        ("OPEN" | "MERGED" | "DECLINED" | "SUPERSEDED", _) => raw_state,
        (_, "pullrequest:created") => "OPEN",
        (_, "pullrequest:fulfilled") => "MERGED",
        (_, "pullrequest:rejected") => "DECLINED",
        _ => {
            // A documentation template whose state is "OPEN|MERGED|DECLINED": refused, not guessed.
            assert_eq!(answer.status, 400, "{name}: {}", answer.body);
            assert!(answer.body["reason"]
                .as_str()
                .unwrap()
                .starts_with("pullrequest.state: unknown state"));
            assert_eq!(app.count("SELECT count(*) FROM pull_requests").await, 0);
            return;
        }
    };
    assert_eq!(answer.status, 200, "{name}: {}", answer.body);
    assert_eq!(answer.body["status"], "processed", "{name}");

    let repository = payload["repository"]["full_name"].as_str().unwrap();
    let number = pr["id"].as_i64().unwrap();
    let row = app
        .pull_request(repository, number)
        .await
        .unwrap_or_else(|| panic!("{name}: no row for {repository}#{number}"));
    assert_eq!(row.title, pr["title"].as_str().unwrap(), "{name}");
    assert_eq!(row.state, state, "{name}");
    assert_eq!(row.author, user_key(&pr["author"]), "{name}");
    assert_eq!(
        row.source_commit.as_deref(),
        pr["source"]["commit"]["hash"].as_str(),
        "{name}"
    );
    assert_eq!(
        row.source_branch.as_deref(),
        pr["source"]["branch"]["name"].as_str(),
        "{name}"
    );
    assert_eq!(
        row.destination_branch.as_deref(),
        pr["destination"]["branch"]["name"].as_str(),
        "{name}"
    );
    assert_eq!(
        row.draft,
        i64::from(pr["draft"] == Value::Bool(true)),
        "{name}"
    );
    assert_eq!(
        row.url.as_deref(),
        pr["links"]["html"]["href"].as_str(),
        "{name}"
    );
    assert_eq!(
        &row.updated_on[..19],
        &pr["updated_on"].as_str().unwrap()[..19],
        "{name}"
    );
    let reviews = expected_reviews(pr);
    assert_eq!(app.reviews(repository, number).await, reviews, "{name}");
    assert_eq!(
        app.count("SELECT count(*) FROM pull_requests").await,
        1,
        "{name}"
    );

    let author = user_key(&pr["author"]);
    let approvals = reviews
        .iter()
        .filter(|r| r.2 == "approved" && r.0 != author)
        .count() as i64;
    let pending = app.pending().await;
    if state == "OPEN" && approvals < 2 {
        assert_eq!(pending.len(), 1, "{name}");
        assert_eq!(pending[0].approvals, approvals, "{name}");
        assert_eq!(pending[0].repository, repository);
        assert_eq!(pending[0].number, number);
    } else {
        assert!(pending.is_empty(), "{name}: {pending:?}");
    }
}

async fn check_status(app: &TestApp, name: &str, payload: &Value, answer: &crate::helpers::Answer) {
    assert_eq!(answer.status, 200, "{name}: {}", answer.body);
    let status = &payload["commit_status"];
    let hash = status["commit"]["hash"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            status["links"]["commit"]["href"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        });
    let row: (String, String, String, String) = sqlx::query_as(
        "SELECT c.commit_hash, c.key, c.state, r.full_name FROM commit_statuses c \
             JOIN repositories r ON r.repository_key = c.repository_key",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            hash.to_lowercase(),
            status["key"].as_str().unwrap().to_owned(),
            status["state"].as_str().unwrap().to_owned(),
            payload["repository"]["full_name"]
                .as_str()
                .unwrap()
                .to_owned()
        ),
        "{name}"
    );
}

#[tokio::test]
async fn every_shared_cloud_payload_gives_the_rows_it_describes() {
    let Some(dir) = shared_fixtures() else { return };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut seen = 0;
    for entry in index["payloads"].as_array().unwrap() {
        if entry["flavor"] != "cloud" {
            continue;
        }
        let name = entry["file"].as_str().unwrap();
        let key = entry["event_key"].as_str().unwrap();
        let body = std::fs::read(dir.join(name)).unwrap();
        let payload: Value = serde_json::from_slice(&body).unwrap();
        let app = spawn_app().await;
        let answer = app.deliver(key, &uuid_like("fixture"), &body).await;
        if PR_KEYS.contains(&key) {
            check_pull_request(&app, name, key, &payload, &answer).await;
        } else if key.starts_with("repo:commit_status_") {
            check_status(&app, name, &payload, &answer).await;
        } else {
            assert_eq!(answer.status, 200, "{name}: {}", answer.body);
            assert_eq!(answer.body["status"], "ignored", "{name}");
        }
        app.assert_still_serving().await;
        seen += 1;
    }
    assert!(seen >= 48, "only {seen} cloud payloads in the index");
}

/// All of them into one database, in the index's order: nothing fails, and each PR ends at its
/// newest snapshot.
#[tokio::test]
async fn all_shared_cloud_payloads_into_one_database() {
    let Some(dir) = shared_fixtures() else { return };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let app = spawn_app().await;
    let mut newest: std::collections::HashMap<(String, i64), String> = Default::default();
    for entry in index["payloads"].as_array().unwrap() {
        if entry["flavor"] != "cloud" {
            continue;
        }
        let body = std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap();
        let answer = app
            .deliver(
                entry["event_key"].as_str().unwrap(),
                &uuid_like("all"),
                &body,
            )
            .await;
        assert!(
            answer.status == 200 || answer.status == 400,
            "{}",
            answer.body
        );
        if answer.body["status"] == "processed" && answer.body["pull_request"].is_i64() {
            let payload: Value = serde_json::from_slice(&body).unwrap();
            let key = (
                payload["repository"]["full_name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                payload["pullrequest"]["id"].as_i64().unwrap(),
            );
            let updated = payload["pullrequest"]["updated_on"].as_str().unwrap()[..19].to_owned();
            let slot = newest.entry(key).or_default();
            if updated > *slot {
                *slot = updated;
            }
        }
    }
    for ((repo, number), updated) in &newest {
        let row = app.pull_request(repo, *number).await.unwrap();
        assert_eq!(&row.updated_on[..19], updated, "{repo}#{number}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM pull_requests").await,
        newest.len() as i64
    );
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

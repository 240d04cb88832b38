//! What a sender can get wrong. Each is a 4xx with a reason, is recorded, and the service keeps
//! serving afterwards. None is a 5xx.

use pr_reminder::config::SignaturePolicy;
use pr_reminder::signature::sign;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{own_fixture, spawn_app, spawn_app_with, SECRET};

fn body() -> Vec<u8> {
    serde_json::to_vec(&own_fixture("pullrequest_created.json")).unwrap()
}

#[tokio::test]
async fn signature_problems_are_401_and_recorded_without_the_body() {
    let app = spawn_app().await;
    let body = body();
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("no signature", vec![], "missing X-Hub-Signature header"),
        (
            "wrong secret",
            vec![("X-Hub-Signature", sign("not-the-secret", &body))],
            "X-Hub-Signature does not match the body for any configured secret",
        ),
        (
            "signature of another body",
            vec![("X-Hub-Signature", sign(SECRET, b"{}"))],
            "X-Hub-Signature does not match the body for any configured secret",
        ),
        (
            "not sha256",
            vec![("X-Hub-Signature", "sha1=0123456789abcdef".to_owned())],
            "X-Hub-Signature must look like sha256=<64 hex digits>",
        ),
    ];
    for (i, (what, extra, reason)) in cases.iter().enumerate() {
        let id = format!("sig-{i}");
        let mut headers = vec![
            ("X-Event-Key", "pullrequest:created"),
            ("X-Request-UUID", id.as_str()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let answer = app.post(&headers, body.clone()).await;
        assert_eq!(answer.status, 401, "{what}");
        assert_eq!(
            answer.body,
            json!({"status": "rejected", "reason": reason}),
            "{what}"
        );
        app.assert_still_serving().await;
    }
    let rows = app.wait_for_deliveries(2 * cases.len()).await;
    let rejected: Vec<_> = rows.iter().filter(|r| r.2 == "rejected").collect();
    assert_eq!(rejected.len(), cases.len());
    assert_eq!(rejected[0].0.as_deref(), Some("sig-0"));
    assert_eq!(rejected[0].1.as_deref(), Some("pullrequest:created"));
    assert_eq!(
        rejected[0].3.as_deref(),
        Some("missing X-Hub-Signature header")
    );
    assert_eq!(app.count("SELECT count(*) FROM pull_requests").await, 0);
}

#[tokio::test]
async fn any_rotated_secret_is_accepted() {
    let app = spawn_app_with(|s| {
        s.signature = SignaturePolicy::Verify(vec![
            SecretString::from("old-secret".to_owned()),
            SecretString::from("new-secret".to_owned()),
        ])
    })
    .await;
    let body = body();
    for (i, secret) in ["old-secret", "new-secret"].iter().enumerate() {
        let id = format!("rot-{i}");
        let sig = sign(secret, &body);
        let answer = app
            .post(
                &[
                    ("X-Event-Key", "pullrequest:created"),
                    ("X-Request-UUID", &id),
                    ("X-Hub-Signature", &sig),
                ],
                body.clone(),
            )
            .await;
        assert_eq!(answer.status, 200, "{secret}: {}", answer.body);
    }
    let sig = sign(SECRET, &body);
    let answer = app
        .post(
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Request-UUID", "rot-x"),
                ("X-Hub-Signature", &sig),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn oversize_body_is_413() {
    let app = spawn_app_with(|s| s.max_body_bytes = 4096).await;
    let mut big = own_fixture("pullrequest_created.json");
    big["pullrequest"]["description"] = json!("x".repeat(5000));
    let big = serde_json::to_vec(&big).unwrap();
    let answer = app.deliver("pullrequest:created", "big-1", &big).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.body,
        json!({"status": "rejected", "reason": "body larger than 4096 bytes"})
    );
    app.assert_still_serving().await;

    // Without a Content-Length (chunked), the limit still holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .client
        .post(format!("{}/webhooks/bitbucket", app.address))
        .header("X-Event-Key", "pullrequest:created")
        .header("X-Request-UUID", "big-2")
        .header("X-Hub-Signature", sign(SECRET, &big))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    app.assert_still_serving().await;
    let rows = app.wait_for_deliveries(4).await;
    assert_eq!(rows.iter().filter(|r| r.2 == "rejected").count(), 2);
}

#[tokio::test]
async fn malformed_payloads_are_400_naming_the_field() {
    let app = spawn_app().await;
    let good = own_fixture("pullrequest_created.json");
    let full = serde_json::to_vec(&good).unwrap();

    let mut wrong_type = good.clone();
    wrong_type["pullrequest"]["id"] = json!("forty-two");
    let mut missing = good.clone();
    missing["pullrequest"]
        .as_object_mut()
        .unwrap()
        .remove("updated_on");
    let mut bad_date = good.clone();
    bad_date["pullrequest"]["created_on"] = json!("last tuesday");
    let mut bad_state = good.clone();
    bad_state["pullrequest"]["state"] = json!("ARCHIVED");
    let mut user_without_id = good.clone();
    user_without_id["pullrequest"]["author"] = json!({"display_name": "Nobody"});
    let mut bad_participant = good.clone();
    bad_participant["pullrequest"]["participants"][1]["approved"] = json!("yes");

    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("truncated JSON", "pullrequest:created", full[..full.len() / 2].to_vec(), "body is not valid JSON"),
        ("not JSON", "pullrequest:created", b"<html>".to_vec(), "body is not valid JSON"),
        ("trailing garbage", "pullrequest:created", [full.clone(), b"}".to_vec()].concat(), "body is not valid JSON"),
        ("wrong type", "pullrequest:updated", serde_json::to_vec(&wrong_type).unwrap(), "pullrequest.id: invalid type: string \"forty-two\", expected i64"),
        ("missing field", "pullrequest:updated", serde_json::to_vec(&missing).unwrap(), "pullrequest: missing field `updated_on`"),
        ("bad date", "pullrequest:updated", serde_json::to_vec(&bad_date).unwrap(), "pullrequest.created_on: `last tuesday` is not an RFC 3339 date-time"),
        ("unknown state", "pullrequest:updated", serde_json::to_vec(&bad_state).unwrap(), "pullrequest.state: unknown state `ARCHIVED`"),
        ("user without id", "pullrequest:updated", serde_json::to_vec(&user_without_id).unwrap(), "pullrequest.author: user has no uuid, account_id or username"),
        ("participant flag", "pullrequest:updated", serde_json::to_vec(&bad_participant).unwrap(), "pullrequest.participants[1].approved: invalid type"),
        ("status without commit", "repo:commit_status_updated", br#"{"repository":{"full_name":"a/b"},"commit_status":{"key":"k","state":"FAILED","updated_on":"2026-01-01T00:00:00Z"}}"#.to_vec(), "commit_status.commit.hash: missing field"),
        ("ignored key, not JSON", "repo:push", b"nope".to_vec(), "body is not valid JSON"),
    ];
    for (i, (what, key, body, reason)) in cases.iter().enumerate() {
        let answer = app.deliver(key, &format!("bad-{i}"), body).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(answer.body["status"], "rejected", "{what}");
        let got = answer.body["reason"].as_str().unwrap();
        assert!(
            got.starts_with(reason),
            "{what}: {got:?} does not start with {reason:?}"
        );
        app.assert_still_serving().await;
    }
    assert_eq!(app.count("SELECT count(*) FROM pull_requests").await, 0);
    let rows = app.wait_for_deliveries(2 * cases.len()).await;
    assert_eq!(
        rows.iter().filter(|r| r.2 == "rejected").count(),
        cases.len()
    );
}

#[tokio::test]
async fn missing_headers_are_400() {
    let app = spawn_app().await;
    let body = body();
    let sig = sign(SECRET, &body);
    let answer = app
        .post(
            &[("X-Request-UUID", "h-1"), ("X-Hub-Signature", &sig)],
            body.clone(),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["reason"].as_str()),
        (400, Some("missing or unreadable X-Event-Key header"))
    );
    let answer = app
        .post(
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Hub-Signature", &sig),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["reason"].as_str()),
        (400, Some("missing or unreadable X-Request-UUID header"))
    );
    // Data Center's header name is accepted too.
    let answer = app
        .post(
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Request-Id", "dc-1"),
                ("X-Hub-Signature", &sig),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "status": "processed",
            "request_id": "dc-1",
            "event_key": "pullrequest:created",
            "repository": "acme/payments-api",
            "pull_request": 42,
        })
    );
    let row: (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
    ) = sqlx::query_as(
        "SELECT request_id, event_key, outcome, reason, repository, pr_number \
             FROM deliveries WHERE request_id = 'dc-1'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "dc-1".to_owned(),
            "pullrequest:created".to_owned(),
            "processed".to_owned(),
            None,
            Some("acme/payments-api".to_owned()),
            Some(42)
        )
    );
    assert_eq!(
        app.pull_request("acme/payments-api", 42)
            .await
            .map(|pr| pr.title),
        Some("Retry card captures on gateway timeouts".to_owned()),
        "the delivery under X-Request-Id was stored"
    );
    app.assert_still_serving().await;
}

#[tokio::test]
async fn unknown_event_keys_are_acknowledged_and_recorded() {
    let app = spawn_app().await;
    for (i, key) in [
        "repo:push",
        "pullrequest:comment_deleted",
        "pr:reviewer:unknown",
        "something:new",
    ]
    .iter()
    .enumerate()
    {
        let answer = app
            .deliver(key, &format!("unk-{i}"), br#"{"anything": true}"#)
            .await;
        assert_eq!(answer.status, 200, "{key}");
        assert_eq!(answer.body["status"], "ignored", "{key}");
        assert!(
            answer.body["reason"].as_str().unwrap().contains(key),
            "{}",
            answer.body
        );
    }
    let rows = app.deliveries().await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.2 == "ignored" && r.3.is_some()));
    assert_eq!(app.count("SELECT count(*) FROM pull_requests").await, 0);
}

#[tokio::test]
async fn insecure_mode_accepts_unsigned_deliveries() {
    let app = spawn_app_with(|s| s.signature = SignaturePolicy::Insecure).await;
    let answer = app
        .post(
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Request-UUID", "u-1"),
            ],
            body(),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "processed");
}

#[tokio::test]
async fn health_endpoints() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await, 200);
    assert_eq!(app.get("/readyz").await, 200);
    assert_eq!(app.get("/nothing-here").await, 404);
    let response = app
        .client
        .get(format!("{}/webhooks/bitbucket", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        405,
        "GET on the webhook: the path exists, the method does not"
    );
}

/// `/readyz` promises 503 when the database is gone. Here the file (with its -wal and -shm) is
/// moved away and a folder put in its place, so nothing can open it again.
#[tokio::test]
async fn readyz_is_503_when_the_database_file_is_gone() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await, 200);
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", app.db_path.display());
        if std::path::Path::new(&file).exists() {
            std::fs::rename(&file, format!("{file}.gone")).unwrap();
        }
    }
    std::fs::create_dir(&app.db_path).unwrap();
    for attempt in 0..3 {
        let response = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503, "attempt {attempt}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap(),
            json!({"status": "unavailable", "reason": "database unreachable"}),
            "attempt {attempt}"
        );
    }
    assert_eq!(app.get("/healthz").await, 200, "the process still answers");
}

/// A body that arrives a byte at a time, or stops after a first chunk, is cut off after
/// `body_timeout` with 408 (its connection freed), recorded as rejected, and the service keeps
/// answering everyone else meanwhile.
#[tokio::test]
async fn slow_bodies_are_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = crate::helpers::spawn_app_with(|s| {
        s.body_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let head = |request_id: &str| {
        format!(
            "POST /webhooks/bitbucket HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             X-Event-Key: pullrequest:created\r\nX-Request-UUID: {request_id}\r\n\
             X-Hub-Signature: sha256=00\r\nContent-Length: 1000\r\n\r\n"
        )
    };
    // One stops after its first chunk; one sends a byte every 100 ms, never finishing in time.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(format!("{}{{\"pullrequest\":", head("slow-1")).as_bytes())
        .await
        .unwrap();
    let mut trickle = tokio::net::TcpStream::connect(&address).await.unwrap();
    trickle.write_all(head("slow-2").as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let trickling = tokio::spawn(async move {
        for _ in 0..30 {
            if trickle.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        trickle
    });
    // Everyone else is served meanwhile.
    assert_eq!(app.get("/healthz").await, 200);
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stalled.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the stalled body was still open after 5 s");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains(r#""reason":"the body did not arrive within 500 ms""#),
        "{text}"
    );
    assert!(
        elapsed >= std::time::Duration::from_millis(450)
            && elapsed < std::time::Duration::from_secs(3),
        "cut off after {elapsed:?}"
    );
    let mut trickle = trickling.await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        trickle.read_to_end(&mut answer),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let rows = app.wait_for_deliveries(2).await;
    for id in ["slow-1", "slow-2"] {
        assert!(
            rows.iter().any(
                |(request_id, _, outcome, reason)| request_id.as_deref() == Some(id)
                    && outcome == "rejected"
                    && reason.as_deref() == Some("the body did not arrive within 500 ms")
            ),
            "{rows:?}"
        );
    }
    app.assert_still_serving().await;
}

/// While another process holds the database (here an exclusive transaction, as a long `sqlite3`
/// session or a backup would), a delivery is answered 503 within a few seconds, well inside
/// Bitbucket's 10 s, and nothing is half stored; once the lock goes, the redelivery is stored.
#[tokio::test]
async fn a_locked_database_is_a_quick_503_and_then_recovers() {
    use sqlx::Connection;

    let app = crate::helpers::spawn_app().await;
    let payload = body();
    let mut holder =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path.display()))
            .await
            .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let ids: Vec<String> = (0..5).map(|i| format!("locked-{i}")).collect();
    let answers = futures_util::future::join_all(
        ids.iter()
            .map(|id| app.deliver("pullrequest:created", id, &payload)),
    )
    .await;
    let elapsed = started.elapsed();
    for answer in &answers {
        assert_eq!(
            (answer.status, answer.body["reason"].as_str()),
            (503, Some("temporarily unable to store deliveries")),
            "{}",
            answer.body
        );
    }
    assert!(
        elapsed < std::time::Duration::from_secs(6),
        "answered after {elapsed:?}: Bitbucket waits 10 s"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    drop(holder);
    // Bitbucket delivers again under the same ids: stored once each.
    for i in 0..5 {
        let answer = app
            .deliver("pullrequest:created", &format!("locked-{i}"), &payload)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM deliveries WHERE request_id LIKE 'locked-%' AND outcome = 'processed'")
            .await,
        5
    );
    app.assert_still_serving().await;
}

/// A known path asked with another method is 405 naming the methods it takes (not a 404 that
/// suggests a wrong URL); GET paths answer HEAD too, without a body; unknown paths stay 404.
#[tokio::test]
async fn wrong_methods_are_405_with_allow_and_head_works() {
    let app = crate::helpers::spawn_app().await;
    let call = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.address))
            .send()
    };
    let answer = call(reqwest::Method::GET, "/webhooks/bitbucket")
        .await
        .unwrap();
    assert_eq!(answer.status(), 405);
    assert_eq!(answer.headers()["allow"], "POST");
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "rejected", "reason": "method not allowed here; use POST"})
    );
    for path in ["/healthz", "/readyz", "/metrics", "/status"] {
        let answer = call(reqwest::Method::POST, path).await.unwrap();
        assert_eq!(answer.status(), 405, "{path}");
        assert_eq!(answer.headers()["allow"], "GET, HEAD", "{path}");
    }
    let head = call(reqwest::Method::HEAD, "/healthz").await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.bytes().await.unwrap().len(), 0, "no body for HEAD");
    let unknown = call(reqwest::Method::GET, "/nowhere").await.unwrap();
    assert_eq!(unknown.status(), 404);
}

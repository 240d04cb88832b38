//! The tables and operator views on PostgreSQL beside SQLite's: the same columns in the same
//! order and, for the same deliveries, the same rows, and the same answers made from them.
//!
//! PostgreSQL-only in the sense that each test needs both databases at once: it compares the two
//! schemas' relations and rows directly (what an operator reading either with `psql` or
//! `sqlite3` sees), which no scenario run on one database at a time can state.

use super::*;
use crate::commands::hipchat_command;

/// How a value is compared across the two databases: as its text (`CAST(... AS TEXT)`; NULL
/// stays NULL), except a PostgreSQL boolean, which is compared as the 0/1 SQLite stores for it
/// (SQLite has no boolean type: `draft` and `forced` are integers there, and `sqlite3` shows
/// them as 0 and 1). Its truth must agree; its spelling cannot.
type TextRow = Vec<Option<String>>;

/// The column names of `relation` (a table or a view) on SQLite, in order.
async fn sqlite_columns(db: &sqlx::SqlitePool, relation: &str) -> Vec<String> {
    use sqlx::{Column, Executor};
    db.describe(&format!("SELECT * FROM {relation}"))
        .await
        .unwrap_or_else(|e| panic!("{relation} on SQLite: {e}"))
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect()
}

/// The column names of `relation` on PostgreSQL, in order, with whether each is a boolean.
async fn postgres_columns(db: &PgPool, relation: &str) -> Vec<(String, bool)> {
    use sqlx::{Column, Executor, TypeInfo};
    db.describe(&format!("SELECT * FROM {relation}"))
        .await
        .unwrap_or_else(|e| panic!("{relation} on PostgreSQL: {e}"))
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name() == "BOOL"))
        .collect()
}

/// Every row of `relation` as text (see `TextRow`), leaving out the columns named in `skip`; in
/// the relation's own order (a view's ORDER BY), or sorted when `sort`.
async fn sqlite_rows(
    db: &sqlx::SqlitePool,
    relation: &str,
    skip: &[&str],
    sort: bool,
) -> Vec<TextRow> {
    let columns: Vec<String> = sqlite_columns(db, relation)
        .await
        .into_iter()
        .filter(|c| !skip.contains(&c.as_str()))
        .map(|c| format!("CAST(\"{c}\" AS TEXT)"))
        .collect();
    let rows = sqlx::query(&format!("SELECT {} FROM {relation}", columns.join(", ")))
        .fetch_all(db)
        .await
        .unwrap();
    let mut rows: Vec<TextRow> = rows
        .iter()
        .map(|r| (0..columns.len()).map(|i| r.get(i)).collect())
        .collect();
    if sort {
        rows.sort();
    }
    rows
}

async fn postgres_rows(db: &PgPool, relation: &str, skip: &[&str], sort: bool) -> Vec<TextRow> {
    let columns: Vec<String> = postgres_columns(db, relation)
        .await
        .into_iter()
        .filter(|(c, _)| !skip.contains(&c.as_str()))
        .map(|(c, boolean)| {
            if boolean {
                format!("CASE WHEN \"{c}\" THEN '1' WHEN NOT \"{c}\" THEN '0' END")
            } else {
                format!("CAST(\"{c}\" AS TEXT)")
            }
        })
        .collect();
    let rows = sqlx::query(&format!("SELECT {} FROM {relation}", columns.join(", ")))
        .fetch_all(db)
        .await
        .unwrap();
    let mut rows: Vec<TextRow> = rows
        .iter()
        .map(|r| (0..columns.len()).map(|i| r.get(i)).collect())
        .collect();
    if sort {
        rows.sort();
    }
    rows
}

/// Asserts that `relation` has the same columns in the same order on both databases and, with
/// the columns in `skip` left out, the same rows (sorted when `sort`; a view's own order
/// otherwise). `pending_reviews.age_hours` is read on the wall clock by both databases: the
/// PostgreSQL rows are read before and after SQLite's and must not have moved in between (else
/// an hour turned: read again).
async fn assert_same_relation(
    sqlite: &sqlx::SqlitePool,
    postgres: &PgPool,
    relation: &str,
    skip: &[&str],
    sort: bool,
) -> usize {
    let names: Vec<String> = postgres_columns(postgres, relation)
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        names,
        sqlite_columns(sqlite, relation).await,
        "{relation}: the columns on PostgreSQL (left) and on SQLite (right)"
    );
    for _ in 0..3 {
        let before = postgres_rows(postgres, relation, skip, sort).await;
        let on_sqlite = sqlite_rows(sqlite, relation, skip, sort).await;
        let after = postgres_rows(postgres, relation, skip, sort).await;
        if before != after {
            continue;
        }
        assert_eq!(
            before, on_sqlite,
            "{relation}: the rows on PostgreSQL (left) and on SQLite (right)"
        );
        return before.len();
    }
    panic!("{relation} kept changing on PostgreSQL");
}

/// The settings both apps of a comparison run with: a console room for every repository (with
/// a long window: messages stay queued, as rows to compare), and a route asking 3 approvals of
/// acme/three.
fn comparison_settings(s: &mut Settings) {
    use pr_reminder::config::{Room, Sink};
    let mut three = crate::helpers::route(&["acme/three"], "team");
    three.required_approvals = Some(3);
    s.notify.rooms = vec![Room {
        name: "team".into(),
        sink: Sink::Console,
    }];
    s.notify.routes = vec![three, crate::helpers::route(&["*"], "team")];
    s.notify.coalesce = Duration::from_secs(3600);
    s.commands.hipchat_token = Some(token(COMPARISON_TOKEN));
    s.sweep.token = Some(token(COMPARISON_TOKEN));
    s.monitoring.status_token = Some(token(COMPARISON_TOKEN));
}

/// The command, sweep and status token of the comparison apps.
const COMPARISON_TOKEN: &str = "comparison-token-0123456789abcdef";

fn token(value: &str) -> pr_reminder::config::SecretToken {
    pr_reminder::config::SecretToken(SecretString::from(value.to_owned()))
}

/// The PostgreSQL server's `now()` as RFC 3339 text in UTC (microseconds).
const POSTGRES_NOW: &str =
    "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// Our own deliveries for the views: PRs opened hours before `now` (the PostgreSQL server's
/// clock, which its view reads their age on), with approvals by one and by two people, changes
/// requested, a draft, a repository asking 3 approvals, and builds (failed and passed) on a PR's
/// commit.
fn own_deliveries(now: chrono::DateTime<Utc>) -> Vec<(String, Value)> {
    use crate::helpers::{own_fixture, set_repository};
    use crate::lifecycle::pr_event;
    // Half past the hour, so that no read lands on an hour's turn.
    let opened = |hours: i64| {
        (now - chrono::Duration::hours(hours) - chrono::Duration::minutes(30)).to_rfc3339()
    };
    let pr = |repository: &str,
              number: i64,
              hours: i64,
              title: &str,
              participants: &[(&str, &str, Option<&str>)]| {
        let mut body = pr_event(
            number,
            "2026-11-20T10:00:00+00:00",
            "OPEN",
            title,
            &format!("{number:012x}"),
            participants,
        );
        set_repository(&mut body, repository);
        body["pullrequest"]["created_on"] = json!(opened(hours));
        body["pullrequest"]["links"]["html"]["href"] = json!(format!(
            "https://bitbucket.org/{repository}/pull-requests/{number}"
        ));
        body
    };
    let mut draft = pr("acme/web", 3, 2, "A draft", &[]);
    draft["pullrequest"]["draft"] = json!(true);
    let mut built = own_fixture("pullrequest_created.json");
    built["pullrequest"]["created_on"] = json!(opened(30));
    let failed = own_fixture("repo_commit_status_failed.json");
    let mut passed = failed.clone();
    passed["commit_status"]["key"] = json!("ci-lint");
    passed["commit_status"]["name"] = json!("Lint #12");
    passed["commit_status"]["state"] = json!("SUCCESSFUL");
    vec![
        (
            "pullrequest:created".into(),
            pr(
                "acme/web",
                1,
                5,
                "One approval, changes asked",
                &[
                    ("bob", "REVIEWER", Some("approved")),
                    ("carol", "REVIEWER", Some("changes_requested")),
                    ("dave", "PARTICIPANT", None),
                ],
            ),
        ),
        (
            "pullrequest:created".into(),
            pr(
                "acme/web",
                2,
                50,
                "Nobody looked",
                &[("dave", "REVIEWER", None)],
            ),
        ),
        ("pullrequest:created".into(), draft),
        (
            "pullrequest:created".into(),
            pr(
                "acme/three",
                1,
                75,
                "Two of three",
                &[
                    ("carol", "REVIEWER", Some("approved")),
                    ("bob", "REVIEWER", Some("approved")),
                    ("dave", "REVIEWER", None),
                    ("alice", "PARTICIPANT", Some("approved")),
                ],
            ),
        ),
        (
            "pullrequest:created".into(),
            pr(
                "acme/web",
                4,
                1,
                "Approved enough",
                &[
                    ("bob", "REVIEWER", Some("approved")),
                    ("carol", "REVIEWER", Some("approved")),
                ],
            ),
        ),
        ("pullrequest:created".into(), built),
        ("repo:commit_status_updated".into(), failed),
        ("repo:commit_status_created".into(), passed),
    ]
}

/// Every shared payload of both flavours (Cloud's `X-Request-UUID`, Data Center's
/// `X-Request-Id`), in the index's order: (flavour, event key, file, body).
fn shared_deliveries(dir: &std::path::Path) -> Vec<(String, String, String, Vec<u8>)> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["flavor"] == "cloud" || e["flavor"] == "data-center")
        .map(|e| {
            let file = e["file"].as_str().unwrap().to_owned();
            (
                e["flavor"].as_str().unwrap().to_owned(),
                e["event_key"].as_str().unwrap().to_owned(),
                file.clone(),
                std::fs::read(dir.join(&file)).unwrap(),
            )
        })
        .collect()
}

/// `pending_reviews` has exactly SQLite's columns, in SQLite's order, on a database nothing was
/// written to yet (as `psql -c 'select * from pending_reviews'` would print its header).
#[tokio::test]
async fn pending_reviews_has_the_columns_of_sqlite_in_their_order() {
    let clock = pr_reminder::clock::ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(app) = spawn_pg("columns", |_| {}, clock.clock()).await else {
        return;
    };
    let sqlite = crate::helpers::spawn_app_with_clock(|_| {}, clock.clock()).await;
    let expected = [
        "repository",
        "number",
        "title",
        "author",
        "approvals",
        "required_approvals",
        "changes_requested",
        "build_state",
        "age_hours",
        "url",
        "draft",
        "approved_by",
        "changes_requested_by",
        "reviewers",
        "created_on",
    ];
    assert_eq!(
        sqlite_columns(&sqlite.db, "pending_reviews").await,
        expected
    );
    let on_postgres: Vec<String> = postgres_columns(&app.db, "pending_reviews")
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(on_postgres, expected);
    for view in ["pull_request_reviews", "pull_request_builds"] {
        let names: Vec<String> = postgres_columns(&app.db, view)
            .await
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(names, sqlite_columns(&sqlite.db, view).await, "{view}");
    }
}

/// The same deliveries to a SQLite app and a PostgreSQL app (the same settings, the same frozen
/// clock): every shared real payload of both flavours, then our own (approvals by one and by
/// several people, changes requested, a draft, 3 approvals required, builds). Every table and
/// operator view then holds the same rows on both, `pending_reviews` in the same order; ids
/// (a sequence's numbers, which PostgreSQL also spends on refused inserts) are left out.
#[tokio::test]
async fn the_same_deliveries_leave_the_same_rows_and_views_as_on_sqlite() {
    let Some(dir) = crate::helpers::shared_fixtures() else {
        return;
    };
    let clock = pr_reminder::clock::ManualClock::frozen(utc(2026, 11, 24, 10, 0));
    let Some(app) = spawn_pg("parity", comparison_settings, clock.clock()).await else {
        return;
    };
    let sqlite = crate::helpers::spawn_app_with_clock(comparison_settings, clock.clock()).await;

    let mut sent = 0;
    for (i, (flavour, key, file, body)) in shared_deliveries(&dir).into_iter().enumerate() {
        let id = format!("parity-{i}");
        let on_sqlite = send_as(&sqlite.client, &sqlite.address, &flavour, &key, &id, &body).await;
        let on_postgres = send_as(&app.client, &app.address, &flavour, &key, &id, &body).await;
        assert_eq!(
            (on_postgres.status, &on_postgres.body),
            (on_sqlite.status, &on_sqlite.body),
            "{file} as {key}: PostgreSQL's answer (left), SQLite's (right)"
        );
        sent += 1;
    }
    // The view reads `age_hours` on its database's own clock: PostgreSQL's is the server's, which
    // a test process run under a shifted clock (`.ci/run`'s faketime run) does not move.
    let server_now: String = sqlx::query_scalar(POSTGRES_NOW)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let server_now = chrono::DateTime::parse_from_rfc3339(&server_now)
        .unwrap()
        .with_timezone(&Utc);
    for (i, (key, body)) in own_deliveries(server_now).into_iter().enumerate() {
        let id = format!("own-{i}");
        let body = serde_json::to_vec(&body).unwrap();
        let on_sqlite = send_as(&sqlite.client, &sqlite.address, "cloud", &key, &id, &body).await;
        assert_eq!(on_sqlite.body["status"], "processed", "{}", on_sqlite.body);
        let on_postgres = send_as(&app.client, &app.address, "cloud", &key, &id, &body).await;
        assert_eq!(on_postgres.body, on_sqlite.body, "own delivery {i}");
        sent += 1;
    }
    // Refused deliveries are recorded without the sender waiting.
    let total = sqlite.wait_for_deliveries(sent).await.len();
    app.wait_count("SELECT count(*) FROM deliveries", total as i64)
        .await;

    for (relation, skip) in [
        ("settings", &[][..]),
        ("repositories", &[][..]),
        ("users", &[][..]),
        ("pull_requests", &[][..]),
        ("reviews", &[][..]),
        ("commit_statuses", &[][..]),
        ("deliveries", &["id"][..]),
        ("outbox", &["id"][..]),
        ("snoozes", &[][..]),
        ("sweeps", &["id", "outbox_id"][..]),
        ("pull_request_reviews", &[][..]),
        ("pull_request_builds", &[][..]),
    ] {
        assert_same_relation(&sqlite.db, &app.db, relation, skip, true).await;
    }
    // The view operators read, row for row in its own order. `age_hours` is each database's
    // reading of its own clock (SQLite's is this process's, PostgreSQL's the server's): checked
    // on each against that clock rather than across the two.
    let rows = assert_same_relation(
        &sqlite.db,
        &app.db,
        "pending_reviews",
        &["age_hours"],
        false,
    )
    .await;
    assert!(rows >= 10, "{rows} pending reviews compared");
    let sqlite_ages: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT age_hours, created_on, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM pending_reviews",
    )
    .fetch_all(&sqlite.db)
    .await
    .unwrap();
    let postgres_ages: Vec<(i64, String, String)> = sqlx::query_as(&format!(
        "SELECT age_hours, created_on, ({POSTGRES_NOW}) FROM pending_reviews"
    ))
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (database, ages) in [("SQLite", sqlite_ages), ("PostgreSQL", postgres_ages)] {
        assert_eq!(ages.len(), rows, "{database}");
        for (age_hours, created_on, now) in ages {
            let parse = |t: &str| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap_or_else(|e| panic!("{t}: {e}"))
                    .with_timezone(&Utc)
            };
            let expected = (parse(&now) - parse(&created_on))
                .num_seconds()
                .div_euclid(3600);
            // Whole hours, truncated toward zero by both views (the same for these past dates).
            assert_eq!(
                age_hours, expected,
                "{database}: created {created_on}, read at {now}"
            );
        }
    }

    // And what they say, for our own PRs (not only that both agree): repository #number,
    // approvals/required (by whom), changes requested by, draft, build, age in hours.
    let own: Vec<String> = sqlx::query(
        "SELECT repository, number, approvals, required_approvals, approved_by, \
         changes_requested_by, draft, build_state, age_hours FROM pending_reviews \
         WHERE repository IN ('acme/web', 'acme/three', 'acme/payments-api') \
         ORDER BY repository, number",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        format!(
            "{} #{}: {}/{} by {:?}, changes by {:?}, draft {}, build {:?}, {} h",
            r.get::<String, _>(0),
            r.get::<i64, _>(1),
            r.get::<i64, _>(2),
            r.get::<i64, _>(3),
            r.get::<Option<String>, _>(4),
            r.get::<Option<String>, _>(5),
            r.get::<bool, _>(6),
            r.get::<Option<String>, _>(7),
            r.get::<i64, _>(8),
        )
    })
    .collect();
    assert_eq!(
        own,
        [
            "acme/payments-api #42: 0/2 by None, changes by None, draft false, build Some(\"FAILED\"), 30 h",
            "acme/three #1: 2/3 by Some(\"Bob Reviewer, Carol Reviewer\"), changes by None, draft false, build None, 75 h",
            "acme/web #1: 1/2 by Some(\"Bob Reviewer\"), changes by Some(\"Carol Reviewer\"), draft false, build None, 5 h",
            "acme/web #2: 0/2 by None, changes by None, draft false, build None, 50 h",
            "acme/web #3: 0/2 by None, changes by None, draft true, build None, 2 h",
        ]
    );

    // What the two apps answer from those rows is the same too: the status page (same frozen
    // clock), the room's `/reviews all`, and a forced sweep's report and digest.
    let mut pages = Vec::new();
    for (client, address) in [
        (&app.client, &app.address),
        (&sqlite.client, &sqlite.address),
    ] {
        let response = client
            .get(format!("{address}/status"))
            .bearer_auth(COMPARISON_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        pages.push(response.text().await.unwrap());
    }
    // PostgreSQL's page has one table more: which replica sends each room (its own test is
    // status_page::the_page_names_the_replica_sending_each_room). The rest is the same.
    let start = pages[0]
        .find("<h3>Which replica sends each room</h3>")
        .expect("PostgreSQL's page names the rooms' senders");
    let end = start + pages[0][start..].find("</table>").expect("its table") + "</table>".len();
    let without_senders = format!("{}{}", &pages[0][..start], &pages[0][end..]);
    assert!(!pages[1].contains("Which replica sends each room"));
    assert_eq!(
        without_senders, pages[1],
        "the status page on PostgreSQL (left, without the senders' table), on SQLite (right)"
    );
    assert!(
        pages[0].contains("<td>Bitbucket Data Center</td>"),
        "{}",
        pages[0]
    );
    let command = json!({
        "event": "room_message",
        "item": {
            "message": {"message": "/reviews all",
                        "from": {"id": 99, "name": "Some One", "mention_name": "someone"}},
            "room": {"id": 1, "name": "team"},
        }
    });
    let lists = [
        hipchat_command(&app, COMPARISON_TOKEN, &command).await.1,
        hipchat_command(&sqlite, COMPARISON_TOKEN, &command).await.1,
    ];
    assert_eq!(
        lists[0], lists[1],
        "/reviews all on PostgreSQL (left), on SQLite (right)"
    );
    assert!(
        lists[0]["message"]
            .as_str()
            .unwrap()
            .contains("pull requests waiting for review"),
        "{}",
        lists[0]
    );
    let mut swept = Vec::new();
    for (client, address) in [
        (&app.client, &app.address),
        (&sqlite.client, &sqlite.address),
    ] {
        let report: Value = client
            .post(format!("{address}/sweep?force=true"))
            .bearer_auth(COMPARISON_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        swept.push(report);
    }
    assert_eq!(
        swept[0], swept[1],
        "the sweep on PostgreSQL (left), on SQLite (right)"
    );
    assert_eq!(swept[0]["rooms"][0]["status"], "posted", "{}", swept[0]);
    let digest = "SELECT payload FROM outbox WHERE kind = 'digest'";
    let on_postgres: String = sqlx::query_scalar(digest).fetch_one(&app.db).await.unwrap();
    let on_sqlite: String = sqlx::query_scalar(digest)
        .fetch_one(&sqlite.db)
        .await
        .unwrap();
    assert_eq!(
        on_postgres, on_sqlite,
        "the digest on PostgreSQL (left), on SQLite (right)"
    );
}

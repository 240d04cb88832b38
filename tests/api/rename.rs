//! A repository renamed while a PR is open (tried as a new user would): later deliveries carry
//! the same `repository.uuid` and a new `full_name`. One PR, shown and routed under the current
//! name; `repo:updated` folded in; a database written before repositories had keys is merged.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use pr_reminder::clock::Clock;
use pr_reminder::config::{Room, Settings, Sink};

use crate::helpers::{on_both, own_fixture, route, spawn_on, uuid_like, On, Served};
use crate::lifecycle::pr_event;

pub(crate) const OLD: &str = "acme/payments-api";
pub(crate) const NEW: &str = "acme/payments-service";
/// The uuid of acme/payments-api in our own fixtures, which a rename keeps.
pub(crate) const UUID: &str = "{5e1f0a77-9d0b-4c1e-8f53-0123456789ab}";

/// `body` from the repository `UUID` under the name `full_name`.
pub(crate) fn renamed(mut body: Value, full_name: &str) -> Value {
    for path in [
        "/repository",
        "/pullrequest/source/repository",
        "/pullrequest/destination/repository",
    ] {
        if let Some(repo) = body.pointer_mut(path).filter(|r| r.is_object()) {
            repo["full_name"] = json!(full_name);
            repo["uuid"] = json!(UUID);
        }
    }
    body["repository"]["links"]["html"]["href"] =
        json!(format!("https://bitbucket.org/{full_name}"));
    let number = body["pullrequest"]["id"].clone();
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{full_name}/pull-requests/{number}"
    ));
    body
}

/// `body` from another repository of the same name (another uuid).
pub(crate) fn same_name_other_repository(mut body: Value) -> Value {
    for path in [
        "/repository",
        "/pullrequest/source/repository",
        "/pullrequest/destination/repository",
    ] {
        if let Some(repo) = body.pointer_mut(path).filter(|r| r.is_object()) {
            repo["uuid"] = json!("{00000000-0000-4000-8000-00000000beef}");
        }
    }
    body
}

fn console(name: &str) -> Room {
    Room {
        name: name.into(),
        sink: Sink::Console,
    }
}

/// Two rooms, one per name; messages wait in a long window so the outbox can be read as queued.
pub(crate) fn settings(s: &mut Settings) {
    s.notify.rooms = vec![console("old-room"), console("new-room")];
    s.notify.routes = vec![route(&[OLD], "old-room"), route(&[NEW], "new-room")];
    s.notify.coalesce = Duration::from_secs(600);
}

on_both!(
    a_renamed_repository_keeps_one_pr_under_its_current_name,
    repo_updated_renames_before_any_pr_event_says_so,
    two_repositories_sharing_a_name_stay_apart,
);

/// (room, repository name, number, events) of every outbox row, oldest first.
pub(crate) async fn outbox(app: &impl Served) -> Vec<(String, String, i64, String)> {
    app.query_rows(
        "SELECT o.room, r.full_name, o.number, o.events FROM outbox o \
         JOIN repositories r ON r.repository_key = o.repository_key ORDER BY o.id",
    )
    .await
}

/// (repository, number, title, approvals) of `pending_reviews`.
pub(crate) async fn pending(app: &impl Served) -> Vec<(String, i64, String, i64)> {
    app.query_rows("SELECT repository, number, title, approvals FROM pending_reviews")
        .await
}

/// PR #42 of acme/payments-api, opened under `OLD`, approved under `NEW`, then a late delivery
/// under `OLD`: one PR, shown and routed under `NEW`; the late one changes nothing.
async fn a_renamed_repository_keeps_one_pr_under_its_current_name(on: On) {
    let Some(app) = spawn_on(on, "rename", settings, Clock::system()).await else {
        return;
    };
    let app = &app;
    let opened = pr_event(
        42,
        "2026-11-20T10:00:00+00:00",
        "OPEN",
        "Retry card captures",
        "9b2c4e6f8a10",
        &[("bob", "REVIEWER", None), ("carol", "REVIEWER", None)],
    );
    app.processed("pullrequest:created", &renamed(opened, OLD))
        .await;

    // Renamed; Bob approves.
    let approved = pr_event(
        42,
        "2026-11-20T11:00:00+00:00",
        "OPEN",
        "Retry card captures",
        "9b2c4e6f8a10",
        &[
            ("bob", "REVIEWER", Some("approved")),
            ("carol", "REVIEWER", None),
        ],
    );
    app.processed("pullrequest:approved", &renamed(approved, NEW))
        .await;

    assert_eq!(
        pending(app).await,
        vec![(NEW.to_owned(), 42, "Retry card captures".to_owned(), 1)]
    );
    assert_eq!(
        app.count_rows("SELECT count(*) FROM pull_requests").await,
        1
    );
    assert_eq!(
        app.pull_request_row(NEW, 42).await.unwrap().url.as_deref(),
        Some("https://bitbucket.org/acme/payments-service/pull-requests/42")
    );
    assert!(app.pull_request_row(OLD, 42).await.is_none());
    // Announced once when opened (under the name it had), and the approval is routed by the
    // current name: no second "Needs review".
    assert_eq!(
        outbox(app).await,
        vec![
            ("old-room".into(), NEW.into(), 42, "opened".into()),
            ("new-room".into(), NEW.into(), 42, "approvals".into()),
        ]
    );

    // A delivery from before the rename that arrives late changes neither the name nor the PR.
    let late = pr_event(
        42,
        "2026-11-20T10:30:00+00:00",
        "OPEN",
        "Retry card captures (old title)",
        "9b2c4e6f8a10",
        &[],
    );
    app.processed("pullrequest:updated", &renamed(late, OLD))
        .await;
    assert_eq!(
        pending(app).await,
        vec![(NEW.to_owned(), 42, "Retry card captures".to_owned(), 1)]
    );
    let names: Vec<(String,)> = app.query_rows("SELECT full_name FROM repositories").await;
    assert_eq!(names, vec![(NEW.to_owned(),)]);
    assert_eq!(outbox(app).await.len(), 2);
}

/// The repository's new name and link, from `repo:updated`, before any PR event carries them.
async fn repo_updated_renames_before_any_pr_event_says_so(on: On) {
    let Some(app) = spawn_on(on, "repoupdated", settings, Clock::system()).await else {
        return;
    };
    let opened = pr_event(
        7,
        "2026-11-20T10:00:00+00:00",
        "OPEN",
        "Add refunds",
        "0a1b2c3d4e5f",
        &[],
    );
    app.processed("pullrequest:created", &renamed(opened, OLD))
        .await;
    let answer = app
        .deliver_body(
            "repo:updated",
            &uuid_like("repo"),
            &own_fixture("repo_updated.json"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        (
            &answer.body["status"],
            &answer.body["repository"],
            &answer.body["pull_request"]
        ),
        (&json!("processed"), &json!(NEW), &Value::Null)
    );
    assert_eq!(
        pending(&app).await,
        vec![(NEW.to_owned(), 7, "Add refunds".to_owned(), 0)]
    );
    let repo: Vec<(String, Option<String>, Option<String>)> = app
        .query_rows("SELECT full_name, url, named_on FROM repositories")
        .await;
    assert_eq!(
        (repo[0].0.as_str(), repo[0].1.as_deref()),
        (NEW, Some("https://bitbucket.org/acme/payments-service"))
    );
    assert!(repo[0].2.is_some(), "named_on recorded: {repo:?}");
    let recorded: Vec<(String, Option<String>)> = app
        .query_rows("SELECT outcome, repository FROM deliveries WHERE event_key = 'repo:updated'")
        .await;
    assert_eq!(recorded, [("processed".to_owned(), Some(NEW.to_owned()))]);
}

/// Two repositories that share a name (one deleted and created again, say) are two
/// repositories, each with its PR #1, both waiting for review.
async fn two_repositories_sharing_a_name_stay_apart(on: On) {
    let Some(app) = spawn_on(on, "samename", settings, Clock::system()).await else {
        return;
    };
    let with_uuid = renamed(
        pr_event(
            1,
            "2026-11-20T10:00:00+00:00",
            "OPEN",
            "One",
            "0a1b2c3d4e5f",
            &[],
        ),
        OLD,
    );
    let mut other = same_name_other_repository(with_uuid.clone());
    other["pullrequest"]["title"] = json!("Other");
    other["pullrequest"]["updated_on"] = json!("2026-11-21T10:00:00+00:00");
    app.processed("pullrequest:created", &with_uuid).await;
    app.processed("pullrequest:created", &other).await;
    let prs: Vec<(String, String, i64, String)> = app
        .query_rows(
            "SELECT r.repository_key, r.full_name, p.number, p.title FROM pull_requests p \
             JOIN repositories r ON r.repository_key = p.repository_key ORDER BY p.title",
        )
        .await;
    assert_eq!(
        prs,
        [
            (format!("cloud/{UUID}"), OLD.to_owned(), 1, "One".to_owned()),
            (
                "cloud/{00000000-0000-4000-8000-00000000beef}".to_owned(),
                OLD.to_owned(),
                1,
                "Other".to_owned()
            ),
        ]
    );
    assert_eq!(app.count_rows("SELECT count(*) FROM repositories").await, 2);
    assert_eq!(pending(&app).await.len(), 2);
}

/// A database written before repositories had keys, with a PR split in two by a rename, is
/// merged by the migration: one PR (the newest snapshot), its reviews, one waiting message.
#[tokio::test]
async fn the_migration_merges_rows_a_rename_had_split() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let old_pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    let mut before = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            pr_reminder::store::MIGRATOR
                .iter()
                .filter(|m| m.version < 20261130000000)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.set_locking(false);
    before.run(&old_pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO users (user_key, display_name) VALUES ('{a}', 'Ann'), ('{b}', 'Bob');
         INSERT INTO repositories (full_name, uuid) VALUES
             ('acme/payments-api', '{R}'), ('acme/payments-service', '{R}'), ('x/y', NULL);
         INSERT INTO pull_requests (repository, number, title, author, state, created_on,
             updated_on, last_activity_on, approvals) VALUES
             ('acme/payments-api', 1, 'old title', '{a}', 'OPEN', '2026-01-01T00:00:00.000000Z',
              '2026-01-02T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z', 0),
             ('acme/payments-service', 1, 'new title', '{a}', 'OPEN', '2026-01-01T00:00:00.000000Z',
              '2026-01-03T00:00:00.000000Z', '2026-01-03T00:00:00.000000Z', 1),
             ('x/y', 5, 'xy', '{a}', 'OPEN', '2026-01-01T00:00:00.000000Z',
              '2026-01-03T00:00:00.000000Z', '2026-01-03T00:00:00.000000Z', 0);
         INSERT INTO reviews VALUES
             ('acme/payments-api', 1, '{b}', 'REVIEWER', 'none', NULL, '2026-01-02T00:00:00.000000Z'),
             ('acme/payments-service', 1, '{b}', 'REVIEWER', 'approved', NULL, '2026-01-03T00:00:00.000000Z');
         INSERT INTO outbox (room, repository, number, events, created_at, not_before) VALUES
             ('r', 'acme/payments-api', 1, 'opened', 't', 't'),
             ('r', 'acme/payments-service', 1, 'opened', 't', 't'),
             ('r', '', 0, 'digest', 't', 't');
         INSERT INTO snoozes (user_key, repository, number, until, created_at)
             VALUES ('{b}', 'x/y', 5, 'z', 't');",
    )
    .execute(&old_pool)
    .await
    .unwrap();
    old_pool.close().await;

    let db = pr_reminder::store::open(&path, "full").await.unwrap();
    db.close().await;
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&path).read_only(true))
        .await
        .unwrap();
    let repositories: Vec<(String, String)> =
        sqlx::query_as("SELECT repository_key, full_name FROM repositories ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        repositories,
        vec![
            ("cloud/name/x/y".to_owned(), "x/y".to_owned()),
            ("cloud/{R}".to_owned(), "acme/payments-service".to_owned()),
        ]
    );
    let pending: Vec<(String, i64, String, i64)> = sqlx::query_as(
        "SELECT repository, number, title, approvals FROM pending_reviews ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        pending,
        vec![
            (
                "acme/payments-service".to_owned(),
                1,
                "new title".to_owned(),
                1
            ),
            ("x/y".to_owned(), 5, "xy".to_owned(), 0),
        ]
    );
    let reviews: Vec<(String, String)> =
        sqlx::query_as("SELECT repository_key, state FROM reviews")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        reviews,
        vec![("cloud/{R}".to_owned(), "approved".to_owned())]
    );
    let outbox: Vec<(i64, String, Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT id, kind, repository_key, number FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        outbox,
        vec![
            (
                1,
                "pull_request".to_owned(),
                Some("cloud/{R}".to_owned()),
                Some(1)
            ),
            (3, "digest".to_owned(), None, None),
        ]
    );
    let snoozes: Vec<(String, i64)> = sqlx::query_as("SELECT repository_key, number FROM snoozes")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(snoozes, vec![("cloud/name/x/y".to_owned(), 5)]);
    let violations: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

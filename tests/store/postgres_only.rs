//! What only PostgreSQL has: several replicas on one database.

use pr_reminder::store::{self, Database};
use sqlx::PgPool;

/// During a rolling upgrade a new replica applies its migrations while old ones still run; an old
/// replica that restarts then must still start (and `migrate` must still succeed), ignoring the
/// migration it does not know.
#[tokio::test]
async fn an_older_replica_starts_on_a_database_a_newer_one_migrated() {
    let Some(url) = crate::postgres::fresh_database("rolling").await else {
        return;
    };
    let database = Database::Postgres(url.clone().into());
    let db = store::connect(&database, "full")
        .await
        .expect("first start");
    db.close().await;
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from a newer release', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let db = store::connect(&database, "full")
        .await
        .expect("an older release starts beside a newer schema");
    store::ping(&db).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        applied,
        shipped_versions().len() as i64 + 1,
        "nothing applied twice, nothing removed"
    );
}

/// Replicas starting at the same instant apply each migration once (sqlx's advisory lock).
#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let Some(url) = crate::postgres::fresh_database("together").await else {
        return;
    };
    let database = Database::Postgres(url.clone().into());
    let starts = (0..3).map(|_| store::connect(&database, "full"));
    for db in futures_util::future::join_all(starts).await {
        db.expect("every replica starts");
    }
    let pool = PgPool::connect(&url).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<(i64, bool)> = shipped_versions().into_iter().map(|v| (v, true)).collect();
    assert_eq!(applied, expected);
}

/// The versions of `migrations/postgres/*.sql`, in order.
fn shipped_versions() -> Vec<i64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort();
    assert!(versions.len() >= 2, "{versions:?}");
    versions
}

/// `sslmode=require` connects over TLS (sqlx's rustls; the test cluster has a self-signed
/// certificate, which `require` does not verify) and the store works through it.
#[tokio::test]
async fn a_tls_connection_string_connects_over_tls() {
    let Some(url) = crate::postgres::fresh_database("tls").await else {
        return;
    };
    let plain = PgPool::connect(&url).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&plain)
        .await
        .unwrap();
    if ssl != "on" {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but the test server has no TLS (scripts/test-postgres.sh enables it)"
        );
        eprintln!("SKIPPED: the test server has no TLS");
        return;
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let database = Database::Postgres(format!("{url}{separator}sslmode=require").into());
    let db = store::connect(&database, "full")
        .await
        .expect("connects over TLS");
    store::ping(&db).await.unwrap();
    let tls_sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
          WHERE s.ssl AND a.application_name = 'pr-reminder'",
    )
    .fetch_one(&plain)
    .await
    .unwrap();
    assert!(tls_sessions >= 1, "no TLS session of pr-reminder");
}

/// A repository's reconciliation record is one row whatever the case of its name, as SQLite's
/// NOCASE key makes it: a pass over `PRJ/API` after one over `prj/api` is not a first pass, and
/// records into the same row.
#[tokio::test]
async fn a_repository_name_in_another_case_is_the_same_reconciled_repository() {
    use pr_reminder::domain::Timestamp;
    use pr_reminder::store::reconciliations::{record_pass, seen};

    let Some(url) = crate::postgres::fresh_database("nocase").await else {
        return;
    };
    let db = store::connect(&Database::Postgres(url.clone().into()), "full")
        .await
        .unwrap();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    let site = "https://bitbucket.example";
    assert!(!seen(&db, site, "prj/api").await.unwrap());
    record_pass(
        &db,
        site,
        "prj/api",
        &at("2026-11-30T10:00:00.000000Z"),
        3,
        None,
    )
    .await
    .unwrap();
    assert!(seen(&db, site, "PRJ/API").await.unwrap());
    record_pass(
        &db,
        site,
        "PRJ/API",
        &at("2026-11-30T11:00:00.000000Z"),
        1,
        None,
    )
    .await
    .expect("the same row, not a second one");
    let pool = PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT full_name, last_pass_on, last_requests FROM reconciled_repositories",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![("prj/api".into(), "2026-11-30T11:00:00.000000Z".into(), 1)]
    );
}

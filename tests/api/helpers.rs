use std::path::PathBuf;
use std::time::Duration;

use pr_reminder::config::{Settings, SignaturePolicy};
use pr_reminder::signature::sign;
use pr_reminder::startup::Application;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::FromRow;
use tempfile::TempDir;

pub const SECRET: &str = "test-webhook-secret";

pub struct TestApp {
    pub address: String,
    pub db: SqlitePool,
    /// The SQLite file the app writes (for tools that open it themselves, like the CLI).
    pub db_path: PathBuf,
    pub client: reqwest::Client,
    _dir: Option<TempDir>,
}

/// The app with one webhook secret, `SECRET`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_clock(adjust, pr_reminder::clock::Clock::system()).await
}

/// The settings every test app starts from, before the test's own adjustments: one webhook
/// secret (`SECRET`), port 0, `database`.
///
/// An app on the system clock gets an explicit calendar that is open at every instant (every day
/// a working day, no quiet hours, UTC): the defaults (Monday to Friday) would make its sweeps
/// depend on the weekday the suite runs on. A test about the calendar runs on a [`ManualClock`]
/// and keeps the defaults, or sets its own in `adjust`.
///
/// Nothing is pruned (`[retention]` all off): the pruner's hourly wait would sit among the waits
/// a test on a [`ManualClock`] pins. The retention tests set their own.
pub fn test_settings(
    database: pr_reminder::store::Database,
    clock: &pr_reminder::clock::Clock,
) -> Settings {
    let mut settings = Settings::with_defaults(SignaturePolicy::Verify(vec![SecretString::from(
        SECRET.to_owned(),
    )]));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database = database;
    settings.retention = pr_reminder::config::RetentionSettings {
        deliveries: None,
        outbox: None,
        closed_pull_requests: None,
    };
    if !clock.is_manual() {
        settings.sweep.calendar = always_open();
    }
    settings
}

/// A calendar that never skips a sweep: every day a working day, no quiet hours, in UTC.
pub fn always_open() -> pr_reminder::domain::calendar::Calendar {
    pr_reminder::domain::calendar::Calendar {
        working_days: [true; 7],
        quiet_hours: None,
        ..Default::default()
    }
}

/// The app with an injected clock (sweeps on a given day and hour).
pub async fn spawn_app_with_clock(
    adjust: impl FnOnce(&mut Settings),
    clock: pr_reminder::clock::Clock,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("pr-reminder.db");
    spawn_app_at(db_path, Some(dir), adjust, clock).await
}

/// The app on the SQLite file `db_path` (made if missing, migrated): another start on the
/// database of a running or stopped app, or on one a test wrote. `dir` is kept as long as the
/// app (the folder the file is in, if the test made one).
pub async fn spawn_app_at(
    db_path: PathBuf,
    dir: Option<TempDir>,
    adjust: impl FnOnce(&mut Settings),
    clock: pr_reminder::clock::Clock,
) -> TestApp {
    let mut settings = test_settings(
        pr_reminder::store::Database::Sqlite(db_path.clone()),
        &clock,
    );
    adjust(&mut settings);
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let db = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&db_path)
                .read_only(true),
        )
        .await
        .expect("test reader");
    TestApp {
        address,
        db,
        db_path,
        client: reqwest::Client::new(),

        _dir: dir,
    }
}

/// What the service answered.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    /// A delivery signed with `SECRET`, as Bitbucket Cloud sends it.
    pub async fn deliver(&self, event_key: &str, request_id: &str, body: &[u8]) -> Answer {
        deliver_signed(&self.client, &self.address, event_key, request_id, body).await
    }

    pub async fn deliver_json(&self, event_key: &str, request_id: &str, body: &Value) -> Answer {
        self.deliver(event_key, request_id, &serde_json::to_vec(body).unwrap())
            .await
    }

    /// A request with exactly these headers (plus Content-Type).
    pub async fn post(&self, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        post_webhook(&self.client, &self.address, headers, body).await
    }

    pub async fn get(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16()
    }

    /// Asserts the service still answers and still stores deliveries.
    pub async fn assert_still_serving(&self) {
        assert_eq!(self.get("/healthz").await, 200);
        assert_eq!(self.get("/readyz").await, 200);
        let probe = uuid_like("probe");
        let answer = self
            .deliver("repo:push", &probe, br#"{"push": {"changes": []}}"#)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["status"], "ignored");
    }

    pub async fn pull_request(&self, repository: &str, number: i64) -> Option<PrRow> {
        sqlx::query_as(&format!(
            "{PR_ROW_SELECT} WHERE r.full_name = ?1 AND p.number = ?2"
        ))
        .bind(repository)
        .bind(number)
        .fetch_optional(&self.db)
        .await
        .unwrap()
    }

    /// (user_key, role, state) for a PR, ordered by user key.
    pub async fn reviews(&self, repository: &str, number: i64) -> Vec<(String, String, String)> {
        sqlx::query_as(
            "SELECT v.user_key, v.role, v.state FROM reviews v \
             JOIN repositories r ON r.repository_key = v.repository_key \
             WHERE r.full_name = ?1 AND v.number = ?2 ORDER BY v.user_key",
        )
        .bind(repository)
        .bind(number)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }

    pub async fn pending(&self) -> Vec<PendingRow> {
        self.query_rows(PENDING_ROW_SELECT).await
    }

    /// All deliveries: (request_id, event_key, outcome, reason).
    pub async fn deliveries(&self) -> Vec<DeliveryRow> {
        sqlx::query_as("SELECT request_id, event_key, outcome, reason FROM deliveries ORDER BY id")
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    /// Refused deliveries are recorded without making the sender wait; poll until they land.
    pub async fn wait_for_deliveries(&self, count: usize) -> Vec<DeliveryRow> {
        for _ in 0..200 {
            let rows = self.deliveries().await;
            if rows.len() >= count {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {count} deliveries, found {:?}",
            self.deliveries().await
        );
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }
}

impl Served for TestApp {
    fn address(&self) -> &str {
        &self.address
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn query_rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(sql)
            .fetch_all(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn review_rows(&self, repository: &str, number: i64) -> Vec<(String, String, String)> {
        self.reviews(repository, number).await
    }

    async fn pull_request_row(&self, repository: &str, number: i64) -> Option<PrRow> {
        self.pull_request(repository, number).await
    }
}

/// The database a scenario runs on. A scenario is written once, as `async fn name(on: On)`
/// that spawns its app with `spawn_on`, and `on_both!(name)` runs it as two tests,
/// `name::sqlite` (always) and `name::postgres` (where `PR_REMINDER_TEST_POSTGRES` names a
/// server; SKIPPED otherwise, a failure under `CI=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Sqlite,
    Postgres,
}

/// The running application on either database.
pub enum App {
    Sqlite(TestApp),
    Postgres(crate::postgres::PgApp),
}

/// The application on `on`'s database (a fresh one named after `label` on PostgreSQL), with
/// one webhook secret (`SECRET`), `adjust`ed settings and `clock`; `None` on PostgreSQL without
/// a test server (SKIPPED was printed).
pub async fn spawn_on(
    on: On,
    label: &str,
    adjust: impl FnOnce(&mut Settings),
    clock: pr_reminder::clock::Clock,
) -> Option<App> {
    match on {
        On::Sqlite => Some(App::Sqlite(spawn_app_with_clock(adjust, clock).await)),
        On::Postgres => crate::postgres::spawn_pg(label, adjust, clock)
            .await
            .map(App::Postgres),
    }
}

impl App {
    /// The database this app runs on.
    pub fn on(&self) -> On {
        match self {
            App::Sqlite(_) => On::Sqlite,
            App::Postgres(_) => On::Postgres,
        }
    }

    /// What a binary is given as `PR_REMINDER_DATABASE` to work on this app's database: the
    /// SQLite file's path, or the PostgreSQL connection string (with its password).
    pub fn database(&self) -> String {
        match self {
            App::Sqlite(app) => app.db_path.display().to_string(),
            App::Postgres(app) => app.url.clone(),
        }
    }

    /// Runs `sql` (statements without parameters, SQL both databases read alike) on this app's
    /// database, as an operator's own connection would: rows a test writes beside the service.
    pub async fn execute(&self, sql: &str) {
        execute_at(self.on(), &self.database(), sql).await
    }

    /// Another start of the application on this app's database (migrated again at start), with
    /// one webhook secret (`SECRET`), `adjust`ed settings and `clock`: a restart or a second
    /// replica. This app must outlive it (on SQLite it owns the file's folder).
    pub async fn again(
        &self,
        adjust: impl FnOnce(&mut Settings),
        clock: pr_reminder::clock::Clock,
    ) -> App {
        spawn_at(self.on(), &self.database(), adjust, clock).await
    }
}

/// Runs `sql` (statements without parameters, SQL both databases read alike) on `database`
/// (`PR_REMINDER_DATABASE`'s value on `on`) over a connection of its own, closed after.
pub async fn execute_at(on: On, database: &str, sql: &str) {
    match on {
        On::Sqlite => {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(SqliteConnectOptions::new().filename(database))
                .await
                .expect("a connection to the test's SQLite file");
            sqlx::raw_sql(sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        }
        On::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(database)
                .await
                .expect("a connection to the test's PostgreSQL database");
            sqlx::raw_sql(sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        }
    }
}

/// Every row of `sql` (no parameters; SQL both databases read alike) on `database`
/// (`PR_REMINDER_DATABASE`'s value on `on`), read over a connection of its own, in its order.
pub async fn query_at<T>(on: On, database: &str, sql: &str) -> Vec<T>
where
    T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
{
    match on {
        On::Sqlite => {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(SqliteConnectOptions::new().filename(database))
                .await
                .expect("a connection to the test's SQLite file");
            let rows = sqlx::query_as(sql)
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
            rows
        }
        On::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(database)
                .await
                .expect("a connection to the test's PostgreSQL database");
            let rows = sqlx::query_as(sql)
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
            rows
        }
    }
}

/// A database nothing was written to yet, for a binary to start on: an absent SQLite file in a
/// folder of its own that does not exist either (kept as long as this value), or an empty
/// PostgreSQL database.
pub struct FreshDatabase {
    /// `PR_REMINDER_DATABASE`'s value: the file's path, or the connection string.
    pub database: String,
    _dir: Option<TempDir>,
}

/// A fresh database on `on` (named after `label` on PostgreSQL); `None` on PostgreSQL without a
/// test server (SKIPPED was printed).
pub async fn fresh_database(on: On, label: &str) -> Option<FreshDatabase> {
    match on {
        On::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("sub").join("state.db");
            Some(FreshDatabase {
                database: path.display().to_string(),
                _dir: Some(dir),
            })
        }
        On::Postgres => Some(FreshDatabase {
            database: crate::postgres::fresh_database(label).await?,
            _dir: None,
        }),
    }
}

/// The application on `database` (`PR_REMINDER_DATABASE`'s value on `on`: a SQLite file, made
/// if missing, or a PostgreSQL connection string; migrated at start), with one webhook secret
/// (`SECRET`), `adjust`ed settings and `clock`: another start on a database a running app, the
/// binary or the test wrote. Whoever made the database keeps it as long as the app.
pub async fn spawn_at(
    on: On,
    database: &str,
    adjust: impl FnOnce(&mut Settings),
    clock: pr_reminder::clock::Clock,
) -> App {
    match on {
        On::Sqlite => App::Sqlite(spawn_app_at(PathBuf::from(database), None, adjust, clock).await),
        On::Postgres => {
            App::Postgres(crate::postgres::spawn_pg_at(database.to_owned(), adjust, clock).await)
        }
    }
}

/// The binary (`pr-reminder ARGS`) on `database` (a SQLite file or a PostgreSQL connection
/// string, as [`App::database`] gives it), run in an empty folder with nothing of the caller's
/// environment, to its end off the async runtime: (exit code, stdout, stderr).
pub async fn run_binary(database: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_pr-reminder"));
    cmd.current_dir(dir.path())
        .env("PR_REMINDER_DATABASE", database)
        .args(args);
    output(cmd).await
}

impl Served for App {
    fn address(&self) -> &str {
        match self {
            App::Sqlite(app) => app.address(),
            App::Postgres(app) => app.address(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        match self {
            App::Sqlite(app) => app.client(),
            App::Postgres(app) => app.client(),
        }
    }

    async fn query_rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
    {
        match self {
            App::Sqlite(app) => app.query_rows(sql).await,
            App::Postgres(app) => app.query_rows(sql).await,
        }
    }

    async fn review_rows(&self, repository: &str, number: i64) -> Vec<(String, String, String)> {
        match self {
            App::Sqlite(app) => app.review_rows(repository, number).await,
            App::Postgres(app) => app.review_rows(repository, number).await,
        }
    }

    async fn pull_request_row(&self, repository: &str, number: i64) -> Option<PrRow> {
        match self {
            App::Sqlite(app) => app.pull_request_row(repository, number).await,
            App::Postgres(app) => app.pull_request_row(repository, number).await,
        }
    }
}

/// Runs each `async fn name(on: On)` scenario on both databases: tests `name::sqlite` and
/// `name::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::helpers::On::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(crate::helpers::On::Postgres).await
            }
        }
    )*};
}
pub(crate) use on_both;

/// What a test asks of the running application whichever database it stores in (`TestApp` on
/// SQLite, the PostgreSQL tests' `PgApp`): where it listens, an HTTP client, and its rows.
pub(crate) trait Served {
    /// The base address, `http://127.0.0.1:PORT`.
    fn address(&self) -> &str;

    fn client(&self) -> &reqwest::Client;

    /// Every row of `sql` (no parameters; SQL both databases read alike), in its order.
    async fn query_rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>;

    /// (user_key, role, state) of the reviews of PR `number` of `repository` (its current name),
    /// by user key.
    async fn review_rows(&self, repository: &str, number: i64) -> Vec<(String, String, String)>;

    /// The stored pull request `number` of `repository` (its current name), `draft` as 0/1.
    async fn pull_request_row(&self, repository: &str, number: i64) -> Option<PrRow>;

    /// Every delivery: (request_id, event_key, outcome, reason), in order of arrival.
    async fn delivery_rows(&self) -> Vec<DeliveryRow> {
        self.query_rows("SELECT request_id, event_key, outcome, reason FROM deliveries ORDER BY id")
            .await
    }

    /// A Cloud delivery of `body` signed with `SECRET`: the answer.
    async fn deliver_body(&self, event_key: &str, request_id: &str, body: &Value) -> Answer {
        let body = serde_json::to_vec(body).unwrap();
        deliver_signed(self.client(), self.address(), event_key, request_id, &body).await
    }

    /// The count `sql` (a `SELECT count(*) ...`) answers.
    async fn count_rows(&self, sql: &str) -> i64 {
        let rows: Vec<(i64,)> = self.query_rows(sql).await;
        rows[0].0
    }

    /// Polls `sql` (a `SELECT count(*) ...`) until it answers `want`; fails after `PATIENCE`.
    async fn wait_for_count(&self, sql: &str, want: i64) {
        let started = std::time::Instant::now();
        loop {
            let got = self.count_rows(sql).await;
            if got == want {
                return;
            }
            assert!(
                started.elapsed() < crate::fake_chat::PATIENCE,
                "{sql}: expected {want}, got {got}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A Cloud delivery of `body` signed with `SECRET`, asserted processed (200).
    async fn processed(&self, event_key: &str, body: &Value) {
        let body = serde_json::to_vec(body).unwrap();
        let answer = deliver_signed(
            self.client(),
            self.address(),
            event_key,
            &uuid_like("delivery"),
            &body,
        )
        .await;
        assert_eq!(answer.status, 200, "{event_key}: {}", answer.body);
        assert_eq!(
            answer.body["status"], "processed",
            "{event_key}: {}",
            answer.body
        );
    }

    /// `GET path` with an optional bearer token: (status, body).
    async fn get_text(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let mut request = self.client().get(format!("{}{path}", self.address()));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// `POST path` with a bearer token: the response.
    async fn post_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client()
            .post(format!("{}{path}", self.address()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// A webhook delivery with exactly these headers (plus Content-Type) to the app at `address`.
pub async fn post_webhook(
    client: &reqwest::Client,
    address: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut request = client
        .post(format!("{address}/webhooks/bitbucket"))
        .header("Content-Type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("answer is not JSON: {status} {text}"));
    Answer { status, body }
}

/// A delivery to the app at `address` signed with `SECRET`, as Bitbucket Cloud sends it.
pub async fn deliver_signed(
    client: &reqwest::Client,
    address: &str,
    event_key: &str,
    request_id: &str,
    body: &[u8],
) -> Answer {
    let signature = sign(SECRET, body);
    post_webhook(
        client,
        address,
        &[
            ("X-Event-Key", event_key),
            ("X-Request-UUID", request_id),
            ("X-Hub-Signature", &signature),
            ("X-Attempt-Number", "1"),
        ],
        body.to_vec(),
    )
    .await
}

/// Runs `cmd` to its end off the async runtime: (exit code, stdout, stderr).
pub async fn output(mut cmd: std::process::Command) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

pub type DeliveryRow = (Option<String>, Option<String>, String, Option<String>);

/// `PrRow`'s query on either database, to be followed by a `WHERE` on `r` (the repository) and
/// `p` (the pull request); `draft` as 0/1.
pub const PR_ROW_SELECT: &str = "SELECT r.full_name AS repository, p.number, p.title, p.author, \
     p.source_branch, p.source_commit, p.destination_branch, p.state, \
     CAST(CAST(p.draft AS INTEGER) AS BIGINT) AS draft, p.created_on, p.updated_on, \
     p.last_activity_on, p.url \
     FROM pull_requests p JOIN repositories r ON r.repository_key = p.repository_key";

/// `pending_reviews` as `PendingRow`s, on either database.
pub const PENDING_ROW_SELECT: &str =
    "SELECT repository, number, title, author, approvals, required_approvals, \
     changes_requested, build_state, age_hours, url FROM pending_reviews";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PrRow {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub author: String,
    pub source_branch: Option<String>,
    pub source_commit: Option<String>,
    pub destination_branch: Option<String>,
    pub state: String,
    pub draft: i64,
    pub created_on: String,
    pub updated_on: String,
    pub last_activity_on: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PendingRow {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub author: String,
    pub approvals: i64,
    pub required_approvals: i64,
    pub changes_requested: i64,
    pub build_state: Option<String>,
    pub age_hours: i64,
    pub url: Option<String>,
}

/// A unique request id with a readable prefix.
pub fn uuid_like(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{:012}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn own_fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloud")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[path = "../common/shared_fixtures.rs"]
mod shared;
pub use shared::shared_fixtures;

pub use pr_reminder::clock::ManualClock;

/// A route that announces no single event (its room only gets digests and `/reviews` answers).
pub fn digest_only_route(globs: &[&str], room: &str) -> pr_reminder::config::Route {
    pr_reminder::config::Route {
        repositories: globs.iter().map(|g| g.to_string()).collect(),
        rooms: vec![room.into()],
        required_approvals: None,
        approvals_after_last_push: false,
        room_reminders: true,
        announce: pr_reminder::config::Announce::NOTHING,
        ignore_title_patterns: vec!["WIP".into()],
    }
}

/// A route with the default announcements and title patterns.
pub fn route(globs: &[&str], room: &str) -> pr_reminder::config::Route {
    pr_reminder::config::Route {
        repositories: globs.iter().map(|g| g.to_string()).collect(),
        rooms: vec![room.into()],
        required_approvals: None,
        approvals_after_last_push: false,
        room_reminders: true,
        announce: pr_reminder::config::Announce::default(),
        ignore_title_patterns: pr_reminder::config::DEFAULT_IGNORE_TITLE_PATTERNS
            .iter()
            .map(|p| p.to_string())
            .collect(),
    }
}

/// Moves a Cloud pull-request or build payload to another repository: its name and, as a
/// distinct repository has, its own uuid (`{repo:workspace/slug}`), in every place Cloud writes
/// them.
pub fn set_repository(body: &mut Value, full_name: &str) {
    let uuid = format!("{{repo:{full_name}}}");
    for path in [
        "/repository",
        "/pullrequest/source/repository",
        "/pullrequest/destination/repository",
    ] {
        if let Some(place) = body.pointer_mut(path).filter(|p| p.is_object()) {
            place["full_name"] = Value::from(full_name);
            place["uuid"] = Value::from(uuid.clone());
        }
    }
}

#[path = "../common/command.rs"]
mod command;
pub use command::clean_command;

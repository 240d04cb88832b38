//! The writer's PostgreSQL sibling: the same look-up, plan and rows as SQLite (`prepare`), with
//! PostgreSQL's statements, and the locking several replicas need.
//!
//! Replicas write concurrently, so a batch first takes a transaction-scoped advisory lock on
//! everything whose stored state its plan reads: each accepted request id (a redelivery on another
//! replica then waits for the first commit and is found a duplicate), each PR and each commit
//! (two replicas never both announce the same change). The locks are taken in one sorted order and
//! before any row lock, and each upsert writes its rows in key order, so two batches cannot
//! deadlock; should PostgreSQL still report a deadlock or a serialization failure, the batch is
//! tried again.
//!
//! Each statement reads its whole batch from one `jsonb` parameter (`jsonb_to_recordset`, typed
//! columns), as on SQLite: a fixed text, prepared once per connection.

use anyhow::Context;
use sqlx::PgPool;

use std::sync::LazyLock;

use super::{facts, prepare, Buffers, WriteOutcome, WriterConfig};
use crate::domain::{Change, Origin, Outcome, Submission};

/// Transaction-scoped advisory locks on the keys of `$1` (a JSON array of strings), in one
/// order. (Ordering in the sub-select makes the aggregate take them in that order.)
const LOCK_KEYS: &str = "\
SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT DISTINCT hashtextextended(value, 0) AS k
      FROM jsonb_array_elements_text(CAST($1 AS jsonb)) ORDER BY 1) s";

/// The state the plan needs, as one JSON object of the shape `BeforeRow` (see the SQLite text
/// `BEFORE_BATCH`).
const BEFORE_BATCH: &str = "\
SELECT CAST(json_build_object(
 'duplicates', coalesce((SELECT json_agg(d.request_id) FROM deliveries d
                 WHERE d.request_id = ANY (ARRAY(
                           SELECT jsonb_array_elements_text(CAST($1 AS jsonb))))
                   AND d.outcome <> 'rejected'), '[]'),
 'prs', coalesce((SELECT json_agg(json_build_object(
                'repository_key', p.repository_key, 'number', p.number, 'state', p.state,
                'draft', CASE WHEN p.draft THEN 1 ELSE 0 END, 'title', p.title,
                'updated_on', p.updated_on, 'author', p.author,
                'reviews', coalesce((SELECT json_agg(json_build_array(r.user_key, r.state))
                                       FROM reviews r
                                      WHERE r.repository_key = p.repository_key
                                        AND r.number = p.number AND r.state <> 'none'), '[]')))
          FROM jsonb_array_elements(CAST($2 AS jsonb)) j
          JOIN pull_requests p ON p.repository_key = j->>0 AND p.number = CAST(j->>1 AS bigint)),
          '[]'),
 'builds', coalesce((SELECT json_agg(json_build_object('commit_hash', c.commit_hash, 'key', c.key,
                   'state', c.state, 'updated_on', c.updated_on))
              FROM jsonb_array_elements(CAST($3 AS jsonb)) j
              JOIN commit_statuses c ON c.commit_hash = j->>0 AND c.key = j->>1), '[]'),
 'prs_on_commits', coalesce((SELECT json_agg(json_build_object(
                    'repository_key', p.repository_key, 'full_name', repo.full_name,
                    'number', p.number, 'source_commit', lower(p.source_commit), 'title', p.title,
                    'draft', CASE WHEN p.draft THEN 1 ELSE 0 END))
                 FROM jsonb_array_elements_text(CAST($4 AS jsonb)) j(hash)
                 JOIN pull_requests p ON p.source_commit IN (substr(j.hash, 1, 12), j.hash)
                 JOIN repositories repo ON repo.repository_key = p.repository_key
                WHERE p.state = 'OPEN'), '[]')";

const INSERT_DELIVERIES: &str = "\
INSERT INTO deliveries (request_id, event_key, received_at, outcome, reason, repository, pr_number,
    attempt, flavour, server)
SELECT request_id, event_key, received_at, outcome, reason, repository, pr_number, attempt, flavour,
    server
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(request_id text, event_key text,
    received_at text, outcome text, reason text, repository text, pr_number bigint,
    attempt bigint, flavour text, server text)";

// The newest name wins whatever the arrival order; rows are rewritten only when something differs.
const UPSERT_REPOSITORIES: &str = "\
INSERT INTO repositories AS t (repository_key, full_name, uuid, url, required_approvals, named_on,
    approvals_after_last_push)
SELECT repository_key, full_name, uuid, url, required_approvals, named_on,
    approvals_after_last_push
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(repository_key text, full_name text, uuid text,
    url text, required_approvals bigint, named_on text, approvals_after_last_push boolean)
-- A row with nothing new is left out before the upsert, which would lock it even unchanged and
-- make every other replica's batch naming it wait for this commit.
WHERE NOT EXISTS (SELECT 1 FROM repositories r
                   WHERE r.repository_key = b.repository_key
                     AND (b.named_on < coalesce(r.named_on, '')
                          OR (b.full_name = r.full_name
                              AND coalesce(b.uuid, r.uuid) IS NOT DISTINCT FROM r.uuid
                              AND coalesce(b.url, r.url) IS NOT DISTINCT FROM r.url
                              AND b.required_approvals IS NOT DISTINCT FROM r.required_approvals
                              AND b.approvals_after_last_push = r.approvals_after_last_push)))
ORDER BY repository_key
ON CONFLICT (repository_key) DO UPDATE SET
    full_name = excluded.full_name,
    named_on = excluded.named_on,
    uuid = coalesce(excluded.uuid, t.uuid),
    url = coalesce(excluded.url, t.url),
    required_approvals = excluded.required_approvals,
    approvals_after_last_push = excluded.approvals_after_last_push
WHERE excluded.named_on >= coalesce(t.named_on, '')
  AND (excluded.full_name IS DISTINCT FROM t.full_name
       OR coalesce(excluded.uuid, t.uuid) IS DISTINCT FROM t.uuid
       OR coalesce(excluded.url, t.url) IS DISTINCT FROM t.url
       OR excluded.required_approvals IS DISTINCT FROM t.required_approvals
       OR excluded.approvals_after_last_push IS DISTINCT FROM t.approvals_after_last_push)";

const UPSERT_USERS: &str = "\
INSERT INTO users AS t (user_key, uuid, account_id, nickname, username, display_name, email)
SELECT user_key, uuid, account_id, nickname, username, display_name, email
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(user_key text, uuid text, account_id text,
    nickname text, username text, display_name text, email text)
-- As for repositories: an unchanged person is not locked (authors recur in every batch).
WHERE NOT EXISTS (SELECT 1 FROM users u
                   WHERE u.user_key = b.user_key
                     AND coalesce(b.uuid, u.uuid) IS NOT DISTINCT FROM u.uuid
                     AND coalesce(b.account_id, u.account_id) IS NOT DISTINCT FROM u.account_id
                     AND coalesce(b.nickname, u.nickname) IS NOT DISTINCT FROM u.nickname
                     AND coalesce(b.username, u.username) IS NOT DISTINCT FROM u.username
                     AND coalesce(b.display_name, u.display_name)
                         IS NOT DISTINCT FROM u.display_name
                     AND coalesce(b.email, u.email) IS NOT DISTINCT FROM u.email)
ORDER BY user_key
ON CONFLICT (user_key) DO UPDATE SET
    uuid = coalesce(excluded.uuid, t.uuid),
    account_id = coalesce(excluded.account_id, t.account_id),
    nickname = coalesce(excluded.nickname, t.nickname),
    username = coalesce(excluded.username, t.username),
    display_name = coalesce(excluded.display_name, t.display_name),
    email = coalesce(excluded.email, t.email)
WHERE coalesce(excluded.uuid, t.uuid) IS DISTINCT FROM t.uuid
   OR coalesce(excluded.account_id, t.account_id) IS DISTINCT FROM t.account_id
   OR coalesce(excluded.nickname, t.nickname) IS DISTINCT FROM t.nickname
   OR coalesce(excluded.username, t.username) IS DISTINCT FROM t.username
   OR coalesce(excluded.display_name, t.display_name) IS DISTINCT FROM t.display_name
   OR coalesce(excluded.email, t.email) IS DISTINCT FROM t.email";

// An older snapshot never overwrites a newer one (events arrive out of order).
const UPSERT_PULL_REQUESTS: &str = "\
INSERT INTO pull_requests AS t (repository_key, number, title, author, source_branch,
    source_commit, destination_branch, state, draft, created_on, updated_on, last_activity_on, url,
    approvals, changes_requested, open_tasks, pushed_on)
SELECT repository_key, number, title, author, source_branch, source_commit, destination_branch,
    state, draft, created_on, updated_on, last_activity_on, url, approvals, changes_requested,
    open_tasks, created_on
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(repository_key text, number bigint, title text,
    author text, source_branch text, source_commit text, destination_branch text, state text,
    draft boolean, created_on text, updated_on text, last_activity_on text, url text,
    approvals bigint, changes_requested bigint, open_tasks bigint)
ORDER BY repository_key, number
ON CONFLICT (repository_key, number) DO UPDATE SET
    pushed_on = CASE WHEN excluded.source_commit IS DISTINCT FROM t.source_commit
                     THEN excluded.updated_on ELSE t.pushed_on END,
    open_tasks = coalesce(excluded.open_tasks, t.open_tasks),
    title = excluded.title,
    author = excluded.author,
    source_branch = excluded.source_branch,
    source_commit = excluded.source_commit,
    destination_branch = excluded.destination_branch,
    state = excluded.state,
    draft = excluded.draft,
    created_on = excluded.created_on,
    updated_on = excluded.updated_on,
    last_activity_on = greatest(t.last_activity_on, excluded.last_activity_on),
    url = coalesce(excluded.url, t.url),
    approvals = excluded.approvals,
    changes_requested = excluded.changes_requested
WHERE excluded.updated_on >= t.updated_on";

// A snapshot may list one person twice (a reviewer who also commented): the last row counts, as
// on SQLite.
const UPSERT_REVIEWS: &str = "\
INSERT INTO reviews AS t (repository_key, number, user_key, role, state, state_on, snapshot_on,
    reviewed_commit)
SELECT DISTINCT ON (repository_key, number, user_key)
    repository_key, number, user_key, role, state, state_on, snapshot_on, reviewed_commit
FROM ROWS FROM (jsonb_to_recordset(CAST($1 AS jsonb)) AS (repository_key text, number bigint,
    user_key text, role text, state text, state_on text, snapshot_on text,
    reviewed_commit text)) WITH ORDINALITY
    AS b(repository_key, number, user_key, role, state, state_on, snapshot_on, reviewed_commit,
         i)
ORDER BY repository_key, number, user_key, i DESC
ON CONFLICT (repository_key, number, user_key) DO UPDATE SET
    reviewed_commit = excluded.reviewed_commit,
    role = excluded.role,
    state = excluded.state,
    state_on = excluded.state_on,
    snapshot_on = excluded.snapshot_on
WHERE excluded.snapshot_on >= t.snapshot_on";

// Whoever is not in the PR's newest snapshot is no longer attached to it (see SQLite's text).
const DELETE_STALE_REVIEWS: &str = "\
DELETE FROM reviews r
USING jsonb_to_recordset(CAST($1 AS jsonb)) AS j(repository_key text, number bigint,
          updated_on text, participants jsonb),
      pull_requests p
WHERE p.repository_key = j.repository_key AND p.number = j.number
  AND r.repository_key = p.repository_key AND r.number = p.number
  AND (r.snapshot_on < p.updated_on
       OR (p.updated_on = j.updated_on AND NOT (j.participants ? r.user_key)))";

const UPSERT_STATUSES: &str = "\
INSERT INTO commit_statuses AS t (commit_hash, key, repository_key, state, name, url, updated_on)
SELECT commit_hash, key, repository_key, state, name, url, updated_on
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(commit_hash text, key text,
    repository_key text, state text, name text, url text, updated_on text)
ORDER BY commit_hash, key
ON CONFLICT (commit_hash, key) DO UPDATE SET
    repository_key = excluded.repository_key,
    state = excluded.state,
    name = excluded.name,
    url = excluded.url,
    updated_on = excluded.updated_on
WHERE excluded.updated_on >= t.updated_on";

// Snoozes end when their PR changes: a new commit, a new requested reviewer, or an approval
// that was there when snoozed is gone.
const WAKE_SNOOZES: &str = "\
DELETE FROM snoozes s
USING jsonb_to_recordset(CAST($1 AS jsonb)) AS j(repository_key text, number bigint),
      pull_requests p
WHERE s.repository_key = j.repository_key AND s.number = j.number
  AND p.repository_key = s.repository_key AND p.number = s.number
  AND (p.source_commit IS DISTINCT FROM s.source_commit
       OR EXISTS (SELECT 1 FROM reviews r
                   WHERE r.repository_key = p.repository_key AND r.number = p.number
                     AND r.role = 'REVIEWER'
                     AND NOT (CAST(s.reviewers AS jsonb) ? r.user_key))
       OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(s.approvers AS jsonb)) a(user_key)
                   WHERE NOT EXISTS (SELECT 1 FROM reviews r
                                      WHERE r.repository_key = p.repository_key
                                        AND r.number = p.number
                                        AND r.user_key = a.user_key AND r.state = 'approved')))";

// A message still in its window for a PR that stopped being reviewable is withdrawn.
const WITHDRAW_NOTIFICATIONS: &str = "\
DELETE FROM outbox o
USING jsonb_to_recordset(CAST($1 AS jsonb)) AS w(room text, repository_key text, number bigint)
WHERE o.state = 'pending' AND o.kind = 'pull_request'
  AND o.room = w.room AND o.repository_key = w.repository_key AND o.number = w.number";

// One row per (room, PR) with its events (grouped by `prepare`). Events for a PR whose message is
// still waiting join it, each once.
const QUEUE_NOTIFICATIONS: &str = "\
INSERT INTO outbox AS t (room, kind, repository_key, number, events, created_at, not_before)
SELECT room, 'pull_request', repository_key, number, event, created_at, not_before
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(room text, repository_key text, number bigint,
    event text, created_at text, not_before text)
ORDER BY room, repository_key, number
ON CONFLICT (room, repository_key, number) WHERE state = 'pending' AND kind = 'pull_request'
DO UPDATE SET events = t.events || (
    SELECT string_agg(',' || e.event, '' ORDER BY e.i)
      FROM unnest(string_to_array(excluded.events, ',')) WITH ORDINALITY AS e(event, i)
     WHERE strpos(',' || t.events || ',', ',' || e.event || ',') = 0)
WHERE EXISTS (SELECT 1 FROM unnest(string_to_array(excluded.events, ',')) AS e(event)
               WHERE strpos(',' || t.events || ',', ',' || e.event || ',') = 0)";

/// The look-up before the batch with the review flow's stored facts (`facts`).
static BEFORE_AND_FACTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{BEFORE_BATCH},\n{}) AS text)",
        facts::POSTGRES_BEFORE_FACTS
    )
});

/// The review flow's writes (`facts::postgres_writes`).
static FLOW_WRITES: LazyLock<[String; 3]> = LazyLock::new(facts::postgres_writes);

/// How often a batch that PostgreSQL aborted as a deadlock or a serialization failure is tried
/// again before its submissions are answered with an error.
const CONFLICT_ATTEMPTS: usize = 5;

/// Folds a batch into PostgreSQL in one transaction (see the module's documentation).
pub(super) async fn write(
    pool: &PgPool,
    batch: &[&Submission],
    buf: &mut Buffers,
    config: &WriterConfig,
) -> anyhow::Result<(Vec<WriteOutcome>, bool)> {
    encode_locks(batch, &mut buf.locks)?;
    let mut attempt = 1;
    loop {
        match write_once(pool, batch, buf, config).await {
            Err(err) if attempt < CONFLICT_ATTEMPTS && is_conflict(&err) => {
                tracing::debug!(error = %format!("{err:#}"), attempt, "batch conflicted with another replica's; trying again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

async fn write_once(
    pool: &PgPool,
    batch: &[&Submission],
    buf: &mut Buffers,
    config: &WriterConfig,
) -> anyhow::Result<(Vec<WriteOutcome>, bool)> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    sqlx::query(LOCK_KEYS)
        .bind(buf.locks.as_str())
        .execute(&mut *tx)
        .await
        .context("locking the batch's pull requests and deliveries")?;
    let json: String = sqlx::query_scalar(BEFORE_AND_FACTS.as_str())
        .bind(buf.request_ids.as_str())
        .bind(buf.pr_keys.as_str())
        .bind(buf.build_keys.as_str())
        .bind(buf.hashes.as_str())
        .fetch_one(&mut *tx)
        .await
        .context("reading state before the batch")?;
    let (outcomes, queued) = prepare(batch, &json, buf, config, true)?;
    let flow = &*FLOW_WRITES;
    let statements: [(&str, &str); 13] = [
        (INSERT_DELIVERIES, &buf.deliveries),
        (UPSERT_REPOSITORIES, &buf.repositories),
        (UPSERT_USERS, &buf.users),
        (UPSERT_PULL_REQUESTS, &buf.pull_requests),
        (UPSERT_REVIEWS, &buf.reviews),
        (DELETE_STALE_REVIEWS, &buf.pull_requests),
        (UPSERT_STATUSES, &buf.statuses),
        (WAKE_SNOOZES, &buf.pull_requests),
        (WITHDRAW_NOTIFICATIONS, &buf.withdrawn),
        (QUEUE_NOTIFICATIONS, &buf.outbox),
        (&flow[0], &buf.facts),
        (&flow[1], &buf.turns),
        (&flow[2], &buf.review_requests),
    ];
    for (sql, rows) in statements {
        // An empty batch of a kind costs no round trip.
        if rows == "[]" {
            continue;
        }
        sqlx::query(sql)
            .bind(rows)
            .execute(&mut *tx)
            .await
            .context("writing the batch")?;
    }
    if queued {
        // Delivered at commit, to every replica: the one holding the room's lease sends.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(super::super::NEWS_CHANNEL)
            .execute(&mut *tx)
            .await
            .context("announcing the queued messages")?;
    }
    tx.commit().await.context("committing the batch")?;
    Ok((outcomes, queued))
}

/// The advisory-lock keys of a batch, as a JSON array of strings: `d:` accepted request ids,
/// `p:` pull requests, `c:` commits (the first 12 hex digits, lower case: Cloud PRs name 12,
/// build statuses 40).
fn encode_locks(batch: &[&Submission], out: &mut String) -> anyhow::Result<()> {
    let mut keys: Vec<String> = Vec::with_capacity(batch.len() * 2);
    let commit = |hash: &str| {
        let hash = hash.to_ascii_lowercase();
        format!("c:{}", hash.get(..12).unwrap_or(&hash))
    };
    for submission in batch {
        if let Origin::Delivery(delivery) = &submission.origin {
            if matches!(delivery.outcome, Outcome::Rejected { .. }) {
                continue;
            }
            if let Some(id) = &delivery.request_id {
                keys.push(format!("d:{id}"));
            }
        }
        match submission.change() {
            Some(Change::PullRequest(pr)) => {
                keys.push(format!("p:{}#{}", pr.repository.key.as_str(), pr.number));
                if let Some(hash) = &pr.source_commit {
                    keys.push(commit(hash));
                }
            }
            Some(Change::CommitStatus(status)) => keys.push(commit(&status.commit_hash)),
            Some(Change::Repository(_)) | None => {}
        }
    }
    super::write_json(out, &keys)
}

/// Whether PostgreSQL aborted the transaction for a deadlock (40P01) or a serialization failure
/// (40001): nothing was written, and trying again will do.
fn is_conflict(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code())
            .is_some_and(|code| code == "40P01" || code == "40001")
    })
}

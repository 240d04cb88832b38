//! Retention (`[retention]`, `pr-reminder prune`): old rows deleted in small batches.
//!
//! Each batch is found by a read (the read pool, no lock held) and deleted in one short write
//! transaction of at most `Pace::batch` rows, then the pruner pauses (`Pace::pause`) so that
//! webhook batches keep flowing. On SQLite every delete transaction first takes the process's
//! write gate (`Db::write_gate`), the lock the group-commit writer holds around each of its
//! batches: the two take turns instead of the writer spinning in SQLite's busy handler (whose
//! sleeps of 1, 2, 5, 10... ms would show as an ingest dip). A `pr-reminder prune` in another
//! process meets the service's writer through SQLite's lock alone; its batches are short
//! (measured in BENCHMARKS.md).
//!
//! What goes, and what never does:
//! - `deliveries` received before the deliveries cutoff (the caller keeps at least a day, so a
//!   redelivery within Bitbucket's retry window still meets its request id in the unique index
//!   `deliveries_accepted_request_id`). Rows go in primary-key order, and each batch is first
//!   folded into `repository_deliveries` in the same transaction (as `webhooks::
//!   summarise_deliveries` folds them), so the last delivery per repository stays right after
//!   its rows are gone.
//! - `outbox` and `direct_outbox` rows `sent` before the outbox cutoff (withdrawn messages are
//!   deleted when withdrawn; `pending`, `retrying`, `sending` and `failed` rows are never
//!   pruned), except a digest a kept `sweeps` row names; `sweeps` rows before the same cutoff,
//!   except each room's latest sweep and latest posted sweep (`min_interval` reads it).
//! - pull requests MERGED, DECLINED, SUPERSEDED or DELETED whose last change (`updated_on`, the
//!   close for a closed PR) is before the closed-PR cutoff, together with every row naming
//!   them: reviews, default reviewers, snoozes, living messages (`chat_messages`), direct mutes
//!   and turns, and their sent room and direct messages. A PR with a message not yet sent (or
//!   failed) stays until that message is. An OPEN PR is never pruned: every statement checks the
//!   state again inside its transaction. Build statuses (`commit_statuses`) and checked commits
//!   (`reconciled_commits`) older than that cutoff go once no stored PR has their commit as its
//!   source. `pull_request_facts`, `pull_request_turns` and `pull_request_review_requests`
//!   (the figures' own rows) are never pruned.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::{on_pool, Db, Pool};
use crate::domain::Timestamp;

/// The tables pruned, in the order they are pruned and reported.
pub const TABLES: [&str; 13] = [
    "deliveries",
    "sweeps",
    "outbox",
    "direct_outbox",
    "pull_requests",
    "reviews",
    "default_reviewers",
    "snoozes",
    "chat_messages",
    "direct_mutes",
    "direct_turns",
    "commit_statuses",
    "reconciled_commits",
];

/// Rows older than these instants go (`None`: that kind is kept forever). The caller applies
/// the settings and the one-day floor of deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoffs {
    /// Deliveries received before this.
    pub deliveries: Option<Timestamp>,
    /// Messages sent, and sweeps run, before this.
    pub outbox: Option<Timestamp>,
    /// Closed pull requests last changed before this.
    pub closed_pull_requests: Option<Timestamp>,
}

/// How hard the pruner pushes: rows per transaction and the pause after each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Most rows one transaction deletes (pull requests: most PRs, each with its rows).
    pub batch: i64,
    /// The pause after each transaction (real time), in which the writer commits.
    pub pause: Duration,
}

impl Default for Pace {
    /// 100 rows, then a pause of 50 ms: at most 2,000 rows a second. Each deleted delivery
    /// dirties a page of the request-id index, where random ids are scattered: 500 rows with a
    /// 10 ms pause halved ingest at c64 beside the prune of a million (BENCHMARKS.md). The
    /// steady state is a few rows a second; only a first prune of a long backlog takes long.
    fn default() -> Self {
        Pace {
            batch: 100,
            pause: Duration::from_millis(50),
        }
    }
}

/// Free pages one `PRAGMA incremental_vacuum` step gives back (256 KiB of 4 KiB pages): a
/// short hold of the write lock, like a batch of deletes.
const VACUUM_STEP: i64 = 64;

/// Rows deleted (or, in a dry run, that would be) per table, in `TABLES` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// (table, rows), every table of `TABLES` once.
    pub tables: Vec<(&'static str, u64)>,
    /// SQLite pages given back to the file system by `PRAGMA incremental_vacuum` (0: none, a
    /// dry run, PostgreSQL, or a database whose `auto_vacuum` is not INCREMENTAL).
    pub vacuumed_pages: u64,
    /// Write transactions run (0 in a dry run).
    pub transactions: u64,
    /// The longest of them, from taking the write gate (SQLite) to the commit, in microseconds:
    /// how long the service's writer could have waited for one.
    pub longest_transaction_us: u64,
}

impl Default for Pruned {
    fn default() -> Self {
        Pruned {
            tables: TABLES.iter().map(|t| (*t, 0)).collect(),
            vacuumed_pages: 0,
            transactions: 0,
            longest_transaction_us: 0,
        }
    }
}

impl Pruned {
    /// The rows of `table` (0 for a table not in `TABLES`).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }

    /// Every row of every table.
    pub fn total(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    fn add(&mut self, table: &str, rows: u64) {
        if let Some((_, n)) = self.tables.iter_mut().find(|(t, _)| *t == table) {
            *n += rows;
        }
    }
}

/// Told of each batch as it is deleted: (table, rows). Metrics count through it.
pub type Observer<'a> = &'a (dyn Fn(&'static str, u64) + Send + Sync);

/// Prunes every kind of row whose cutoff is set, in batches at `pace`; `dry_run` deletes nothing
/// and counts what would go, batch by batch as a real run would. Then, on SQLite whose
/// `auto_vacuum` is INCREMENTAL, gives free pages back (not in a dry run). Errors: a database
/// error, with what was being pruned; what was deleted before it stays deleted.
pub async fn prune(
    db: &Db,
    cutoffs: &Cutoffs,
    dry_run: bool,
    pace: Pace,
    observe: Observer<'_>,
) -> anyhow::Result<Pruned> {
    let mut run = Run {
        db,
        dry_run,
        pace: Pace {
            batch: pace.batch.max(1),
            pause: pace.pause,
        },
        pruned: Pruned::default(),
        observe,
    };
    if let Some(cutoff) = &cutoffs.deliveries {
        run.deliveries(cutoff).await.context("pruning deliveries")?;
    }
    if let Some(cutoff) = &cutoffs.outbox {
        run.by_id("sweeps", SWEEPS_FILTER, cutoff)
            .await
            .context("pruning sweeps")?;
        run.by_id("outbox", &OUTBOX_FILTER, cutoff)
            .await
            .context("pruning sent messages")?;
        run.by_id("direct_outbox", DIRECT_OUTBOX_FILTER, cutoff)
            .await
            .context("pruning sent direct messages")?;
    }
    if let Some(cutoff) = &cutoffs.closed_pull_requests {
        run.pull_requests(cutoff, cutoffs.outbox.as_ref())
            .await
            .context("pruning closed pull requests")?;
        run.commits(cutoff)
            .await
            .context("pruning build statuses of commits no pull request names")?;
    }
    if !dry_run {
        run.vacuum().await.context("PRAGMA incremental_vacuum")?;
    }
    Ok(run.pruned)
}

/// PostgreSQL: one replica prunes at a time. Tries to take the session-level advisory lock on
/// this replica's lease connection (the one room leases use; released with the session should
/// the replica die) and returns whether it did. SQLite (one process): always `true`.
pub async fn try_lock(db: &Db) -> anyhow::Result<bool> {
    let (Pool::Postgres(_), Some(pool)) = (db.pool(), db.lease_pool()) else {
        return Ok(true);
    };
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PRUNE_LOCK)
        .fetch_one(pool)
        .await
        .context("taking the pruning lock")
}

/// Releases what `try_lock` took (PostgreSQL; nothing on SQLite).
pub async fn unlock(db: &Db) -> anyhow::Result<()> {
    let (Pool::Postgres(_), Some(pool)) = (db.pool(), db.lease_pool()) else {
        return Ok(());
    };
    let _: bool = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(PRUNE_LOCK)
        .fetch_one(pool)
        .await
        .context("releasing the pruning lock")?;
    Ok(())
}

/// The advisory lock key of pruning ("pr-prune" in ASCII).
const PRUNE_LOCK: i64 = 0x7072_2d70_7275_6e65;

/// Sweeps run before `$1`, but not a room's latest sweep nor its latest posted one.
const SWEEPS_FILTER: &str = "at < $1
    AND id NOT IN (SELECT max(id) FROM sweeps GROUP BY room)
    AND id NOT IN (SELECT max(id) FROM sweeps WHERE outcome = 'posted' GROUP BY room)";

/// Room messages sent before `$1`, but not a digest a kept sweep names (one `SWEEPS_FILTER`
/// does not take, so that a dry run counts as a real run, which prunes sweeps first, deletes).
static OUTBOX_FILTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "state = 'sent' AND sent_at < $1
    AND id NOT IN (SELECT outbox_id FROM sweeps
                    WHERE outbox_id IS NOT NULL AND NOT ({SWEEPS_FILTER}))"
    )
});

/// Direct messages sent before `$1`.
const DIRECT_OUTBOX_FILTER: &str = "state = 'sent' AND sent_at < $1";

/// A pull request `p` that may go: closed, last changed before `$1`, no message about it still
/// to send (or failed).
const CLOSED_PR: &str = "p.state <> 'OPEN' AND p.updated_on < $1
    AND (p.repository_key, p.number) NOT IN
        (SELECT repository_key, number FROM outbox
          WHERE state <> 'sent' AND repository_key IS NOT NULL AND number IS NOT NULL)
    AND (p.repository_key, p.number) NOT IN
        (SELECT repository_key, number FROM direct_outbox
          WHERE state <> 'sent' AND repository_key IS NOT NULL AND number IS NOT NULL)";

/// The rows of a pull request's own tables, keyed by (repository_key, number), deleted with it
/// (before it: `reviews` and `default_reviewers` would cascade, uncounted).
const PR_TABLES: [&str; 6] = [
    "reviews",
    "default_reviewers",
    "snoozes",
    "chat_messages",
    "direct_mutes",
    "direct_turns",
];

/// A build status `cs` last updated before `$1` whose commit is the source of no pull request
/// that stays (Cloud PRs name 12 digits, statuses 40). "That stays": not one a prune with the
/// same cutoff deletes, so that a dry run, where those PRs are still there, counts as a real
/// run deletes.
static UNUSED_STATUS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "cs.updated_on < $1
    AND NOT EXISTS (SELECT 1 FROM pull_requests p
                     WHERE p.source_commit IN (substr(cs.commit_hash, 1, 12), cs.commit_hash)
                       AND NOT ({CLOSED_PR}))"
    )
});

/// A checked commit `c` checked before `$1` that is the source of no pull request of its
/// repository that stays.
static UNUSED_CHECK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "c.checked_on < $1
    AND NOT EXISTS (SELECT 1 FROM pull_requests p
                     WHERE p.repository_key = c.repository_key AND p.source_commit = c.commit_hash
                       AND NOT ({CLOSED_PR}))"
    )
});

struct Run<'a> {
    db: &'a Db,
    dry_run: bool,
    pace: Pace,
    pruned: Pruned,
    observe: Observer<'a>,
}

impl Run<'_> {
    /// Counts a batch, tells the observer, and pauses.
    async fn done(&mut self, table: &'static str, rows: u64) {
        self.pruned.add(table, rows);
        if rows > 0 {
            (self.observe)(table, rows);
        }
    }

    /// SQLite: the writer's gate, held while a delete transaction runs (see the module's top).
    async fn gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.db.write_gate() {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    /// Notes how long a write transaction held the lock (`Pruned::longest_transaction_us`).
    fn held(&mut self, held: Duration) {
        let micros = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        self.pruned.longest_transaction_us = self.pruned.longest_transaction_us.max(micros);
        self.pruned.transactions += 1;
    }

    async fn pause(&self) {
        if !self.pace.pause.is_zero() {
            tokio::time::sleep(self.pace.pause).await;
        }
    }

    /// The transaction's first statement: SQLite takes the write lock at once (a deferred
    /// transaction that later needs it could fail with SQLITE_BUSY instead of waiting).
    fn begin(&self) -> &'static str {
        if self.db.is_postgres() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        }
    }

    /// Deliveries in primary-key order from the oldest, stopping at the first one received at
    /// or after `cutoff` (ids follow arrival; one that arrived out of order goes next time).
    async fn deliveries(&mut self, cutoff: &Timestamp) -> anyhow::Result<()> {
        let greatest = if self.db.is_postgres() {
            "greatest"
        } else {
            "max"
        };
        let fold = format!(
            "INSERT INTO repository_deliveries (flavour, repository, last_id, received_at)
             SELECT flavour, lower(repository), max(id), max(received_at)
               FROM deliveries
              WHERE id >= $1 AND id <= $2 AND received_at < $3
                AND outcome = 'processed' AND repository IS NOT NULL
                AND coalesce(flavour, '') <> ''
              GROUP BY lower(repository), flavour
             ON CONFLICT (flavour, repository) DO UPDATE SET
                 last_id = {greatest}(repository_deliveries.last_id, excluded.last_id),
                 received_at = {greatest}(repository_deliveries.received_at, excluded.received_at)"
        );
        const DELETE: &str =
            "DELETE FROM deliveries WHERE id >= $1 AND id <= $2 AND received_at < $3";
        const NEXT: &str =
            "SELECT id, received_at FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2";
        let mut after = i64::MIN;
        loop {
            let rows: Vec<(i64, String)> = on_pool!(self.db, pool => sqlx::query_as(NEXT)
                .bind(after)
                .bind(self.pace.batch)
                .fetch_all(pool)
                .await)?;
            let old: Vec<i64> = rows
                .iter()
                .take_while(|(_, at)| at.as_str() < cutoff.as_str())
                .map(|(id, _)| *id)
                .collect();
            let (Some(&lo), Some(&hi)) = (old.first(), old.last()) else {
                return Ok(());
            };
            let deleted = if self.dry_run {
                old.len() as u64
            } else {
                let gate = self.gate().await;
                let started = Instant::now();
                let deleted = on_pool!(self.db, pool => {
                    let mut tx = pool.begin_with(self.begin()).await?;
                    sqlx::query(&fold)
                        .bind(lo)
                        .bind(hi)
                        .bind(cutoff.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let deleted = sqlx::query(DELETE)
                        .bind(lo)
                        .bind(hi)
                        .bind(cutoff.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    deleted
                });
                let held = started.elapsed();
                drop(gate);
                self.held(held);
                deleted
            };
            self.done("deliveries", deleted).await;
            if old.len() < rows.len() || rows.len() < self.pace.batch as usize {
                return Ok(());
            }
            after = hi;
            self.pause().await;
        }
    }

    /// Rows of `table` (an `id` primary key) matching `filter` (`$1` the cutoff), oldest id
    /// first.
    async fn by_id(
        &mut self,
        table: &'static str,
        filter: &str,
        cutoff: &Timestamp,
    ) -> anyhow::Result<()> {
        let next =
            format!("SELECT id FROM {table} WHERE id > $2 AND ({filter}) ORDER BY id LIMIT $3");
        let delete = format!(
            "DELETE FROM {table} WHERE id IN ({}) AND ({filter})",
            self.db.json_ints(2)
        );
        let mut after = i64::MIN;
        loop {
            let ids: Vec<i64> = on_pool!(self.db, pool => sqlx::query_scalar(&next)
                .bind(cutoff.as_str())
                .bind(after)
                .bind(self.pace.batch)
                .fetch_all(pool)
                .await)?;
            let Some(&last) = ids.last() else {
                return Ok(());
            };
            let deleted = if self.dry_run {
                ids.len() as u64
            } else {
                let list = serde_json::to_string(&ids)?;
                let gate = self.gate().await;
                let started = Instant::now();
                let deleted = on_pool!(self.db, pool => sqlx::query(&delete)
                    .bind(cutoff.as_str())
                    .bind(list)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()))?;
                let held = started.elapsed();
                drop(gate);
                self.held(held);
                deleted
            };
            self.done(table, deleted).await;
            if ids.len() < self.pace.batch as usize {
                return Ok(());
            }
            after = last;
            self.pause().await;
        }
    }

    /// Closed pull requests with their rows, by key; a batch of at most `batch / 5` PRs (each
    /// brings its reviews and more).
    /// `sent_before`: the outbox cutoff, when set: messages sent before it were the outbox
    /// step's (deleted by it, or in a dry run counted by it), so they are not counted again.
    async fn pull_requests(
        &mut self,
        cutoff: &Timestamp,
        sent_before: Option<&Timestamp>,
    ) -> anyhow::Result<()> {
        let per_batch = (self.pace.batch / 5).max(1);
        let next = format!(
            "SELECT p.repository_key, p.number FROM pull_requests p
              WHERE {CLOSED_PR}
                AND (p.repository_key > $2 OR (p.repository_key = $2 AND p.number > $3))
              ORDER BY p.repository_key, p.number LIMIT $4"
        );
        // The batch's keys as rows (key, number), from the JSON array bound where `${KEYS}`
        // is replaced by the parameter's number.
        let keys = format!(
            "SELECT j.value->>0, CAST(j.value->>1 AS BIGINT) FROM {}",
            self.db.json_rows(0).replace("$0", "${KEYS}")
        );
        let keys2 = keys.replace("${KEYS}", "$2");
        // Those of the batch that may still go, checked again in the transaction (a PR reopened
        // meanwhile stays). PostgreSQL locks them against the writer until the commit.
        let confirm = format!(
            "SELECT p.repository_key, p.number FROM pull_requests p
              WHERE (p.repository_key, p.number) IN ({keys2}) AND {CLOSED_PR}
              ORDER BY p.repository_key, p.number{}",
            if self.db.is_postgres() {
                " FOR UPDATE"
            } else {
                ""
            }
        );
        let sent = |table: &str| {
            format!(
                "SELECT id FROM {table} WHERE state = 'sent' AND (repository_key, number) IN ({})
                    AND ($2 IS NULL OR sent_at >= $2)",
                keys.replace("${KEYS}", "$1")
            )
        };
        let sent_before = sent_before.map(|t| t.as_str().to_owned());
        let (sent_outbox, sent_direct) = (sent("outbox"), sent("direct_outbox"));
        let mut after = (String::new(), i64::MIN);
        loop {
            let batch: Vec<(String, i64)> = on_pool!(self.db, pool => sqlx::query_as(&next)
                .bind(cutoff.as_str())
                .bind(&after.0)
                .bind(after.1)
                .bind(per_batch)
                .fetch_all(pool)
                .await)?;
            let Some(last) = batch.last().cloned() else {
                return Ok(());
            };
            let list = keys_json(&batch)?;
            // Their sent messages, found outside the transaction (no index leads from a PR to
            // its messages) and deleted by id inside it.
            let outbox_ids: Vec<i64> = on_pool!(self.db, pool => sqlx::query_scalar(&sent_outbox)
                .bind(&list)
                .bind(&sent_before)
                .fetch_all(pool)
                .await)?;
            let direct_ids: Vec<i64> = on_pool!(self.db, pool => sqlx::query_scalar(&sent_direct)
                .bind(&list)
                .bind(&sent_before)
                .fetch_all(pool)
                .await)?;
            let counts = if self.dry_run {
                self.count_pr_rows(&keys, &list, &outbox_ids, &direct_ids)
                    .await?
            } else {
                let (counts, held) = self
                    .delete_prs(&confirm, &keys, &list, cutoff, &outbox_ids, &direct_ids)
                    .await?;
                self.held(held);
                counts
            };
            for (table, rows) in counts {
                self.done(table, rows).await;
            }
            if (batch.len() as i64) < per_batch {
                return Ok(());
            }
            after = last;
            self.pause().await;
        }
    }

    /// A dry run's counts for one batch of pull requests (`list`, the JSON keys).
    async fn count_pr_rows(
        &self,
        keys: &str,
        list: &str,
        outbox_ids: &[i64],
        direct_ids: &[i64],
    ) -> anyhow::Result<Vec<(&'static str, u64)>> {
        let keys = keys.replace("${KEYS}", "$1");
        let mut counts = vec![
            ("outbox", outbox_ids.len() as u64),
            ("direct_outbox", direct_ids.len() as u64),
            ("pull_requests", list_len(list)),
        ];
        for table in PR_TABLES {
            let sql =
                format!("SELECT count(*) FROM {table} WHERE (repository_key, number) IN ({keys})");
            let n: i64 = on_pool!(self.db, pool => sqlx::query_scalar(&sql)
                .bind(list)
                .fetch_one(pool)
                .await)?;
            counts.push((table, u64::try_from(n).unwrap_or(0)));
        }
        Ok(counts)
    }

    /// Deletes one batch of pull requests (those of `list` still closed and old enough) with
    /// their rows, in one transaction.
    async fn delete_prs(
        &self,
        confirm: &str,
        keys: &str,
        list: &str,
        cutoff: &Timestamp,
        outbox_ids: &[i64],
        direct_ids: &[i64],
    ) -> anyhow::Result<(Vec<(&'static str, u64)>, Duration)> {
        let keys1 = keys.replace("${KEYS}", "$1");
        let keys2 = keys.replace("${KEYS}", "$2");
        let by_key = |table: &str| {
            format!("DELETE FROM {table} WHERE (repository_key, number) IN ({keys1})")
        };
        let by_id = |table: &str| {
            format!(
                "DELETE FROM {table} WHERE state = 'sent' AND id IN ({}) \
                 AND (repository_key, number) IN ({keys2})",
                self.db.json_ints(1)
            )
        };
        let outbox_list = serde_json::to_string(outbox_ids)?;
        let direct_list = serde_json::to_string(direct_ids)?;
        let gate = self.gate().await;
        let started = Instant::now();
        let counts = on_pool!(self.db, pool => {
            let mut tx = pool.begin_with(self.begin()).await?;
            let confirmed: Vec<(String, i64)> = sqlx::query_as(confirm)
                .bind(cutoff.as_str())
                .bind(list)
                .fetch_all(&mut *tx)
                .await?;
            let confirmed = keys_json(&confirmed)?;
            let mut counts = Vec::new();
            for (table, ids) in [("outbox", &outbox_list), ("direct_outbox", &direct_list)] {
                let n = sqlx::query(&by_id(table))
                    .bind(ids)
                    .bind(&confirmed)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                counts.push((table, n));
            }
            for table in PR_TABLES {
                let n = sqlx::query(&by_key(table))
                    .bind(&confirmed)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                counts.push((table, n));
            }
            let n = sqlx::query(&by_key("pull_requests"))
                .bind(&confirmed)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            counts.push(("pull_requests", n));
            tx.commit().await?;
            counts
        });
        let held = started.elapsed();
        drop(gate);
        Ok((counts, held))
    }

    /// Build statuses and checked commits no stored pull request needs any more.
    async fn commits(&mut self, cutoff: &Timestamp) -> anyhow::Result<()> {
        self.by_pair(
            "commit_statuses",
            "cs",
            ("commit_hash", "key"),
            &UNUSED_STATUS,
            cutoff,
        )
        .await?;
        self.by_pair(
            "reconciled_commits",
            "c",
            ("repository_key", "commit_hash"),
            &UNUSED_CHECK,
            cutoff,
        )
        .await
    }

    /// Rows of `table` (aliased `alias`, a primary key of two text columns `key`) matching
    /// `filter` (`$1` the cutoff), in key order.
    async fn by_pair(
        &mut self,
        table: &'static str,
        alias: &str,
        (a, b): (&str, &str),
        filter: &str,
        cutoff: &Timestamp,
    ) -> anyhow::Result<()> {
        let next = format!(
            "SELECT {alias}.{a}, {alias}.{b} FROM {table} {alias}
              WHERE ({alias}.{a} > $2 OR ({alias}.{a} = $2 AND {alias}.{b} > $3)) AND {filter}
              ORDER BY {alias}.{a}, {alias}.{b} LIMIT $4"
        );
        let delete = format!(
            "DELETE FROM {table} WHERE ({a}, {b}) IN
                 (SELECT j.value->>0, j.value->>1 FROM {})
               AND EXISTS (SELECT 1 FROM {table} {alias}
                            WHERE {alias}.{a} = {table}.{a} AND {alias}.{b} = {table}.{b}
                              AND {filter})",
            self.db.json_rows(2)
        );
        let mut after = (String::new(), String::new());
        loop {
            let rows: Vec<(String, String)> = on_pool!(self.db, pool => sqlx::query_as(&next)
                .bind(cutoff.as_str())
                .bind(&after.0)
                .bind(&after.1)
                .bind(self.pace.batch)
                .fetch_all(pool)
                .await)?;
            let Some(last) = rows.last().cloned() else {
                return Ok(());
            };
            let deleted = if self.dry_run {
                rows.len() as u64
            } else {
                let list =
                    serde_json::to_string(&rows.iter().map(|(x, y)| [x, y]).collect::<Vec<_>>())?;
                let gate = self.gate().await;
                let started = Instant::now();
                let deleted = on_pool!(self.db, pool => sqlx::query(&delete)
                    .bind(cutoff.as_str())
                    .bind(list)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()))?;
                let held = started.elapsed();
                drop(gate);
                self.held(held);
                deleted
            };
            self.done(table, deleted).await;
            if (rows.len() as i64) < self.pace.batch {
                return Ok(());
            }
            after = last;
            self.pause().await;
        }
    }

    /// SQLite with `auto_vacuum = INCREMENTAL`: gives the free pages back, 256 (1 MiB) per
    /// step, pausing between steps. Anything else: nothing (PostgreSQL: autovacuum).
    async fn vacuum(&mut self) -> anyhow::Result<()> {
        let Pool::Sqlite(pool) = self.db.pool() else {
            return Ok(());
        };
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(pool)
            .await?;
        if mode != 2 {
            return Ok(());
        }
        let mut last: Option<i64> = None;
        loop {
            let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                .fetch_one(pool)
                .await?;
            // Done, or a step that freed nothing (never loop on it).
            if free <= 0 || last.is_some_and(|last| free >= last) {
                return Ok(());
            }
            last = Some(free);
            let gate = self.gate().await;
            let started = Instant::now();
            sqlx::query(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))
                .execute(pool)
                .await?;
            let held = started.elapsed();
            drop(gate);
            self.held(held);
            self.pruned.vacuumed_pages += u64::try_from(free.min(VACUUM_STEP)).unwrap_or(0);
            self.pause().await;
        }
    }
}

/// Keys as the JSON array `[[repository_key, number], ...]`.
fn keys_json(keys: &[(String, i64)]) -> anyhow::Result<String> {
    Ok(serde_json::to_string(
        &keys
            .iter()
            .map(|(k, n)| serde_json::json!([k, n]))
            .collect::<Vec<_>>(),
    )?)
}

fn list_len(list: &str) -> u64 {
    serde_json::from_str::<Vec<serde_json::Value>>(list).map_or(0, |v| v.len() as u64)
}

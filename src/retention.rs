//! Retention (`[retention]`): what the settings keep, turned into cutoffs, and one prune
//! (`Job::Prune`: the built-in hourly schedule and `pr-reminder prune`). The SQL, the batches
//! and what goes with what are `store::retention`'s.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::RetentionSettings;
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::store::retention::{self, Cutoffs, Pace, TABLES};
use crate::store::Db;

/// The least time a delivery row is kept whatever `deliveries_days` says: its request id is
/// what tells a redelivery from a new delivery, and Bitbucket retries a failed delivery for
/// hours (Cloud: a few attempts over minutes to hours; Data Center: its own retries), so a day
/// covers the retry window with room to spare.
pub const DELIVERY_FLOOR: chrono::Duration = chrono::Duration::hours(24);

/// The cutoffs `settings` mean at `now`: rows older than `now - setting` go (deliveries: never
/// one of the last `DELIVERY_FLOOR`); `None` keeps that kind forever.
pub fn cutoffs(settings: &RetentionSettings, now: DateTime<Utc>) -> Cutoffs {
    let before = |keep: chrono::Duration| Timestamp::from_datetime(now - keep);
    Cutoffs {
        deliveries: settings
            .deliveries
            .map(|keep| before(keep.max(DELIVERY_FLOOR))),
        outbox: settings.outbox.map(before),
        closed_pull_requests: settings.closed_pull_requests.map(before),
    }
}

/// What a prune did, as `pr-reminder prune` prints it and the schedule logs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Nothing was deleted: `tables` says what would have been.
    pub dry_run: bool,
    /// Another replica was pruning (PostgreSQL): this one did nothing.
    pub skipped: bool,
    /// Rows deleted (or that would be) per table, every table of `store::retention::TABLES`.
    pub tables: BTreeMap<&'static str, u64>,
    /// SQLite pages returned to the file system (`auto_vacuum = INCREMENTAL` only).
    pub vacuumed_pages: u64,
    /// Write transactions run, and the longest, from taking the write lock to the commit
    /// (microseconds).
    pub transactions: u64,
    pub longest_transaction_us: u64,
    /// The cutoffs applied (`Timestamp` text; `null`: kept forever).
    pub deliveries_before: Option<String>,
    pub outbox_before: Option<String>,
    pub closed_pull_requests_before: Option<String>,
}

impl PruneReport {
    /// Every row of every table.
    pub fn total(&self) -> u64 {
        self.tables.values().sum()
    }

    /// One line per table in pruning order, then the cutoffs.
    pub fn to_text(&self) -> String {
        if self.skipped {
            return "another replica is pruning; nothing done\n".to_owned();
        }
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let mut out = String::new();
        for table in TABLES {
            let rows = self.tables.get(table).copied().unwrap_or(0);
            out.push_str(&format!("{table:<20} {rows:>10} {verb}\n"));
        }
        out.push_str(&format!("{:<20} {:>10} {verb}\n", "total", self.total()));
        if self.vacuumed_pages > 0 {
            out.push_str(&format!(
                "{} free pages given back (incremental_vacuum)\n",
                self.vacuumed_pages
            ));
        }
        if self.transactions > 0 {
            out.push_str(&format!(
                "{} transactions, the longest {:.3} ms\n",
                self.transactions,
                self.longest_transaction_us as f64 / 1000.0
            ));
        }
        let shown = |cutoff: &Option<String>| cutoff.clone().unwrap_or_else(|| "kept".into());
        out.push_str(&format!(
            "before: deliveries {}, messages and sweeps {}, closed pull requests {}\n",
            shown(&self.deliveries_before),
            shown(&self.outbox_before),
            shown(&self.closed_pull_requests_before)
        ));
        out
    }
}

/// Prunes what `settings` no longer keep at `now` (`dry_run`: deletes nothing, counts). With
/// PostgreSQL replicas one prunes at a time: when another holds the pruning lock this one
/// returns a report with `skipped`. `metrics` counts every deleted batch.
pub async fn run(
    db: &Db,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    dry_run: bool,
    pace: Pace,
    metrics: Option<&Metrics>,
) -> anyhow::Result<PruneReport> {
    let cutoffs = cutoffs(settings, now);
    let mut report = PruneReport {
        dry_run,
        skipped: false,
        tables: TABLES.iter().map(|t| (*t, 0)).collect(),
        vacuumed_pages: 0,
        transactions: 0,
        longest_transaction_us: 0,
        deliveries_before: cutoffs.deliveries.as_ref().map(|t| t.as_str().to_owned()),
        outbox_before: cutoffs.outbox.as_ref().map(|t| t.as_str().to_owned()),
        closed_pull_requests_before: cutoffs
            .closed_pull_requests
            .as_ref()
            .map(|t| t.as_str().to_owned()),
    };
    if !retention::try_lock(db).await? {
        report.skipped = true;
        return Ok(report);
    }
    let observe = |table: &'static str, rows: u64| {
        if let (Some(metrics), false) = (metrics, dry_run) {
            metrics.pruned(table, rows);
        }
    };
    let pruned = retention::prune(db, &cutoffs, dry_run, pace, &observe).await;
    if let Err(err) = retention::unlock(db).await {
        tracing::warn!(error = %format!("{err:#}"), "the pruning lock is released when the connection closes");
    }
    let pruned = pruned?;
    for (table, rows) in &pruned.tables {
        report.tables.insert(table, *rows);
    }
    report.vacuumed_pages = pruned.vacuumed_pages;
    report.transactions = pruned.transactions;
    report.longest_transaction_us = pruned.longest_transaction_us;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn deliveries_are_kept_a_day_whatever_the_setting() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let settings = RetentionSettings {
            deliveries: Some(chrono::Duration::hours(1)),
            outbox: Some(chrono::Duration::days(30)),
            closed_pull_requests: None,
        };
        let c = cutoffs(&settings, now);
        assert_eq!(
            c.deliveries.unwrap().as_str(),
            "2026-05-31T12:00:00.000000Z"
        );
        assert_eq!(c.outbox.unwrap().as_str(), "2026-05-02T12:00:00.000000Z");
        assert_eq!(c.closed_pull_requests, None);
        let c = cutoffs(&RetentionSettings::default(), now);
        assert_eq!(
            c.deliveries.unwrap().as_str(),
            "2026-03-03T12:00:00.000000Z"
        );
    }
}

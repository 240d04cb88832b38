//! Webhook coverage per repository (issue 26): what covers it (as the last reconciliation pass
//! recorded), the last delivery received from it, and whether it looks silent. Read by the
//! status page's "Webhook coverage" section and by `pr_reminder_webhooks{state}`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Timestamp;
use crate::store::{self, Db};

/// One repository's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookLine {
    /// The site's URL.
    pub site: String,
    /// `workspace/slug` or `PROJECT/slug`, as configured or listed.
    pub repository: String,
    /// `covered`, `incomplete` (active, events missing), `inactive`, `missing` or `unknown`.
    pub state: String,
    /// `workspace`, `project` or `repository`: the hook judged, if there is one.
    pub covered_by: Option<String>,
    /// The hook's id.
    pub hook: Option<String>,
    /// Event keys the hook lacks.
    pub events_missing: Vec<String>,
    /// Why `unknown` (`no permission: the token needs …`), or a note.
    pub detail: Option<String>,
    /// When reconciliation checked it (`Timestamp` text).
    pub checked_on: String,
    /// The last processed delivery about it (`Timestamp` text), if any.
    pub last_delivery: Option<String>,
    /// Its open pull requests.
    pub open: i64,
    /// The newest change of one of them (`Timestamp` text), if any is open.
    pub changed_on: Option<String>,
    /// "webhook silent?": open PRs, no delivery for `webhook_silence_days`, and a PR changed
    /// after the last delivery (or, with none ever, within that time).
    pub silent: bool,
}

/// Whether a repository looks silent at `now`: it has open PRs, no delivery arrived in the
/// last `silence`, and one of its PRs changed after the last delivery (with none ever: within
/// `silence`).
pub fn is_silent(
    open: i64,
    last_delivery: Option<DateTime<Utc>>,
    changed_on: Option<DateTime<Utc>>,
    silence: Duration,
    now: DateTime<Utc>,
) -> bool {
    let since = now - chrono::Duration::from_std(silence).unwrap_or(chrono::Duration::MAX);
    let Some(changed) = changed_on else {
        return false;
    };
    open > 0 && last_delivery.is_none_or(|d| d < since) && changed > last_delivery.unwrap_or(since)
}

fn at(text: &str) -> Option<DateTime<Utc>> {
    Timestamp::parse(text).ok().map(|t| t.to_datetime())
}

/// The line of every recorded repository of the `sites` configured (`Site::name()`) at `now`,
/// by site and repository.
pub async fn lines(
    db: &Db,
    sites: &[String],
    silence: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<WebhookLine>> {
    let mut coverage = store::webhooks::coverage(db).await?;
    coverage.retain(|c| sites.contains(&c.site));
    if coverage.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries: HashMap<(String, String), String> = store::webhooks::last_deliveries(db)
        .await?
        .into_iter()
        .map(|(flavour, repository, at)| ((flavour, repository), at))
        .collect();
    let activity: HashMap<(String, String), (i64, String)> = store::webhooks::open_activity(db)
        .await?
        .into_iter()
        .map(|(flavour, repository, open, changed)| ((flavour, repository), (open, changed)))
        .collect();
    Ok(coverage
        .into_iter()
        .map(|c| {
            let key = (c.flavour.clone(), c.repository.clone());
            let last_delivery = deliveries.get(&key).cloned();
            let (open, changed_on) = activity
                .get(&key)
                .map_or((0, None), |(n, at)| (*n, Some(at.clone())));
            let silent = is_silent(
                open,
                last_delivery.as_deref().and_then(at),
                changed_on.as_deref().and_then(at),
                silence,
                now,
            );
            WebhookLine {
                site: c.site,
                repository: c.full_name,
                state: c.state,
                covered_by: c.scope,
                hook: c.hook,
                events_missing: c
                    .events_missing
                    .map(|e| e.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
                detail: c.detail,
                checked_on: c.checked_on,
                last_delivery,
                open,
                changed_on,
                silent,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::is_silent;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    #[test]
    fn silence_needs_open_prs_an_old_last_delivery_and_a_later_change() {
        let now = Utc.with_ymd_and_hms(2026, 12, 10, 12, 0, 0).unwrap();
        let week = Duration::from_secs(7 * 86_400);
        let days_ago = |d: i64| Some(now - chrono::Duration::days(d));
        // Delivered 8 days ago, changed 2 days ago: silent.
        assert!(is_silent(1, days_ago(8), days_ago(2), week, now));
        // No open PR: not silent.
        assert!(!is_silent(0, days_ago(8), days_ago(2), week, now));
        // Delivered 6 days ago: not yet.
        assert!(!is_silent(1, days_ago(6), days_ago(2), week, now));
        // Nothing changed since the last delivery: quiet, not silent.
        assert!(!is_silent(1, days_ago(8), days_ago(9), week, now));
        // Never delivered: silent when a PR changed within the week, not for old PRs alone.
        assert!(is_silent(1, None, days_ago(3), week, now));
        assert!(!is_silent(1, None, days_ago(30), week, now));
    }
}

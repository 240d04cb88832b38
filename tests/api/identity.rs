//! One Bitbucket Data Center server, one identity (issue 21): whatever the deliveries' links say
//! (the public base URL, none at all on servers before 5.14, another one after a move behind a
//! proxy) and whatever address reconciliation reaches the server at, each pull request is stored,
//! listed and announced once. Every scenario here is written once and runs on SQLite (below) and
//! on PostgreSQL (`postgres::identity`).
//!
//! The payloads are the real ones in `../shared/fixtures/bitbucket/server`: drone-go-scm's
//! `PRJ/my-repo` (repository 1 of one server) sends `pr_open.json` and `pr_declined.json` without
//! any link, as servers before 5.14 did, and `pr_modified_toref.json` (the same PR #2) with links
//! naming `http://example.com:7990`.

use pr_reminder::config::{SecretToken, Settings};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::datacenter::{bytes, deliver_as};
use crate::helpers::{spawn_app_with, uuid_like, Served};
use crate::metrics::{value, METRICS_TOKEN};

pub(crate) const STATUS_TOKEN: &str = "identity-status-token-0123456789";

/// The status and metrics tokens.
pub(crate) fn tokens(s: &mut Settings) {
    s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN)));
    s.monitoring.metrics_token = Some(SecretToken(SecretString::from(METRICS_TOKEN)));
}

// ---------------------------------------------------------------------------------------------
// Deliveries' flavour.

/// A `repo:refs_changed` delivery as a Data Center server sends it (Atlassian's "Event payload"
/// page: `eventKey`, `date`, `actor`, `repository`, `changes`).
fn refs_changed() -> Value {
    json!({
        "eventKey": "repo:refs_changed",
        "date": "2026-11-24T10:00:00+0100",
        "actor": {"name": "admin", "id": 1, "displayName": "Administrator", "slug": "admin"},
        "repository": {"slug": "my-repo", "id": 1, "name": "my-repo",
                       "project": {"key": "PRJ", "id": 2, "name": "PRJ"}},
        "changes": [{"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
                     "refId": "refs/heads/main",
                     "fromHash": "ecddabb624f6f5ba43816f5926e580a5f680a932",
                     "toHash": "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
                     "type": "UPDATE"}]
    })
}

/// Data Center's events other than `pr:*` (`repo:refs_changed`, `mirror:repo_synchronized`,
/// `repo:modified`, `project:modified`) are recorded, shown and counted as Data Center: the
/// headers as a whole (`X-Request-Id`, no Cloud UUIDs) say who sent them.
pub(crate) async fn datacenter_repository_events_are_datacenter(app: &impl Served) {
    for key in [
        "repo:refs_changed",
        "mirror:repo_synchronized",
        "repo:modified",
        "project:modified",
    ] {
        let mut body = refs_changed();
        body["eventKey"] = json!(key);
        let answer = deliver_as(app, key, &uuid_like("dc-other"), bytes(&body)).await;
        assert_eq!(answer.status, 200, "{key}: {}", answer.body);
        assert_eq!(answer.body["status"], "ignored", "{key}: {}", answer.body);
    }
    let rows: Vec<(Option<String>, Option<String>)> = app
        .query_rows("SELECT event_key, flavour FROM deliveries ORDER BY id")
        .await;
    assert_eq!(
        rows,
        [
            "repo:refs_changed",
            "mirror:repo_synchronized",
            "repo:modified",
            "project:modified"
        ]
        .iter()
        .map(|k| (Some(k.to_string()), Some("datacenter".to_owned())))
        .collect::<Vec<_>>()
    );
    let (status, metrics) = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(
        value(
            &metrics,
            "pr_reminder_webhook_deliveries_total{flavour=\"datacenter\",outcome=\"ignored\"}"
        ),
        "4"
    );
    assert_eq!(
        value(
            &metrics,
            "pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"ignored\"}"
        ),
        "0"
    );
    let (status, page) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{page}");
    let deliveries = crate::status::between(&page, "<table id=\"deliveries\">", "</table>");
    assert!(
        deliveries.contains("<td>Bitbucket Data Center</td>")
            && deliveries.contains("<td>project:modified</td>")
            && !deliveries.contains("Bitbucket Cloud"),
        "{deliveries}"
    );
}

#[tokio::test]
async fn datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter() {
    let app = spawn_app_with(tokens).await;
    datacenter_repository_events_are_datacenter(&app).await;
}

//! What the parsers make of every payload we have: the real deliveries published by other
//! projects (`../shared/fixtures/bitbucket`, Cloud and Data Center) and our own
//! (`tests/fixtures/cloud`, `tests/fixtures/datacenter`), one insta snapshot each
//! (`tests/snapshots/parser__*.snap`). A payload the parser refuses is snapshotted
//! as its error text, so that a change of behaviour either way shows up in review.
//!
//! Regenerate after an intended change: `INSTA_UPDATE=always cargo test --test parser`, then read
//! every changed `.snap` file before committing it.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use pr_reminder::bitbucket::{self, cloud, datacenter, Parsed};
use pr_reminder::domain::{Flavour, Timestamp};
use serde_json::Value;

/// Files of `tests/fixtures/cloud` that are not payloads (the people the API tests build from).
const NOT_PAYLOADS: &[&str] = &["users.json"];

/// `received_at` for every parse: only a `repo:updated` without a time of its own reads it, and
/// a fixed value keeps such a snapshot stable.
const RECEIVED_AT: &str = "2026-11-30T00:00:00Z";

#[path = "common/shared_fixtures.rs"]
mod shared;
use shared::shared_fixtures;

fn own_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloud")
}

fn own_datacenter_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datacenter")
}

/// One payload to snapshot: its snapshot name, where it is, and its event key.
struct Case {
    name: String,
    path: PathBuf,
    label: String,
    event_key: String,
    flavour: Flavour,
}

/// `cloud/drone-go-scm/pr_created.json` -> `cloud__drone-go-scm__pr_created`.
fn snapshot_name(relative: &str) -> String {
    relative
        .trim_end_matches(".json")
        .replace('/', "__")
        .replace('.', "_")
}

/// The Cloud payloads of the shared index whose event key the parser acts on.
fn shared_cases(dir: &Path) -> Vec<Case> {
    index_entries(dir, "cloud")
        .into_iter()
        .filter(|(_, key)| cloud::handles(key))
        .map(|(file, key)| Case {
            name: snapshot_name(&file),
            path: dir.join(&file),
            label: format!("shared {file}"),
            event_key: key,
            flavour: Flavour::Cloud,
        })
        .collect()
}

/// Every Data Center payload of the shared index (`server/...`, flavour `data-center`), including
/// the ones the parser does not act on (`diagnostics:ping`): each is snapshotted as what the
/// webhook makes of it.
fn shared_server_cases(dir: &Path) -> Vec<Case> {
    index_entries(dir, "data-center")
        .into_iter()
        .map(|(file, key)| Case {
            name: snapshot_name(&file),
            path: dir.join(&file),
            label: format!("shared {file}"),
            event_key: key,
            flavour: Flavour::DataCenter,
        })
        .collect()
}

/// (file, event key) of the index's webhook payloads of one flavour.
fn index_entries(dir: &Path, flavor: &str) -> Vec<(String, String)> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap())
        .expect("index.json is JSON");
    index["payloads"]
        .as_array()
        .expect("index.json has payloads")
        .iter()
        .filter(|e| e["flavor"] == flavor)
        .map(|e| {
            let file = e["file"].as_str().expect("index entry has a file");
            let key = e["event_key"]
                .as_str()
                .unwrap_or_else(|| panic!("{flavor} entry {file} has an event key"));
            (file.to_owned(), key.to_owned())
        })
        .collect()
}

/// Our own payloads with the event key each is delivered with, as the folder's README lists them
/// (`| pullrequest_created.json | pullrequest:created (...) |`).
fn own_fixtures() -> Vec<(String, String)> {
    readme_table(&own_dir())
}

/// The `| file.json | event-key ... |` rows of a fixture folder's README.
fn readme_table(dir: &Path) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let file = cells.next()?;
            let key = cells.next()?.split_whitespace().next()?;
            file.ends_with(".json")
                .then(|| (file.to_owned(), key.to_owned()))
        })
        .collect()
}

fn own_cases() -> Vec<Case> {
    own_fixtures()
        .into_iter()
        .map(|(file, key)| Case {
            name: snapshot_name(&format!("own/{file}")),
            path: own_dir().join(&file),
            label: format!("tests/fixtures/cloud/{file}"),
            event_key: key,
            flavour: Flavour::Cloud,
        })
        .collect()
}

/// Our own Data Center payloads, as `tests/fixtures/datacenter/README.md` lists them.
fn own_datacenter_cases() -> Vec<Case> {
    readme_table(&own_datacenter_dir())
        .into_iter()
        .map(|(file, key)| Case {
            name: snapshot_name(&format!("own_datacenter/{file}")),
            path: own_datacenter_dir().join(&file),
            label: format!("tests/fixtures/datacenter/{file}"),
            event_key: key,
            flavour: Flavour::DataCenter,
        })
        .collect()
}

/// The parse, or the parser's refusal as its text.
fn parse(case: &Case) -> Result<Parsed, String> {
    let body = std::fs::read(&case.path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", case.path.display()));
    let received_at = Timestamp::parse(RECEIVED_AT).unwrap();
    bitbucket::parse(case.flavour, &case.event_key, &body, &received_at).map_err(|e| e.0)
}

/// Snapshots every case, then fails listing all that differ (instead of stopping at the first,
/// so one run writes every `.snap.new` to review).
fn snapshot_all(cases: &[Case]) {
    let mut failed = Vec::new();
    for case in cases {
        let parsed = parse(case);
        let description = format!("{} delivered as {}", case.label, case.event_key);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            insta::with_settings!({ description => description, omit_expression => true }, {
                insta::assert_debug_snapshot!(case.name.as_str(), parsed);
            });
        }));
        if outcome.is_err() {
            failed.push(case.name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "{} parser snapshot(s) differ: {failed:?}",
        failed.len()
    );
}

#[test]
fn every_shared_cloud_payload_parses_as_snapshotted() {
    let Some(dir) = shared_fixtures() else { return };
    let cases = shared_cases(&dir);
    // The index holds 48 Cloud payloads, of which all but a handful (`repo:push`, comment
    // edits and deletions) carry a key the parser acts on.
    assert!(cases.len() >= 40, "only {} cases in the index", cases.len());
    snapshot_all(&cases);
}

#[test]
fn every_own_cloud_payload_parses_as_snapshotted() {
    // Every payload in the folder has its event key in the README's table.
    let listed: BTreeSet<String> = own_fixtures().into_iter().map(|(f, _)| f).collect();
    for entry in std::fs::read_dir(own_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if file.ends_with(".json") && !NOT_PAYLOADS.contains(&file.as_str()) {
            assert!(
                listed.contains(&file),
                "tests/fixtures/cloud/{file} has no event key in the folder's README"
            );
        }
    }
    let cases = own_cases();
    assert!(cases.len() >= 6, "only {} own payloads listed", cases.len());
    // Our own payloads are well-formed: the parser accepts each.
    for case in &cases {
        assert!(
            matches!(parse(case), Ok(Parsed::Change(_))),
            "{}",
            case.label
        );
    }
    snapshot_all(&cases);
}

#[test]
fn every_shared_server_payload_parses_as_snapshotted() {
    let Some(dir) = shared_fixtures() else { return };
    let cases = shared_server_cases(&dir);
    // The index holds 37 Data Center payloads: 36 `pr:*` deliveries and one Test connection.
    assert!(cases.len() >= 37, "only {} cases in the index", cases.len());
    for case in &cases {
        assert!(
            datacenter::handles(&case.event_key) || case.event_key == datacenter::PING_KEY,
            "{} is delivered as {}, which the Data Center parser does not know",
            case.label,
            case.event_key
        );
    }
    snapshot_all(&cases);
}

#[test]
fn every_own_datacenter_payload_parses_as_snapshotted() {
    let listed: BTreeSet<String> = readme_table(&own_datacenter_dir())
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    for entry in std::fs::read_dir(own_datacenter_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if file.ends_with(".json") {
            assert!(
                listed.contains(&file),
                "tests/fixtures/datacenter/{file} has no event key in the folder's README"
            );
        }
    }
    let cases = own_datacenter_cases();
    assert!(cases.len() >= 4, "only {} own payloads listed", cases.len());
    for case in &cases {
        assert!(
            datacenter::handles(&case.event_key),
            "{}: {}",
            case.label,
            case.event_key
        );
        assert!(
            matches!(parse(case), Ok(Parsed::Change(_))),
            "{}",
            case.label
        );
    }
    snapshot_all(&cases);
}

/// A snapshot whose fixture is gone from the index (or renamed) is stale: it would otherwise sit
/// in the folder unnoticed.
#[test]
fn no_snapshot_without_a_fixture() {
    let Some(dir) = shared_fixtures() else { return };
    let expected: BTreeSet<String> = shared_cases(&dir)
        .into_iter()
        .chain(shared_server_cases(&dir))
        .chain(own_cases())
        .chain(own_datacenter_cases())
        .map(|c| format!("parser__{}.snap", c.name))
        .collect();
    let snapshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let Ok(entries) = std::fs::read_dir(&snapshots) else {
        return;
    };
    let stale: Vec<String> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.starts_with("parser__") && f.ends_with(".snap"))
        .filter(|f| !expected.contains(f))
        .collect();
    assert!(stale.is_empty(), "snapshots without a fixture: {stale:?}");
}

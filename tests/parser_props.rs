//! Property tests of the payload parsers (`pr_reminder::bitbucket::parse`, Cloud and Data
//! Center): whatever happens to a real delivery's bytes on the way (a flipped or lost byte, a
//! cut, a stray token) or to its values (a field of another type, `null`, a huge number, deep
//! nesting), the parser answers `Ok` or a clean `Err` naming the problem, and never panics.
//! The bodies are the real deliveries of `../shared/fixtures/bitbucket` (`index.json` gives each
//! one's event key); every event key of the index is tried on every body too.
//!
//! Bounded for `cargo test`: 256 cases per property (`PROPTEST_CASES` overrides it).
//! scripts/proof.py sends 10,000 such bodies through the running service as well.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use pr_reminder::bitbucket::{self, Parsed, PayloadError};
use pr_reminder::domain::{Flavour, Timestamp};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

#[path = "common/shared_fixtures.rs"]
mod shared;
use shared::shared_fixtures;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 256;

/// One real delivery: its body and the flavour and event key it was delivered with.
struct Fixture {
    file: String,
    flavour: Flavour,
    event_key: String,
    body: Vec<u8>,
}

/// Every webhook payload of the shared index (Cloud and Data Center; not the REST answers).
fn fixtures(dir: &Path) -> Vec<Fixture> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap())
        .expect("index.json is JSON");
    index["payloads"]
        .as_array()
        .expect("index.json has payloads")
        .iter()
        .filter_map(|entry| {
            let flavour = match entry["flavor"].as_str()? {
                "cloud" => Flavour::Cloud,
                "data-center" => Flavour::DataCenter,
                _ => return None,
            };
            let file = entry["file"].as_str().expect("index entry has a file");
            let event_key = entry["event_key"].as_str()?.to_owned();
            let body =
                std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"));
            Some(Fixture {
                file: file.to_owned(),
                flavour,
                event_key,
                body,
            })
        })
        .collect()
}

/// Every event key of the index, once each.
fn event_keys(fixtures: &[Fixture]) -> Vec<String> {
    let mut keys: Vec<String> = fixtures.iter().map(|f| f.event_key.clone()).collect();
    keys.sort();
    keys.dedup();
    keys
}

fn received_at() -> Timestamp {
    Timestamp::parse("2026-11-30T00:00:00Z").unwrap()
}

/// Parses and turns a panic into a test failure that shows the input; an `Err` must say why.
fn parse_cleanly(
    flavour: Flavour,
    event_key: &str,
    body: &[u8],
    what: &str,
) -> Result<(), TestCaseError> {
    let at = received_at();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        bitbucket::parse(flavour, event_key, body, &at)
    }));
    match outcome {
        Err(_) => Err(TestCaseError::fail(format!(
            "parse panicked on {what} as {flavour:?} {event_key}: {}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        ))),
        Ok(Err(PayloadError(reason))) if reason.trim().is_empty() => Err(TestCaseError::fail(
            format!("an error without a reason on {what} as {event_key}"),
        )),
        Ok(Ok(Parsed::Ignored(reason))) if reason.trim().is_empty() => Err(TestCaseError::fail(
            format!("ignored without a reason: {what} as {event_key}"),
        )),
        Ok(_) => Ok(()),
    }
}

/// What may happen to a body's bytes.
#[derive(Debug, Clone)]
enum ByteEdit {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Keep only the bytes before this point.
    Truncate(Index),
    /// Put a token in (JSON punctuation, a huge number, invalid UTF-8, an escape ...).
    Insert(Index, &'static [u8]),
    /// Lose up to 64 bytes.
    Delete(Index, usize),
    /// Repeat up to 256 bytes in place (a duplicated key, a doubled value).
    Repeat(Index, usize),
}

const TOKENS: &[&[u8]] = &[
    b"null",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\",
    b"1e999999",
    b"-1e-999999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.0000000000000000000000000000001",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\\ud800",
    b"\\u0000",
    b"true",
    b"\"id\":1,",
    b"\"state\":\"OPEN\",",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| ByteEdit::Flip(i, m)),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        3 => (any::<Index>(), proptest::sample::select(TOKENS)).prop_map(|(i, t)| ByteEdit::Insert(i, t)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        1 => (any::<Index>(), 1usize..256).prop_map(|(i, n)| ByteEdit::Repeat(i, n)),
    ]
}

fn apply_bytes(body: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut out = body.to_vec();
    for edit in edits {
        if out.is_empty() {
            break;
        }
        match edit {
            ByteEdit::Flip(i, mask) => {
                let at = i.index(out.len());
                out[at] ^= mask;
            }
            ByteEdit::Truncate(i) => out.truncate(i.index(out.len())),
            ByteEdit::Insert(i, token) => {
                let at = i.index(out.len() + 1);
                out.splice(at..at, token.iter().copied());
            }
            ByteEdit::Delete(i, n) => {
                let at = i.index(out.len());
                let end = (at + n).min(out.len());
                out.drain(at..end);
            }
            ByteEdit::Repeat(i, n) => {
                let at = i.index(out.len());
                let end = (at + n).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(end..end, copy);
            }
        }
    }
    out
}

/// What may replace one value of a body's JSON.
#[derive(Debug, Clone)]
enum Replacement {
    Null,
    Bool(bool),
    Number(f64),
    Huge,
    Text(String),
    EmptyArray,
    EmptyObject,
    /// The value wrapped in this many arrays (serde_json stops at 128 levels).
    Nested(usize),
    /// Removed from its object (or array).
    Removed,
}

fn replacement() -> impl Strategy<Value = Replacement> {
    prop_oneof![
        Just(Replacement::Null),
        any::<bool>().prop_map(Replacement::Bool),
        prop_oneof![
            Just(0.0),
            Just(-1.0),
            Just(1.5),
            Just(f64::MAX),
            Just(-f64::MAX),
            Just(i64::MAX as f64),
            Just(u64::MAX as f64),
        ]
        .prop_map(Replacement::Number),
        Just(Replacement::Huge),
        prop_oneof![
            Just(String::new()),
            Just("OPEN".to_owned()),
            Just("not a date".to_owned()),
            Just("2026-02-30T25:61:61Z".to_owned()),
            Just("{00000000-0000-0000-0000-000000000000}".to_owned()),
            Just("\u{0}\u{202e}\u{fffd}".to_owned()),
            proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        ]
        .prop_map(Replacement::Text),
        Just(Replacement::EmptyArray),
        Just(Replacement::EmptyObject),
        (1usize..200).prop_map(Replacement::Nested),
        Just(Replacement::Removed),
    ]
}

/// Every JSON pointer in `value` (the root included).
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// The body with the values at the chosen pointers replaced, serialised again; a huge number
/// or deep nesting is spliced into the text, since `Value` cannot hold them.
fn apply_values(body: &[u8], edits: &[(Index, Replacement)]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let mut splices = Vec::new();
    for (n, (i, edit)) in edits.iter().enumerate() {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let pointer = &all[i.index(all.len())];
        let marker = format!("@@splice{n}@@");
        let new = match edit {
            Replacement::Null => Value::Null,
            Replacement::Bool(b) => Value::Bool(*b),
            Replacement::Number(x) => {
                serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number)
            }
            Replacement::Text(s) => Value::String(s.clone()),
            Replacement::EmptyArray => Value::Array(Vec::new()),
            Replacement::EmptyObject => Value::Object(Default::default()),
            Replacement::Huge => {
                splices.push((marker.clone(), "1".repeat(400)));
                Value::String(marker)
            }
            Replacement::Nested(depth) => {
                splices.push((
                    marker.clone(),
                    format!("{}1{}", "[".repeat(*depth), "]".repeat(*depth)),
                ));
                Value::String(marker)
            }
            Replacement::Removed => {
                if let Some((parent, last)) = pointer.rsplit_once('/') {
                    match value.pointer_mut(parent) {
                        Some(Value::Object(map)) => {
                            map.remove(&last.replace("~1", "/").replace("~0", "~"));
                        }
                        Some(Value::Array(items)) => {
                            if let Ok(k) = last.parse::<usize>() {
                                if k < items.len() {
                                    items.remove(k);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                continue;
            }
        };
        if let Some(slot) = value.pointer_mut(pointer) {
            *slot = new;
        }
    }
    let mut text = serde_json::to_string(&value).ok()?;
    for (marker, raw) in splices {
        text = text.replace(&format!("\"{marker}\""), &raw);
    }
    Some(text.into_bytes())
}

/// The event key a case is parsed with: mostly the fixture's own, else any key of the index, with
/// the flavour that key is delivered by (as `DeliveryHeaders::read` decides it) or the other one.
#[derive(Debug, Clone)]
struct KeyChoice {
    other_key: Option<Index>,
    swap_flavour: bool,
}

fn key_choice() -> impl Strategy<Value = KeyChoice> {
    (
        proptest::option::weighted(0.25, any::<Index>()),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(other_key, swap_flavour)| KeyChoice {
            other_key,
            swap_flavour,
        })
}

fn flavour_of(key: &str) -> Flavour {
    if key.starts_with("pr:") || key.starts_with("diagnostics:") {
        Flavour::DataCenter
    } else {
        Flavour::Cloud
    }
}

fn choose<'a>(fixture: &'a Fixture, keys: &'a [String], choice: &KeyChoice) -> (Flavour, &'a str) {
    let (flavour, key) = match &choice.other_key {
        None => (fixture.flavour, fixture.event_key.as_str()),
        Some(i) => {
            let key = keys[i.index(keys.len())].as_str();
            (flavour_of(key), key)
        }
    };
    let flavour = match (choice.swap_flavour, flavour) {
        (false, f) => f,
        (true, Flavour::Cloud) => Flavour::DataCenter,
        (true, Flavour::DataCenter) => Flavour::Cloud,
    };
    (flavour, key)
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn loaded() -> Option<(Vec<Fixture>, Vec<String>)> {
    let dir = shared_fixtures()?;
    let all = fixtures(&dir);
    // 48 Cloud and 37 Data Center deliveries in the index.
    assert!(
        all.len() >= 80,
        "only {} webhook payloads in the index",
        all.len()
    );
    let keys = event_keys(&all);
    Some((all, keys))
}

#[test]
fn every_body_with_every_event_key_parses_without_panicking() {
    let Some((all, keys)) = loaded() else { return };
    assert!(
        keys.len() >= 25,
        "only {} event keys in the index",
        keys.len()
    );
    let mut changes = 0;
    for fixture in &all {
        for key in &keys {
            for flavour in [Flavour::Cloud, Flavour::DataCenter] {
                parse_cleanly(flavour, key, &fixture.body, &fixture.file).unwrap();
            }
        }
        if matches!(
            bitbucket::parse(
                fixture.flavour,
                &fixture.event_key,
                &fixture.body,
                &received_at()
            ),
            Ok(Parsed::Change(_))
        ) {
            changes += 1;
        }
    }
    // Not a vacuous run: most real deliveries are changes the service acts on.
    assert!(changes >= 60, "only {changes} fixtures parse as a change");
}

#[test]
fn byte_mutations_of_real_bodies_never_panic() {
    let Some((all, keys)) = loaded() else { return };
    let strategy = (
        any::<Index>(),
        proptest::collection::vec(byte_edit(), 1..8),
        key_choice(),
    );
    runner()
        .run(&strategy, |(which, edits, choice)| {
            let fixture = &all[which.index(all.len())];
            let body = apply_bytes(&fixture.body, &edits);
            let (flavour, key) = choose(fixture, &keys, &choice);
            parse_cleanly(flavour, key, &body, &fixture.file)
        })
        .unwrap();
}

#[test]
fn value_mutations_of_real_bodies_never_panic() {
    let Some((all, keys)) = loaded() else { return };
    let strategy = (
        any::<Index>(),
        proptest::collection::vec((any::<Index>(), replacement()), 1..5),
        key_choice(),
    );
    let refused = std::cell::Cell::new(0u32);
    let cases = std::cell::Cell::new(0u32);
    runner()
        .run(&strategy, |(which, edits, choice)| {
            let fixture = &all[which.index(all.len())];
            let body = apply_values(&fixture.body, &edits).expect("a fixture is JSON");
            let (flavour, key) = choose(fixture, &keys, &choice);
            let at = received_at();
            if bitbucket::parse(flavour, key, &body, &at).is_err() {
                refused.set(refused.get() + 1);
            }
            cases.set(cases.get() + 1);
            parse_cleanly(flavour, key, &body, &fixture.file)
        })
        .unwrap();
    // The mutations reach the parser's checks, not only its JSON reader: some bodies are
    // refused, and some still parse.
    let (refused, cases) = (refused.get(), cases.get());
    assert!(
        refused > 0 && refused < cases,
        "{refused} of {cases} refused"
    );
}

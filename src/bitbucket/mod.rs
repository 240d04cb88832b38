//! Bitbucket's wire formats: which Bitbucket sent a delivery and what its headers say, and
//! payloads turned into domain changes. Cloud is implemented; Data Center keys (`pr:*`,
//! `diagnostics:ping`) are recognised, so that a second parser slots in beside `cloud` without
//! touching the route.

pub mod cloud;
pub mod datacenter;
pub mod rest;
pub mod servers;

use crate::domain::{Delivery, Flavour, Outcome, Timestamp};

/// The header carrying `sha256=<hex HMAC-SHA256 of the raw body>`, on Cloud and Data Center alike.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// Longest header value kept (request ids and event keys are far shorter).
const MAX_HEADER_CHARS: usize = 128;

/// What a delivery's headers say, read once.
///
/// Cloud sends `X-Request-UUID`, `X-Hook-UUID`, `X-Attempt-Number` and event keys such as
/// `pullrequest:created`; Data Center sends `X-Request-Id` and keys such as `pr:opened`,
/// `diagnostics:ping` or `repo:refs_changed` (DESIGN.md §4). A key only one of them sends
/// (`pr:*` and Data Center's other keys, `pullrequest:*`) decides the flavour; any other key
/// (`repo:*` exists on both) is told by the headers as a whole: Cloud's request or hook UUID,
/// else Data Center's `X-Request-Id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHeaders {
    /// Cloud or Data Center, from the event key or else the request-id header.
    pub flavour: Flavour,
    /// The de-duplication key: `X-Request-UUID` (Cloud) or `X-Request-Id` (Data Center).
    pub request_id: Option<String>,
    /// `X-Event-Key`.
    pub event_key: Option<String>,
    /// `X-Attempt-Number` (Cloud only).
    pub attempt: Option<i64>,
}

impl DeliveryHeaders {
    /// Reads the headers through `header(name)`, which answers a header's trimmed value (any
    /// case of the name), or `None` when it is missing, empty or not text.
    pub fn read<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let clip = |v: &str| v.chars().take(MAX_HEADER_CHARS).collect::<String>();
        let event_key = header("X-Event-Key").map(clip);
        let cloud_id = header("X-Request-UUID");
        let dc_id = header("X-Request-Id");
        let cloud_headers = cloud_id.is_some() || header("X-Hook-UUID").is_some();
        let flavour = match event_key.as_deref() {
            Some(key) if datacenter::sends_only(key) => Flavour::DataCenter,
            Some(key) if key.starts_with("pullrequest:") => Flavour::Cloud,
            // Any other key (`repo:push` on Cloud, `repo:refs_changed` on Data Center, keys
            // added later): the headers as a whole say who sent it.
            _ if cloud_headers => Flavour::Cloud,
            _ if dc_id.is_some() => Flavour::DataCenter,
            _ => Flavour::Cloud,
        };
        let request_id = match flavour {
            Flavour::Cloud => cloud_id.or(dc_id),
            Flavour::DataCenter => dc_id.or(cloud_id),
        }
        .map(clip);
        DeliveryHeaders {
            flavour,
            request_id,
            event_key,
            attempt: header("X-Attempt-Number").and_then(|v| v.parse().ok()),
        }
    }

    /// The request-id header this flavour sends, for error messages.
    pub fn request_id_header(&self) -> &'static str {
        match self.flavour {
            Flavour::Cloud => "X-Request-UUID",
            Flavour::DataCenter => "X-Request-Id",
        }
    }

    /// The delivery these headers describe, received at `received_at`, with its outcome.
    pub fn delivery(&self, received_at: Timestamp, outcome: Outcome) -> Delivery {
        Delivery {
            flavour: self.flavour,
            request_id: self.request_id.clone(),
            event_key: self.event_key.clone(),
            attempt: self.attempt,
            received_at,
            outcome,
        }
    }
}

/// What a verified delivery means to us.
#[derive(Debug)]
pub enum Parsed {
    Change(crate::domain::Change),
    Ignored(String),
}

/// A payload we should understand but cannot: the reason names the JSON path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

impl PayloadError {
    pub(crate) fn from_json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return PayloadError(format!("body is not valid JSON: {inner}"));
        }
        // serde's message carries "at line L column C"; the path says more.
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        if path.is_empty() || path == "." {
            PayloadError(message)
        } else {
            PayloadError(format!("{path}: {message}"))
        }
    }
}

/// Reads a payload into typed structs. Fast path: a valid payload parses once. Only a failure
/// is parsed again with path tracking, which costs about as much as the parse itself, to name
/// the field at fault.
pub(crate) fn from_slice<'de, T: serde::Deserialize<'de>>(
    body: &'de [u8],
) -> Result<T, PayloadError> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(PayloadError::from_json)?;
    de.end()
        .map_err(|e| PayloadError(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Interprets one delivery by its flavour and event key, with no Data Center server configured
/// (each Data Center payload is its links' server; see `parse_with`).
pub fn parse(
    flavour: Flavour,
    event_key: &str,
    body: &[u8],
    received_at: &Timestamp,
) -> Result<Parsed, PayloadError> {
    parse_with(
        flavour,
        event_key,
        body,
        received_at,
        &servers::DataCenterServers::default(),
    )
}

/// Interprets one delivery by its flavour and event key; `servers` says which Data Center server
/// a Data Center payload belongs to (`servers::DataCenterServers::resolve`).
pub fn parse_with(
    flavour: Flavour,
    event_key: &str,
    body: &[u8],
    received_at: &Timestamp,
    servers: &servers::DataCenterServers,
) -> Result<Parsed, PayloadError> {
    match flavour {
        Flavour::Cloud if cloud::handles(event_key) => {
            return cloud::parse(event_key, body, received_at)
        }
        Flavour::DataCenter if datacenter::handles(event_key) => {
            return datacenter::parse(event_key, body, servers)
        }
        _ => {}
    }
    let reason = if event_key == datacenter::PING_KEY {
        "Test connection: received".to_owned()
    } else {
        format!("event `{event_key}` is not one pr-reminder acts on")
    };
    // Even an ignored body must be JSON: anything else is not from Bitbucket.
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|e| PayloadError(format!("body is not valid JSON: {e}")))?;
    Ok(Parsed::Ignored(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> DeliveryHeaders {
        DeliveryHeaders::read(|name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        })
    }

    #[test]
    fn flavour_from_the_event_key_then_the_headers() {
        let cloud = read(&[
            ("X-Event-Key", "pullrequest:created"),
            ("X-Request-UUID", "u-1"),
            ("X-Attempt-Number", "2"),
        ]);
        assert_eq!(
            cloud,
            DeliveryHeaders {
                flavour: Flavour::Cloud,
                request_id: Some("u-1".into()),
                event_key: Some("pullrequest:created".into()),
                attempt: Some(2),
            }
        );
        let dc = read(&[("X-Event-Key", "pr:opened"), ("X-Request-Id", "d-1")]);
        assert_eq!(
            (dc.flavour, dc.request_id.as_deref()),
            (Flavour::DataCenter, Some("d-1"))
        );
        assert_eq!(dc.request_id_header(), "X-Request-Id");
        let ping = read(&[("X-Event-Key", "diagnostics:ping")]);
        assert_eq!((ping.flavour, ping.request_id), (Flavour::DataCenter, None));
        // No event key: the request-id header decides.
        assert_eq!(
            read(&[("X-Request-Id", "d-2")]).flavour,
            Flavour::DataCenter
        );
        assert_eq!(read(&[("X-Request-UUID", "u-2")]).flavour, Flavour::Cloud);
        // A Cloud key with Data Center's id header still has its id.
        let mixed = read(&[
            ("X-Event-Key", "pullrequest:created"),
            ("X-Request-Id", "x"),
        ]);
        assert_eq!(
            (mixed.flavour, mixed.request_id.as_deref()),
            (Flavour::Cloud, Some("x"))
        );
        // Data Center's other events (repository pushes, mirrors, repository and project
        // changes) carry keys that are not `pr:`; its headers (`X-Request-Id`, no Cloud
        // `X-Request-UUID` / `X-Hook-UUID`) say who sent them.
        for key in [
            "repo:refs_changed",
            "mirror:repo_synchronized",
            "repo:modified",
            "project:modified",
        ] {
            let dc = read(&[("X-Event-Key", key), ("X-Request-Id", "d-3")]);
            assert_eq!(
                (dc.flavour, dc.request_id.as_deref()),
                (Flavour::DataCenter, Some("d-3")),
                "{key}"
            );
        }
        // Cloud's own keys and headers stay Cloud.
        for key in ["repo:push", "repo:updated", "repo:commit_status_created"] {
            let cloud = read(&[
                ("X-Event-Key", key),
                ("X-Request-UUID", "u-3"),
                ("X-Hook-UUID", "h-3"),
            ]);
            assert_eq!(cloud.flavour, Flavour::Cloud, "{key}");
        }
        // A key only Data Center sends, even without any id header.
        assert_eq!(
            read(&[("X-Event-Key", "repo:refs_changed")]).flavour,
            Flavour::DataCenter
        );
        let long = "k".repeat(500);
        assert_eq!(
            read(&[("X-Event-Key", &long)]).event_key.unwrap().len(),
            MAX_HEADER_CHARS
        );
    }
}

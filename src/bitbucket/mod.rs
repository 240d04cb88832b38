//! Bitbucket's wire formats: signature verification, and payload types turned into domain events.
//! Cloud is implemented; Data Center/Server keys (`pr:*`) are recognised so that a second flavour
//! slots in beside `cloud` without touching the route.

pub mod cloud;
pub mod signature;

use crate::domain::Change;

/// What a verified delivery means to us.
#[derive(Debug)]
pub enum Parsed {
    Change(Change),
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

/// Interprets one delivery by its `X-Event-Key`.
pub fn parse(event_key: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    if cloud::handles(event_key) {
        return cloud::parse(event_key, body);
    }
    let reason = if event_key.starts_with("pr:") || event_key == "diagnostics:ping" {
        format!("Bitbucket Data Center event `{event_key}` is not handled yet")
    } else {
        format!("event `{event_key}` is not one pr-reminder acts on")
    };
    // Even an ignored body must be JSON: anything else is not from Bitbucket.
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|e| PayloadError(format!("body is not valid JSON: {e}")))?;
    Ok(Parsed::Ignored(reason))
}

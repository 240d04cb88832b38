//! The HTTP boundary. Each route module owns the state it needs (`web::Data<...State>`, built by
//! `startup`), maps its errors to statuses with `thiserror` (no internal text leaked), and calls
//! one feature: the writer for webhooks, `jobs` for `/sweep`, `reviews` for `/commands/*`.

pub mod commands;
pub mod health;
pub mod sweep;
pub mod webhook;

use actix_web::HttpRequest;

use crate::config::SecretToken;
use crate::signature;

/// A header's trimmed text, if present and readable.
pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The bearer-token guard of the job endpoints (`POST /sweep`, next `POST /reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerCheck {
    /// No token is configured: the endpoint is off (403).
    Disabled,
    /// Missing or wrong token (401).
    Refused,
    Accepted,
}

pub(crate) fn check_bearer(req: &HttpRequest, token: Option<&SecretToken>) -> BearerCheck {
    match token {
        None => BearerCheck::Disabled,
        Some(token) if signature::bearer_matches(header(req, "Authorization"), &token.0) => {
            BearerCheck::Accepted
        }
        Some(_) => BearerCheck::Refused,
    }
}

//! The HTTP boundary. Each route module owns the state it needs (`web::Data<...State>`, built by
//! `startup`), maps its errors to statuses with `thiserror` (no internal text leaked), and calls
//! one feature: the writer for webhooks, `jobs` for `/sweep`, `reviews` for `/commands/*`.

pub mod commands;
pub mod health;
pub mod metrics;
pub mod reconcile;
pub mod status;
pub mod sweep;
pub mod webhook;

use std::time::Duration;

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

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

/// Why a request body was not read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// 413: longer than the limit (declared or sent).
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// 408: not all there within the time allowed (a client sending a byte at a time, or one
    /// that stopped): the connection is freed instead of held.
    #[error("the body did not arrive within {0} ms")]
    TooSlow(u128),
    /// 400: the connection broke or the encoding was wrong.
    #[error("could not read the request body")]
    Unreadable,
}

/// Reads a request body of at most `limit` bytes within `timeout` (headers that never finish
/// are cut off by the server itself; this bounds the body).
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::BytesMut, BodyError> {
    let declared = header(req, "Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let read = async {
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| BodyError::TooSlow(timeout.as_millis()))?
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

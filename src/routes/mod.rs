//! The HTTP boundary. Each route module owns the state it needs (`web::Data<...State>`, built by
//! `startup`), maps its errors to statuses with `thiserror` (no internal text leaked), and calls
//! one feature: the writer for webhooks, `jobs` for `/sweep`, `reviews` for `/commands/*`.

pub mod commands;
pub mod health;
pub mod metrics;
pub mod reconcile;
pub mod remind;
pub mod status;
pub mod sweep;
pub mod webhook;

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// How many request bodies are being read, and how many is too many. Registered as app data;
/// shared by every route that reads a body.
///
/// Slow bodies are how a few clients can hold every connection the process may open (the cap
/// sits below the open-file limit): while more than `high` bodies are in progress, a body has
/// only `UNDER_PRESSURE` to arrive instead of `body_timeout`, so the slots turn over within a
/// second and health checks and real deliveries get in (a real delivery, a few KB, arrives in
/// milliseconds).
#[derive(Debug)]
pub struct BodyPressure {
    reading: AtomicUsize,
    high: usize,
}

/// How long a body may take while too many are being read at once.
pub const UNDER_PRESSURE: Duration = Duration::from_millis(500);

impl BodyPressure {
    /// Pressure starts above `high` bodies in progress (half the connection cap).
    pub fn new(high: usize) -> Self {
        BodyPressure {
            reading: AtomicUsize::new(0),
            high: high.max(1),
        }
    }

    fn high(&self) -> bool {
        self.reading.load(Ordering::Relaxed) > self.high
    }
}

/// One body being read; counted until dropped.
struct Reading<'a>(&'a BodyPressure);

impl<'a> Reading<'a> {
    fn start(pressure: &'a BodyPressure) -> Self {
        pressure.reading.fetch_add(1, Ordering::Relaxed);
        Reading(pressure)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.reading.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads a request body of at most `limit` bytes within `timeout`, or within `UNDER_PRESSURE`
/// while too many bodies are being read at once (`BodyPressure`, when the app registers one).
/// Headers that never finish are cut off by the server itself; this bounds the body.
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
    let pressure = req.app_data::<web::Data<BodyPressure>>().cloned();
    let _reading = pressure.as_ref().map(|p| Reading::start(p));
    let started = tokio::time::Instant::now();
    let allowed = || match &pressure {
        Some(p) if p.high() => timeout.min(UNDER_PRESSURE),
        _ => timeout,
    };
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    loop {
        let allowed_now = allowed();
        let deadline = started + allowed_now;
        // Look again at least every 100 ms: pressure may have risen meanwhile.
        let tick = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
        tokio::select! {
            chunk = payload.next() => match chunk {
                None => return Ok(body),
                Some(chunk) => {
                    let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
                    if body.len() + chunk.len() > limit {
                        return Err(BodyError::TooLarge(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
            },
            _ = tokio::time::sleep_until(tick) => {
                if tokio::time::Instant::now() >= started + allowed() {
                    return Err(BodyError::TooSlow(allowed().as_millis()));
                }
            }
        }
    }
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

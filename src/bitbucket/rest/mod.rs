//! Bitbucket's REST APIs, read for reconciliation: one HTTP client per site that authenticates,
//! keeps few requests in flight, waits out 429 and retries 5xx, counts every request it sends,
//! and turns answers into the same domain snapshots the webhook parsers make (`cloud`,
//! `datacenter`).
//!
//! Wire facts (DESIGN.md §4 "Bitbucket REST"): Cloud pages are `{values, next}` with `pagelen` at
//! most 50; Data Center pages are `{values, isLastPage, nextPageStart}` and the server may cap
//! `limit`. Both answer 429 when a client goes over its rate, Cloud's allowance being about 1,000
//! requests an hour per user.

pub mod cloud;
pub mod datacenter;
pub mod hooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::{from_slice, PayloadError};
use crate::clock::Clock;
use crate::config::{Credentials, Site};
use crate::domain::Timestamp;

/// Requests one site has in flight at most: Bitbucket counts requests, not connections, and a
/// burst only brings 429 sooner.
pub const MAX_IN_FLIGHT: usize = 4;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured; a longer one fails the request (the next pass tries).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// How a failed request is tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first wait after a 429 without `Retry-After`, a 5xx or a broken connection.
    pub min_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
    /// Tries after the first.
    pub retries: usize,
}

impl Default for RetryPolicy {
    /// 250 ms, doubling with jitter, at most 30 s, 4 retries (a 5xx costs the repository about
    /// 4 s at worst before it is reported failed).
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            retries: 4,
        }
    }
}

/// Why a REST request failed (after any retries). The message never holds the token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RestError {
    /// The last HTTP status, if an answer came at all.
    pub status: Option<u16>,
    /// What went wrong, with the request's path.
    pub message: String,
}

impl RestError {
    fn answer(status: StatusCode, path: &str, body: &[u8], retry_after: Option<Duration>) -> Self {
        // Bitbucket's error bodies: Cloud `{"error": {"message"}}`, Data Center
        // `{"errors": [{"message"}]}`; shown shortened, as the operator's clue.
        let detail = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.pointer("/errors/0/message"))
                    .and_then(|m| m.as_str().map(str::to_owned))
            })
            .map(|m| format!(": {}", m.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        let hint = match status.as_u16() {
            401 => " (the token is missing, wrong or expired)",
            403 => " (the token lacks read access to pull requests and repositories)",
            404 => " (no such repository, or the token cannot see it)",
            429 => " (rate limited)",
            _ => "",
        };
        let wait = retry_after
            .map(|d| format!(" (Retry-After {} s)", d.as_secs()))
            .unwrap_or_default();
        RestError {
            status: Some(status.as_u16()),
            message: format!(
                "HTTP {} from GET {path}{hint}{wait}{detail}",
                status.as_u16()
            ),
        }
    }

    /// 429, 5xx and broken connections are worth another try; 4xx are not.
    fn transient(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => status == 429 || status >= 500,
        }
    }
}

impl From<PayloadError> for RestError {
    fn from(err: PayloadError) -> Self {
        RestError {
            status: None,
            message: format!("unexpected answer: {}", err.0),
        }
    }
}

/// A failed try, with how long the server asked us to wait.
struct Try {
    error: RestError,
    retry_after: Option<Duration>,
}

/// Requests a piece of work sent (every try counts, 429s included).
#[derive(Debug, Default)]
pub struct Requests(AtomicU64);

impl Requests {
    /// How many so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts `n` more (sent under another count).
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// An answer: its body and when the server sent it (its `Date`, else our clock).
pub struct Answer<T> {
    /// The parsed body.
    pub body: T,
    /// The server's `Date` header (Bitbucket's clock), else when it arrived (the service's).
    pub at: Timestamp,
}

/// One site's REST API. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
    clock: Clock,
}

impl Api {
    /// A client for `site` with `retry`; `clock` dates an answer that carries no `Date`.
    pub fn new(site: &Site, retry: RetryPolicy, clock: Clock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("pr-reminder/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Api {
            http,
            base: site.url.clone(),
            credentials: site.credentials.clone(),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            retry,
            clock,
        })
    }

    /// Now, by the service's clock (for answers without a `Date` header).
    pub fn now(&self) -> Timestamp {
        self.clock.timestamp()
    }

    /// `{base}/{segments...}` with each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Whether `url` (a `next` link from an answer) points at the configured site: the token is
    /// never sent anywhere else.
    pub fn same_site(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// A `method` request to `url` that asks for JSON and carries the site's credentials, for
    /// callers that send it themselves (the webhook writes of `connect`, tried once: a POST whose
    /// answer was lost may still have created, so it is not blindly repeated).
    pub fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .header("Accept", "application/json");
        match &self.credentials {
            // `bearer_auth` marks the header sensitive, as `basic_auth` does: never in a log.
            Credentials::Bearer(token) => request.bearer_auth(token.0.expose_secret()),
            Credentials::Basic { username, token } => {
                request.basic_auth(username, Some(token.0.expose_secret()))
            }
        }
    }

    /// GETs `url` and parses the JSON answer as `T`, retrying 429 (after `Retry-After`, else
    /// backoff with jitter), 5xx and broken connections. Counts every try in `requests`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        requests: &Requests,
    ) -> Result<Answer<T>, RestError> {
        let (bytes, at) = self.get_bytes(&url, requests).await?;
        let body = from_slice(&bytes).map_err(|e| RestError {
            status: None,
            message: format!("unexpected answer from GET {}: {}", url.path(), e.0),
        })?;
        Ok(Answer { body, at })
    }

    async fn get_bytes(
        &self,
        url: &Url,
        requests: &Requests,
    ) -> Result<(Vec<u8>, Timestamp), RestError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.retry.retries);
        (|| self.try_once(url, requests))
            .retry(backoff)
            .when(|t: &Try| t.error.transient())
            .adjust(|t: &Try, planned| match (t.retry_after, planned) {
                // Out of tries: stop whatever the server asked.
                (_, None) => None,
                (Some(asked), Some(_)) if asked > MAX_RETRY_AFTER => None,
                (Some(asked), Some(_)) => Some(asked),
                (None, planned) => planned,
            })
            .notify(|t: &Try, wait: Duration| {
                tracing::info!(error = %t.error, wait_ms = wait.as_millis() as u64, "Bitbucket REST: trying again");
            })
            .await
            .map_err(|t| t.error)
    }

    async fn try_once(&self, url: &Url, requests: &Requests) -> Result<(Vec<u8>, Timestamp), Try> {
        let _permit = self.permits.acquire().await.map_err(|_| Try {
            error: RestError {
                status: None,
                message: "the REST client is closed".into(),
            },
            retry_after: None,
        })?;
        requests.0.fetch_add(1, Ordering::Relaxed);
        let request = self.request(reqwest::Method::GET, url.clone());
        let path = url.path().to_owned();
        let response = request.send().await.map_err(|e| Try {
            // reqwest's message names the URL, which holds no secret (the token is a header).
            error: RestError {
                status: None,
                message: format!("GET {path}: {}", crate::http::transport_error(e)),
            },
            retry_after: None,
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let at = server_date(&headers).unwrap_or_else(|| self.now());
        let body = response.bytes().await.map_err(|e| Try {
            error: RestError {
                status: Some(status.as_u16()),
                message: format!(
                    "GET {path}: reading the answer: {}",
                    crate::http::transport_error(e)
                ),
            },
            retry_after: None,
        })?;
        if status.is_success() {
            return Ok((body.to_vec(), at));
        }
        let retry_after = retry_after(&headers);
        Err(Try {
            error: RestError::answer(status, &path, &body, retry_after),
            retry_after,
        })
    }
}

/// `Retry-After`: seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The answer's `Date` header: when the server produced it, by its own clock.
fn server_date(headers: &HeaderMap) -> Option<Timestamp> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let at = httpdate::parse_http_date(text).ok()?;
    Some(Timestamp::from_datetime(
        chrono::DateTime::<chrono::Utc>::from(at),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}

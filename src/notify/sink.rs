//! Carrying a rendered message to a room: HipChat v2, Slack-compatible webhooks, or the console.
//! Only bytes move here; what a failure means for the outbox is decided by the caller.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;

use super::message::Message;
use crate::config::Sink;

/// Why a chat server did not take a message; decides whether the outbox row is retried or
/// marked failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again: network trouble, timeouts, 5xx, 429. `after` is what the server
    /// asked us to wait (Retry-After, X-Ratelimit-Reset, X-FloodControl-Reset).
    Retry {
        /// How long the server asked us to wait, if it said.
        after: Option<Duration>,
        /// What went wrong, for `outbox.last_error`.
        reason: String,
    },
    /// Will not get better by itself: a wrong token, an unknown room (4xx other than 429).
    Permanent(String),
}

impl SendError {
    /// What went wrong, as recorded in `outbox.last_error`.
    pub fn reason(&self) -> &str {
        match self {
            SendError::Retry { reason, .. } | SendError::Permanent(reason) => reason,
        }
    }
}

/// One HTTP client for every room: connection reuse, and one timeout for every request.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("pr-reminder/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Posts `message` to a room: HipChat v2 room notification JSON, a Slack-compatible webhook
/// payload, or a line on standard output for the console. Errors say whether to retry.
pub async fn send(
    client: &reqwest::Client,
    sink: &Sink,
    room: &str,
    message: &Message,
) -> Result<(), SendError> {
    let (url, body) = match sink {
        Sink::Console => {
            println!("[pr-reminder → {room}] {}", message.text);
            return Ok(());
        }
        Sink::HipChat(url) => (
            url,
            json!({
                "message": message.html,
                "message_format": "html",
                "color": message.color.hipchat(),
                "notify": message.notify,
                "from": "pr-reminder",
            }),
        ),
        Sink::Slack(url) => (
            url,
            json!({
                "text": message.slack,
                "attachments": [{
                    "color": message.color.hex(),
                    "fallback": message.text,
                }],
            }),
        ),
    };
    let response = client
        .post(url.expose_secret())
        .json(&body)
        .send()
        .await
        .map_err(|e| SendError::Retry {
            after: None,
            reason: transport_error(e),
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let after = wait_requested(response.headers());
    let text = response.text().await.unwrap_or_default();
    let detail: String = text.chars().take(200).collect();
    let reason = format!("HTTP {status}: {}", detail.trim());
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Retry { after, reason })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// What went wrong before any answer, for `last_error`. reqwest's own text is only "error sending
/// request"; the cause (timeout, refused connection, DNS) is further down its source chain.
/// reqwest's errors name the URL, and the URL holds the token: it is removed first.
fn transport_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out waiting for the chat server".into();
    }
    let err = err.without_url();
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

/// How long the server asked us to wait: `Retry-After` seconds, or a Unix time in HipChat's
/// `X-Ratelimit-Reset` / `X-FloodControl-Reset`.
pub fn wait_requested(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(seconds) = number("retry-after") {
        return Some(Duration::from_secs_f64(seconds.min(3600.0)));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    ["x-floodcontrol-reset", "x-ratelimit-reset"]
        .iter()
        .filter_map(|name| number(name))
        .map(|reset| Duration::from_secs_f64((reset - now).clamp(0.0, 3600.0)))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wait_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(wait_requested(&h), None);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(wait_requested(&h), Some(Duration::from_secs(3)));
        let mut h = HeaderMap::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        h.insert("x-ratelimit-reset", (now + 20).to_string().parse().unwrap());
        let wait = wait_requested(&h).unwrap();
        assert!(
            wait > Duration::from_secs(18) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        h.insert(
            "x-floodcontrol-reset",
            (now - 5).to_string().parse().unwrap(),
        );
        assert!(wait_requested(&h).unwrap() > Duration::from_secs(18));
    }
}

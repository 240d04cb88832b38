//! Carrying a message to a room: HipChat v2, Slack-compatible webhooks, Teams Workflows, Google
//! Chat, or the console. The one place that maps a configured sink to its formatter
//! (`notify::format`): a chat document is formatted here, once, in the format that is sent.
//! What a failure means for the outbox is decided by the caller.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::doc::Doc;
use super::format::{google_chat, hipchat, plain, slack, teams, Format};
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

/// The formatter for a kind of room.
pub fn format(sink: &Sink) -> Format {
    match sink {
        Sink::HipChat(_) | Sink::HipChatBearer { .. } => Format::HipChat,
        Sink::Slack(_) => Format::Slack,
        Sink::Teams(_) => Format::Teams,
        Sink::GoogleChat(_) => Format::GoogleChat,
        Sink::Console => Format::Plain,
    }
}

/// Posts `message` to a room: HipChat v2 room notification JSON (with the token in the URL or
/// as `Authorization: Bearer`), a Slack-compatible webhook payload, a Teams Workflows Adaptive
/// Card, Google Chat text (in the thread `thread` names, where given), or a line on standard
/// output for the console. Any 2xx is delivered (Teams answers 202). Errors say whether to retry.
pub async fn send(
    client: &reqwest::Client,
    sink: &Sink,
    room: &str,
    message: &Doc,
    thread: Option<&str>,
) -> Result<(), SendError> {
    let request = match (sink, body(sink, room, message)) {
        (_, Body::Line(line)) => {
            println!("{line}");
            return Ok(());
        }
        (Sink::HipChat(url), Body::Json(json)) => hipchat_request(client, url, None).json(&json),
        (Sink::HipChatBearer { url, token }, Body::Json(json)) => {
            hipchat_request(client, url, Some(token)).json(&json)
        }
        (Sink::GoogleChat(url), Body::Json(json)) => {
            let url = match thread {
                Some(key) => google_chat::thread_url(url.expose_secret(), key),
                None => url.expose_secret().to_owned(),
            };
            client.post(url).json(&json)
        }
        (Sink::Slack(url) | Sink::Teams(url), Body::Json(json)) => {
            client.post(url.expose_secret()).json(&json)
        }
        (Sink::Console, Body::Json(_)) => return Ok(()),
    };
    post(request).await
}

/// A POST to a HipChat room: its token in the URL, or given apart as `Authorization: Bearer`.
fn hipchat_request(
    client: &reqwest::Client,
    url: &SecretString,
    token: Option<&SecretString>,
) -> reqwest::RequestBuilder {
    let request = client.post(url.expose_secret());
    match token {
        Some(token) => request.bearer_auth(token.expose_secret()),
        None => request,
    }
}

/// Sends a request and reads what the chat server's answer means.
async fn post(request: reqwest::RequestBuilder) -> Result<(), SendError> {
    let response = request.send().await.map_err(|e| SendError::Retry {
        after: None,
        reason: transport_error(e),
    })?;
    outcome(response).await
}

/// What a chat server's answer means: any 2xx is delivered; 429, 408 and 5xx are worth another
/// try (after what the server asked); any other status will not get better by itself.
async fn outcome(response: reqwest::Response) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let after = wait_requested(response.headers());
    let text = response.text().await.unwrap_or_default();
    let detail: String = text.chars().take(200).collect();
    let reason = match detail.trim() {
        "" => format!("HTTP {status}"),
        detail => format!("HTTP {status}: {detail}"),
    };
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Retry { after, reason })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// After a message that asks people to act (a digest) to a HipChat room: a short
/// `message_format: text` message naming them (`@name`), which HipChat turns into pings (it pings
/// only in text messages; Atlassian's HipChat "Send room notification" docs). Other kinds of
/// room, and a message nobody is to be pinged for, get nothing.
pub async fn ping(client: &reqwest::Client, sink: &Sink, message: &Doc) -> Result<(), SendError> {
    let Some(body) = ping_body(sink, message) else {
        return Ok(());
    };
    let request = match sink {
        Sink::HipChat(url) => hipchat_request(client, url, None),
        Sink::HipChatBearer { url, token } => hipchat_request(client, url, Some(token)),
        _ => return Ok(()),
    };
    post(request.json(&body)).await
}

/// What `send` puts on the wire: a JSON request body, or the console's line on standard output.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// The POST body for a chat's API.
    Json(serde_json::Value),
    /// The line printed for the console room.
    Line(String),
}

/// The bytes `send` carries for `message` to `room` on `sink`, in the sink's format: HipChat v2
/// room notification JSON, a Slack-compatible webhook payload, a Teams Workflows Adaptive Card,
/// Google Chat text, or the console's line.
pub fn body(sink: &Sink, room: &str, message: &Doc) -> Body {
    Body::Json(match format(sink) {
        Format::Plain => {
            return Body::Line(format!("[pr-reminder → {room}] {}", plain::text(message)))
        }
        Format::HipChat => hipchat::notification(message),
        Format::Slack => slack::webhook(message),
        Format::Teams => teams::body(message),
        Format::GoogleChat => google_chat::body(message),
    })
}

/// The message that follows `message` to alert the people it asks to act, where the room's chat
/// alerts only in a message of its own (HipChat's text-format `@mention` ping); `None` for other
/// chats, or when nobody is to be pinged.
pub fn ping_body(sink: &Sink, message: &Doc) -> Option<serde_json::Value> {
    match format(sink) {
        Format::HipChat => hipchat::ping(message),
        _ => None,
    }
}

/// What went wrong before any answer, for `last_error` (the cause, never the URL and its token).
fn transport_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out waiting for the chat server".into();
    }
    crate::http::transport_error(err)
}

/// How long the server asked us to wait: `Retry-After` as seconds or as an HTTP date (RFC 9110
/// §10.2.3 allows both), or a Unix time in HipChat's `X-Ratelimit-Reset` /
/// `X-FloodControl-Reset`. At most an hour.
pub fn wait_requested(headers: &HeaderMap) -> Option<Duration> {
    wait_requested_at(headers, std::time::SystemTime::now())
}

fn wait_requested_at(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    const MOST: Duration = Duration::from_secs(3600);
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
    let date = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok());
    if let Some(date) = date {
        return Some(date.duration_since(now).unwrap_or_default().min(MOST));
    }
    let now = now
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
    fn retry_after_as_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 10:00:00 GMT").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Sun, 29 Nov 2026 10:00:42 GMT".parse().unwrap(),
        );
        assert_eq!(wait_requested_at(&h, now), Some(Duration::from_secs(42)));
        // A date gone by: no wait; a date far ahead: an hour at most.
        h.insert(
            "retry-after",
            "Sun, 29 Nov 2026 09:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(wait_requested_at(&h, now), Some(Duration::ZERO));
        h.insert(
            "retry-after",
            "Mon, 30 Nov 2026 10:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(wait_requested_at(&h, now), Some(Duration::from_secs(3600)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(wait_requested_at(&h, now), None);
    }

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

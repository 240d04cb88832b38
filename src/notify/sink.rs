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
use super::slack_api;
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
        Sink::Slack(_) | Sink::SlackApi { .. } => Format::Slack,
        Sink::Teams(_) => Format::Teams,
        Sink::GoogleChat(_) => Format::GoogleChat,
        Sink::Console => Format::Plain,
    }
}

/// Posts `message` to a room: HipChat v2 room notification JSON (with the token in the URL or
/// as `Authorization: Bearer`), a Slack-compatible webhook payload, a Teams Workflows Adaptive
/// Card, Google Chat text (in the thread `thread` names, where given), a new top-level Slack
/// message through `chat.postMessage` (a Web-API room: its living PR messages are posted and
/// edited by `notify::living` instead), or a line on standard output for the console. Delivered only when the answer is the chat's documented success
/// (`Accepted`), not on any 2xx. Errors say whether to retry.
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
        (Sink::SlackApi { .. }, Body::Json(_)) => {
            // A Web-API room's messages are posted and edited by `dispatcher::living`, which
            // records each one in `chat_messages`; a plain post here would start a second
            // message for the PR.
            return Err(SendError::Permanent(
                "a slack_channel room is delivered by its living messages, not by send".into(),
            ));
        }
        (Sink::Console, Body::Json(_)) => return Ok(()),
    };
    post(request, Accepted::of(sink)).await
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
async fn post(request: reqwest::RequestBuilder, accepted: Accepted) -> Result<(), SendError> {
    let response = request.send().await.map_err(|e| SendError::Retry {
        after: None,
        reason: transport_error(e),
    })?;
    outcome(response, accepted).await
}

/// The answer each kind of chat documents for a message it took. A 2xx whose body is not it
/// reports a failure the server chose to answer 2xx (Teams' connectors wrap Teams' own 4xx and
/// 429 into `200 Webhook message delivery failed with error: ...`): it is retried with backoff
/// like a 5xx, and its text becomes `last_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepted {
    /// HipChat v2 room notification and private message: `204 No Content`
    /// (developer.atlassian.com/server/hipchat/send-room-notification/); an empty 2xx is taken
    /// too, a 2xx with a body is not.
    HipChat,
    /// Slack incoming webhooks answer `200` with the body `ok` (docs.slack.dev/messaging/
    /// sending-messages-using-incoming-webhooks, "Handling errors"); Mattermost the same
    /// (developers.mattermost.com/integrate/webhooks/incoming/: `200 OK`, `ok`); Rocket.Chat
    /// `{"success": true}` (its incoming integration answers `API.v1.success()`,
    /// RocketChat/Rocket.Chat apps/meteor/app/integrations/server/api/api.ts). A Slack-style
    /// `{"ok": true}` is taken too; anything else (`{"ok": false, "error": ...}`,
    /// `{"success": false}`, a proxy's HTML page) is not.
    Slack,
    /// A Teams Workflows trigger answers `202 Accepted` (learn.microsoft.com/en-us/
    /// microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook); an Office
    /// 365 connector `200` with the number of messages sent, `1` (Microsoft's answer in
    /// MicrosoftDocs/msteams-docs#9698: "successful only if it returns a number in the
    /// response, else it is a failure even if status is 200"), or since 2023 a JSON envelope
    /// with `"isSuccessStatusCode": true` (MicrosoftDocs/msteams-docs#7852). An empty 2xx is
    /// taken; `200 Webhook message delivery failed with error: ...` (msteams-docs#402, #1810)
    /// or any other text is not.
    Teams,
    /// Google Chat's `spaces.messages.create` answers `200` with the created Message resource,
    /// whose `name` is `spaces/{space}/messages/{message}` (developers.google.com/workspace/chat/
    /// api/reference/rest/v1/spaces.messages/create: "If successful, the response body contains
    /// a newly created instance of Message").
    GoogleChat,
}

impl Accepted {
    fn of(sink: &Sink) -> Accepted {
        match sink {
            Sink::Slack(_) | Sink::SlackApi { .. } => Accepted::Slack,
            Sink::Teams(_) => Accepted::Teams,
            Sink::GoogleChat(_) => Accepted::GoogleChat,
            Sink::HipChat(_) | Sink::HipChatBearer { .. } | Sink::Console => Accepted::HipChat,
        }
    }

    /// Whether a 2xx with this body is the documented success.
    fn says_yes(self, status: StatusCode, body: &str) -> bool {
        let body = body.trim();
        let json = || serde_json::from_str::<serde_json::Value>(body).ok();
        let flag = |name: &str| json().and_then(|v| v.get(name)?.as_bool()) == Some(true);
        match self {
            Accepted::HipChat => status == StatusCode::NO_CONTENT || body.is_empty(),
            Accepted::Slack => body == "ok" || flag("ok") || flag("success"),
            Accepted::Teams => {
                status == StatusCode::ACCEPTED
                    || body.is_empty()
                    || body.parse::<u64>().is_ok_and(|n| n > 0)
                    || flag("isSuccessStatusCode")
            }
            Accepted::GoogleChat => json()
                .and_then(|v| v.get("name")?.as_str().map(|n| n.starts_with("spaces/")))
                .unwrap_or(false),
        }
    }

    /// What the chat documents, for `last_error`.
    fn documented(self) -> &'static str {
        match self {
            Accepted::HipChat => "HipChat answers 204 No Content",
            Accepted::Slack => "a Slack-compatible webhook answers `ok`",
            Accepted::Teams => "Teams answers 202 (a workflow) or 1 (a connector)",
            Accepted::GoogleChat => "Google Chat answers the created message",
        }
    }
}

/// What a chat server's answer means: its documented success is delivered; a 2xx with any other
/// body, 429, 408 and 5xx are worth another try (after what the server asked); any other status
/// will not get better by itself.
async fn outcome(response: reqwest::Response, accepted: Accepted) -> Result<(), SendError> {
    let status = response.status();
    let after = wait_requested(response.headers());
    let text = response.text().await.unwrap_or_default();
    let detail: String = text.trim().chars().take(200).collect();
    if status.is_success() {
        if accepted.says_yes(status, &text) {
            return Ok(());
        }
        return Err(SendError::Retry {
            after,
            reason: format!(
                "HTTP {status} but not a success ({}): {}",
                accepted.documented(),
                if detail.is_empty() {
                    "empty body"
                } else {
                    &detail
                }
            ),
        });
    }
    let reason = match detail.as_str() {
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
    post(request.json(&body), Accepted::HipChat).await
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
        Format::Slack => match sink {
            Sink::SlackApi { channel, .. } => slack_api::message(channel, message),
            _ => slack::webhook(message),
        },
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
pub(crate) fn transport_error(err: reqwest::Error) -> String {
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
    fn each_chat_says_yes_its_own_way() {
        let ok = StatusCode::OK;
        let teams_429 = "Webhook message delivery failed with error: Microsoft Teams endpoint \
                         returned HTTP error 429 with ContextId tcid=0,server=msgapi-production,cv=x.0..";
        for (accepted, status, body, yes) in [
            (Accepted::HipChat, StatusCode::NO_CONTENT, "", true),
            (Accepted::HipChat, ok, "", true),
            (Accepted::HipChat, ok, r#"{"error": {"code": 400}}"#, false),
            (Accepted::Slack, ok, "ok", true),
            (Accepted::Slack, ok, r#"{"success": true}"#, true),
            (Accepted::Slack, ok, r#"{"ok": true}"#, true),
            (
                Accepted::Slack,
                ok,
                r#"{"ok": false, "error": "invalid_blocks"}"#,
                false,
            ),
            (
                Accepted::Slack,
                ok,
                r#"{"success": false, "error": "x"}"#,
                false,
            ),
            (Accepted::Slack, ok, "<html>Sign in</html>", false),
            (Accepted::Slack, ok, "", false),
            (Accepted::Teams, StatusCode::ACCEPTED, "", true),
            (Accepted::Teams, ok, "1", true),
            (Accepted::Teams, ok, "", true),
            (
                Accepted::Teams,
                ok,
                r#"{"version":"1.1","statusCode":200,"isSuccessStatusCode":true}"#,
                true,
            ),
            (Accepted::Teams, ok, teams_429, false),
            (Accepted::Teams, ok, "0", false),
            (
                Accepted::GoogleChat,
                ok,
                r#"{"name": "spaces/AAA/messages/x.y"}"#,
                true,
            ),
            (Accepted::GoogleChat, ok, "{}", false),
            (Accepted::GoogleChat, ok, "", false),
        ] {
            assert_eq!(
                accepted.says_yes(status, body),
                yes,
                "{accepted:?} {status} {body}"
            );
        }
    }

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

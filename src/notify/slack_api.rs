//! The Slack Web API, for rooms with a `slack_channel`: `chat.postMessage`, `chat.update` and
//! `conversations.history`, with the bot token as `Authorization: Bearer`.
//!
//! The contract (docs.slack.dev/apis/web-api, "Evaluating responses"): every method answers
//! HTTP 200 with a JSON object whose `ok` says whether it worked; when it did not, `error` names
//! why (`{"ok": false, "error": "channel_not_found"}`). Over the rate limit the answer is HTTP
//! 429 with `Retry-After` in seconds (docs.slack.dev/apis/web-api/rate-limits). Which `error`
//! names are worth another try is `retryable`; the rest say the request or the setup is wrong.
//!
//! Every call goes through [`Limits`], one per process and shared by every caller (the rooms'
//! living messages, direct messages): at most one request a second to each channel, and none
//! to a channel while a `Retry-After` Slack gave for it runs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::doc::Doc;
use super::format::slack;
use super::sink::{wait_requested, SendError};
use crate::clock::{Clock, RateClock};

/// The `metadata.event_type` of the messages the service posts about a PR
/// (docs.slack.dev/messaging/message-metadata: an alphanumeric, human-readable name; the
/// `event_payload` is free-form).
pub const EVENT_TYPE: &str = "pr_reminder_pull_request";

/// Most pages of `conversations.history` read when looking a message up.
const LOOKUP_PAGES: usize = 10;

/// The spacing of requests to one channel: one a second. "chat.postMessage generally allows
/// posting one message per second per channel, while also maintaining a workspace-wide limit"
/// (docs.slack.dev/apis/web-api/rate-limits, "Special rate limits"; and
/// docs.slack.dev/reference/methods/chat.postMessage, "Rate limiting"). Edits, lookups and
/// thread replies in a channel are spaced the same way: they are what a channel's messages cost.
pub const CHANNEL_PERIOD: Duration = Duration::from_secs(1);

/// How many requests to one channel may go at once before the spacing applies: the rate-limits
/// page allows "short bursts >1"; three lets a PR's edit, its thread reply (and a lookup before
/// them) go together, while a longer run is held to one a second.
pub const CHANNEL_BURST: u32 = 3;

/// How long a channel is left alone after a 429 that named no `Retry-After` (Slack always
/// sends one: docs.slack.dev/apis/web-api/rate-limits, "Responding to rate limiting
/// conditions"): the channel's own spacing.
const RETRY_AFTER_UNSAID: Duration = CHANNEL_PERIOD;

/// Per-channel request spacing, on the service's clock.
type ChannelLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, RateClock, NoOpMiddleware<Duration>>;

/// The Web API's rate limits as this process keeps them, per channel (`C0123…` for a channel,
/// `D0123…` for a direct message): each request waits its turn within [`CHANNEL_PERIOD`]
/// (after a burst of [`CHANNEL_BURST`]); and after an HTTP 429, nothing goes to that channel
/// until its `Retry-After` has passed ("your app will receive an HTTP 429 Too Many Requests
/// response, and a Retry-After HTTP header containing the number of seconds until you can
/// retry", docs.slack.dev/apis/web-api/rate-limits; the page warns that an app that keeps
/// calling while limited may be disabled). A call in that time is not sent: it answers
/// `ratelimited` with the time left as its `after`, which the outbox honours like Slack's own.
/// A call that names no channel (`conversations.open`) is held by its method instead.
///
/// One per process, cheap to clone, shared by every caller of the Web API: two rooms on one
/// channel, and direct messages, count against the same limits.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<LimitsInner>,
}

struct LimitsInner {
    clock: Clock,
    spacing: ChannelLimiter,
    /// Until when (the service's clock) a 429 holds each key.
    held: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    /// Slack's limits ([`CHANNEL_PERIOD`], [`CHANNEL_BURST`]), read on `clock`.
    pub fn new(clock: Clock) -> Limits {
        Limits::with_spacing(clock, CHANNEL_PERIOD, CHANNEL_BURST)
    }

    /// One request per `period` to each channel after a burst of `burst` (at least 1).
    pub fn with_spacing(clock: Clock, period: Duration, burst: u32) -> Limits {
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let spacing = RateLimiter::new(
            quota,
            DefaultKeyedStateStore::default(),
            RateClock(clock.clone()),
        );
        Limits {
            inner: Arc::new(LimitsInner {
                clock,
                spacing,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How much longer a 429 holds `key` (`None`: it does not).
    pub fn held_for(&self, key: &str) -> Option<Duration> {
        let now = self.inner.clock.now();
        let mut held = self.held();
        match held.get(key) {
            Some(until) if *until > now => (*until - now).to_std().ok(),
            Some(_) => {
                held.remove(key);
                None
            }
            None => None,
        }
    }

    /// Records Slack's 429 for `key`: nothing goes to it for `after`.
    pub fn rate_limited(&self, key: &str, after: Duration) {
        let until = self.inner.clock.now() + chrono::Duration::from_std(after).unwrap_or_default();
        let mut held = self.held();
        let entry = held.entry(key.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Before a request to `key`: `Err` with the time left while a 429 holds it (send
    /// nothing); else waits, on the service's clock, for the key's turn (`spaced`) and says go.
    pub async fn ready(&self, key: &str, spaced: bool) -> Result<(), Duration> {
        if let Some(left) = self.held_for(key) {
            return Err(left);
        }
        if !spaced {
            return Ok(());
        }
        let key = key.to_owned();
        while let Err(not_until) = self.inner.spacing.check_key(&key) {
            let now = RateClock(self.inner.clock.clone()).now();
            self.inner.clock.sleep(not_until.wait_time_from(now)).await;
        }
        Ok(())
    }
}

/// The Web API of one workspace, as the bot.
pub struct Api<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    token: &'a SecretString,
    limits: &'a Limits,
}

/// Why a Web API call did not work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Slack answered `{"ok": false, "error": NAME}` (or HTTP 429, as `ratelimited`); `after`
    /// is the `Retry-After` it gave.
    Slack {
        /// Slack's error name (`channel_not_found`, `message_not_found`, ...).
        error: String,
        /// How long it asked us to wait.
        after: Option<Duration>,
    },
    /// No answer, or not the Web API's JSON: retried or not as `SendError` says.
    Http(SendError),
}

/// A message `chat.postMessage` posted: where, and its `ts` (the id `chat.update` and
/// `thread_ts` name it by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel ID (`C0123...`).
    pub channel: String,
    /// The message's timestamp id, `"1405894322.002768"`.
    pub ts: String,
}

impl CallError {
    /// Slack's error name, if Slack answered one.
    pub fn error(&self) -> Option<&str> {
        match self {
            CallError::Slack { error, .. } => Some(error),
            CallError::Http(_) => None,
        }
    }

    /// Whether Slack said the message cannot be edited any more: `message_not_found` ("No
    /// message exists with the requested timestamp": deleted in Slack), `cant_update_message`
    /// ("Authenticated user does not have permission to update this message") or
    /// `edit_window_closed` ("The message cannot be edited due to the team message edit
    /// settings") (docs.slack.dev/reference/methods/chat.update, "Errors"). A new one is posted
    /// instead, which later news edits.
    pub fn message_gone(&self) -> bool {
        matches!(
            self.error(),
            Some("message_not_found" | "cant_update_message" | "edit_window_closed")
        )
    }

    /// Whether Slack said the request was refused (so nothing was posted), as opposed to no
    /// answer at all (it may have been).
    pub fn refused(&self) -> bool {
        match self {
            CallError::Slack { .. } => true,
            CallError::Http(SendError::Permanent(_)) => true,
            CallError::Http(SendError::Retry { .. }) => false,
        }
    }

    /// What the outbox makes of it: retried (after what Slack asked) or failed, with
    /// `{method}: {error}` as the reason, and a hint where the fix is known.
    pub fn into_send_error(self, method: &str) -> SendError {
        match self {
            CallError::Http(err) => match err {
                SendError::Retry { after, reason } => SendError::Retry {
                    after,
                    reason: format!("{method}: {reason}"),
                },
                SendError::Permanent(reason) => SendError::Permanent(format!("{method}: {reason}")),
            },
            CallError::Slack { error, after } => {
                let reason = match hint(&error) {
                    Some(hint) => format!("{method}: {error} ({hint})"),
                    None => format!("{method}: {error}"),
                };
                if retryable(&error) {
                    SendError::Retry { after, reason }
                } else {
                    SendError::Permanent(reason)
                }
            }
        }
    }
}

/// The error names worth another try: `ratelimited` (over the rate limit; also HTTP 429,
/// docs.slack.dev/apis/web-api/rate-limits), and the server's own trouble `internal_error`
/// ("likely due to a transient issue on our end"), `fatal_error`, `service_unavailable`
/// ("The service is temporarily unavailable") and `request_timeout` (chat.postMessage and
/// chat.update, "Errors"). Every other name (`channel_not_found`, `not_in_channel`,
/// `is_archived`, `invalid_auth`, `not_authed`, `missing_scope`, `msg_too_long`, ...) says the
/// request or the setup is wrong, and another try would get the same answer: failed at once,
/// with the name as the reason.
pub fn retryable(error: &str) -> bool {
    matches!(
        error,
        "ratelimited"
            | "rate_limited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
    )
}

/// What to do about the errors a setup causes (the meanings are chat.postMessage's "Errors").
fn hint(error: &str) -> Option<&'static str> {
    Some(match error {
        "channel_not_found" => "no channel has that ID, or the bot cannot see it",
        "not_in_channel" => "invite the bot to the channel: /invite @your-bot",
        "is_archived" => "the channel is archived",
        "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => {
            "check [direct] slack_bot_token"
        }
        "missing_scope" => "the bot token lacks a scope: chat:write (and channels:history)",
        _ => return None,
    })
}

/// The `chat.postMessage` body of a new top-level message about a PR: `channel`, the message
/// as the Slack formatter makes it (`text` in mrkdwn, `attachments` with its colour), and
/// `metadata` carrying `key` (docs.slack.dev/reference/methods/chat.postMessage: `metadata`,
/// "JSON object with event_type and event_payload fields"), by which the message is found again
/// if its `ts` was lost (`Api::find`).
pub fn new_message(channel: &str, message: &Doc, key: &str) -> Value {
    let mut body = self::message(channel, message);
    body["metadata"] = json!({"event_type": EVENT_TYPE, "event_payload": {"key": key}});
    body
}

/// A `chat.postMessage` body for `message` in `channel`: the Slack formatter's `text` and
/// `attachments`, and `channel`.
pub fn message(channel: &str, message: &Doc) -> Value {
    let mut body = slack::webhook(message);
    body["channel"] = json!(channel);
    body
}

/// The `chat.update` body that makes the message `ts` in `channel` show `message`
/// (docs.slack.dev/reference/methods/chat.update: `channel`, `ts`, and the new `text` and
/// `attachments`, which replace the old ones).
pub fn update(channel: &str, ts: &str, message: &Doc) -> Value {
    let mut body = self::message(channel, message);
    body["ts"] = json!(ts);
    body
}

/// The `chat.update` body that turns an earlier digest (`ts` in `channel`) into one line saying
/// the digest posted as `newer` (its `ts`) superseded it. `attachments` is an empty list:
/// chat.update keeps the old ones unless given, and an empty array removes them
/// (docs.slack.dev/reference/methods/chat.update, `attachments`).
pub fn superseded(channel: &str, ts: &str, newer: &str) -> Value {
    let posted = newer
        .split('.')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_default();
    json!({"channel": channel, "ts": ts, "text": slack::superseded(posted), "attachments": []})
}

/// A reply in the thread of the message `ts` (chat.postMessage's `thread_ts`: "Provide another
/// message's ts value to make this message a reply"): just the text, not shown in the channel.
pub fn reply(channel: &str, ts: &str, message: &Doc) -> Value {
    json!({"channel": channel, "thread_ts": ts, "text": slack::text(message)})
}

/// A reply in the thread of the message `ts` that is also shown in the channel
/// (chat.postMessage's `reply_broadcast`: "Used in conjunction with thread_ts and indicates
/// whether reply should be made visible to everyone in the channel or conversation. Defaults to
/// false."): for a reply that asks someone to act.
pub fn broadcast_reply(channel: &str, ts: &str, message: &Doc) -> Value {
    let mut body = reply(channel, ts, message);
    body["reply_broadcast"] = json!(true);
    body
}

impl<'a> Api<'a> {
    /// The API at `base` (`https://slack.com/api`), with the bot `token`, within `limits`
    /// (the process's one [`Limits`]).
    pub fn new(
        client: &'a reqwest::Client,
        base: &'a str,
        token: &'a SecretString,
        limits: &'a Limits,
    ) -> Api<'a> {
        Api {
            client,
            base,
            token,
            limits,
        }
    }

    /// POSTs `body` as JSON to `method` and reads the answer: the whole JSON object when `ok`.
    /// JSON bodies are sent as `application/json; charset=utf-8` (docs.slack.dev/apis/web-api,
    /// "JSON-encoded bodies": without the charset Slack warns `missing_charset`). Waits for
    /// the turn of `body`'s `channel` (`Limits`); a call without one is held only by a 429 to
    /// its method.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, CallError> {
        let request = self
            .client
            .post(format!("{}/{method}", self.base))
            .bearer_auth(self.token.expose_secret())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_string());
        match body["channel"].as_str() {
            Some(channel) => self.limited(channel, true, request).await,
            None => self.limited(method, false, request).await,
        }
    }

    /// Sends `request` within the limits of `key` (a channel, spaced; or a method): not at all
    /// while a 429 holds it, and a 429 (or `ratelimited`) it gets holds the key for the
    /// `Retry-After` given.
    async fn limited(
        &self,
        key: &str,
        spaced: bool,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, CallError> {
        if let Err(left) = self.limits.ready(key, spaced).await {
            return Err(CallError::Slack {
                error: "ratelimited".into(),
                after: Some(left),
            });
        }
        let answer = answer(request).await;
        if let Err(CallError::Slack { error, after }) = &answer {
            if error == "ratelimited" || error == "rate_limited" {
                let after = after.unwrap_or(RETRY_AFTER_UNSAID);
                tracing::warn!(
                    key,
                    retry_after_ms = after.as_millis() as u64,
                    "Slack rate limit: nothing goes to it until then"
                );
                self.limits.rate_limited(key, after);
            }
        }
        answer
    }

    /// `chat.postMessage`: the message's `channel` and `ts`.
    pub async fn post_message(&self, body: &Value) -> Result<Posted, CallError> {
        let answer = self.call("chat.postMessage", body).await?;
        match (answer["channel"].as_str(), answer["ts"].as_str()) {
            (Some(channel), Some(ts)) => Ok(Posted {
                channel: channel.to_owned(),
                ts: ts.to_owned(),
            }),
            _ => Err(CallError::Http(SendError::Retry {
                after: None,
                reason: "Slack said ok but named no channel and ts".into(),
            })),
        }
    }

    /// The newest top-level message in `channel` since `oldest` (a Unix time in seconds) whose
    /// metadata carries `key` (`new_message`): its `ts`, or `None`.
    ///
    /// `conversations.history` (docs.slack.dev/reference/methods/conversations.history) with
    /// `include_all_metadata=true` returns each message's `metadata`, newest first, `oldest`
    /// bounding how far back; pages follow `response_metadata.next_cursor` while `has_more`.
    /// The bot needs `channels:history` (`groups:history` for a private channel). The page
    /// says an app built for its own workspace keeps Tier 3 (50+ a minute), while apps
    /// distributed outside the Marketplace get 1 a minute and at most 15 messages a page: a
    /// lookup happens only after a post whose answer was lost, and `ratelimited` is retried.
    pub async fn find(
        &self,
        channel: &str,
        oldest: &str,
        key: &str,
    ) -> Result<Option<String>, CallError> {
        let mut cursor: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let mut query = vec![
                ("channel", channel.to_owned()),
                ("oldest", oldest.to_owned()),
                ("include_all_metadata", "true".to_owned()),
                ("limit", "100".to_owned()),
            ];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let request = self
                .client
                .get(format!("{}/conversations.history", self.base))
                .bearer_auth(self.token.expose_secret())
                .query(&query);
            let page = self.limited(channel, true, request).await?;
            let messages = page["messages"].as_array().cloned().unwrap_or_default();
            let found = messages.iter().find(|m| {
                m["metadata"]["event_type"] == EVENT_TYPE
                    && m["metadata"]["event_payload"]["key"] == key
            });
            if let Some(ts) = found.and_then(|m| m["ts"].as_str()) {
                return Ok(Some(ts.to_owned()));
            }
            let next = page["response_metadata"]["next_cursor"]
                .as_str()
                .filter(|c| !c.is_empty());
            match next {
                Some(next) if page["has_more"] == true => cursor = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// Sends a request and reads the Web API's answer.
async fn answer(request: reqwest::RequestBuilder) -> Result<Value, CallError> {
    let response = request.send().await.map_err(|e| {
        CallError::Http(SendError::Retry {
            after: None,
            reason: super::sink::transport_error(e),
        })
    })?;
    let status = response.status();
    let after = wait_requested(response.headers());
    let text = response.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(CallError::Slack {
            error: "ratelimited".into(),
            after,
        });
    }
    let detail: String = text.trim().chars().take(200).collect();
    if !status.is_success() {
        let reason = match detail.as_str() {
            "" => format!("HTTP {status}"),
            detail => format!("HTTP {status}: {detail}"),
        };
        return Err(CallError::Http(
            if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
                SendError::Retry { after, reason }
            } else {
                SendError::Permanent(reason)
            },
        ));
    }
    let json: Option<Value> = serde_json::from_str(&text).ok();
    match json {
        Some(json) if json["ok"] == true => Ok(json),
        Some(json) if json["ok"] == false => Err(CallError::Slack {
            error: json["error"].as_str().unwrap_or("unknown_error").to_owned(),
            after,
        }),
        _ => Err(CallError::Http(SendError::Retry {
            after,
            reason: format!(
                "HTTP {status} but not the Web API's answer (a JSON object with `ok`): {}",
                if detail.is_empty() {
                    "empty body"
                } else {
                    &detail
                }
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_retried_or_failed_with_its_name() {
        let slack = |error: &str| CallError::Slack {
            error: error.into(),
            after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            slack("channel_not_found").into_send_error("chat.postMessage"),
            SendError::Permanent(
                "chat.postMessage: channel_not_found (no channel has that ID, or the bot cannot \
                 see it)"
                    .into()
            )
        );
        assert_eq!(
            slack("ratelimited").into_send_error("chat.update"),
            SendError::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "chat.update: ratelimited".into()
            }
        );
        for permanent in [
            "not_in_channel",
            "is_archived",
            "invalid_auth",
            "not_authed",
        ] {
            assert!(matches!(
                slack(permanent).into_send_error("chat.postMessage"),
                SendError::Permanent(reason) if reason.starts_with(&format!("chat.postMessage: {permanent}"))
            ));
        }
        assert!(slack("message_not_found").message_gone());
        assert!(slack("cant_update_message").message_gone());
        assert!(slack("edit_window_closed").message_gone());
        assert!(!slack("msg_too_long").message_gone());
        assert!(slack("channel_not_found").refused());
        assert!(!CallError::Http(SendError::Retry {
            after: None,
            reason: "timed out".into()
        })
        .refused());
    }
}

/// A Slack user as `users.lookupByEmail` answers them: their id and time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackUser {
    /// The user id (`U0123...`).
    pub id: String,
    /// Their IANA time zone as Slack has it (`user.tz`, "America/Los_Angeles"), if given.
    pub tz: Option<String>,
}

/// Direct messages (issue 24): opening a person's DM channel and finding a person by e-mail.
impl<'a> Api<'a> {
    /// `conversations.open` with `users` = one user id: the id of the direct-message channel
    /// between the bot and that user, opened if it was not (api.slack.com/methods/
    /// conversations.open: "Opens or resumes a direct message or multi-person direct message";
    /// the answer's `channel.id`, a `D...` id; scopes `im:write`; errors such as `user_not_found`,
    /// `user_disabled`, `cannot_dm_bot`, `missing_scope`). JSON bodies are accepted.
    pub async fn open_direct(&self, user: &str) -> Result<String, CallError> {
        let answer = self
            .call("conversations.open", &json!({"users": user}))
            .await?;
        match answer["channel"]["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(CallError::Http(SendError::Retry {
                after: None,
                reason: "conversations.open: Slack said ok but named no channel".into(),
            })),
        }
    }

    /// `users.lookupByEmail` (api.slack.com/methods/users.lookupByEmail): the user with this
    /// e-mail address, `user.id` and `user.tz`; a GET with `email` in the query (the method
    /// takes form or query arguments, not JSON); scope `users:read.email`; `users_not_found`
    /// when nobody in the workspace has it. Tier 3 (50+ a minute): the service calls it once
    /// per person and keeps the answer (`store::direct::slack_users`); a 429 holds the method
    /// (`Limits`).
    pub async fn lookup_by_email(&self, email: &str) -> Result<SlackUser, CallError> {
        let request = self
            .client
            .get(format!("{}/users.lookupByEmail", self.base))
            .bearer_auth(self.token.expose_secret())
            .query(&[("email", email)]);
        let answer = self.limited("users.lookupByEmail", false, request).await?;
        match answer["user"]["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(SlackUser {
                id: id.to_owned(),
                tz: answer["user"]["tz"]
                    .as_str()
                    .filter(|tz| !tz.is_empty())
                    .map(str::to_owned),
            }),
            _ => Err(CallError::Http(SendError::Retry {
                after: None,
                reason: "users.lookupByEmail: Slack said ok but named no user".into(),
            })),
        }
    }
}

/// What to do about the errors of a direct message (conversations.open and users.lookupByEmail,
/// "Errors"), for `last_error`.
pub fn direct_hint(error: &str) -> Option<&'static str> {
    Some(match error {
        "users_not_found" => {
            "no Slack user has this e-mail address: set [[users]] slack = \"U...\""
        }
        "user_not_found" => "no Slack user has this id: check [[users]] slack",
        "user_disabled" => "the Slack user is deactivated",
        "cannot_dm_bot" => "the user is a bot",
        "missing_scope" => "the bot token lacks a scope: chat:write, im:write, users:read.email",
        _ => return None,
    })
}

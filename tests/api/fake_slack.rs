//! A fake Slack Web API (wiremock) on loopback for the living-message tests. It keeps the
//! messages it was given by `ts`, checks the bot token, and answers as Slack documents:
//!
//! - every method answers HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error": NAME}`
//!   (docs.slack.dev/apis/web-api, "Evaluating responses"); no or a wrong token:
//!   `not_authed` / `invalid_auth`;
//! - `chat.postMessage` (docs.slack.dev/reference/methods/chat.postMessage) takes `channel`,
//!   `text`, `attachments`, `thread_ts`, `metadata`; answers `channel`, `ts` and `message`;
//!   an unknown channel is `channel_not_found`;
//! - `chat.update` (docs.slack.dev/reference/methods/chat.update) takes `channel`, `ts` and the
//!   new `text`/`attachments`; a `ts` it does not hold is `message_not_found`;
//! - `conversations.history` (docs.slack.dev/reference/methods/conversations.history), a GET
//!   with `channel`, `oldest`, `limit`, `include_all_metadata`, `cursor`: the channel's top-level
//!   messages newest first, `metadata` only when asked for, at most `limit` of them (default
//!   100, at most 999: "The maximum number of items to return"), `has_more`, and
//!   `response_metadata.next_cursor` naming the next page while there is one (the page's
//!   "Pagination" with cursors: docs.slack.dev/apis/web-api/pagination: an empty
//!   `next_cursor` means the last page).
//!
//! A test can script what the next calls of a method answer (an error name, a 429 with
//! `Retry-After`, a reply that arrives too late) and delete a message as a person would.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fake_chat::PATIENCE;

/// The bot token the fake accepts.
pub const BOT_TOKEN: &str = "xoxb-0000000000-1111111111-TESTtokenTESTtoken";
/// The channel the fake knows.
pub const CHANNEL: &str = "C0LIVING01";

/// One call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    /// `chat.postMessage`, `chat.update`, `conversations.history`.
    pub method: String,
    pub http_method: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body, or the query as an object for a GET.
    pub body: Value,
}

/// A message the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub attachments: Value,
    pub thread_ts: Option<String>,
    pub metadata: Value,
    /// How many times `chat.update` changed it.
    pub edits: usize,
}

/// What the next call of a method gets instead of the documented success.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// `{"ok": false, "error": NAME}`.
    Error(&'static str),
    /// HTTP 429 with `Retry-After` seconds (and `{"ok": false, "error": "ratelimited"}`).
    RateLimited(u64),
    /// Does what was asked, but the answer comes after this long (past the app's timeout: the
    /// message exists, the app never learns its `ts`).
    Late(Duration),
    /// An HTTP error status with no Web API answer (a proxy's 502, say): nothing done.
    Status(u16),
    /// `{"ok": false, "error": NAME}`, after this long.
    LateError(&'static str, Duration),
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    messages: BTreeMap<String, Message>,
    next_ts: u64,
    script: HashMap<String, VecDeque<Scripted>>,
}

struct Web(Arc<Mutex<State>>);

fn ok(body: Value) -> ResponseTemplate {
    let mut body = body;
    body["ok"] = json!(true);
    ResponseTemplate::new(200).set_body_json(body)
}

fn error(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": name}))
}

impl Respond for Web {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        let method = request.url.path().trim_start_matches("/api/").to_owned();
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let body: Value = if request.method.as_str() == "GET" {
            Value::Object(
                request
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect(),
            )
        } else {
            serde_json::from_slice(&request.body).unwrap_or(Value::Null)
        };
        let authorization = header("authorization");
        state.calls.push(Call {
            at: Instant::now(),
            method: method.clone(),
            http_method: request.method.to_string(),
            authorization: authorization.clone(),
            content_type: header("content-type"),
            body: body.clone(),
        });
        match authorization.as_deref() {
            None => return error("not_authed"),
            Some(auth) if auth != format!("Bearer {BOT_TOKEN}") => return error("invalid_auth"),
            Some(_) => {}
        }
        let scripted = state.script.get_mut(&method).and_then(VecDeque::pop_front);
        let late = match scripted {
            Some(Scripted::Error(name)) => return error(name),
            Some(Scripted::LateError(name, delay)) => return error(name).set_delay(delay),
            Some(Scripted::RateLimited(seconds)) => {
                return ResponseTemplate::new(429)
                    .insert_header("retry-after", seconds.to_string().as_str())
                    .set_body_json(json!({"ok": false, "error": "ratelimited"}))
            }
            Some(Scripted::Late(delay)) => Some(delay),
            Some(Scripted::Status(status)) => {
                return ResponseTemplate::new(status).set_body_string("Bad Gateway")
            }
            None => None,
        };
        let answer = match method.as_str() {
            "chat.postMessage" => {
                let channel = body["channel"].as_str().unwrap_or_default().to_owned();
                if channel != CHANNEL {
                    return error("channel_not_found");
                }
                let text = body["text"].as_str().unwrap_or_default().to_owned();
                if text.is_empty() && body["attachments"].is_null() {
                    return error("no_text");
                }
                let thread_ts = body["thread_ts"].as_str().map(str::to_owned);
                if let Some(parent) = &thread_ts {
                    if !state.messages.contains_key(parent) {
                        return error("thread_not_found");
                    }
                }
                // Slack's `ts` is the time the message was posted, unique in its channel.
                state.next_ts += 1;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let ts = format!("{now}.{:06}", state.next_ts);
                let message = Message {
                    channel: channel.clone(),
                    ts: ts.clone(),
                    text: text.clone(),
                    attachments: body["attachments"].clone(),
                    thread_ts,
                    metadata: body["metadata"].clone(),
                    edits: 0,
                };
                state.messages.insert(ts.clone(), message);
                ok(json!({"channel": channel, "ts": ts, "message": {"text": text, "ts": ts}}))
            }
            "chat.update" => {
                let channel = body["channel"].as_str().unwrap_or_default();
                if channel != CHANNEL {
                    return error("channel_not_found");
                }
                let ts = body["ts"].as_str().unwrap_or_default().to_owned();
                let Some(message) = state.messages.get_mut(&ts) else {
                    return error("message_not_found");
                };
                message.text = body["text"].as_str().unwrap_or_default().to_owned();
                if !body["attachments"].is_null() {
                    message.attachments = body["attachments"].clone();
                }
                message.edits += 1;
                let text = message.text.clone();
                ok(json!({"channel": channel, "ts": ts, "text": text}))
            }
            "conversations.history" => {
                let channel = body["channel"].as_str().unwrap_or_default();
                if channel != CHANNEL {
                    return error("channel_not_found");
                }
                let oldest: f64 = body["oldest"]
                    .as_str()
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(0.0);
                let metadata = body["include_all_metadata"] == "true";
                let limit: usize = body["limit"]
                    .as_str()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(100)
                    .clamp(1, 999);
                // The cursor is opaque to the caller: here, how many messages came before.
                let skip: usize = match body["cursor"].as_str() {
                    None => 0,
                    Some(cursor) => {
                        match cursor.strip_prefix("dXNlcjpV").and_then(|n| n.parse().ok()) {
                            Some(n) => n,
                            None => return error("invalid_cursor"),
                        }
                    }
                };
                let all: Vec<Value> = state
                    .messages
                    .values()
                    .rev()
                    .filter(|m| m.thread_ts.is_none())
                    .filter(|m| m.ts.parse::<f64>().unwrap() >= oldest)
                    .map(|m| {
                        let mut shown = json!({"type": "message", "ts": m.ts, "text": m.text});
                        if metadata && !m.metadata.is_null() {
                            shown["metadata"] = m.metadata.clone();
                        }
                        shown
                    })
                    .collect();
                let messages: Vec<Value> = all.iter().skip(skip).take(limit).cloned().collect();
                let more = all.len() > skip + limit;
                let next = if more {
                    format!("dXNlcjpV{}", skip + limit)
                } else {
                    String::new()
                };
                ok(json!({
                    "messages": messages,
                    "has_more": more,
                    "response_metadata": {"next_cursor": next},
                }))
            }
            _ => return error("unknown_method"),
        };
        match late {
            Some(delay) => answer.set_delay(delay),
            None => answer,
        }
    }
}

/// The fake Web API: its base URL is `api_url()`.
pub struct FakeSlack {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(any())
            .respond_with(Web(state.clone()))
            .mount(&server)
            .await;
        FakeSlack { server, state }
    }

    /// What `[direct] slack_api_url` is set to.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.server.uri())
    }

    /// The next calls of `method` answer these, in order (then the documented success).
    pub fn script(&self, method: &str, answers: Vec<Scripted>) {
        self.state
            .lock()
            .unwrap()
            .script
            .entry(method.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Puts a top-level message in `CHANNEL` as if posted earlier (by anyone): its `ts` is
    /// `seconds.000000`, its `metadata` as given (`Value::Null`: none).
    pub fn insert(&self, seconds: u64, text: &str, metadata: Value) -> String {
        let ts = format!("{seconds}.000000");
        self.state.lock().unwrap().messages.insert(
            ts.clone(),
            Message {
                channel: CHANNEL.into(),
                ts: ts.clone(),
                text: text.into(),
                attachments: Value::Null,
                thread_ts: None,
                metadata,
                edits: 0,
            },
        );
        ts
    }

    /// Deletes a message, as a person in Slack would.
    pub fn delete(&self, ts: &str) {
        self.state.lock().unwrap().messages.remove(ts);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Every message held, in the order posted.
    pub fn messages(&self) -> Vec<Message> {
        self.state
            .lock()
            .unwrap()
            .messages
            .values()
            .cloned()
            .collect()
    }

    /// The top-level messages (not thread replies), in the order posted.
    pub fn top_level(&self) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.thread_ts.is_none())
            .collect()
    }

    /// The replies in the thread of `ts`, in order.
    pub fn replies(&self, ts: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(ts))
            .collect()
    }

    /// Waits (at most `PATIENCE`) until `count` calls arrived, then a little more to be sure
    /// no more do; answers them all.
    pub async fn exactly(&self, count: usize) -> Vec<Call> {
        let started = Instant::now();
        loop {
            let calls = self.calls();
            if calls.len() >= count {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let calls = self.calls();
                let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
                assert_eq!(calls.len(), count, "more calls than expected: {methods:?}");
                return calls;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "expected {count} call(s) to the Web API, got {}: {calls:#?}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

//! Loopback fakes (wiremock) of the chats' direct-message APIs, each following its vendor's
//! documented contract and recording every request (method, path, headers, body) for the
//! tests to check exactly:
//!
//! - Slack Web API (`FakeSlackDm`): `users.lookupByEmail` (api.slack.com/methods/
//!   users.lookupByEmail: GET with `email`; `{"ok": true, "user": {"id", "tz", ...}}`, else
//!   `users_not_found`), `conversations.open` (api.slack.com/methods/conversations.open: `users`
//!   a user id; `{"ok": true, "channel": {"id": "D..."}}`, else `user_not_found`) and
//!   `chat.postMessage` (api.slack.com/methods/chat.postMessage: `channel` must be one the bot
//!   can post to, else `channel_not_found`). Every method: HTTP 200 with `ok`; no or a wrong
//!   bearer token `not_authed` / `invalid_auth`; over the rate limit HTTP 429 with
//!   `Retry-After` (api.slack.com/apis/rate-limits).
//! - HipChat v2 "Private message user" (`POST /v2/user/{id_or_email}/message`, bearer token with
//!   `send_message`; `message`, `message_format`, `notify`; answers 204 No Content; 401 for a
//!   wrong token, 404 for an unknown user).
//! - Mattermost API v4 (api.mattermost.com): `GET /api/v4/users/me` (the bot's user),
//!   `POST /api/v4/channels/direct` ("Create a direct message channel": a JSON array of the two
//!   user ids; 201 with the channel), `POST /api/v4/posts` ("Create a post": `channel_id`,
//!   `message`; 201). Bearer token; 401 otherwise.
//! - A Teams Workflow trigger ("When a Teams webhook request is received" then "Post card in a
//!   chat or channel"): any POST to its URL with the right `sig` answers 202 Accepted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fake_chat::PATIENCE;
use crate::fake_slack::BOT_TOKEN;

/// One request as a fake saw it.
#[derive(Debug, Clone)]
pub struct DirectCall {
    pub http_method: String,
    /// The path (Slack: the method name, `chat.postMessage`).
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl DirectCall {
    fn of(request: &Request, path: String) -> DirectCall {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        DirectCall {
            http_method: request.method.to_string(),
            path,
            query: request
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        }
    }
}

#[derive(Default)]
struct State {
    calls: Vec<DirectCall>,
    /// Scripted answers per path (Slack: per method): HTTP 429 with `Retry-After` seconds.
    rate_limited: HashMap<String, VecDeque<u64>>,
}

/// Which API a fake plays.
#[derive(Clone)]
enum Api {
    /// Slack: users by e-mail (email → (id, tz)).
    Slack(HashMap<String, (String, String)>),
    HipChat {
        token: String,
        users: Vec<String>,
    },
    Mattermost {
        token: String,
        bot: String,
    },
    Teams {
        sig: String,
    },
}

struct Fake(Arc<Mutex<State>>, Api);

fn slack_error(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": name}))
}

impl Respond for Fake {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        let path = match &self.1 {
            Api::Slack(_) => request.url.path().trim_start_matches("/api/").to_owned(),
            _ => request.url.path().to_owned(),
        };
        let call = DirectCall::of(request, path.clone());
        state.calls.push(call.clone());
        if let Some(seconds) = state
            .rate_limited
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
        {
            return ResponseTemplate::new(429)
                .insert_header("retry-after", seconds.to_string().as_str())
                .set_body_json(json!({"ok": false, "error": "ratelimited"}));
        }
        let bearer =
            |token: &str| call.authorization.as_deref() == Some(&format!("Bearer {token}"));
        match &self.1 {
            Api::Slack(users) => {
                match call.authorization.as_deref() {
                    None => return slack_error("not_authed"),
                    Some(_) if !bearer(BOT_TOKEN) => return slack_error("invalid_auth"),
                    Some(_) => {}
                }
                let ok = |body: Value| {
                    let mut body = body;
                    body["ok"] = json!(true);
                    ResponseTemplate::new(200).set_body_json(body)
                };
                match path.as_str() {
                    "users.lookupByEmail" => {
                        let email = call.query.get("email").cloned().unwrap_or_default();
                        match users.get(&email) {
                            Some((id, tz)) => ok(json!({"user": {"id": id, "tz": tz,
                                "profile": {"email": email}}})),
                            None => slack_error("users_not_found"),
                        }
                    }
                    "conversations.open" => {
                        let user = call.body["users"].as_str().unwrap_or_default();
                        if users.values().any(|(id, _)| id == user) {
                            ok(json!({"channel": {"id": format!("D{}", &user[1..])}}))
                        } else {
                            slack_error("user_not_found")
                        }
                    }
                    "chat.postMessage" => {
                        let channel = call.body["channel"].as_str().unwrap_or_default();
                        let opened = users
                            .values()
                            .any(|(id, _)| channel == format!("D{}", &id[1..]));
                        if !opened {
                            return slack_error("channel_not_found");
                        }
                        ok(json!({"channel": channel, "ts": "1700000000.000100"}))
                    }
                    _ => slack_error("unknown_method"),
                }
            }
            Api::HipChat { token, users } => {
                if !bearer(token) {
                    return ResponseTemplate::new(401).set_body_json(
                        json!({"error": {"code": 401, "message": "Invalid OAuth session"}}),
                    );
                }
                let user = path
                    .strip_prefix("/v2/user/")
                    .and_then(|rest| rest.strip_suffix("/message"))
                    .map(|id| {
                        percent_encoding::percent_decode_str(id)
                            .decode_utf8_lossy()
                            .into_owned()
                    });
                match user {
                    Some(user) if users.contains(&user) && request.method.as_str() == "POST" => {
                        ResponseTemplate::new(204)
                    }
                    _ => ResponseTemplate::new(404).set_body_json(
                        json!({"error": {"code": 404, "message": "User not found"}}),
                    ),
                }
            }
            Api::Mattermost { token, bot } => {
                if !bearer(token) {
                    return ResponseTemplate::new(401)
                        .set_body_json(json!({"id": "api.context.session_expired.app_error"}));
                }
                match (request.method.as_str(), path.as_str()) {
                    ("GET", "/api/v4/users/me") => ResponseTemplate::new(200)
                        .set_body_json(json!({"id": bot, "username": "pr-reminder"})),
                    ("POST", "/api/v4/channels/direct") => {
                        let ids: Vec<String> =
                            serde_json::from_value(call.body.clone()).unwrap_or_default();
                        if ids.len() != 2 || !ids.contains(bot) {
                            return ResponseTemplate::new(400).set_body_json(
                                json!({"id": "api.context.invalid_body_param.app_error"}),
                            );
                        }
                        ResponseTemplate::new(201)
                            .set_body_json(json!({"id": "dmchannel0000000000000000a", "type": "D"}))
                    }
                    ("POST", "/api/v4/posts") => {
                        if call.body["channel_id"] != "dmchannel0000000000000000a" {
                            return ResponseTemplate::new(403)
                                .set_body_json(json!({"id": "api.context.permissions.app_error"}));
                        }
                        ResponseTemplate::new(201).set_body_json(
                            json!({"id": "post0", "channel_id": call.body["channel_id"]}),
                        )
                    }
                    _ => ResponseTemplate::new(404),
                }
            }
            Api::Teams { sig } => {
                if call.query.get("sig") != Some(sig) {
                    return ResponseTemplate::new(401);
                }
                ResponseTemplate::new(202)
            }
        }
    }
}

/// A running fake.
pub struct FakeDirect {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl FakeDirect {
    async fn start(api: Api) -> FakeDirect {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(any())
            .respond_with(Fake(state.clone(), api))
            .mount(&server)
            .await;
        FakeDirect { server, state }
    }

    /// Slack's Web API, knowing `users` (e-mail, user id, time zone); its base is
    /// `format!("{}/api", server.uri())`.
    pub async fn slack(users: &[(&str, &str, &str)]) -> FakeDirect {
        FakeDirect::start(Api::Slack(
            users
                .iter()
                .map(|(email, id, tz)| ((*email).into(), ((*id).into(), (*tz).into())))
                .collect(),
        ))
        .await
    }

    /// HipChat, taking `token` and knowing these user ids (`@mention` or e-mail).
    pub async fn hipchat(token: &str, users: &[&str]) -> FakeDirect {
        FakeDirect::start(Api::HipChat {
            token: token.into(),
            users: users.iter().map(|u| (*u).into()).collect(),
        })
        .await
    }

    /// Mattermost, taking `token`, its bot's user id `bot`.
    pub async fn mattermost(token: &str, bot: &str) -> FakeDirect {
        FakeDirect::start(Api::Mattermost {
            token: token.into(),
            bot: bot.into(),
        })
        .await
    }

    /// A Teams workflow whose URL carries `sig`.
    pub async fn teams(sig: &str) -> FakeDirect {
        FakeDirect::start(Api::Teams { sig: sig.into() }).await
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The next calls to `path` (Slack: a method) answer HTTP 429 with `Retry-After` seconds.
    pub fn rate_limit(&self, path: &str, seconds: &[u64]) {
        self.state
            .lock()
            .unwrap()
            .rate_limited
            .entry(path.into())
            .or_default()
            .extend(seconds);
    }

    pub fn calls(&self) -> Vec<DirectCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The calls to `path`.
    pub fn calls_to(&self, path: &str) -> Vec<DirectCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }

    /// Waits (at most `PATIENCE`) until `count` calls to `path` arrived; answers them.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<DirectCall> {
        let started = Instant::now();
        loop {
            let calls = self.calls_to(path);
            if calls.len() >= count {
                return calls;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "expected {count} call(s) to {path}, got {}: {:#?}",
                calls.len(),
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

//! Direct messages (issue 24): the durable `direct_outbox` sent to one person each, through the
//! chat their `[[users]]` entry (or their own `/reviews dm`) names. One task per configured
//! chat; a message is claimed, formatted for that chat from its stored document, sent, and
//! recorded as the room outbox records its rows (sent, retried with backoff after what the
//! server asked, or failed), so nothing is lost across restarts or chat outages.
//!
//! - Slack (api.slack.com/methods/conversations.open, chat.postMessage, users.lookupByEmail):
//!   the user id from `[[users]] slack`, else found once by `email` and kept; the DM channel
//!   opened with `conversations.open`, the message posted there with `chat.postMessage`.
//! - HipChat v2 "Private message user" (`POST /v2/user/{id_or_email}/message`, a token with
//!   `send_message`, answers `204 No Content`).
//! - Mattermost API v4: the bot's own id (`GET /api/v4/users/me`), then "Create a direct
//!   message channel" (`POST /api/v4/channels/direct` with both user ids, `201` and the
//!   channel) and "Create a post" (`POST /api/v4/posts` with `channel_id` and `message`, `201`).
//! - Teams: a Workflow "Post card in a chat or channel" (Post as Flow bot, Post in Chat with
//!   Flow bot, Recipient from the request) triggered by "When a Teams webhook request is
//!   received", which answers `202 Accepted`; the request is the card message with `recipient`,
//!   the person's e-mail address, for the flow to use.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify, OnceCell};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::doc::Doc;
use super::format::{hipchat, teams, Format};
use super::sink::{self, wait_requested, SendError};
use super::slack_api::{self, Api, CallError};
use crate::clock::Clock;
use crate::config::{DirectChat, DirectSettings, NotifySettings, UserMapping};
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::store::direct::{self, DirectRow};
use crate::store::outbox::Attempt;
use crate::store::Db;

/// Longest real time between two looks at a chat's queue (another process may have queued).
const POLL: Duration = Duration::from_secs(1);

/// The formatter for a direct chat: Slack's mrkdwn, HipChat's HTML, Markdown for Mattermost
/// and Teams (Mattermost's posts are Markdown, which the Teams formatter writes).
pub fn format(chat: DirectChat) -> Format {
    match chat {
        DirectChat::Slack => Format::Slack,
        DirectChat::HipChat => Format::HipChat,
        DirectChat::Mattermost | DirectChat::Teams => Format::Teams,
    }
}

/// Sends one document to one person through one chat.
pub struct Sender {
    client: reqwest::Client,
    settings: DirectSettings,
    db: Db,
    /// The Mattermost bot's own user id, asked once (`GET /api/v4/users/me`).
    mattermost_me: OnceCell<String>,
    /// The process's Slack Web API limits (per channel, and a 429's `Retry-After`), shared with
    /// the rooms.
    slack_limits: slack_api::Limits,
}

impl Sender {
    /// A sender with `settings`' tokens, requests timing out after `timeout`, Slack's calls
    /// within `slack_limits`.
    pub fn new(
        settings: DirectSettings,
        db: Db,
        timeout: Duration,
        slack_limits: slack_api::Limits,
    ) -> anyhow::Result<Sender> {
        Ok(Sender {
            client: sink::client(timeout)?,
            settings,
            db,
            mattermost_me: OnceCell::new(),
            slack_limits,
        })
    }

    /// Sends `doc` to `person` through `chat`, as that chat's formatter writes it.
    pub async fn send(
        &self,
        chat: DirectChat,
        person: &UserMapping,
        doc: &Doc,
        now: &Timestamp,
    ) -> Result<(), SendError> {
        match chat {
            DirectChat::Slack => self.slack(person, doc, now).await,
            DirectChat::HipChat => self.hipchat(person, doc).await,
            DirectChat::Mattermost => self.mattermost(person, doc).await,
            DirectChat::Teams => self.teams(person, doc).await,
        }
    }

    fn not_configured(chat: DirectChat) -> SendError {
        SendError::Permanent(format!(
            "[direct] does not configure {} direct messages",
            chat.as_str()
        ))
    }

    async fn slack(
        &self,
        person: &UserMapping,
        doc: &Doc,
        now: &Timestamp,
    ) -> Result<(), SendError> {
        let Some(token) = &self.settings.slack_bot_token else {
            return Err(Self::not_configured(DirectChat::Slack));
        };
        let api = Api::new(
            &self.client,
            &self.settings.slack_api_url,
            &token.0,
            &self.slack_limits,
        );
        let user = self.slack_user(&api, person, now).await?;
        let channel = api
            .open_direct(&user)
            .await
            .map_err(|e| slack_error(e, "conversations.open"))?;
        api.post_message(&slack_api::message(&channel, doc))
            .await
            .map(|_| ())
            .map_err(|e| slack_error(e, "chat.postMessage"))
    }

    /// The person's Slack user id: `[[users]] slack` when it is one, else the one Slack gave for
    /// their e-mail address (asked once, then kept with their time zone).
    async fn slack_user(
        &self,
        api: &Api<'_>,
        person: &UserMapping,
        now: &Timestamp,
    ) -> Result<String, SendError> {
        if let Some(id) = person
            .slack
            .as_deref()
            .filter(|id| crate::config::is_slack_user_id(id))
        {
            return Ok(id.trim().to_owned());
        }
        let Some(email) = person.email.as_deref() else {
            return Err(SendError::Permanent(
                "no Slack user id ([[users]] slack = \"U...\") and no email to find one by".into(),
            ));
        };
        let database = |e: anyhow::Error| SendError::Retry {
            after: None,
            reason: format!("{e:#}"),
        };
        if let Some((id, _)) = direct::slack_user(&self.db, email)
            .await
            .map_err(database)?
        {
            return Ok(id);
        }
        let user = api
            .lookup_by_email(email)
            .await
            .map_err(|e| slack_error(e, "users.lookupByEmail"))?;
        direct::remember_slack_user(&self.db, email, &user.id, user.tz.as_deref(), now)
            .await
            .map_err(database)?;
        Ok(user.id)
    }

    async fn hipchat(&self, person: &UserMapping, doc: &Doc) -> Result<(), SendError> {
        let (Some(base), Some(token)) = (&self.settings.hipchat_url, &self.settings.hipchat_token)
        else {
            return Err(Self::not_configured(DirectChat::HipChat));
        };
        // The user "id, email address, or @mention name" (HipChat's "Private message user").
        let id = match (person.hipchat.as_deref(), person.email.as_deref()) {
            (Some(mention), _) => format!("@{}", mention.trim().trim_start_matches('@')),
            (None, Some(email)) => email.trim().to_owned(),
            (None, None) => {
                return Err(SendError::Permanent(
                    "no HipChat mention name or email".into(),
                ))
            }
        };
        let id: String = percent_encoding::utf8_percent_encode(&id, SEGMENT).collect();
        let mut body = hipchat::notification(doc);
        // A private message takes `message`, `message_format` and `notify` (no colour, no
        // sender name).
        if let Some(fields) = body.as_object_mut() {
            fields.remove("color");
            fields.remove("from");
        }
        let request = self
            .client
            .post(format!("{base}/v2/user/{id}/message"))
            .bearer_auth(token.0.expose_secret())
            .json(&body);
        send(request).await
    }

    async fn mattermost(&self, person: &UserMapping, doc: &Doc) -> Result<(), SendError> {
        let (Some(base), Some(token)) = (
            &self.settings.mattermost_url,
            &self.settings.mattermost_token,
        ) else {
            return Err(Self::not_configured(DirectChat::Mattermost));
        };
        let Some(user) = person.mattermost.as_deref().map(str::trim) else {
            return Err(SendError::Permanent("no Mattermost user id".into()));
        };
        let token = &token.0;
        let me = self
            .mattermost_me
            .get_or_try_init(|| async {
                let answer = read(
                    self.client
                        .get(format!("{base}/api/v4/users/me"))
                        .bearer_auth(token.expose_secret()),
                )
                .await?;
                answer["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SendError::Retry {
                        after: None,
                        reason: "GET /api/v4/users/me answered no id".into(),
                    })
            })
            .await?
            .clone();
        let channel = read(
            self.client
                .post(format!("{base}/api/v4/channels/direct"))
                .bearer_auth(token.expose_secret())
                .json(&json!([me, user])),
        )
        .await?;
        let Some(channel) = channel["id"].as_str() else {
            return Err(SendError::Retry {
                after: None,
                reason: "POST /api/v4/channels/direct answered no channel id".into(),
            });
        };
        let post = json!({"channel_id": channel, "message": mattermost_markdown(doc)});
        read(
            self.client
                .post(format!("{base}/api/v4/posts"))
                .bearer_auth(token.expose_secret())
                .json(&post),
        )
        .await
        .map(|_| ())
    }

    async fn teams(&self, person: &UserMapping, doc: &Doc) -> Result<(), SendError> {
        let Some(url) = &self.settings.teams_workflow_url else {
            return Err(Self::not_configured(DirectChat::Teams));
        };
        let Some(email) = person.email.as_deref().map(str::trim) else {
            return Err(SendError::Permanent(
                "no email for the Teams recipient".into(),
            ));
        };
        send(
            self.client
                .post(url.expose_secret())
                .json(&teams_body(email, doc)),
        )
        .await
    }
}

/// A Mattermost post's `message`: the Markdown the Teams formatter writes (links
/// `[label](url)`, its escaping), with its first paragraph, the heading, in bold. Teams'
/// mentions (`<at>…</at>`) mean nothing in Mattermost: people are named.
pub fn mattermost_markdown(doc: &Doc) -> String {
    let doc = doc.clone().with_people(|p| p.teams = None);
    let markdown = teams::markdown(&doc);
    match markdown.split_once("\n\n") {
        Some((heading, rest)) if !heading.trim().is_empty() => {
            format!("**{}**\n\n{rest}", heading.trim())
        }
        None if !markdown.trim().is_empty() => format!("**{}**", markdown.trim()),
        _ => markdown,
    }
}

/// The Teams workflow's request: the card message (`teams::body`) and `recipient`, the
/// person's e-mail address, which the flow's "Post card in a chat or channel" action reads as
/// its Recipient.
pub fn teams_body(email: &str, doc: &Doc) -> Value {
    let mut body = teams::body(doc);
    body["recipient"] = json!(email);
    body
}

/// Characters escaped in a URL path segment (a HipChat user id: `@name`, an e-mail address).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'@');

/// A Slack error as the outbox records it, with a hint for the direct-message errors.
fn slack_error(err: CallError, method: &str) -> SendError {
    match (&err, err.error().and_then(slack_api::direct_hint)) {
        (CallError::Slack { .. }, Some(hint)) => {
            SendError::Permanent(format!("{method}: {} ({hint})", err.error().unwrap_or("")))
        }
        _ => err.into_send_error(method),
    }
}

/// Sends a request whose success is any 2xx (HipChat's 204, Teams' 202).
async fn send(request: reqwest::RequestBuilder) -> Result<(), SendError> {
    read(request).await.map(|_| ())
}

/// Sends a request and reads its JSON answer (`null` when there is none): a 2xx is success;
/// 429, 408 and 5xx are retried after what the server asked (`Retry-After`); any other status
/// will not get better by itself. The error names the status and the answer's start, never the
/// URL (it may hold a token).
async fn read(request: reqwest::RequestBuilder) -> Result<Value, SendError> {
    let response = request.send().await.map_err(|e| SendError::Retry {
        after: None,
        reason: sink::transport_error(e),
    })?;
    let status = response.status();
    let after = wait_requested(response.headers());
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    let detail: String = text.trim().chars().take(200).collect();
    let reason = match detail.as_str() {
        "" => format!("HTTP {status}"),
        detail => format!("HTTP {status}: {detail}"),
    };
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Retry { after, reason })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// Sends the direct-message outbox: one task per configured chat.
pub struct DirectDispatcher {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

struct Worker {
    chat: DirectChat,
    db: Db,
    sender: Arc<Sender>,
    users: Arc<[UserMapping]>,
    settings: NotifySettings,
    clock: Clock,
    metrics: Metrics,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

impl DirectDispatcher {
    /// Starts one task per chat `direct` configures (none: nothing runs), each sending its
    /// queue oldest due first, with `notify`'s attempts and backoff, on `clock`; `wake`
    /// prompts them after new rows are committed; Slack's calls count against `slack_limits`,
    /// the process's one.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        db: Db,
        direct: &DirectSettings,
        notify: &NotifySettings,
        users: &[UserMapping],
        wake: Arc<Notify>,
        clock: Clock,
        metrics: Metrics,
        slack_limits: &slack_api::Limits,
    ) -> anyhow::Result<DirectDispatcher> {
        let sender = Arc::new(Sender::new(
            direct.clone(),
            db.clone(),
            notify.timeout,
            slack_limits.clone(),
        )?);
        let users: Arc<[UserMapping]> = users.into();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for chat in DirectChat::ALL {
            if !direct.configured(chat) {
                continue;
            }
            let worker = Worker {
                chat,
                db: db.clone(),
                sender: sender.clone(),
                users: users.clone(),
                settings: notify.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
                wake: wake.clone(),
                stopped: stopped.clone(),
            };
            let span = tracing::info_span!("direct", chat = chat.as_str());
            tasks.spawn(worker.run().instrument(span));
        }
        Ok(DirectDispatcher { tasks, stop })
    }

    /// Lets each chat finish the message in hand, then stops.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Worker {
    async fn run(mut self) {
        loop {
            if *self.stopped.borrow() {
                break;
            }
            let wake = self.wake.clone();
            let woken = wake.notified();
            let now = self.clock.timestamp();
            match direct::next_due(&self.db, self.chat.as_str(), &now).await {
                Ok(Some(row)) => {
                    let id = row.id;
                    if let Err(err) = self.deliver(row).await {
                        tracing::error!(error = %format!("{err:#}"), id, "direct message not recorded; will try again");
                        self.pause(Duration::from_secs(1)).await;
                    }
                }
                Ok(None) => {
                    let next = direct::next_not_before(&self.db, self.chat.as_str())
                        .await
                        .ok()
                        .flatten();
                    let clock = self.clock.clone();
                    let due = async move {
                        match next {
                            Some(at) => clock.sleep_until(at.to_datetime()).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = woken => {}
                        _ = due => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = self.stopped.changed() => {}
                    }
                }
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "direct messages unreadable; retrying in 1 s");
                    self.pause(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.stopped.changed() => {}
        }
    }

    async fn deliver(&self, row: DirectRow) -> anyhow::Result<()> {
        if !direct::claim(&self.db, row.id).await? {
            return Ok(());
        }
        let now = self.clock.timestamp();
        let person = self.users.iter().find(|u| u.bitbucket == row.person);
        let doc: Result<Doc, _> = serde_json::from_str(&row.payload);
        let (person, doc) = match (person, doc) {
            (Some(person), Ok(doc)) => (person, doc),
            (None, _) => {
                let failed = Attempt::Failed {
                    error: "no [[users]] entry for this person any more",
                    message: None,
                };
                return direct::finish(&self.db, row.id, failed, &now).await;
            }
            (_, Err(err)) => {
                let error = format!("unreadable message: {err}");
                let failed = Attempt::Failed {
                    error: &error,
                    message: None,
                };
                return direct::finish(&self.db, row.id, failed, &now).await;
            }
        };
        let text = format(self.chat).plain(&doc);
        let sent = self.sender.send(self.chat, person, &doc, &now).await;
        self.metrics.direct_message(self.chat, sent.is_ok());
        let now = self.clock.now();
        let stamp = Timestamp::from_datetime(now);
        let attempt = row.attempts + 1;
        match sent {
            Ok(()) => {
                tracing::info!(id = row.id, person = %row.person, kind = %row.kind, attempt, "direct message delivered");
                direct::finish(&self.db, row.id, Attempt::Sent { message: &text }, &stamp).await
            }
            Err(SendError::Retry { after, reason }) if !self.gives_up(&row, attempt, now) => {
                let delay = super::dispatcher::backoff(&self.settings, attempt)
                    .max(after.unwrap_or_default());
                let next = Timestamp::from_datetime(
                    now + chrono::Duration::from_std(delay).unwrap_or_default(),
                );
                tracing::warn!(id = row.id, %reason, attempt, retry_in_ms = delay.as_millis() as u64, "direct message not delivered; will retry");
                let retry = Attempt::Retry {
                    next,
                    error: &reason,
                };
                direct::finish(&self.db, row.id, retry, &stamp).await
            }
            Err(err) => {
                let reason = err.reason().to_owned();
                tracing::error!(id = row.id, %reason, attempt, "direct message not delivered; marked failed");
                let failed = Attempt::Failed {
                    error: &reason,
                    message: Some(&text),
                };
                direct::finish(&self.db, row.id, failed, &stamp).await
            }
        }
    }

    /// Whether a row whose `attempt`-th try just failed has had all its chances (as a room's).
    fn gives_up(&self, row: &DirectRow, attempt: i64, now: chrono::DateTime<chrono::Utc>) -> bool {
        if attempt < i64::from(self.settings.max_attempts) {
            return false;
        }
        let first_failed = row
            .first_failed_at
            .as_deref()
            .and_then(|t| Timestamp::parse(t).ok())
            .map_or(now, |t| t.to_datetime());
        (now - first_failed).to_std().unwrap_or_default()
            >= super::dispatcher::schedule(&self.settings)
    }
}

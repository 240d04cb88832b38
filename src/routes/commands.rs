//! `/reviews` endpoints: HipChat's `room_message` webhook (the secret is a path segment) and
//! Slack / Mattermost slash commands (signed, or a token). Every understood request gets an
//! answer; nothing a chat user types can produce a 5xx.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{header, read_body, BodyError};

/// The largest chat command body read (actix's own default for a body extractor: 256 KiB).
const COMMAND_BODY_LIMIT: usize = 256 * 1024;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::routing::Routing;
use crate::notify::doc::{Color, Doc};
use crate::notify::format::{hipchat, slack as slack_format};
use crate::reviews::{self, Asker};
use crate::signature::{same_secret, verify_slack, SlackSignatureError};
use crate::store::Db;

/// What the `/commands/*` routes reach.
pub struct CommandsState {
    /// The settings (tokens, `[[users]]`, rooms).
    pub settings: Arc<Settings>,
    /// The database, read for lists and written for snoozes.
    pub db: Db,
    /// Which repositories belong to which room.
    pub routing: Arc<Routing>,
    /// What `now` is (snooze ends, Slack's timestamp check).
    pub clock: Clock,
}

/// Why a `/commands/*` request was refused; answered as `{"status": "rejected", "reason"}`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// 404: the HipChat path token is wrong, or that chat's commands are not configured.
    #[error("not found")]
    NotFound,
    /// 401: neither a Slack signature nor a right Mattermost `Authorization: Token`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401: Slack's `X-Slack-Signature` is missing, stale or wrong.
    #[error(transparent)]
    SlackSignature(#[from] SlackSignatureError),
    /// 400: a body that is not the chat's request format.
    #[error("{0}")]
    BadRequest(String),
    /// 413, 408 or 400: the body was too large, too slow or unreadable.
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl ResponseError for CommandError {
    fn status_code(&self) -> StatusCode {
        match self {
            CommandError::NotFound => StatusCode::NOT_FOUND,
            CommandError::Unauthorized(_) | CommandError::SlackSignature(_) => {
                StatusCode::UNAUTHORIZED
            }
            CommandError::BadRequest(_) | CommandError::Body(BodyError::Unreadable) => {
                StatusCode::BAD_REQUEST
            }
            CommandError::Body(BodyError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            CommandError::Body(BodyError::TooSlow(_)) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({"status": "rejected", "reason": self.to_string()}))
    }
}

/// HipChat's webhook envelope, read first: only a `room_message` event is a command.
#[derive(Deserialize)]
struct HipChatEvent {
    event: Option<Value>,
}

#[derive(Deserialize)]
struct HipChatHook {
    item: HipChatItem,
}

#[derive(Deserialize)]
struct HipChatItem {
    message: HipChatMessage,
    room: Option<HipChatRoom>,
}

#[derive(Deserialize)]
struct HipChatMessage {
    message: String,
    from: HipChatUser,
}

#[derive(Deserialize)]
struct HipChatUser {
    name: Option<String>,
    mention_name: Option<String>,
}

#[derive(Deserialize)]
struct HipChatRoom {
    id: Option<Value>,
    name: Option<String>,
}

/// The answer to `/reviews ...`, not alerting anyone (it is an answer to who asked).
async fn answer(state: &CommandsState, text: &str, asker: &Asker, room_ids: &[&str]) -> Doc {
    let command = reviews::parse(text, state.settings.commands.default_snooze);
    match reviews::execute(
        &state.db,
        &state.settings,
        &state.routing,
        &command,
        asker,
        room_ids,
        state.clock.now(),
    )
    .await
    {
        Ok(mut message) => {
            message.notify = false;
            message
        }
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "/reviews failed");
            Doc::lines(
                Color::Gray,
                ["Sorry, something went wrong on my side; please try again in a moment."],
            )
        }
    }
}

/// A JSON body as `T`; a refusal names the JSON path, e.g. ``item: missing field `message` ``.
fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CommandError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| CommandError::BadRequest(format!("{}: {}", e.path(), e.inner())))
}

/// `POST /commands/hipchat/{token}`: answers with a HipChat room notification.
pub async fn hipchat(
    req: HttpRequest,
    token: web::Path<String>,
    payload: web::Payload,
    state: web::Data<CommandsState>,
) -> Result<HttpResponse, CommandError> {
    let Some(expected) = &state.settings.commands.hipchat_token else {
        return Err(CommandError::NotFound);
    };
    if !same_secret(&token, expected.0.expose_secret()) {
        return Err(CommandError::NotFound);
    }
    let body = read_body(
        &req,
        payload,
        COMMAND_BODY_LIMIT,
        state.settings.body_timeout,
    )
    .await?;
    let envelope: HipChatEvent = from_json(&body)?;
    match envelope.event {
        Some(Value::String(event)) if event == "room_message" => {}
        Some(other) => {
            return Err(CommandError::BadRequest(format!(
                "event: expected room_message, got {other}"
            )))
        }
        None => {
            return Err(CommandError::BadRequest(
                "event: missing field, expected room_message".into(),
            ))
        }
    }
    let hook: HipChatHook = from_json(&body)?;
    let item = hook.item;
    let asker = Asker::HipChat {
        mention_name: item.message.from.mention_name.clone().unwrap_or_default(),
        name: item.message.from.name.clone().unwrap_or_default(),
    };
    let room_id = item
        .room
        .as_ref()
        .and_then(|r| r.id.as_ref())
        .map(|id| match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let room_name = item.room.as_ref().and_then(|r| r.name.clone());
    let ids: Vec<&str> = [room_name.as_deref(), room_id.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let message = answer(&state, &item.message.message, &asker, &ids).await;
    Ok(HttpResponse::Ok().json(hipchat::notification(&message)))
}

#[derive(Deserialize)]
struct SlashCommand {
    text: Option<String>,
    user_id: String,
    user_name: Option<String>,
    channel_id: Option<String>,
    channel_name: Option<String>,
}

/// `POST /commands/slack`: Slack (signed) or Mattermost (token); answers ephemerally.
pub async fn slack(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<CommandsState>,
) -> Result<HttpResponse, CommandError> {
    let settings = &state.settings.commands;
    if settings.slack_signing_secret.is_none() && settings.mattermost_token.is_none() {
        return Err(CommandError::NotFound);
    }
    let body = read_body(
        &req,
        payload,
        COMMAND_BODY_LIMIT,
        state.settings.body_timeout,
    )
    .await?;
    match (
        header(&req, "X-Slack-Signature"),
        &settings.slack_signing_secret,
    ) {
        (Some(signature), Some(secret)) => {
            let now = state.clock.now().timestamp();
            let timestamp = header(&req, "X-Slack-Request-Timestamp");
            verify_slack(signature, timestamp, &body, &secret.0, now)?;
        }
        _ => {
            let token = header(&req, "Authorization").and_then(|v| v.strip_prefix("Token "));
            match (token, &settings.mattermost_token) {
                (Some(token), Some(expected))
                    if same_secret(token.trim(), expected.0.expose_secret()) => {}
                _ => {
                    return Err(CommandError::Unauthorized(
                        "missing or wrong signature or token",
                    ))
                }
            }
        }
    }
    let form: SlashCommand = serde_urlencoded::from_bytes(&body)
        .map_err(|e| CommandError::BadRequest(format!("not a slash command form: {e}")))?;
    let asker = Asker::Slack {
        user_id: form.user_id.clone(),
        user_name: form.user_name.clone().unwrap_or_default(),
    };
    let ids: Vec<&str> = [form.channel_name.as_deref(), form.channel_id.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let message = answer(
        &state,
        form.text.as_deref().unwrap_or_default(),
        &asker,
        &ids,
    )
    .await;
    Ok(HttpResponse::Ok().json(slack_format::answer(&message)))
}

//! `POST /webhooks/bitbucket`: size limit, signature, headers, payload, then the writer.
//! Every refusal is a 4xx with a reason and is recorded in `deliveries`; only our own trouble
//! (writer overloaded or down) is a 5xx, which Bitbucket retries.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde_json::json;
use tracing::Instrument;

use crate::bitbucket::{self, signature, Parsed};
use crate::config::SignaturePolicy;
use crate::domain::{Delivery, Outcome, Timestamp};
use crate::startup::AppState;
use crate::store::writer::WriteError;
use crate::store::WriteOutcome;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    #[error("could not read the request body")]
    BodyRead,
    #[error("{0}")]
    BadPayload(String),
    #[error("busy, retry shortly")]
    Overloaded,
    #[error("temporarily unable to store deliveries")]
    Unavailable,
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Signature(_) => StatusCode::UNAUTHORIZED,
            WebhookError::MissingHeader(_)
            | WebhookError::BodyRead
            | WebhookError::BadPayload(_) => StatusCode::BAD_REQUEST,
            WebhookError::Overloaded | WebhookError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, WebhookError::Overloaded | WebhookError::Unavailable) {
            response.insert_header(("Retry-After", "1"));
        }
        // Every message here is written for the sender; none carries internal detail.
        response.json(json!({"status": "rejected", "reason": self.to_string()}))
    }
}

impl From<WriteError> for WebhookError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Overloaded => WebhookError::Overloaded,
            WriteError::Stopped | WriteError::Failed => WebhookError::Unavailable,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub async fn bitbucket(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let headers = req.headers();
    let request_id = header(headers, "X-Request-UUID")
        .or_else(|| header(headers, "X-Request-Id"))
        .map(|s| s.chars().take(128).collect::<String>());
    let event_key = header(headers, "X-Event-Key").map(|s| s.chars().take(128).collect::<String>());
    let attempt = header(headers, "X-Attempt-Number").and_then(|v| v.parse::<i64>().ok());
    let span = tracing::info_span!(
        "delivery",
        request_id = request_id.as_deref().unwrap_or("-"),
        event_key = event_key.as_deref().unwrap_or("-"),
        repository = tracing::field::Empty,
        pr = tracing::field::Empty,
    );
    let mut delivery = Delivery {
        request_id,
        event_key,
        attempt,
        received_at: Timestamp::now(),
        outcome: Outcome::Ignored {
            reason: String::new(),
        },
    };
    async move {
        match handle(&req, payload, &state, &mut delivery).await {
            Ok(response) => Ok(response),
            Err(err) => {
                if !matches!(err, WebhookError::Overloaded | WebhookError::Unavailable) {
                    tracing::warn!(status = err.status_code().as_u16(), reason = %err, "delivery rejected");
                    delivery.outcome = Outcome::Rejected {
                        reason: err.to_string(),
                    };
                    state.writer.record(delivery);
                } else {
                    tracing::error!(reason = %err, "delivery not stored");
                }
                Err(err)
            }
        }
    }
    .instrument(span)
    .await
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    delivery: &mut Delivery,
) -> Result<HttpResponse, WebhookError> {
    let body = read_body(req, payload, state.settings.max_body_bytes).await?;
    match &state.settings.signature {
        SignaturePolicy::Verify(secrets) => signature::verify(
            req.headers().get("X-Hub-Signature").map(|v| v.as_bytes()),
            &body,
            secrets,
        )?,
        SignaturePolicy::Insecure | SignaturePolicy::Demo => {}
    }
    let event_key = delivery
        .event_key
        .clone()
        .ok_or(WebhookError::MissingHeader("X-Event-Key"))?;
    let request_id = delivery
        .request_id
        .clone()
        .ok_or(WebhookError::MissingHeader("X-Request-UUID"))?;

    let parsed = bitbucket::parse(&event_key, &body).map_err(|e| WebhookError::BadPayload(e.0))?;
    let (outcome, mut answer) = match parsed {
        Parsed::Change(change) => {
            let span = tracing::Span::current();
            span.record("repository", change.repository());
            if let Some(n) = change.pr_number() {
                span.record("pr", n);
            }
            let answer = json!({
                "status": "processed",
                "request_id": request_id,
                "event_key": event_key,
                "repository": change.repository(),
                "pull_request": change.pr_number(),
            });
            (Outcome::Processed(change), answer)
        }
        Parsed::Ignored(reason) => {
            let answer = json!({"status": "ignored", "request_id": request_id, "reason": reason});
            (Outcome::Ignored { reason }, answer)
        }
    };
    let label = outcome.label();
    let stored = Delivery {
        outcome,
        ..delivery.clone()
    };
    match state.writer.submit(stored).await? {
        WriteOutcome::Committed => {
            tracing::info!(outcome = label, "delivery stored");
        }
        WriteOutcome::Duplicate => {
            tracing::info!("redelivery of an accepted request id: nothing changed");
            answer = json!({"status": "duplicate", "request_id": request_id});
        }
    }
    Ok(HttpResponse::Ok().json(answer))
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, WebhookError> {
    let declared = header(req.headers(), "Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(WebhookError::TooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| WebhookError::BodyRead)?;
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

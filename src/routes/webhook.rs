//! `POST /webhooks/bitbucket`: size limit, signature, headers, payload, then the writer.
//! Every refusal is a 4xx with a reason and is recorded in `deliveries`; only our own trouble
//! (writer overloaded or down) is a 5xx, which Bitbucket retries.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use tracing::Instrument;

use super::{header, read_body, BodyError};
use crate::bitbucket::{self, DeliveryHeaders, Parsed, SIGNATURE_HEADER};
use crate::clock::Clock;
use crate::config::SignaturePolicy;
use crate::domain::{Flavour, Outcome, Submission, Timestamp};
use crate::identity::Identities;
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::signature;
use crate::store::{WriteError, WriteOutcome, Writer};

/// What `POST /webhooks/bitbucket` reaches.
pub struct WebhookState {
    /// Whether and against which secrets `X-Hub-Signature` is checked.
    pub signature: SignaturePolicy,
    /// The largest body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// The longest a body may take to arrive (`Settings::body_timeout`).
    pub body_timeout: std::time::Duration,
    /// The batch writer deliveries are stored through.
    pub writer: Writer,
    /// Dates each arrival (`deliveries.received_at`).
    pub clock: Clock,
    /// Counts deliveries by flavour and outcome.
    pub metrics: Metrics,
    /// Which Data Center server a payload is from (`identity`).
    pub identities: std::sync::Arc<Identities>,
}

/// Why a delivery was refused or not stored, with the HTTP status Bitbucket gets; answered as
/// `{"status": "rejected", "reason"}`. All but the 503s are recorded as rejected deliveries.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 413 (over `max_body_bytes`), 408 (slower than `body_timeout`) or 400 (unreadable).
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    /// 401: `X-Hub-Signature` is missing, malformed or matches no configured secret.
    Signature(#[from] signature::BitbucketSignatureError),
    /// 401: a poll-only deployment (Bitbucket sites configured, no webhook secret) takes no
    /// deliveries.
    #[error("webhooks are not configured on this service (no webhook secret is set): it is poll-only and reads Bitbucket's REST API instead")]
    NotConfigured,
    /// 400: a required header (`X-Event-Key`, the request id) is missing or not text.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    /// 400: the payload is not what the event key promises (the message names the field).
    #[error("{0}")]
    BadPayload(String),
    /// 503 with `Retry-After: 1`: the writer's queue is full.
    #[error("busy, retry shortly")]
    Overloaded,
    /// 503 with `Retry-After: 1`: the writer has stopped or could not store the delivery.
    #[error("temporarily unable to store deliveries")]
    Unavailable,
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::Body(BodyError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Body(BodyError::TooSlow(_)) => StatusCode::REQUEST_TIMEOUT,
            WebhookError::Signature(_) | WebhookError::NotConfigured => StatusCode::UNAUTHORIZED,
            WebhookError::MissingHeader(_)
            | WebhookError::Body(BodyError::Unreadable)
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
            WriteError::Stopped | WriteError::Failed | WriteError::Busy => {
                WebhookError::Unavailable
            }
        }
    }
}

/// `POST /webhooks/bitbucket`: verifies, parses and stores one delivery from Bitbucket Cloud or
/// Data Center. 200 means committed (`processed`, `ignored` or `duplicate`); errors as
/// `WebhookError` says.
pub async fn bitbucket(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WebhookState>,
) -> Result<HttpResponse, WebhookError> {
    let headers = DeliveryHeaders::read(|name| header(&req, name));
    let span = tracing::info_span!(
        "delivery",
        flavour = headers.flavour.as_str(),
        request_id = headers.request_id.as_deref().unwrap_or("-"),
        event_key = headers.event_key.as_deref().unwrap_or("-"),
        repository = tracing::field::Empty,
        pr = tracing::field::Empty,
    );
    let received_at = state.clock.timestamp();
    async move {
        match handle(&req, payload, &state, &headers, &received_at).await {
            Ok(response) => Ok(response),
            Err(err) => {
                if !matches!(err, WebhookError::Overloaded | WebhookError::Unavailable) {
                    let flavour = headers.flavour;
                    state.metrics.delivery(flavour, DeliveryOutcome::rejected);
                    tracing::warn!(status = err.status_code().as_u16(), reason = %err, "delivery rejected");
                    let outcome = Outcome::Rejected {
                        reason: err.to_string(),
                    };
                    state.writer.record(headers.delivery(received_at, outcome));
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
    state: &WebhookState,
    headers: &DeliveryHeaders,
    received_at: &Timestamp,
) -> Result<HttpResponse, WebhookError> {
    if matches!(state.signature, SignaturePolicy::PollOnly) {
        return Err(WebhookError::NotConfigured);
    }
    let body = read_body(req, payload, state.max_body_bytes, state.body_timeout).await?;
    let presented = req.headers().get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    // Data Center's "Test connection": whether it is signed is not documented, so an unsigned
    // ping (or one without a request id) is acknowledged, changes nothing and is not recorded. A
    // signed one must carry the right signature, so that a wrong secret shows at once.
    let ping = headers.event_key.as_deref() == Some(bitbucket::datacenter::PING_KEY);
    if ping && (presented.is_none() || headers.request_id.is_none()) {
        if let (Some(_), SignaturePolicy::Verify(secrets)) = (presented, &state.signature) {
            signature::verify_bitbucket(presented, &body, secrets)?;
        }
        tracing::info!("Test connection from Bitbucket Data Center");
        state
            .metrics
            .delivery(headers.flavour, DeliveryOutcome::ignored);
        return Ok(HttpResponse::Ok()
            .json(json!({"status": "ignored", "reason": "Test connection: received"})));
    }
    match &state.signature {
        SignaturePolicy::Verify(secrets) => signature::verify_bitbucket(presented, &body, secrets)?,
        SignaturePolicy::Insecure | SignaturePolicy::Demo | SignaturePolicy::PollOnly => {}
    }
    let event_key = headers
        .event_key
        .as_deref()
        .ok_or(WebhookError::MissingHeader("X-Event-Key"))?;
    let request_id = headers
        .request_id
        .as_deref()
        .ok_or(WebhookError::MissingHeader(headers.request_id_header()))?;

    let parsed = bitbucket::parse_with(
        headers.flavour,
        event_key,
        &body,
        received_at,
        state.identities.servers(),
    )
    .map_err(|e| WebhookError::BadPayload(e.0))?;
    let (outcome, mut answer) = match parsed {
        Parsed::Change(change) => {
            let change = match headers.flavour {
                Flavour::DataCenter => state.identities.settle(change).await,
                Flavour::Cloud => change,
            };
            let repository = &change.repository().full_name;
            let span = tracing::Span::current();
            span.record("repository", repository.as_str());
            if let Some(n) = change.pr_number() {
                span.record("pr", n);
            }
            let answer = json!({
                "status": "processed",
                "request_id": request_id,
                "event_key": event_key,
                "repository": repository,
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
    let delivery = headers.delivery(received_at.clone(), outcome);
    match state.writer.submit(Submission::delivery(delivery)).await? {
        WriteOutcome::Committed => {
            tracing::info!(outcome = label, "delivery stored");
            let outcome = if label == "processed" {
                DeliveryOutcome::processed
            } else {
                DeliveryOutcome::ignored
            };
            state.metrics.delivery(headers.flavour, outcome);
        }
        WriteOutcome::Duplicate => {
            tracing::info!("redelivery of an accepted request id: nothing changed");
            state
                .metrics
                .delivery(headers.flavour, DeliveryOutcome::duplicate);
            answer = json!({"status": "duplicate", "request_id": request_id});
        }
    }
    Ok(HttpResponse::Ok().json(answer))
}

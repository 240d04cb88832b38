//! `POST /sweep`: the scheduler's entry point. Bearer token; `?force=true` ignores the
//! idempotency window and quiet hours.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

use super::{check_bearer, BearerCheck};
use crate::config::SecretToken;
use crate::domain::Trigger;
use crate::jobs::{Job, Jobs};

/// What `POST /sweep` reaches.
pub struct SweepState {
    /// `None`: the endpoint is disabled.
    pub token: Option<SecretToken>,
    /// Runs the sweep (one job at a time).
    pub jobs: Arc<Jobs>,
}

/// Why `POST /sweep` did not run; the answer is `{"status", "reason"}` JSON.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// 403: no `sweep.token` is configured, so the endpoint is off.
    #[error("POST /sweep is disabled: no sweep token is configured (PR_REMINDER_SWEEP_TOKEN)")]
    Disabled,
    /// 401 with `WWW-Authenticate: Bearer`: the `Authorization: Bearer` token is missing or wrong.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 500: the sweep itself failed (logged).
    #[error("the sweep failed; see the service log")]
    Failed,
}

impl ResponseError for SweepError {
    fn status_code(&self) -> StatusCode {
        match self {
            SweepError::Disabled => StatusCode::FORBIDDEN,
            SweepError::Unauthorized => StatusCode::UNAUTHORIZED,
            SweepError::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, SweepError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        let status = match self {
            SweepError::Disabled => "disabled",
            SweepError::Unauthorized => "unauthorized",
            SweepError::Failed => "error",
        };
        response.json(json!({"status": status, "reason": self.to_string()}))
    }
}

/// `POST /sweep`'s query string: `?force=true` posts even in quiet hours or within
/// `min_interval`.
#[derive(Deserialize)]
pub struct SweepQuery {
    #[serde(default)]
    force: bool,
}

/// `POST /sweep`: runs a sweep now and answers the `SweepReport` as JSON (200).
pub async fn sweep(
    req: HttpRequest,
    query: web::Query<SweepQuery>,
    state: web::Data<SweepState>,
) -> Result<HttpResponse, SweepError> {
    match check_bearer(&req, state.token.as_ref()) {
        BearerCheck::Disabled => return Err(SweepError::Disabled),
        BearerCheck::Refused => {
            tracing::warn!("POST /sweep refused: missing or wrong token");
            return Err(SweepError::Unauthorized);
        }
        BearerCheck::Accepted => {}
    }
    let job = Job::Sweep { force: query.force };
    let report = state.jobs.run(job, Trigger::Http).await.map_err(|err| {
        tracing::error!(error = %format!("{err:#}"), "sweep failed");
        SweepError::Failed
    })?;
    tracing::info!(forced = query.force, report = %report.to_text(), "sweep done");
    Ok(HttpResponse::Ok().json(report))
}

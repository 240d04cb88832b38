//! `POST /reconcile`: a reconciliation pass over Bitbucket's REST API now. The same bearer token
//! as `POST /sweep`; `?repository=owner/slug` limits it to one repository.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

use super::{check_bearer, BearerCheck};
use crate::config::SecretToken;
use crate::domain::Trigger;
use crate::jobs::{Job, JobReport, Jobs};
use crate::reconcile::Scope;

/// What `POST /reconcile` reaches.
pub struct ReconcileState {
    /// `sweep.token`; `None`: the endpoint is disabled.
    pub token: Option<SecretToken>,
    /// Runs the pass (one job at a time).
    pub jobs: Arc<Jobs>,
}

/// Why `POST /reconcile` did not run; the answer is `{"status", "reason"}` JSON.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// 403: no `sweep.token` is configured, so the endpoint is off.
    #[error("POST /reconcile is disabled: no sweep token is configured (PR_REMINDER_SWEEP_TOKEN)")]
    Disabled,
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 404: no `[[bitbucket]]` site is configured.
    #[error("no Bitbucket site is configured ([[bitbucket]] or PR_REMINDER_BITBUCKET_*)")]
    NoSites,
    /// 400: `?repository=` names a repository no site covers.
    #[error("{0}")]
    NotConfigured(String),
    /// 500: the pass itself could not run (logged).
    #[error("the reconciliation failed; see the service log")]
    Failed,
}

impl ResponseError for ReconcileError {
    fn status_code(&self) -> StatusCode {
        match self {
            ReconcileError::Disabled => StatusCode::FORBIDDEN,
            ReconcileError::Unauthorized => StatusCode::UNAUTHORIZED,
            ReconcileError::NoSites => StatusCode::NOT_FOUND,
            ReconcileError::NotConfigured(_) => StatusCode::BAD_REQUEST,
            ReconcileError::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ReconcileError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        let status = match self {
            ReconcileError::Disabled => "disabled",
            ReconcileError::Unauthorized => "unauthorized",
            _ => "error",
        };
        response.json(json!({"status": status, "reason": self.to_string()}))
    }
}

/// `POST /reconcile`'s query string.
#[derive(Deserialize)]
pub struct ReconcileQuery {
    /// Only this `owner/slug`.
    repository: Option<String>,
}

/// `POST /reconcile`: runs a pass and answers its `ReconcileReport` as JSON: 200 when every
/// repository went through, 502 when one failed (the report says which, with Bitbucket's HTTP
/// status).
pub async fn reconcile(
    req: HttpRequest,
    query: web::Query<ReconcileQuery>,
    state: web::Data<ReconcileState>,
) -> Result<HttpResponse, ReconcileError> {
    match check_bearer(&req, state.token.as_ref()) {
        BearerCheck::Disabled => return Err(ReconcileError::Disabled),
        BearerCheck::Refused => {
            tracing::warn!("POST /reconcile refused: missing or wrong token");
            return Err(ReconcileError::Unauthorized);
        }
        BearerCheck::Accepted => {}
    }
    let reconciler = state.jobs.reconciler().ok_or(ReconcileError::NoSites)?;
    let scope = Scope {
        site: None,
        repository: query
            .into_inner()
            .repository
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
    };
    reconciler
        .check(&scope)
        .map_err(ReconcileError::NotConfigured)?;
    let report = state
        .jobs
        .run(Job::Reconcile(scope), Trigger::Http)
        .await
        .map_err(|err| {
            tracing::error!(error = %format!("{err:#}"), "reconciliation failed");
            ReconcileError::Failed
        })?;
    let status = match &report {
        JobReport::Reconcile(r) if !r.ok => StatusCode::BAD_GATEWAY,
        _ => StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(report))
}

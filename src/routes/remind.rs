//! `POST /remind`: an external scheduler's entry point to the personal reminders (issue 24).
//! The sweep token as `Authorization: Bearer`; `?user=U` one person, `?force=true` now
//! whatever the hour.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

use super::{check_bearer, BearerCheck};
use crate::config::SecretToken;
use crate::domain::Trigger;
use crate::jobs::{Job, Jobs};
use crate::remind::RemindError;

/// What `POST /remind` reaches.
pub struct RemindState {
    /// The sweep token; `None`: the endpoint is disabled.
    pub token: Option<SecretToken>,
    /// Runs the job (one at a time).
    pub jobs: Arc<Jobs>,
}

/// Why `POST /remind` did not run; the answer is `{"status", "reason"}` JSON.
#[derive(Debug, thiserror::Error)]
pub enum RemindRouteError {
    /// 403: no sweep token is configured.
    #[error("POST /remind is disabled: no sweep token is configured (PR_REMINDER_SWEEP_TOKEN)")]
    Disabled,
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 404: `user` names nobody in `[[users]]` (the message says so).
    #[error("{0}")]
    UnknownUser(String),
    /// 500: the job failed (logged).
    #[error("the reminders failed; see the service log")]
    Failed,
}

impl ResponseError for RemindRouteError {
    fn status_code(&self) -> StatusCode {
        match self {
            RemindRouteError::Disabled => StatusCode::FORBIDDEN,
            RemindRouteError::Unauthorized => StatusCode::UNAUTHORIZED,
            RemindRouteError::UnknownUser(_) => StatusCode::NOT_FOUND,
            RemindRouteError::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, RemindRouteError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        let status = match self {
            RemindRouteError::Disabled => "disabled",
            RemindRouteError::Unauthorized => "unauthorized",
            RemindRouteError::UnknownUser(_) => "unknown_user",
            RemindRouteError::Failed => "error",
        };
        response.json(json!({"status": status, "reason": self.to_string()}))
    }
}

/// `POST /remind`'s query string.
#[derive(Deserialize)]
pub struct RemindQuery {
    /// One person (their `[[users]]` bitbucket name, a chat id or their e-mail).
    user: Option<String>,
    /// Now, whatever the hour or day.
    #[serde(default)]
    force: bool,
}

/// `POST /remind`: queues the due personal reminders now and answers the `RemindReport` (200).
pub async fn remind(
    req: HttpRequest,
    query: web::Query<RemindQuery>,
    state: web::Data<RemindState>,
) -> Result<HttpResponse, RemindRouteError> {
    match check_bearer(&req, state.token.as_ref()) {
        BearerCheck::Disabled => return Err(RemindRouteError::Disabled),
        BearerCheck::Refused => {
            tracing::warn!("POST /remind refused: missing or wrong token");
            return Err(RemindRouteError::Unauthorized);
        }
        BearerCheck::Accepted => {}
    }
    let query = query.into_inner();
    let job = Job::Remind {
        user: query.user,
        force: query.force,
    };
    let report = state.jobs.run(job, Trigger::Http).await.map_err(|err| {
        if let Some(unknown) = err.downcast_ref::<RemindError>() {
            return RemindRouteError::UnknownUser(unknown.to_string());
        }
        tracing::error!(error = %format!("{err:#}"), "reminders failed");
        RemindRouteError::Failed
    })?;
    Ok(HttpResponse::Ok().json(report))
}

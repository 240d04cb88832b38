//! `POST /sweep`: the scheduler's entry point. Bearer token; `?force=true` ignores the
//! idempotency window and quiet hours.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::same_secret;
use crate::startup::AppState;
use crate::sweep::{self, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("POST /sweep is disabled: no sweep token is configured (PR_REMINDER_SWEEP_TOKEN)")]
    Disabled,
    #[error("missing or wrong bearer token")]
    Unauthorized,
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

#[derive(Deserialize)]
pub struct SweepQuery {
    #[serde(default)]
    force: bool,
}

pub async fn sweep(
    req: HttpRequest,
    query: web::Query<SweepQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, SweepError> {
    let settings = &state.settings;
    let Some(token) = &settings.sweep.token else {
        return Err(SweepError::Disabled);
    };
    let presented = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if same_secret(p, token.0.expose_secret()) => {}
        _ => {
            tracing::warn!("POST /sweep refused: missing or wrong token");
            return Err(SweepError::Unauthorized);
        }
    }
    // One sweep at a time in this process; the database transaction covers other processes.
    let _guard = state.sweep_lock.lock().await;
    let now = (state.clock)();
    let report = sweep::run(
        &state.pool,
        &state.router,
        settings,
        now,
        Trigger::Http,
        query.force,
    )
    .await
    .map_err(|err| {
        tracing::error!(error = %format!("{err:#}"), "sweep failed");
        SweepError::Failed
    })?;
    state.wake.notify_waiters();
    tracing::info!(forced = query.force, rooms = ?report.rooms.iter().map(|r| (&r.room, r.status)).collect::<Vec<_>>(), "sweep done");
    Ok(HttpResponse::Ok().json(report))
}

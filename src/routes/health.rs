//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers too).

use actix_web::{web, HttpResponse};

use crate::store::{self, Db};

/// What the health routes reach.
pub struct HealthState {
    /// The database `/readyz` checks.
    pub db: Db,
}

/// Alive: the process answers HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready: the database answers too (503 when it does not).
pub async fn readyz(state: web::Data<HealthState>) -> HttpResponse {
    match store::ping(&state.db).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "readiness check failed");
            HttpResponse::ServiceUnavailable().json(
                serde_json::json!({"status": "unavailable", "reason": "database unreachable"}),
            )
        }
    }
}

use actix_web::{web, HttpResponse};

use crate::startup::AppState;

/// Alive: the process answers HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready: the database answers too.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match crate::store::ping(&state.pool).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "readiness check failed");
            HttpResponse::ServiceUnavailable().json(
                serde_json::json!({"status": "unavailable", "reason": "database unreachable"}),
            )
        }
    }
}

//! `GET /metrics`: the Prometheus exposition (see `crate::metrics`). Open unless
//! `metrics_token` is set; then `Authorization: Bearer <token>` (Prometheus' `authorization`
//! scrape setting).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::{check_bearer, BearerCheck};
use crate::config::SecretToken;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::store::Db;

/// What `GET /metrics` reaches.
pub struct MetricsState {
    /// `None`: open.
    pub token: Option<SecretToken>,
    /// The registry.
    pub metrics: Metrics,
    /// Where the gauges are read.
    pub db: Db,
    /// Webhook silence is judged at its now.
    pub clock: crate::clock::Clock,
}

/// Why the exposition was not given.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 500: the gauges could not be read (logged).
    #[error("the metrics could not be read; see the service log")]
    Failed,
}

impl ResponseError for MetricsError {
    fn status_code(&self) -> StatusCode {
        match self {
            MetricsError::Unauthorized => StatusCode::UNAUTHORIZED,
            MetricsError::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, MetricsError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string())
    }
}

/// `GET /metrics`: OpenMetrics text (200).
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<MetricsState>,
) -> Result<HttpResponse, MetricsError> {
    if check_bearer(&req, state.token.as_ref()) == BearerCheck::Refused {
        return Err(MetricsError::Unauthorized);
    }
    let body = state
        .metrics
        .encode(&state.db, state.clock.now())
        .await
        .map_err(|err| {
            tracing::error!(error = %format!("{err:#}"), "metrics failed");
            MetricsError::Failed
        })?;
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

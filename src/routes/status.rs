//! `GET /status`: the status page (see `crate::status`). Access: open in demo mode (which binds
//! loopback only); otherwise `status_token` as `Authorization: Bearer <token>` or as the
//! password of HTTP Basic auth (any user name), so that a browser can log in; with no token
//! configured the page does not exist (404).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use base64::Engine as _;
use secrecy::ExposeSecret;

use super::header;
use crate::clock::Clock;
use crate::config::{SecretToken, Settings, SignaturePolicy};
use crate::domain::routing::Routing;
use crate::report;
use crate::signature;
use crate::status;
use crate::store::Db;

/// What `GET /status` reaches.
pub struct StatusState {
    /// Rooms, escalation threshold, users, sites; the token.
    pub settings: Arc<Settings>,
    /// Reads the page.
    pub db: Db,
    /// Which room lists which repository.
    pub routing: Arc<Routing>,
    /// Ages are measured to its now.
    pub clock: Clock,
}

/// Who may read the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Demo mode: open (the listener is loopback only).
    Open,
    /// No token configured: the page is off.
    Off,
    /// The token, as Bearer or as the Basic password.
    Token,
}

impl Access {
    pub(crate) fn of(settings: &Settings) -> Access {
        match (&settings.signature, &settings.monitoring.status_token) {
            (SignaturePolicy::Demo, None) => Access::Open,
            (_, None) => Access::Off,
            (_, Some(_)) => Access::Token,
        }
    }
}

/// Why the page was not shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// 404: no `status_token` is configured (and not demo mode).
    #[error("not found")]
    Off,
    /// 401 with `WWW-Authenticate: Basic`, so that a browser asks for the token.
    #[error("this page needs the status token (as the Basic auth password, or as a Bearer token)")]
    Unauthorized,
    /// 500: reading the database failed (logged).
    #[error("the status page could not be read; see the service log")]
    Failed,
    /// 400: a query parameter of `GET /status/review-flow` is not one it reads; says which
    /// and what it takes.
    #[error("{0}")]
    BadQuery(String),
}

impl ResponseError for StatusError {
    fn status_code(&self) -> StatusCode {
        match self {
            StatusError::Off => StatusCode::NOT_FOUND,
            StatusError::Unauthorized => StatusCode::UNAUTHORIZED,
            StatusError::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            StatusError::BadQuery(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, StatusError::Off) {
            // Whoever opens it is most likely the operator who has not set it up yet.
            return response
                .content_type("text/html; charset=utf-8")
                .insert_header(("Cache-Control", "no-store"))
                .insert_header((
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                ))
                .body(OFF_PAGE);
        }
        if matches!(self, StatusError::Unauthorized) {
            response.insert_header((
                "WWW-Authenticate",
                "Basic realm=\"pr-reminder status\", charset=\"UTF-8\"",
            ));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string())
    }
}

/// What `GET /status` answers (404) while no status token is configured: how to turn it on.
const OFF_PAGE: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>pr-reminder status: off</title>\
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 12px;\
line-height:1.5}code{background:#f3f4f6;padding:0 3px}</style></head><body>\
<h1>The status page is off</h1>\
<p>It shows every pull request waiting for review, so it needs a token, and none is set.</p>\
<ol><li>Pick one of 16 characters or more: <code>openssl rand -hex 32</code>.</li>\
<li>Give it to the service as <code>PR_REMINDER_STATUS_TOKEN</code> (with docker compose: in \
<code>.env</code>), or as <code>status_token</code> under <code>[monitoring]</code> in its \
configuration file, and restart it.</li>\
<li>Open <code>/status</code> again: the browser asks for a user name (any) and a password \
(the token). Scripts send <code>Authorization: Bearer &lt;token&gt;</code>.</li></ol>\
</body></html>";

/// Whether `authorization` carries `token` as a Bearer token or as a Basic auth password.
pub(crate) fn token_presented(authorization: Option<&str>, token: &SecretToken) -> bool {
    if signature::bearer_matches(authorization, &token.0) {
        return true;
    }
    let Some((scheme, encoded)) = authorization.and_then(|a| a.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    // RFC 7617: user-id ":" password; the user name is not checked.
    decoded
        .split_once(':')
        .is_some_and(|(_, password)| signature::same_secret(password, token.0.expose_secret()))
}

/// Whether `req` may read the status pages (see the module): `Off` (404) or `Unauthorized`
/// (401) when not.
fn allowed(req: &HttpRequest, settings: &Settings) -> Result<(), StatusError> {
    match Access::of(settings) {
        Access::Open => Ok(()),
        Access::Off => Err(StatusError::Off),
        Access::Token => {
            let token = settings.monitoring.status_token.as_ref();
            if token.is_some_and(|t| token_presented(header(req, "Authorization"), t)) {
                Ok(())
            } else {
                Err(StatusError::Unauthorized)
            }
        }
    }
}

/// An HTML page as the status pages answer it: not cached, no script, nothing framed.
fn html_page(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        // No script at all; the one stylesheet is inline.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(body)
}

/// `GET /status`: the page as HTML (200), or 401/404 as `StatusError` says.
pub async fn status(
    req: HttpRequest,
    state: web::Data<StatusState>,
) -> Result<HttpResponse, StatusError> {
    allowed(&req, &state.settings)?;
    let page = status::gather(
        &state.db,
        &state.routing,
        &state.settings,
        state.clock.now(),
    )
    .await
    .map_err(|err| {
        tracing::error!(error = %format!("{err:#}"), "status page failed");
        StatusError::Failed
    })?;
    Ok(html_page(status::page::render(&page)))
}

/// What `GET /status/review-flow` was asked: `since` and `repository`, each at most once;
/// anything else is a 400 that says what the page reads.
fn review_flow_query(query: &str) -> Result<status::review_flow::Asked, StatusError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
        StatusError::BadQuery(
            "the query string could not be read; use ?since=28d&repository=team/repo".into(),
        )
    })?;
    let mut asked = status::review_flow::Asked::default();
    for (key, value) in pairs {
        let slot = match key.as_str() {
            "since" => &mut asked.since,
            "repository" => &mut asked.repository,
            other => {
                return Err(StatusError::BadQuery(format!(
                    "unknown parameter {other:?}: this page reads since (28d, 12h, 2w, or an RFC 3339 date-time) and repository (a full name)"
                )))
            }
        };
        if slot.replace(value).is_some() {
            return Err(StatusError::BadQuery(format!("{key} is given twice")));
        }
    }
    if let Some(repository) = &asked.repository {
        if repository.trim().is_empty() || repository.chars().count() > 200 {
            return Err(StatusError::BadQuery(
                "repository must be a repository's full name (team/repo), at most 200 characters"
                    .into(),
            ));
        }
    }
    Ok(asked)
}

/// `GET /status/review-flow` (issue 28): the review-flow figures and charts as HTML (200) over
/// `?since=` (default `[analytics] window_days`) for `?repository=` (default every one); 400
/// for a query it does not read, 401/404 as `GET /status`.
pub async fn review_flow(
    req: HttpRequest,
    state: web::Data<StatusState>,
) -> Result<HttpResponse, StatusError> {
    allowed(&req, &state.settings)?;
    let asked = review_flow_query(req.query_string())?;
    let now = state.clock.now();
    let since = match &asked.since {
        Some(since) => report::parse_since(since, now)
            .map_err(|err| StatusError::BadQuery(format!("since: {err}")))?,
        None => now - state.settings.analytics.window,
    };
    let flow = report::flow(
        &state.db,
        &state.settings,
        since,
        Some(now),
        asked.repository.as_deref(),
    )
    .await
    .map_err(|err| {
        tracing::error!(error = %format!("{err:#}"), "review-flow page failed");
        StatusError::Failed
    })?;
    Ok(html_page(status::review_flow::render(&flow, &asked)))
}

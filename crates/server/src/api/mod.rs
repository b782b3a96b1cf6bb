//! The REST API: [`router`] builds the whole HTTP surface of `otaas serve` from an [`AppState`]
//! (`/api/v1/*` behind bearer auth, plus `/healthz`, `/readyz`, `/metrics`).
//!
//! Files: `handlers.rs` (one function per route), `json.rs` (body extractor with our errors),
//! `validate.rs` (semantic checks), `paging.rs` (`limit`/`cursor` of every list), `components.rs` (the agents' component check), `preview.rs` (what one object renders), `views.rs` (records → response objects, secrets dropped),
//! `error.rs` ([`ApiError`]), `openapi.rs` (the `/api/v1/openapi.json` document), `auth.rs` (the
//! bearer-token middleware), `audit.rs` (the audit trail's middleware and routes), `agents.rs`, `rollouts.rs`, `insights.rs` and `discovery.rs` (the
//! fleet, rollout, insights and discovered-pipeline routes, over their engines), `revisions.rs`
//! (a group's config history: config at a revision, list, one, diff).

pub(crate) mod agents;
pub mod audit;
pub mod auth;
mod components;
mod discovery;
mod error;
mod handlers;
mod insights;
pub mod json;
mod openapi;
pub mod paging;
mod preview;
pub(crate) mod revisions;
mod rollouts;
pub mod validate;
mod views;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use http::StatusCode;
use otaas_api::ErrorCode;

pub use error::{ApiError, is_unavailable};
pub use openapi::document as openapi_document;

use crate::state::AppState;

/// The `/api/v1` routes (without auth or limits): other areas merge their routes in here.
pub fn v1_routes() -> Router<AppState> {
    use handlers::*;
    Router::new()
        .route("/pipelines", get(list_pipelines).post(create_pipeline))
        .route(
            "/pipelines/{id}",
            get(get_pipeline)
                .put(update_pipeline)
                .delete(delete_pipeline),
        )
        .route("/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/endpoints/{id}",
            get(get_endpoint)
                .put(update_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/exporter-bindings",
            get(list_bindings).post(create_binding),
        )
        .route(
            "/exporter-bindings/{id}",
            get(get_binding).put(update_binding).delete(delete_binding),
        )
        .route("/agent-groups", get(list_groups).post(create_group))
        .route(
            "/agent-groups/{id}",
            get(get_group).put(update_group).delete(delete_group),
        )
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route(
            "/component-check",
            axum::routing::post(components::dry_run)
                .layer(middleware::map_response(audit::mark_dry_run)),
        )
        .route(
            "/config-preview",
            axum::routing::post(preview::preview)
                .layer(middleware::map_response(audit::mark_dry_run)),
        )
        .route("/openapi.json", get(openapi::serve))
        .merge(revisions::routes())
}

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    let api = v1_routes()
        .merge(agents::routes())
        .merge(rollouts::routes())
        .merge(insights::routes())
        .merge(discovery::routes())
        .merge(audit::routes())
        .route_layer(middleware::from_fn_with_state(
            auth::ApiAuth::from_ref(&state),
            auth::require_api_token,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outside the bearer check: it sees that check's refusals as well as the answers.
        .layer(middleware::from_fn_with_state(
            state.audit.clone(),
            audit::record,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Longest plain-text error (an axum rejection's message) carried over into the JSON body.
const MAX_PLAIN_ERROR: usize = 256;

/// Every error answer carries the JSON error body. Our handlers build it themselves; this
/// rewrites the others — axum's own rejections (a path segment that is not UTF-8 after
/// percent-decoding, a repeated or malformed query parameter, ...), which are plain text —
/// keeping their status, headers and (printable, bounded) message.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut message: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PLAIN_ERROR)
        .collect();
    if message.trim().is_empty() {
        message = status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string();
    }
    let body = otaas_api::ErrorBody::new(error::code_for_status(status), message, None);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::Json(body).into_response().into_body())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        "method not allowed on this route",
        None,
    )
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers.
async fn readyz(State(s): State<AppState>) -> Response {
    // Bounded: a black-holed database must not make the probe hang.
    let ping = tokio::time::timeout(std::time::Duration::from_secs(5), s.store.ping()).await;
    match ping {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Readiness check failed");
            ApiError::unavailable("database unavailable").into_response()
        }
        Err(_) => {
            tracing::warn!("Readiness check timed out");
            ApiError::unavailable("database unavailable").into_response()
        }
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// Counts requests by method, matched route (not raw path: ids would explode cardinality)
/// and status.
async fn count_requests(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    s.metrics.inc(
        "otaas_http_requests_total",
        &[
            ("method", &method),
            ("route", &route),
            ("status", resp.status().as_str()),
        ],
    );
    resp
}

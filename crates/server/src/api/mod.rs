//! The REST API: [`router`] builds the whole HTTP surface of `otaas serve` from an [`AppState`]
//! (`/api/v1/*` behind bearer auth, plus `/healthz`, `/readyz`, `/metrics`).
//!
//! Files: `handlers.rs` (one function per route), `json.rs` (body extractor with our errors),
//! `validate.rs` (semantic checks), `components.rs` (the agents' component check), `views.rs` (records → response objects, secrets dropped),
//! `error.rs` ([`ApiError`]), `openapi.rs` (the `/api/v1/openapi.json` document).

mod components;
mod error;
mod handlers;
pub mod json;
mod openapi;
pub mod validate;
mod views;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use http::StatusCode;
use otaas_api::ErrorCode;

pub use error::{ApiError, is_unavailable};
pub use openapi::document as openapi_document;

use crate::auth;
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
        .route("/agent-groups/{id}/config", get(group_config))
        .route("/agent-groups/{id}/revisions", get(group_revisions))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/component-check", axum::routing::post(components::dry_run))
        .route("/openapi.json", get(openapi::serve))
}

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    let api = v1_routes()
        .merge(crate::opamp::rest::routes())
        .merge(crate::rollout::rest::routes())
        .merge(crate::insights::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_token,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
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

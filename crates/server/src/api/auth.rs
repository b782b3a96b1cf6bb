//! The bearer-token middleware of `/api/v1`: failed-authentication budget per address, token
//! check, scope, per-token rate limit (the token rules themselves are in `crate::auth`).

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::audit::Actor;
use crate::auth::{TokenCheck, TokenKey, authorize, bearer, check_token};
use crate::limits::{AuthFailures, RateLimiter};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::Store;

/// What the middleware uses (an axum substate of `AppState`).
#[derive(Clone)]
pub struct ApiAuth {
    pub store: Arc<dyn Store>,
    /// SHA-256 hex of the `--admin-token` value, if one was given.
    pub admin_token_hash: Option<Arc<str>>,
    pub rate_limiter: Arc<RateLimiter>,
    pub auth_failures: Arc<AuthFailures>,
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for ApiAuth {
    fn from_ref(s: &AppState) -> Self {
        Self {
            store: s.store.clone(),
            admin_token_hash: s.admin_token_hash.clone(),
            rate_limiter: s.rate_limiter.clone(),
            auth_failures: s.auth_failures.clone(),
            metrics: s.metrics.clone(),
        }
    }
}

/// `Authorization: Bearer` middleware for `/api/v1`: refuses an address over its budget of
/// failed authentications (429), checks the token (401 for missing, unknown, revoked or expired
/// ones, each counted against the address), its scope (403), then the per-token rate limit
/// (429).
pub async fn require_api_token(
    State(state): State<ApiAuth>,
    mut request: Request,
    next: Next,
) -> Response {
    // The peer address is there on every listener connection (embedders calling the router
    // directly have none, and no limit).
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer
        && let Err(wait) = state.auth_failures.check(ip)
    {
        state.metrics.inc("otaas_api_rate_limited_total", &[]);
        return ApiError::rate_limited(
            "too many failed authentications from this address; retry after the delay in \
             Retry-After",
            wait,
        )
        .into_response();
    }
    // Every answer past the address budget says whose token it judged (see `api/audit.rs`).
    let answer = |resp: Response, actor: Actor| {
        let mut resp = resp;
        resp.extensions_mut().insert(actor);
        resp
    };
    let fail = |e: ApiError, actor: Actor| {
        state.metrics.inc("otaas_api_auth_failures_total", &[]);
        if let Some(ip) = peer {
            state.auth_failures.failed(ip);
        }
        answer(e.into_response(), actor)
    };
    let Some(presented) = bearer(request.headers()) else {
        return fail(
            ApiError::unauthorized("missing bearer token"),
            Actor::none(),
        );
    };
    let principal = match check_token(
        state.store.as_ref(),
        state.admin_token_hash.as_deref(),
        presented,
    )
    .await
    {
        Ok(TokenCheck::Valid(p)) => p,
        Ok(TokenCheck::Unknown) => {
            let actor = if presented.is_empty() {
                Actor::none()
            } else {
                Actor::unknown(&TokenKey::from(state.store.server_key()), presented)
            };
            return fail(ApiError::unauthorized("invalid bearer token"), actor);
        }
        Ok(TokenCheck::Revoked) => {
            let actor = refused(&state, presented).await;
            return fail(
                ApiError::unauthorized("bearer token has been revoked"),
                actor,
            );
        }
        Ok(TokenCheck::Expired(at)) => {
            let actor = refused(&state, presented).await;
            return fail(
                ApiError::unauthorized(&format!(
                    "bearer token expired at {}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )),
                actor,
            );
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let actor = Actor::of(&principal);
    // A valid token outside its scope is refused (and in the metric) but is not a failed
    // authentication: it does not count against the address.
    if let Err(msg) = authorize(principal.scope(), request.method(), request.uri().path()) {
        state.metrics.inc("otaas_api_auth_failures_total", &[]);
        return answer(ApiError::forbidden(msg).into_response(), actor);
    }
    if let Err(wait) = state.rate_limiter.check(&principal.key()) {
        state.metrics.inc("otaas_api_rate_limited_total", &[]);
        return answer(
            ApiError::rate_limited(
                "too many requests for this token; retry after the delay in Retry-After",
                wait,
            )
            .into_response(),
            actor,
        );
    }
    request.extensions_mut().insert(principal);
    answer(next.run(request).await, actor)
}

/// A revoked or expired token, described from its stored metadata.
async fn refused(state: &ApiAuth, presented: &str) -> Actor {
    Actor::refused(
        state.store.as_ref(),
        state.admin_token_hash.as_deref(),
        Some(presented),
    )
    .await
}

/// The earlier name of [`require_api_token`] (it now also admits read-only tokens to reads).
pub use self::require_api_token as require_admin;

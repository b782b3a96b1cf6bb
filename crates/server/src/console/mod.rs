//! The web console: HTML pages rendered by the server (maud templates) over the same engines
//! the REST API serves, at `/` on the API listener. Reading works without JavaScript; a small
//! script only swaps in the live fragments that server-sent events carry.
//!
//! Files: `context.rs` (the handlers' substate, the viewer, audit records), `session.rs`
//! (sign-in cookie, CSRF), `layout.rs` (page frame, error page, shared
//! bits), `fleet.rs`, `group.rs`, `agent.rs`, `pipelines.rs`, `insights.rs` (one page each),
//! `live.rs` (the server-sent event streams), `assets.rs` (CSS and script, embedded), `charts.rs`
//! (SVG line charts).

mod agent;
mod assets;
mod charts;
pub mod context;
mod fleet;
mod group;
mod insights;
mod layout;
mod live;
mod pipelines;
pub mod session;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use http::{HeaderValue, StatusCode};
use otaas_api::TokenScope;
use serde::Deserialize;

use crate::audit::Actor;
use crate::auth::{TokenCheck, TokenKey, check_token};
use crate::state::AppState;
use context::{Console, Viewer, record};

/// The console's routes, with their own headers (CSP and friends); merged beside the API's.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/fleet", get(fleet::page))
        .route("/fleet/live", get(live::fleet))
        .route("/groups/{id}", get(group::page))
        .route("/groups/{id}/live", get(live::group))
        .route("/groups/{id}/rollout/{action}", post(group::act))
        .route("/agents/{id}", get(agent::page))
        .route("/pipelines", get(pipelines::page))
        .route("/insights", get(insights::page))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        // One cache for all the live streams of this server (see `live.rs`).
        .layer(axum::Extension(Arc::new(live::LiveCache::default())))
        .layer(middleware::from_fn(headers))
        .with_state(state)
}

/// Every console answer: no framing, no inline script or style, nothing from elsewhere, and
/// pages never cached (they show live state and carry the CSRF token).
///
/// `Server-Timing` says how long the server took (what `otaas bench` reads).
async fn headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/assets/");
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={took:.3}")) {
        h.insert("server-timing", v);
    }
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    if !asset {
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    resp
}

async fn sign_in_page(State(c): State<Console>, req_headers: http::HeaderMap) -> Response {
    if session::viewer(&c, &req_headers).await.is_some() {
        return Redirect::to("/fleet").into_response();
    }
    layout::sign_in(StatusCode::OK, None)
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
}

/// `POST /sign-in`: checks the pasted token like the API's bearer check does (and counts a
/// refusal against the address the same way); never echoes, logs or stores it.
async fn sign_in(
    State(c): State<Console>,
    parts: http::request::Parts,
    form: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let peer = session::peer(&parts);
    if !session::same_origin(&parts.headers) {
        return layout::sign_in(
            StatusCode::FORBIDDEN,
            Some("This form was sent from another site; open the console and sign in here."),
        );
    }
    if let Some(ip) = peer
        && c.auth_failures.check(ip).is_err()
    {
        return layout::sign_in(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins from this address; wait a minute and try again."),
        );
    }
    let Ok(Form(form)) = form else {
        return layout::sign_in(StatusCode::BAD_REQUEST, Some("Paste a token to sign in."));
    };
    let token = form.token.trim();
    let refused = |c: &Console, actor: Actor, status: StatusCode, msg: &'static str| {
        c.metrics.inc("otaas_console_sign_in_failures_total", &[]);
        if let Some(ip) = peer {
            c.auth_failures.failed(ip);
        }
        record(c, actor, peer, "POST", "/sign-in", status, None);
        layout::sign_in(status, Some(msg))
    };
    if token.is_empty() {
        return layout::sign_in(StatusCode::BAD_REQUEST, Some("Paste a token to sign in."));
    }
    let principal = match check_token(c.store.as_ref(), c.admin_token_hash.as_deref(), token).await
    {
        Ok(TokenCheck::Valid(p)) if p.scope() != TokenScope::Agent => p,
        Ok(TokenCheck::Valid(p)) => {
            return refused(
                &c,
                Actor::of(&p),
                StatusCode::FORBIDDEN,
                "Agent enrollment tokens are for agents; sign in with an admin or read-only token.",
            );
        }
        Ok(TokenCheck::Unknown) => {
            let actor = Actor::unknown(&TokenKey::from(c.store.server_key()), token);
            return refused(
                &c,
                actor,
                StatusCode::UNAUTHORIZED,
                "That token was not accepted.",
            );
        }
        Ok(TokenCheck::Revoked | TokenCheck::Expired(_)) => {
            let actor =
                Actor::refused(c.store.as_ref(), c.admin_token_hash.as_deref(), Some(token)).await;
            return refused(
                &c,
                actor,
                StatusCode::UNAUTHORIZED,
                "That token is revoked or expired.",
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "Console sign-in: token lookup failed");
            return layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The server cannot check tokens right now; try again shortly.",
                None,
            );
        }
    };
    let expires = match &principal {
        crate::auth::Principal::Token(t) => t
            .expires_at
            .map_or(chrono::Utc::now() + session::LIFETIME, |at| {
                at.min(chrono::Utc::now() + session::LIFETIME)
            }),
        crate::auth::Principal::FlagAdmin => chrono::Utc::now() + session::LIFETIME,
    };
    let value = session::mint(&c, token, expires);
    record(
        &c,
        Actor::of(&principal),
        peer,
        "POST",
        "/sign-in",
        StatusCode::SEE_OTHER,
        None,
    );
    let mut resp = Redirect::to("/fleet").into_response();
    resp.headers_mut()
        .insert(http::header::SET_COOKIE, session::set_cookie(&c, &value));
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /sign-out`: ends the session in this browser (the token itself stays valid).
async fn sign_out(
    State(c): State<Console>,
    viewer: Viewer,
    req_headers: http::HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::same_origin(&req_headers) || !viewer.csrf_ok(form.csrf.as_deref()) {
        return layout::forged();
    }
    let mut resp = Redirect::to("/sign-in").into_response();
    resp.headers_mut()
        .insert(http::header::SET_COOKIE, session::clear_cookie(&c));
    resp
}

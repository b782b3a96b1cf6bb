//! The OpAMP server: `/v1/opamp` on `--opamp-listen`, WebSocket and plain HTTP on one path.
//!
//! Files: `registry.rs` (agent state and every protocol decision, no I/O), `ws.rs` and
//! `http.rs` (the two transports), `sync.rs` (background tasks: group configs from store
//! events, batched persistence, the silent-agent sweep), `rest.rs` (`GET /api/v1/agents`),
//! `redact.rs` (secrets out of reported effective configs).
//!
//! Lifecycle: [`serve`] loads the persisted agents and the groups, starts the background
//! tasks and serves until `AppState::shutdown` is cancelled. Then WebSocket sessions tell their
//! agents `Unavailable` with a retry delay and close, HTTP polls get the same answer, every
//! agent is marked disconnected and the last changes are flushed to the store.

pub(crate) mod http;
pub mod redact;
pub mod registry;
pub mod rest;
mod sync;
pub mod tls;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use ::http::HeaderMap;
use axum::Router;
use axum::routing::get;
use otaas_opamp::proto::{
    RetryInfo, ServerErrorResponse, ServerErrorResponseType, ServerToAgent, server_error_response,
};
use rand::Rng;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::state::AppState;
use registry::Registry;

/// Flags of the OpAMP server (part of `otaas serve`).
#[derive(Clone, Debug, clap::Args)]
pub struct OpampConfig {
    /// Refuse agents (HTTP 401, before any WebSocket upgrade) that do not present an active
    /// enrollment token as `Authorization: Bearer`.
    #[arg(long, env = "OTAAS_REQUIRE_AGENT_TOKEN")]
    pub require_agent_token: bool,
    /// Largest OpAMP message accepted, after decompression (WebSocket: close 1009; HTTP: 413).
    #[arg(long, env = "OTAAS_OPAMP_MAX_MESSAGE_BYTES", default_value_t = 16 << 20)]
    pub opamp_max_message_bytes: usize,
    /// Heartbeat interval offered to agents that report heartbeats; an agent silent for three
    /// intervals is marked disconnected. 0 = offer none.
    #[arg(long, env = "OTAAS_OPAMP_HEARTBEAT_SECONDS", default_value_t = 30)]
    pub opamp_heartbeat_seconds: u64,
    /// Most WebSocket agents served at once (0 = no limit); beyond it the upgrade is answered
    /// 503 with `Retry-After`, so a reconnect storm is spread out instead of overloading us.
    #[arg(long, env = "OTAAS_OPAMP_MAX_CONNECTIONS", default_value_t = 0)]
    pub opamp_max_connections: usize,
    /// PEM certificate chain: serve OpAMP over TLS (`wss://`, `https://`).
    #[arg(long, env = "OTAAS_OPAMP_TLS_CERT", requires = "opamp_tls_key")]
    pub opamp_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--opamp-tls-cert`.
    #[arg(long, env = "OTAAS_OPAMP_TLS_KEY", requires = "opamp_tls_cert")]
    pub opamp_tls_key: Option<std::path::PathBuf>,
    /// PEM CA: agents must present a client certificate signed by it (mutual TLS).
    #[arg(long, env = "OTAAS_OPAMP_TLS_CLIENT_CA", requires = "opamp_tls_cert")]
    pub opamp_tls_client_ca: Option<std::path::PathBuf>,
}

impl Default for OpampConfig {
    fn default() -> Self {
        Self {
            require_agent_token: false,
            opamp_max_message_bytes: 16 << 20,
            opamp_heartbeat_seconds: 30,
            opamp_max_connections: 0,
            opamp_tls_cert: None,
            opamp_tls_key: None,
            opamp_tls_client_ca: None,
        }
    }
}

/// What the OpAMP handlers share.
pub(crate) struct OpampServer {
    pub(crate) state: AppState,
    pub(crate) config: OpampConfig,
    /// Live WebSocket sessions, so shutdown can wait for their goodbye messages (its `len()` is
    /// also the load measure for `--opamp-max-connections`).
    pub(crate) sessions: TaskTracker,
}

impl OpampServer {
    pub(crate) fn registry(&self) -> &Registry {
        &self.state.agents
    }

    /// `Authorization: Bearer <enrollment token>` when `--require-agent-token` is set.
    pub(crate) async fn authorize(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        if !self.config.require_agent_token {
            return Ok(());
        }
        let presented = headers
            .get(::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        match crate::auth::verify_agent_token(
            self.state.store.as_ref(),
            self.state.admin_token_hash.as_deref(),
            presented,
        )
        .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::Invalid),
            Err(err) => {
                tracing::error!(error = %err, "Verifying an agent token failed");
                Err(AuthError::Store)
            }
        }
    }

    /// Counts a refused token for the insights' security events (a store outage is not one).
    pub(crate) fn count_refusal(&self, peer: std::net::SocketAddr, err: &AuthError) {
        if *err != AuthError::Store {
            self.state
                .insights
                .auth_failure(&peer.ip().to_string(), chrono::Utc::now());
        }
    }

    /// True when another WebSocket session would exceed `--opamp-max-connections`.
    pub(crate) fn overloaded(&self) -> bool {
        let max = self.config.opamp_max_connections;
        max > 0 && self.sessions.len() >= max
    }

    /// The reply every agent gets while we shut down: come back after 1-5 s (jittered, so a
    /// restarted server is not hit by the whole fleet in the same instant).
    pub(crate) fn unavailable(&self, uid: bytes::Bytes) -> ServerToAgent {
        let retry = Duration::from_millis(rand::rng().random_range(1000..5000));
        ServerToAgent {
            instance_uid: uid,
            error_response: Some(ServerErrorResponse {
                r#type: ServerErrorResponseType::Unavailable as i32,
                error_message: "server is shutting down; retry later".to_owned(),
                details: Some(server_error_response::Details::RetryInfo(RetryInfo {
                    retry_after_nanoseconds: retry.as_nanos() as u64,
                })),
            }),
            capabilities: registry::SERVER_CAPS.0,
            ..Default::default()
        }
    }
}

/// Why an agent was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid or revoked agent token")]
    Invalid,
    #[error("token verification unavailable")]
    Store,
}

impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        let status = match self {
            AuthError::Missing | AuthError::Invalid => ::http::StatusCode::UNAUTHORIZED,
            AuthError::Store => ::http::StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            [(::http::header::WWW_AUTHENTICATE, "Bearer")],
            self.to_string(),
        )
            .into_response()
    }
}

/// The `/v1/opamp` router.
pub(crate) fn router(server: Arc<OpampServer>) -> Router {
    Router::new()
        .route(otaas_opamp::OPAMP_PATH, get(ws::upgrade).post(http::post))
        .route(
            crate::insights::ingest::METRICS_PATH,
            axum::routing::post(crate::insights::ingest::post),
        )
        .with_state(server)
}

/// Wakes the WebSocket sessions whose agents have something new to receive.
pub(crate) fn poke(notifies: Vec<Arc<tokio::sync::Notify>>) {
    for n in notifies {
        n.notify_one();
    }
}

/// The URL agents used to reach us (for the connection settings offer).
pub(crate) fn endpoint_url(headers: &HeaderMap, scheme: &str, tls: bool) -> String {
    let scheme = match (scheme, tls) {
        ("ws", true) => "wss",
        ("http", true) => "https",
        (s, _) => s,
    };
    let host = headers
        .get(::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}{}", otaas_opamp::OPAMP_PATH)
}

/// Serves OpAMP on `listener` until `state.shutdown` is cancelled, then drains (see the
/// module docs). Prints `otaas: opamp listening on ADDR` on stderr once bound.
pub async fn serve(
    state: AppState,
    config: OpampConfig,
    listener: TcpListener,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    // Bad TLS files stop the whole server: serving agents in clear instead would be worse.
    let tls_config = match &config.opamp_tls_cert {
        Some(cert) => {
            let key = config.opamp_tls_key.as_deref().unwrap_or(cert);
            match tls::server_config(cert, key, config.opamp_tls_client_ca.as_deref()) {
                Ok(c) => Some(c),
                Err(err) => {
                    eprintln!("otaas: opamp: {err}");
                    state.shutdown.cancel();
                    return Err(std::io::Error::other(err));
                }
            }
        }
        None => None,
    };
    state
        .agents
        .set_heartbeat(Duration::from_secs(config.opamp_heartbeat_seconds));
    sync::load(&state).await;
    let server = Arc::new(OpampServer {
        state: state.clone(),
        config,
        sessions: TaskTracker::new(),
    });
    let background = sync::spawn(state.clone());
    eprintln!("otaas: opamp listening on {local}");
    tracing::info!(addr = %local, "OpAMP server listening");
    let shutdown = state.shutdown.clone();
    let app = router(server.clone()).into_make_service_with_connect_info::<tls::Peer>();
    match tls_config {
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
        }
    }
    // Upgraded WebSockets are not tracked by axum's graceful shutdown: wait for our sessions
    // to send their goodbye, but not forever.
    server.sessions.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), server.sessions.wait()).await;
    state.agents.disconnect_all();
    background.finish().await;
    Ok(())
}

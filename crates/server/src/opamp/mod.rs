//! The OpAMP server: `/v1/opamp` on `--opamp-listen`, WebSocket and plain HTTP on one path.
//!
//! Files: `protocol.rs` (every protocol decision, on the registry's agents; no I/O), `ws.rs` and
//! `http.rs` (the two transports), `sync.rs` (background tasks: group configs from store
//! events, batched persistence, the silent-agent sweep), `redact.rs` (secrets out of reported effective configs), `tokens.rs` (WebSocket sessions by
//! the agent token they were opened with, so revocation ends them).
//!
//! Admission (shared by both transports, before any token check or decoding work): at most
//! `--opamp-max-conns-per-ip` open connections per source address (enforced by the accept loop
//! in [`crate::listener`], `429` + JSON body), then `--opamp-admit-rate`/`--opamp-admit-burst`
//! new agents per second ([`crate::limits::Admission`]): a WebSocket upgrade, or an HTTP poll
//! from an agent that is not connected yet, beyond it gets `503` with a `Retry-After` that
//! spreads the refused agents over time (HTTP polls also get a ServerToAgent carrying
//! `ServerErrorResponse{UNAVAILABLE, RetryInfo}` with the same delay in nanoseconds).
//!
//! Lifecycle: [`load`] reads the persisted agents and the groups (before the engines' tasks
//! start, so they see them); [`serve`] starts the OpAMP server's own background tasks and
//! serves until the shutdown token is cancelled. Then WebSocket sessions tell their
//! agents `Unavailable` with a retry delay and close, HTTP polls get the same answer, every
//! agent is marked disconnected and the last changes are flushed to the store.

mod deps;
pub(crate) mod http;
mod own_metrics;
pub mod protocol;
pub mod redact;
mod server;
mod sync;
pub mod tls;
pub mod tokens;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use deps::{OpampConfig, OpampDeps};
pub(crate) use server::{
    AuthError, OpampServer, endpoint_url, retry_later, retry_message, unavailable_delay,
};

/// The `/v1/opamp` router.
pub(crate) fn router(server: Arc<OpampServer>) -> Router {
    Router::new()
        .route(otaas_opamp::OPAMP_PATH, get(ws::upgrade).post(http::post))
        .route(
            crate::insights::ingest::METRICS_PATH,
            axum::routing::post(own_metrics::post),
        )
        .with_state(server)
}

/// The OpAMP listener's TLS: `--opamp-tls-cert/--opamp-tls-key`, else the API's material
/// (`--tls-cert` or `--tls-self-signed`), else none; with `--opamp-tls-client-ca`, agents must
/// present a client certificate it signed. HTTP/1.1 only (WebSocket upgrades need it).
pub fn tls_config(
    config: &OpampConfig,
    shared: Option<&crate::tls::TlsMaterial>,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let client_ca = config.opamp_tls_client_ca.as_deref();
    let mut server = match (&config.opamp_tls_cert, shared) {
        (Some(cert), _) => {
            let key = config.opamp_tls_key.as_deref().unwrap_or(cert);
            tls::server_config(cert, key, client_ca).map_err(|e| e.to_string())?
        }
        (None, Some(material)) => {
            let c = crate::tls::server_config(material, client_ca, crate::tls::Alpn::Http1)
                .map_err(|e| e.to_string())?;
            return Ok(Some(c));
        }
        (None, None) if client_ca.is_some() => {
            return Err("--opamp-tls-client-ca needs TLS on the OpAMP listener \
                 (--opamp-tls-cert/--opamp-tls-key, --tls-cert/--tls-key or --tls-self-signed)"
                .to_owned());
        }
        (None, None) => return Ok(None),
    };
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

/// Loads the persisted agents into the registry and every group's rollout (before serving, so
/// the first agent already finds its group).
pub async fn load(state: &OpampDeps) {
    sync::load(state).await;
}

/// Serves OpAMP on `listener` (with `tls`, see [`tls_config`]) until `state.shutdown` is
/// cancelled, then drains (see the module docs). Prints `otaas: opamp listening on ADDR` on
/// stderr once bound.
pub async fn serve(
    state: OpampDeps,
    config: OpampConfig,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    state
        .agents
        .set_heartbeat(Duration::from_secs(config.opamp_heartbeat_seconds));
    state.metrics.describe(
        "otaas_opamp_refused_total",
        crate::metrics::MetricKind::Counter,
        "New OpAMP agents told to retry later, by reason (admission: --opamp-admit-rate; \
         capacity: --opamp-max-connections).",
    );
    let options = crate::listener::ListenerOptions {
        name: "opamp",
        tls: tls.clone(),
        conn_limit: crate::limits::ConnLimiter::new(config.opamp_max_conns_per_ip),
    };
    let server = Arc::new(OpampServer {
        state: state.clone(),
        admission: crate::limits::Admission::new(config.opamp_admit_rate, config.opamp_admit_burst),
        tls: tls.is_some(),
        config,
        sessions: TaskTracker::new(),
        token_sessions: tokens::TokenSessions::default(),
    });
    let background = sync::spawn(state.clone());
    let token_watch = tokio::spawn(tokens::watch(state.clone(), server.token_sessions.clone()));
    eprintln!("otaas: opamp listening on {local}");
    tracing::info!(addr = %local, "OpAMP server listening");
    crate::listener::serve(
        listener,
        router(server.clone()),
        options,
        state.shutdown.clone(),
    )
    .await;
    // Upgraded WebSockets are not tracked by the listener's graceful shutdown: wait for our
    // sessions to send their goodbye, but not forever.
    server.sessions.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), server.sessions.wait()).await;
    state.agents.disconnect_all();
    background.finish().await;
    // It stops with `shutdown`; nothing of it is worth waiting for.
    token_watch.abort();
    Ok(())
}

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

pub(crate) mod http;
mod own_metrics;
pub mod protocol;
pub mod redact;
mod sync;
pub mod tls;
pub mod tokens;
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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::events::Events;
use crate::fleet::report_limits::ReportLimits;
use crate::insights::Insights;
use crate::limits::AuthFailures;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::rollout::Rollouts;
use crate::store::Store;

/// What the OpAMP server uses: its registry, the store, the engines it feeds (rollouts from
/// group events, insights from own metrics and refusals) and the shared auth parts.
#[derive(Clone)]
pub struct OpampDeps {
    pub store: Arc<dyn Store>,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub agents: Arc<Registry>,
    pub rollouts: Arc<Rollouts>,
    pub cluster: Arc<Cluster>,
    pub insights: Arc<Insights>,
    /// Failed authentications per source address, shared with the REST API.
    pub auth_failures: Arc<AuthFailures>,
    /// SHA-256 hex of the `--admin-token` value, if one was given.
    pub admin_token_hash: Option<Arc<str>>,
    /// Cancelled when the server begins graceful shutdown.
    pub shutdown: CancellationToken,
}

/// Flags of the OpAMP server (part of `otaas serve`).
#[derive(Clone, Debug, clap::Args)]
pub struct OpampConfig {
    /// Serve agents that present no token (a lab setting). By default every agent, and every
    /// own-metrics export, must present an active agent enrollment token (`otaas token create`,
    /// `POST /api/v1/tokens`) as `Authorization: Bearer`, or is refused with 401 before any
    /// WebSocket upgrade: without one, anyone who reaches the OpAMP listener and claims a
    /// group's labels would be handed that group's config, secrets included. A token that is
    /// presented is checked even with this flag.
    #[arg(
        long,
        env = "OTAAS_ALLOW_ANONYMOUS_AGENTS",
        conflicts_with = "require_agent_token"
    )]
    pub allow_anonymous_agents: bool,
    /// Agents must present a token: the default since anonymous agents became opt-in; kept so
    /// existing command lines and unit files keep working.
    #[arg(long, env = "OTAAS_REQUIRE_AGENT_TOKEN", hide = true)]
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
    /// Open connections allowed per source IP address on the OpAMP listener; one more gets a
    /// single `429 rate_limited` response (JSON body, `Retry-After`) before any upgrade and is
    /// closed. Agents behind one NAT address share it. 0 disables the limit.
    #[arg(long, env = "OTAAS_OPAMP_MAX_CONNS_PER_IP", default_value_t = 1024)]
    pub opamp_max_conns_per_ip: usize,
    /// New agents admitted per second, sustained (WebSocket upgrades, and HTTP polls from agents
    /// not connected yet); beyond it they get `503` with a `Retry-After` spread over time, so
    /// a fleet reconnecting after a restart comes back in waves. 0 disables the limit.
    #[arg(long, env = "OTAAS_OPAMP_ADMIT_RATE", default_value_t = 500.0)]
    pub opamp_admit_rate: f64,
    /// New agents admitted at once before `--opamp-admit-rate` applies (bucket size).
    #[arg(long, env = "OTAAS_OPAMP_ADMIT_BURST", default_value_t = 2000)]
    pub opamp_admit_burst: u32,
    /// PEM certificate chain: serve OpAMP over TLS (`wss://`, `https://`). Without it, OpAMP
    /// uses the API's TLS (`--tls-cert` or `--tls-self-signed`) when that is on.
    #[arg(long, env = "OTAAS_OPAMP_TLS_CERT", requires = "opamp_tls_key")]
    pub opamp_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--opamp-tls-cert`.
    #[arg(long, env = "OTAAS_OPAMP_TLS_KEY", requires = "opamp_tls_cert")]
    pub opamp_tls_key: Option<std::path::PathBuf>,
    /// PEM CA: agents must present a client certificate signed by it (mutual TLS). Needs TLS
    /// on the OpAMP listener.
    #[arg(long, env = "OTAAS_OPAMP_TLS_CLIENT_CA")]
    pub opamp_tls_client_ca: Option<std::path::PathBuf>,
    /// Most attributes (identifying plus non-identifying) in an agent description; a message
    /// with more is refused with a ServerErrorResponse and not applied.
    #[arg(long, env = "OTAAS_OPAMP_MAX_ATTRIBUTES", default_value_t = 256)]
    pub opamp_max_attributes: usize,
    /// Largest agent description attribute: key plus value as text, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_ATTRIBUTE_BYTES", default_value_t = 4096)]
    pub opamp_max_attribute_bytes: usize,
    /// Largest agent description: all its attributes' keys and values, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_DESCRIPTION_BYTES", default_value_t = 64 << 10)]
    pub opamp_max_description_bytes: usize,
    /// Deepest health tree an agent may report (the agent itself is level 1).
    #[arg(long, env = "OTAAS_OPAMP_MAX_HEALTH_DEPTH", default_value_t = 8)]
    pub opamp_max_health_depth: usize,
    /// Most nodes in a reported health tree (the agent itself included).
    #[arg(
        long,
        env = "OTAAS_OPAMP_MAX_HEALTH_COMPONENTS",
        default_value_t = 2048
    )]
    pub opamp_max_health_components: usize,
    /// Largest reported health tree, encoded, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_HEALTH_BYTES", default_value_t = 512 << 10)]
    pub opamp_max_health_bytes: usize,
    /// Most entries (kinds, types, sub-components) in a reported available-components list.
    #[arg(long, env = "OTAAS_OPAMP_MAX_COMPONENTS", default_value_t = 4096)]
    pub opamp_max_components: usize,
    /// Largest reported available-components list, encoded, in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_COMPONENTS_BYTES", default_value_t = 1 << 20)]
    pub opamp_max_components_bytes: usize,
    /// Most files in a reported effective config.
    #[arg(
        long,
        env = "OTAAS_OPAMP_MAX_EFFECTIVE_CONFIG_FILES",
        default_value_t = 16
    )]
    pub opamp_max_effective_config_files: usize,
    /// Largest reported effective config (file names plus bodies), in bytes.
    #[arg(long, env = "OTAAS_OPAMP_MAX_EFFECTIVE_CONFIG_BYTES", default_value_t = 1 << 20)]
    pub opamp_max_effective_config_bytes: usize,
}

impl OpampConfig {
    /// The bounds on agent reports these flags set.
    pub fn report_limits(&self) -> ReportLimits {
        ReportLimits {
            attributes: self.opamp_max_attributes,
            attribute_bytes: self.opamp_max_attribute_bytes,
            description_bytes: self.opamp_max_description_bytes,
            health_depth: self.opamp_max_health_depth,
            health_components: self.opamp_max_health_components,
            health_bytes: self.opamp_max_health_bytes,
            components: self.opamp_max_components,
            components_bytes: self.opamp_max_components_bytes,
            effective_config_files: self.opamp_max_effective_config_files,
            effective_config_bytes: self.opamp_max_effective_config_bytes,
        }
    }
}

impl Default for OpampConfig {
    fn default() -> Self {
        let limits = ReportLimits::default();
        Self {
            allow_anonymous_agents: false,
            require_agent_token: false,
            opamp_max_message_bytes: 16 << 20,
            opamp_heartbeat_seconds: 30,
            opamp_max_connections: 0,
            opamp_max_conns_per_ip: 1024,
            opamp_admit_rate: 500.0,
            opamp_admit_burst: 2000,
            opamp_tls_cert: None,
            opamp_tls_key: None,
            opamp_tls_client_ca: None,
            opamp_max_attributes: limits.attributes,
            opamp_max_attribute_bytes: limits.attribute_bytes,
            opamp_max_description_bytes: limits.description_bytes,
            opamp_max_health_depth: limits.health_depth,
            opamp_max_health_components: limits.health_components,
            opamp_max_health_bytes: limits.health_bytes,
            opamp_max_components: limits.components,
            opamp_max_components_bytes: limits.components_bytes,
            opamp_max_effective_config_files: limits.effective_config_files,
            opamp_max_effective_config_bytes: limits.effective_config_bytes,
        }
    }
}

/// What the OpAMP handlers share.
pub(crate) struct OpampServer {
    pub(crate) state: OpampDeps,
    pub(crate) config: OpampConfig,
    /// Live WebSocket sessions, so shutdown can wait for their goodbye messages (its `len()` is
    /// also the load measure for `--opamp-max-connections`).
    pub(crate) sessions: TaskTracker,
    /// `--opamp-admit-rate` / `--opamp-admit-burst`.
    pub(crate) admission: crate::limits::Admission,
    /// Whether the listener speaks TLS (for the URLs we offer agents).
    pub(crate) tls: bool,
    /// Live WebSocket sessions by the agent token they were opened with (revocation ends them).
    pub(crate) token_sessions: tokens::TokenSessions,
}

impl OpampServer {
    pub(crate) fn registry(&self) -> &Registry {
        &self.state.agents
    }

    /// `Authorization: Bearer <enrollment token>`: required unless `--allow-anonymous-agents`, and
    /// checked whenever one is presented (a revoked or expired token is refused even where
    /// anonymous agents are allowed, or revocation would only demote the agent to anonymous).
    /// An address over its budget of failed authentications (`--auth-failure-limit`, shared
    /// with the REST API) is refused before its token is looked at; each missing or wrong token
    /// counts against it. `Some` names the stored token, for sessions to end with it; `None`
    /// for an anonymous agent or the `--admin-token` flag's token (which is never revoked and
    /// never expires).
    pub(crate) async fn authorize(
        &self,
        peer: std::net::SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Option<tokens::SessionToken>, AuthError> {
        let presented = crate::auth::bearer(headers).filter(|t| !t.is_empty());
        if presented.is_none() && self.config.allow_anonymous_agents {
            return Ok(None);
        }
        if let Err(wait) = self.state.auth_failures.check(peer.ip()) {
            return Err(AuthError::Throttled(crate::limits::retry_after_secs(wait)));
        }
        let result = self.verify(presented).await;
        if matches!(result, Err(AuthError::Missing | AuthError::Invalid)) {
            self.state.auth_failures.failed(peer.ip());
        }
        result
    }

    async fn verify(
        &self,
        presented: Option<&str>,
    ) -> Result<Option<tokens::SessionToken>, AuthError> {
        let presented = presented.ok_or(AuthError::Missing)?;
        match crate::auth::agent_principal(
            self.state.store.as_ref(),
            self.state.admin_token_hash.as_deref(),
            presented,
        )
        .await
        {
            Ok(Some(crate::auth::Principal::Token(t))) => Ok(Some(tokens::SessionToken {
                id: t.id,
                expires_at: t.expires_at,
            })),
            Ok(Some(crate::auth::Principal::FlagAdmin)) => Ok(None),
            Ok(None) => Err(AuthError::Invalid),
            Err(err) => {
                tracing::error!(error = %err, "Verifying an agent token failed");
                Err(AuthError::Store)
            }
        }
    }

    /// Counts a refused token for the insights' security events (a store outage or a refusal
    /// for too many failures is not one).
    pub(crate) fn count_refusal(&self, peer: std::net::SocketAddr, err: &AuthError) {
        if matches!(err, AuthError::Missing | AuthError::Invalid) {
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

    /// Charges one new agent against `--opamp-admit-rate`; `Err` carries how long it should
    /// wait (also counted, and logged at most once a second, so a storm stays visible without
    /// flooding the log).
    pub(crate) fn admit(&self, peer: std::net::SocketAddr) -> Result<(), Duration> {
        self.admission.admit().inspect_err(|wait| {
            self.state
                .metrics
                .inc("otaas_opamp_refused_total", &[("reason", "admission")]);
            if ADMISSION_LOG.should_log() {
                tracing::warn!(%peer, retry_after_ms = wait.as_millis() as u64,
                    "OpAMP admission rate exceeded; refusing new agents with a retry delay");
            }
        })
    }

    /// The reply every agent gets while we shut down: come back after 1-5 s (jittered, so a
    /// restarted server is not hit by the whole fleet in the same instant).
    pub(crate) fn unavailable(&self, uid: bytes::Bytes) -> ServerToAgent {
        retry_message(
            uid,
            unavailable_delay(),
            "server is shutting down; retry later",
        )
    }
}

/// A jittered 1-5 s delay for agents we cannot serve right now (shutting down, full).
pub(crate) fn unavailable_delay() -> Duration {
    Duration::from_millis(rand::rng().random_range(1000..5000))
}

/// `ServerErrorResponse{UNAVAILABLE}` with `RetryInfo`: the protocol's way to say "come back
/// after `wait`" (the agent should disconnect and wait that long).
pub(crate) fn retry_message(uid: bytes::Bytes, wait: Duration, message: &str) -> ServerToAgent {
    ServerToAgent {
        instance_uid: uid,
        error_response: Some(ServerErrorResponse {
            r#type: ServerErrorResponseType::Unavailable as i32,
            error_message: message.to_owned(),
            details: Some(server_error_response::Details::RetryInfo(RetryInfo {
                retry_after_nanoseconds: u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
            })),
        }),
        capabilities: protocol::SERVER_CAPS.0,
        ..Default::default()
    }
}

/// Logs "admission rate exceeded" at most once a second.
static ADMISSION_LOG: LogThrottle = LogThrottle::new();

struct LogThrottle(std::sync::atomic::AtomicU64);

impl LogThrottle {
    const fn new() -> Self {
        Self(std::sync::atomic::AtomicU64::new(0))
    }

    fn should_log(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.0.swap(now, Ordering::Relaxed) != now
    }
}

/// `503` for an agent that must come back later: `Retry-After` (whole seconds) and a JSON
/// error body saying why (WebSocket upgrades; HTTP polls get a protobuf body, see `http.rs`).
pub(crate) fn retry_later(wait: Duration, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body =
        otaas_api::ErrorBody::new(otaas_api::ErrorCode::Unavailable, message.to_owned(), None);
    (
        ::http::StatusCode::SERVICE_UNAVAILABLE,
        [
            (
                ::http::header::RETRY_AFTER,
                crate::limits::retry_after_secs(wait).to_string(),
            ),
            (::http::header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        serde_json::to_vec(&body).expect("error bodies serialise"),
    )
        .into_response()
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
    /// Too many failed authentications from the address; retry after this many seconds.
    #[error("too many failed authentications from this address; retry later")]
    Throttled(u64),
}

impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        let status = match self {
            AuthError::Missing | AuthError::Invalid => ::http::StatusCode::UNAUTHORIZED,
            AuthError::Store => ::http::StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Throttled(secs) => {
                return (
                    ::http::StatusCode::TOO_MANY_REQUESTS,
                    [(::http::header::RETRY_AFTER, secs.to_string())],
                    self.to_string(),
                )
                    .into_response();
            }
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
            axum::routing::post(own_metrics::post),
        )
        .with_state(server)
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

//! What the OpAMP handlers share ([`OpampServer`]): authentication, admission, retry answers
//! and the URLs offered to agents.

use std::time::Duration;

use ::http::HeaderMap;
use otaas_opamp::proto::{
    RetryInfo, ServerErrorResponse, ServerErrorResponseType, ServerToAgent, server_error_response,
};
use rand::Rng;
use tokio_util::task::TaskTracker;

use super::deps::{OpampConfig, OpampDeps};
use super::{protocol, tokens};
use crate::registry::Registry;

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

    /// Counts a refused token for the insights' security events and records it in the audit
    /// trail (a store outage or a refusal for too many failures is neither: no token was
    /// judged). `interface` and `path` name the route that refused it.
    pub(crate) fn count_refusal(
        &self,
        peer: std::net::SocketAddr,
        headers: &HeaderMap,
        refused: Refused,
        err: &AuthError,
    ) {
        if !matches!(err, AuthError::Missing | AuthError::Invalid) {
            return;
        }
        self.state
            .insights
            .auth_failure(&peer.ip().to_string(), chrono::Utc::now());
        // Describing the token costs a lookup: off the refusal's path, so a storm of bad
        // tokens is answered as fast as before.
        let presented = crate::auth::bearer(headers).map(str::to_owned);
        let store = self.state.store.clone();
        let admin = self.state.admin_token_hash.clone();
        let audit = self.state.audit.clone();
        tokio::spawn(async move {
            let actor = crate::audit::Actor::refused(
                store.as_ref(),
                admin.as_deref(),
                presented.as_deref(),
            )
            .await;
            audit.record(crate::audit::Event {
                interface: refused.interface,
                actor,
                source: Some(peer.ip()),
                method: refused.method.to_owned(),
                path: refused.path.to_owned(),
                object_kind: None,
                object_id: None,
                status: 401,
                error_code: Some("unauthorized".into()),
                revision_before: None,
                revision_after: None,
                dry_run: false,
            });
        });
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

/// Which route refused a token, for the audit trail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refused {
    pub(crate) interface: otaas_api::AuditInterface,
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
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

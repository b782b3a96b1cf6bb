//! What every console handler shares: the [`Console`] substate of `AppState`, the `Viewer`
//! of a page (who signed in, and the CSRF token their forms carry), and the audit record of a
//! console event.

use std::sync::Arc;

use axum::extract::FromRef;
use http::StatusCode;
use otaas_api::{AuditInterface, TokenScope};
use tokio_util::sync::CancellationToken;

use crate::audit::{Actor, Audit, Event};
use crate::auth::{Principal, hashes_equal};
use crate::cluster::FleetView;
use crate::insights::Insights;
use crate::limits::AuthFailures;
use crate::metrics::Metrics;
use crate::rollout::Rollouts;
use crate::state::AppState;
use crate::store::Store;

/// What the console's handlers use (an axum substate of `AppState`).
#[derive(Clone)]
pub struct Console {
    pub store: Arc<dyn Store>,
    pub fleet: FleetView,
    pub rollouts: Arc<Rollouts>,
    pub insights: Arc<Insights>,
    pub audit: Arc<Audit>,
    pub auth_failures: Arc<AuthFailures>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 hex of the `--admin-token` value, if one was given.
    pub admin_token_hash: Option<Arc<str>>,
    /// The listener speaks TLS: session cookies are `Secure`.
    pub tls: bool,
    /// Live streams end with the server.
    pub shutdown: CancellationToken,
}

impl FromRef<AppState> for Console {
    fn from_ref(s: &AppState) -> Self {
        Self {
            store: s.store.clone(),
            fleet: s.fleet.clone(),
            rollouts: s.rollouts.clone(),
            insights: s.insights.clone(),
            audit: s.audit.clone(),
            auth_failures: s.auth_failures.clone(),
            metrics: s.metrics.clone(),
            admin_token_hash: s.admin_token_hash.clone(),
            tls: s.config.tls_cert.is_some() || s.config.tls_self_signed,
            shutdown: s.shutdown.clone(),
        }
    }
}

/// Agents per fleet page.
pub const PAGE_SIZE: usize = 50;

/// The form field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "_csrf";

/// Who is looking at a page: the principal of the session's token, and the CSRF token its
/// forms must carry.
#[derive(Clone, Debug)]
pub(crate) struct Viewer {
    pub(crate) principal: Principal,
    pub(crate) csrf: String,
}

impl Viewer {
    /// Admins see and may use the controls; read-only tokens see everything else.
    pub(crate) fn is_admin(&self) -> bool {
        self.principal.scope() == TokenScope::Admin
    }

    pub(crate) fn role(&self) -> &'static str {
        if self.is_admin() {
            "admin"
        } else {
            "read-only"
        }
    }

    pub(crate) fn actor(&self) -> Actor {
        Actor::of(&self.principal)
    }

    /// Does a submitted CSRF value match this session's (constant time)?
    pub(crate) fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| hashes_equal(s, &self.csrf))
    }
}

/// One console event in the audit trail.
pub(crate) fn record(
    c: &Console,
    actor: Actor,
    source: Option<std::net::IpAddr>,
    method: &str,
    path: &str,
    status: StatusCode,
    object: Option<(&str, String)>,
) {
    c.audit.record(Event {
        interface: AuditInterface::Console,
        actor,
        source,
        method: method.to_owned(),
        path: path.to_owned(),
        object_kind: object.as_ref().map(|o| o.0.to_owned()),
        object_id: object.map(|o| o.1),
        status: status.as_u16(),
        error_code: None,
        revision_before: None,
        revision_after: None,
        dry_run: false,
    });
}

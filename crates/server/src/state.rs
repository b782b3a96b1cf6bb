//! [`AppState`]: the server assembled — every engine and shared part, built once where the
//! server starts (`serve.rs`, or a test's harness) and handed to the REST router. Handlers and
//! engines take only the parts they need: axum substates (`FromRef`) for handlers, explicit
//! constructor arguments for engines. Nothing below the API imports this module.

use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use crate::auth::hash_token;
use crate::cluster::{Cluster, FleetView};
use crate::config::ServeConfig;
use crate::discovery::Discovery;
use crate::events::Events;
use crate::insights::Insights;
use crate::limits::{AuthFailures, RateLimiter};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::revisions::{ConfigWriter, Written};
use crate::rollout::Rollouts;
use crate::store::Store;

/// Shared server state; cheap to clone. Each field is also an axum substate.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Config writes (records, re-rendered groups, revisions) through `store`.
    pub writer: ConfigWriter,
    pub events: Events,
    pub config: Arc<ServeConfig>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 hex of the `--admin-token` value, if one was given (the token itself is dropped).
    pub admin_token_hash: Option<Arc<str>>,
    /// Cancelled when the server begins graceful shutdown; background tasks watch it.
    pub shutdown: CancellationToken,
    /// Every known OpAMP agent of this replica, in memory (see `opamp/registry.rs`); filled by
    /// the OpAMP server.
    pub agents: Arc<Registry>,
    /// The fleet as every replica sees it (this replica's registry plus the others' rows):
    /// read by `GET /api/v1/agents` and the rollout engine.
    pub fleet: FleetView,
    /// Per-token request budget of `/api/v1` (`--api-rate-limit`, `--api-rate-burst`).
    pub rate_limiter: Arc<RateLimiter>,
    /// Failed authentications per source address (`--auth-failure-limit`), shared by the REST
    /// API and the OpAMP listener.
    pub auth_failures: Arc<AuthFailures>,
    /// The rollout engine's runs per agent group (see `rollout/`).
    pub rollouts: Arc<Rollouts>,
    /// Fleet insights: own-metrics history, anomalies, auth failures (see `insights/`).
    pub insights: Arc<Insights>,
    /// The pipelines agents run and their adoption (see `discovery/`).
    pub discovery: Arc<Discovery>,
    /// This replica among the others sharing the database (see `cluster.rs`); alone on SQLite.
    pub cluster: Arc<Cluster>,
    /// The audit trail recorder (see `audit.rs`).
    pub audit: Arc<crate::audit::Audit>,
    /// The operator's config policy (`--deny-components`, `--deny-paths`, ...); `writer`
    /// renders with the same one.
    pub policy: Arc<crate::policy::ConfigPolicy>,
}

impl AppState {
    /// A server alone on its database (SQLite, tests): this replica drives every rollout.
    pub fn new(store: Arc<dyn Store>, config: ServeConfig) -> Self {
        // `serve` checked the flag already; embedders get the default on a bad value.
        let replica_id = crate::config::replica_id(config.replica_id.as_deref())
            .or_else(|_| crate::config::replica_id(None))
            .unwrap_or_default();
        Self::with_cluster(store, config, Cluster::single(replica_id))
    }

    /// The server as one of the replicas `cluster` joined.
    pub fn with_cluster(store: Arc<dyn Store>, config: ServeConfig, cluster: Cluster) -> Self {
        let config_heartbeat = config.opamp.opamp_heartbeat_seconds;
        let admin_token_hash = config
            .admin_token
            .as_ref()
            .map(|t| Arc::from(hash_token(t.expose())));
        let agents = Arc::new(Registry::new(std::time::Duration::from_secs(
            config_heartbeat,
        )));
        agents.set_replica_id(cluster.replica_id());
        agents.set_report_limits(config.opamp.report_limits());
        let rate_limiter = Arc::new(RateLimiter::new(
            config.api_rate_limit,
            config.api_rate_burst,
        ));
        let auth_failures = Arc::new(AuthFailures::new(config.auth_failure_limit));
        let policy = Arc::new(config.policy.policy());
        let metrics = Arc::new(Metrics::new());
        let cluster = Arc::new(cluster);
        let fleet = FleetView::new(cluster.clone(), store.clone(), agents.clone());
        let rollouts = Arc::new(Rollouts::new(store.clone(), fleet.clone(), metrics.clone()));
        let insights = Arc::new(Insights::new(
            store.clone(),
            agents.clone(),
            metrics.clone(),
        ));
        let writer = ConfigWriter::new(store.clone(), policy.clone());
        let audit = Arc::new(crate::audit::Audit::new(store.clone(), metrics.clone()));
        let discovery = Arc::new(Discovery::new(
            agents.clone(),
            store.clone(),
            insights.clone(),
            writer.clone(),
        ));
        Self {
            writer,
            audit,
            discovery,
            policy,
            store,
            events: Events::default(),
            config: Arc::new(config),
            metrics,
            admin_token_hash,
            shutdown: CancellationToken::new(),
            agents,
            fleet,
            rate_limiter,
            auth_failures,
            rollouts,
            insights,
            cluster,
        }
    }

    /// Announces what a committed write produced and counts it.
    pub fn announce<T>(&self, written: &Written<T>) {
        self.events.announce(&self.metrics, written);
    }
}

impl FromRef<AppState> for crate::token_grace::TokenGrace {
    fn from_ref(s: &AppState) -> Self {
        Self {
            writer: s.writer.clone(),
            events: s.events.clone(),
            metrics: s.metrics.clone(),
            shutdown: s.shutdown.clone(),
        }
    }
}

impl FromRef<AppState> for crate::retention::Retention {
    fn from_ref(s: &AppState) -> Self {
        Self {
            store: s.store.clone(),
            rollouts: s.rollouts.clone(),
            fleet: s.fleet.clone(),
            policy: s.config.retention(),
            shutdown: s.shutdown.clone(),
        }
    }
}

/// `token_grace::run(state.clone())` keeps working for embedders holding an `AppState`.
impl From<AppState> for crate::token_grace::TokenGrace {
    fn from(s: AppState) -> Self {
        Self::from_ref(&s)
    }
}

impl FromRef<AppState> for crate::opamp::OpampDeps {
    fn from_ref(s: &AppState) -> Self {
        Self {
            store: s.store.clone(),
            events: s.events.clone(),
            metrics: s.metrics.clone(),
            agents: s.agents.clone(),
            rollouts: s.rollouts.clone(),
            cluster: s.cluster.clone(),
            insights: s.insights.clone(),
            auth_failures: s.auth_failures.clone(),
            admin_token_hash: s.admin_token_hash.clone(),
            shutdown: s.shutdown.clone(),
            audit: s.audit.clone(),
        }
    }
}

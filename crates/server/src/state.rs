//! [`AppState`]: what every handler and background task of `otaas serve` shares.
//!
//! Other areas (OpAMP server, rollout engine) take an `AppState` clone at start-up: the store
//! for data, `events` for change notifications, `shutdown` to stop with the server, `metrics`
//! to publish their own series. Add fields here; don't rename the existing ones.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::hash_token;
use crate::config::ServeConfig;
use crate::events::Events;
use crate::limits::{AuthFailures, RateLimiter};
use crate::metrics::Metrics;
use crate::revisions::{ConfigWriter, Written};
use crate::store::Store;

/// Shared server state; cheap to clone.
#[derive(Clone)]
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
    /// Every known OpAMP agent, in memory (see `opamp/registry.rs`); filled by the OpAMP server,
    /// read by `GET /api/v1/agents`.
    pub agents: Arc<crate::opamp::registry::Registry>,
    /// Per-token request budget of `/api/v1` (`--api-rate-limit`, `--api-rate-burst`).
    pub rate_limiter: Arc<RateLimiter>,
    /// Failed authentications per source address (`--auth-failure-limit`), shared by the REST
    /// API and the OpAMP listener.
    pub auth_failures: Arc<AuthFailures>,
    /// The rollout engine's runs per agent group (see `rollout/`).
    pub rollouts: Arc<crate::rollout::Rollouts>,
    /// Fleet insights: own-metrics history, anomalies, auth failures (see `insights/`).
    pub insights: Arc<crate::insights::Insights>,
    /// This replica among the others sharing the database (see `cluster.rs`); alone on SQLite.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// The operator's config policy (`--deny-components`, `--deny-paths`, ...); `writer`
    /// renders with the same one.
    pub policy: Arc<crate::policy::ConfigPolicy>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServeConfig) -> Self {
        let config_heartbeat = config.opamp.opamp_heartbeat_seconds;
        let admin_token_hash = config
            .admin_token
            .as_ref()
            .map(|t| Arc::from(hash_token(t.expose())));
        // `serve` checked the flag already; embedders get the default on a bad value.
        let replica_id = crate::config::replica_id(config.replica_id.as_deref())
            .or_else(|_| crate::config::replica_id(None))
            .unwrap_or_default();
        let agents = Arc::new(crate::opamp::registry::Registry::new(
            std::time::Duration::from_secs(config_heartbeat),
        ));
        agents.set_replica_id(&replica_id);
        agents.set_report_limits(config.opamp.report_limits());
        let rate_limiter = Arc::new(RateLimiter::new(
            config.api_rate_limit,
            config.api_rate_burst,
        ));
        let auth_failures = Arc::new(AuthFailures::new(config.auth_failure_limit));
        let policy = Arc::new(config.policy.policy());
        Self {
            writer: ConfigWriter::new(store.clone(), policy.clone()),
            policy,
            store,
            events: Events::default(),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            admin_token_hash,
            shutdown: CancellationToken::new(),
            agents,
            rate_limiter,
            auth_failures,
            rollouts: Arc::default(),
            insights: Arc::default(),
            cluster: Arc::new(crate::cluster::Cluster::single(replica_id)),
        }
    }

    /// Announces what a committed write produced and counts it.
    pub fn announce<T>(&self, written: &Written<T>) {
        for _ in &written.revisions {
            self.metrics.inc("otaas_group_revisions_total", &[]);
        }
        self.events.publish_revisions(&written.revisions);
    }
}

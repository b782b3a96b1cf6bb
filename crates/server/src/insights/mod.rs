//! Fleet insights: what the agents' own metrics and the registry say about usage, load,
//! anomalies and security. Owns the per-agent throughput history, the rolling baselines and
//! the auth-failure counts; serves `GET /api/v1/insights` and publishes Prometheus gauges.
//!
//! Files: `ingest.rs` (`POST /v1/metrics` on the OpAMP listener: OTLP/HTTP protobuf, decoded
//! with `opentelemetry-proto`, kept at that edge), `detect.rs` (baselines and anomaly rules,
//! no I/O), this file (state, the report, the Prometheus refresher).
//!
//! Agents are offered the ingest URL as their own-metrics destination by the OpAMP registry
//! (`connection_settings.own_metrics`) when they declare `ReportsOwnMetrics`.

pub mod detect;
pub mod ingest;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use otaas_api::insights::{
    Anomaly, AnomalyKind, AuthFailures, ExposedEndpoint, FleetInsights, PipelineThroughput,
    SecurityInsights,
};
use otaas_api::{EndpointAuth, insights::AgentInsight};
use tokio::task::JoinHandle;

use tokio_util::sync::CancellationToken;

use crate::fleet::{AgentFilter, AgentId, AgentRecord};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::Store;
use detect::AgentSeries;

/// The insights engine: the own-metrics history it keeps, and the registry and store it reads.
pub struct Insights {
    history: History,
    /// Fleet throughput per pipeline at each gauge refresh, for the console's charts.
    trend: Mutex<std::collections::VecDeque<TrendPoint>>,
    store: Arc<dyn Store>,
    /// This replica's agents (insights are per replica).
    agents: Arc<Registry>,
    metrics: Arc<Metrics>,
}

/// An agent that sent no own metrics for this long is dropped from the report (and its memory
/// freed): it stopped reporting, or is gone; heartbeat loss covers the managed ones.
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Most source addresses whose refused agent authentications are remembered.
pub const MAX_AUTH_FAILURE_SOURCES: usize = 1024;

/// Own-metrics history and refused authentications, as heard.
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Own-metrics history per agent id (hex uid), with when we last heard (server clock).
    agents: HashMap<String, (AgentSeries, DateTime<Utc>)>,
    /// Refused OpAMP authentications by source address.
    auth_failures: BTreeMap<String, (u64, DateTime<Utc>)>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a refused agent authentication from `source`. At most
    /// [`MAX_AUTH_FAILURE_SOURCES`] sources are remembered (each is a `/metrics` series): a
    /// new one beyond that replaces the one heard from longest ago.
    pub fn auth_failure(&self, source: &str, now: DateTime<Utc>) {
        let mut inner = self.lock();
        if inner.auth_failures.len() >= MAX_AUTH_FAILURE_SOURCES
            && !inner.auth_failures.contains_key(source)
            && let Some(oldest) = inner
                .auth_failures
                .iter()
                .min_by_key(|(_, (_, last))| *last)
                .map(|(k, _)| k.clone())
        {
            inner.auth_failures.remove(&oldest);
        }
        let entry = inner
            .auth_failures
            .entry(source.to_owned())
            .or_insert((0, now));
        entry.0 += 1;
        entry.1 = now;
    }

    /// Records one own-metrics report of an agent, received at `now`.
    pub fn record(&self, agent_id: &str, sample: detect::Sample, now: DateTime<Utc>) {
        let mut inner = self.lock();
        let entry = inner
            .agents
            .entry(agent_id.to_owned())
            .or_insert_with(|| (AgentSeries::default(), now));
        entry.0.push(sample);
        entry.1 = now;
    }

    /// Forgets agents not heard from for [`STALE_AFTER`].
    fn evict_stale(&self, now: DateTime<Utc>) {
        self.lock()
            .agents
            .retain(|_, (_, heard)| now - *heard <= STALE_AFTER);
    }
}

/// Registry-side anomalies of one agent (heartbeat loss, unhealthy components, drift), or the
/// agent's id in `unmanaged` when it matches no group.
fn registry_side(r: &AgentRecord, unmanaged: &mut Vec<String>, anomalies: &mut Vec<Anomaly>) {
    if r.group_id.is_none() {
        unmanaged.push(r.id.to_string());
        return;
    }
    if !r.connected {
        anomalies.push(Anomaly {
            kind: AnomalyKind::HeartbeatLoss,
            agent_id: r.id.to_string(),
            group_id: r.group_id,
            message: match r.last_seen {
                Some(t) => format!("not heard from since {}", t.to_rfc3339()),
                None => "never heard from".to_owned(),
            },
        });
    }
    if let Some(health) = &r.health {
        for (name, c) in &health.components {
            if !c.healthy {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::UnhealthyComponent,
                    agent_id: r.id.to_string(),
                    group_id: r.group_id,
                    message: if c.last_error.is_empty() {
                        format!("{name} is unhealthy ({})", c.status)
                    } else {
                        format!("{name} is unhealthy: {}", c.last_error)
                    },
                });
            }
        }
    }
    if r.is_drifted() {
        anomalies.push(Anomaly {
            kind: AnomalyKind::Drift,
            agent_id: r.id.to_string(),
            group_id: r.group_id,
            message: format!(
                "runs config {} instead of {}",
                r.effective_config_hash.as_deref().unwrap_or("?"),
                r.desired_config_hash.as_deref().unwrap_or("?")
            ),
        });
    }
}

/// How often the report is published as Prometheus gauges. Each pass walks every agent of
/// the registry; at 2 s it was about a quarter of an idle 10,000-agent server's CPU samples,
/// and scrapers read `/metrics` every 15–60 s anyway. (`GET /api/v1/insights` is computed
/// when asked.)
pub const GAUGES_EVERY: Duration = Duration::from_secs(10);

/// How many points of per-pipeline throughput are kept for charts (ten minutes or more).
pub const TREND_POINTS: usize = 60;

/// Least time between two trend points.
pub const TREND_MIN_GAP: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// The fleet's accepted items per second per collector pipeline id at one refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendPoint {
    pub at: DateTime<Utc>,
    pub accepted: Vec<(String, f64)>,
}

impl Insights {
    pub fn new(store: Arc<dyn Store>, agents: Arc<Registry>, metrics: Arc<Metrics>) -> Self {
        Self {
            history: History::default(),
            trend: Mutex::default(),
            store,
            agents,
            metrics,
        }
    }

    /// Counts a refused agent authentication from `source` (see [`History::auth_failure`]).
    pub fn auth_failure(&self, source: &str, now: DateTime<Utc>) {
        self.history.auth_failure(source, now);
    }

    /// Records one own-metrics report of an agent, received at `now`.
    pub fn record(&self, agent_id: &str, sample: detect::Sample, now: DateTime<Utc>) {
        self.history.record(agent_id, sample, now);
    }

    /// One agent's recent total rates, oldest first (empty when it sends no own metrics).
    pub fn agent_trend(&self, agent_id: &str) -> Vec<detect::RecentPoint> {
        self.history
            .lock()
            .agents
            .get(agent_id)
            .map(|(series, _)| series.recent())
            .unwrap_or_default()
    }

    /// The fleet's accepted rate per pipeline at each of the last [`TREND_POINTS`] reports
    /// (every [`GAUGES_EVERY`], and when asked for, at least [`TREND_MIN_GAP`] apart), oldest
    /// first.
    pub fn pipeline_trend(&self) -> Vec<TrendPoint> {
        self.trend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Keeps a report's per-pipeline rates as a trend point, unless the last point is less than
    /// [`TREND_MIN_GAP`] old (reports are also computed on request).
    fn push_trend(&self, r: &FleetInsights) {
        let mut trend = self.trend.lock().unwrap_or_else(|p| p.into_inner());
        if trend
            .back()
            .is_some_and(|last| r.generated_at - last.at < TREND_MIN_GAP)
        {
            return;
        }
        if trend.len() == TREND_POINTS {
            trend.pop_front();
        }
        trend.push_back(TrendPoint {
            at: r.generated_at,
            accepted: r
                .pipelines
                .iter()
                .map(|p| (p.pipeline.clone(), p.accepted_per_second))
                .collect(),
        });
    }

    /// The whole report.
    pub async fn report(&self) -> Result<FleetInsights, crate::store::StoreError> {
        let now = Utc::now();
        // The registry is walked in place, not copied: this runs every few seconds for the
        // Prometheus gauges, and cloning 10,000 agent records each time was most of an idle
        // server's CPU. Likewise only the agents that connected often lately are copied out for
        // the flapping check, and groups are looked up only for agents that report own metrics.
        let mut connects = self.agents.frequent_connects(detect::FLAP_CONNECTS);
        connects.sort_by_key(|a| a.0);
        // Own-metrics history is kept by the id the agent reported (checked at ingest).
        let reporting: HashSet<AgentId> = self
            .history
            .lock()
            .agents
            .keys()
            .filter_map(|id| AgentId::parse(id).ok())
            .collect();
        let mut groups: HashMap<AgentId, Option<otaas_api::AgentGroupId>> = HashMap::new();
        let mut registry_anomalies = Vec::new();
        let mut unmanaged = Vec::new();
        self.agents.visit(&AgentFilter::default(), |r| {
            if !reporting.is_empty() && reporting.contains(&r.id) {
                groups.insert(r.id, r.group_id);
            }
            registry_side(r, &mut unmanaged, &mut registry_anomalies);
        });
        // Same order as before: by agent id (stable, so each agent's anomalies keep their order).
        unmanaged.sort();
        registry_anomalies.sort_by(|a: &Anomaly, b: &Anomaly| a.agent_id.cmp(&b.agent_id));
        let mut agents = Vec::new();
        let mut anomalies = Vec::new();
        let auth_failures;
        self.history.evict_stale(now);
        {
            let inner = self.history.lock();
            let mut ids: Vec<&String> = inner.agents.keys().collect();
            ids.sort();
            for id in ids {
                let series = &inner.agents[id].0;
                let group_id = AgentId::parse(id)
                    .ok()
                    .and_then(|id| groups.get(&id).copied())
                    .flatten();
                if let Some(view) = series.view(id, group_id) {
                    agents.push(view);
                }
                for (kind, message) in series.anomalies() {
                    anomalies.push(Anomaly {
                        kind,
                        agent_id: id.clone(),
                        group_id,
                        message,
                    });
                }
            }
            auth_failures = inner
                .auth_failures
                .iter()
                .map(|(source, (count, last_at))| AuthFailures {
                    source: source.clone(),
                    count: *count,
                    last_at: *last_at,
                })
                .collect();
        }
        // Flapping connections, from the registry's connect times (any agent, managed or not:
        // a reconnect loop costs the server either way).
        for (id, group_id, times) in connects {
            if let Some((kind, message)) = detect::flapping(&times, now) {
                anomalies.push(Anomaly {
                    kind,
                    group_id,
                    agent_id: id.to_string(),
                    message,
                });
            }
        }
        anomalies.extend(registry_anomalies);
        let exposed_endpoints = self
            .store
            .list_endpoints()
            .await?
            .into_iter()
            .filter(|e| e.spec.tls.is_none() || e.spec.auth == EndpointAuth::None)
            .map(|e| ExposedEndpoint {
                endpoint_id: e.id,
                name: e.spec.name.clone(),
                tls: e.spec.tls.is_some(),
                auth: e.spec.auth != EndpointAuth::None,
            })
            .collect();
        let pipelines = otaas_api::insights::sum_pipelines(&agents);
        let mut anomaly_counts = BTreeMap::new();
        for a in &anomalies {
            *anomaly_counts.entry(a.kind).or_insert(0u64) += 1;
        }
        let report = FleetInsights {
            generated_at: now,
            agents,
            pipelines,
            anomalies,
            anomaly_counts,
            security: SecurityInsights {
                auth_failures,
                unmanaged_agents: unmanaged,
                exposed_endpoints,
            },
        };
        self.push_trend(&report);
        Ok(report)
    }

    /// Publishes the report as Prometheus gauges every `every`; stops with the server.
    pub fn spawn_metrics(
        self: Arc<Self>,
        every: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                match self.report().await {
                    Ok(r) => self.publish(&r),
                    Err(err) => tracing::warn!(error = %err, "Computing insights failed"),
                }
            }
        })
    }

    fn publish(&self, r: &FleetInsights) {
        let m = &self.metrics;
        for kind in [
            AnomalyKind::ThroughputDrop,
            AnomalyKind::ThroughputSpike,
            AnomalyKind::RefusedSpike,
            AnomalyKind::HeartbeatLoss,
            AnomalyKind::UnhealthyComponent,
            AnomalyKind::Drift,
            AnomalyKind::FlappingConnection,
        ] {
            let n = r.anomaly_counts.get(&kind).copied().unwrap_or(0);
            m.set(
                "otaas_insights_anomalies",
                &[("kind", &kind_name(kind))],
                n as f64,
            );
        }
        for f in &r.security.auth_failures {
            m.set(
                "otaas_insights_agent_auth_failures",
                &[("source", &f.source)],
                f.count as f64,
            );
        }
        m.set(
            "otaas_insights_unmanaged_agents",
            &[],
            r.security.unmanaged_agents.len() as f64,
        );
        m.set(
            "otaas_insights_exposed_endpoints",
            &[],
            r.security.exposed_endpoints.len() as f64,
        );
        // Per agent and per pipeline: whole families at once, so departed ones disappear.
        let agent_gauges: [(&str, AgentGauge); 5] = [
            ("otaas_agent_accepted_per_second", |a| {
                Some(a.accepted_per_second)
            }),
            ("otaas_agent_refused_per_second", |a| {
                Some(a.refused_per_second)
            }),
            ("otaas_agent_sent_per_second", |a| Some(a.sent_per_second)),
            ("otaas_agent_memory_rss_bytes", |a| a.memory_rss_bytes),
            ("otaas_agent_cpu_seconds_total", |a| a.cpu_seconds_total),
        ];
        for (name, value) in agent_gauges {
            let series: Vec<_> = r
                .agents
                .iter()
                .filter_map(|a| Some((vec![("agent", a.agent_id.as_str())], value(a)?)))
                .collect();
            m.set_all(name, &series);
        }
        let pipeline_gauges: [(&str, PipelineGauge); 4] = [
            ("otaas_pipeline_accepted_per_second", |p| {
                p.accepted_per_second
            }),
            ("otaas_pipeline_refused_per_second", |p| {
                p.refused_per_second
            }),
            ("otaas_pipeline_sent_per_second", |p| p.sent_per_second),
            ("otaas_pipeline_agents", |p| p.agents as f64),
        ];
        for (name, value) in pipeline_gauges {
            let series: Vec<_> = r
                .pipelines
                .iter()
                .map(|p| (vec![("pipeline", p.pipeline.as_str())], value(p)))
                .collect();
            m.set_all(name, &series);
        }
    }
}

fn kind_name(kind: AnomalyKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// How a per-agent / per-pipeline gauge reads its value.
type AgentGauge = fn(&AgentInsight) -> Option<f64>;
type PipelineGauge = fn(&PipelineThroughput) -> f64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failures_remember_a_bounded_number_of_sources_dropping_the_oldest() {
        // Given the table full of sources, the first one heard longest ago
        let insights = History::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..MAX_AUTH_FAILURE_SOURCES {
            let at = t0 + chrono::TimeDelta::seconds(i as i64);
            insights.auth_failure(&format!("10.0.{}.{}", i / 256, i % 256), at);
        }
        // When a known source fails again and then a new source fails
        let later = t0 + chrono::TimeDelta::hours(1);
        insights.auth_failure("10.0.0.0", later);
        insights.auth_failure("192.0.2.1", later);
        // Then the size stays at the bound; the oldest (10.0.0.1, as 10.0.0.0 was refreshed) left
        let inner = insights.lock();
        assert_eq!(inner.auth_failures.len(), MAX_AUTH_FAILURE_SOURCES);
        assert_eq!(inner.auth_failures["10.0.0.0"].0, 2);
        assert_eq!(inner.auth_failures["192.0.2.1"].0, 1);
        assert!(!inner.auth_failures.contains_key("10.0.0.1"));
        assert!(inner.auth_failures.contains_key("10.0.0.2"));
    }

    #[test]
    fn agents_silent_for_ten_minutes_are_forgotten() {
        let insights = History::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let sample = |at| detect::Sample {
            at,
            series: Default::default(),
            cpu_seconds: None,
            memory_rss: None,
        };
        insights.record("old", sample(t0), t0);
        let later = t0 + STALE_AFTER;
        insights.record("new", sample(later), later);
        insights.evict_stale(later);
        assert_eq!(
            insights.lock().agents.len(),
            2,
            "exactly 10 minutes is kept"
        );
        insights.evict_stale(later + chrono::TimeDelta::seconds(1));
        let inner = insights.lock();
        assert_eq!(inner.agents.keys().collect::<Vec<_>>(), ["new"]);
    }
}

//! `GET /api/v1/insights`: fleet usage, load, anomalies and security events, from the agents'
//! own metrics (OTLP/HTTP ingest on the OpAMP listener) and the OpAMP registry. Also the shape
//! of the provider's `otaas_fleet_insights` data source.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentGroupId, EndpointId};

/// Rates are shown to the thousandth: the float noise of summing and dividing
/// (`100.00000000000006`) means nothing to a reader and breaks equality in configs.
fn round_rate(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn rate<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_rate(*v))
}

fn opt_rate<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&round_rate(*v)),
        None => s.serialize_none(),
    }
}

/// Throughput of one component (receiver or exporter) of one agent, from its own metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentThroughput {
    /// `receiver/<id>` or `exporter/<id>`.
    pub component: String,
    /// Items (spans, metric points, log records) accepted / refused by a receiver or sent by
    /// an exporter, in total as last reported, and per second over the last report interval.
    pub accepted_total: f64,
    pub refused_total: f64,
    pub sent_total: f64,
    #[serde(serialize_with = "rate")]
    pub accepted_per_second: f64,
    #[serde(serialize_with = "rate")]
    pub refused_per_second: f64,
    #[serde(serialize_with = "rate")]
    pub sent_per_second: f64,
}

/// Throughput of one collector pipeline (`<signal>/<pipeline name>`, as rendered from an otaas
/// pipeline), from the `otelcol.pipeline.id` attribute of the agents' own metrics. In an
/// agent's insight it is that agent's; in the fleet list it is summed over `agents` agents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineThroughput {
    /// The collector pipeline id, e.g. `traces/checkout`.
    pub pipeline: String,
    /// Agents reporting this pipeline (1 in an agent's own list).
    pub agents: u64,
    #[serde(serialize_with = "rate")]
    pub accepted_per_second: f64,
    #[serde(serialize_with = "rate")]
    pub refused_per_second: f64,
    #[serde(serialize_with = "rate")]
    pub sent_per_second: f64,
}

/// The per-pipeline throughput of `agents` summed per pipeline id (each agent counts once per
/// pipeline it reports), ordered by pipeline id: the fleet list the server reports, or the
/// same narrowed to some agents.
pub fn sum_pipelines<'a>(
    agents: impl IntoIterator<Item = &'a AgentInsight>,
) -> Vec<PipelineThroughput> {
    let mut sums: std::collections::BTreeMap<&str, PipelineThroughput> = Default::default();
    for p in agents.into_iter().flat_map(|a| &a.pipelines) {
        let sum = sums
            .entry(p.pipeline.as_str())
            .or_insert_with(|| PipelineThroughput {
                pipeline: p.pipeline.clone(),
                agents: 0,
                accepted_per_second: 0.0,
                refused_per_second: 0.0,
                sent_per_second: 0.0,
            });
        sum.agents += 1;
        sum.accepted_per_second += p.accepted_per_second;
        sum.refused_per_second += p.refused_per_second;
        sum.sent_per_second += p.sent_per_second;
    }
    sums.into_values().collect()
}

/// One agent's load, as its own metrics say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentInsight {
    pub agent_id: String,
    pub group_id: Option<AgentGroupId>,
    #[serde(serialize_with = "rate")]
    pub accepted_per_second: f64,
    #[serde(serialize_with = "rate")]
    pub refused_per_second: f64,
    #[serde(serialize_with = "rate")]
    pub sent_per_second: f64,
    /// The rolling baseline of `accepted_per_second` anomalies are judged against.
    #[serde(serialize_with = "opt_rate")]
    pub baseline_accepted_per_second: Option<f64>,
    pub cpu_seconds_total: Option<f64>,
    pub memory_rss_bytes: Option<f64>,
    #[serde(default)]
    pub components: Vec<ComponentThroughput>,
    /// Per pipeline, when the agent's metrics name pipelines (`otelcol.pipeline.id`).
    #[serde(default)]
    pub pipelines: Vec<PipelineThroughput>,
    pub last_report_at: DateTime<Utc>,
    /// Own-metrics reports received from this agent since the server started.
    pub reports: u64,
}

/// What looks wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    ThroughputDrop,
    ThroughputSpike,
    RefusedSpike,
    HeartbeatLoss,
    UnhealthyComponent,
    Drift,
    /// The agent connected at least `FLAP_CONNECTS` times within `FLAP_WINDOW` (see the
    /// server's `insights::detect`).
    FlappingConnection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub agent_id: String,
    pub group_id: Option<AgentGroupId>,
    pub message: String,
}

/// Failed authentications from one source address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFailures {
    pub source: String,
    pub count: u64,
    pub last_at: DateTime<Utc>,
}

/// An ingest endpoint served without TLS or without authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposedEndpoint {
    pub endpoint_id: EndpointId,
    pub name: String,
    pub tls: bool,
    pub auth: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityInsights {
    /// OpAMP connections refused for a missing or wrong token, by source address.
    #[serde(default)]
    pub auth_failures: Vec<AuthFailures>,
    /// Agents that match no group (never pushed a config): instance uids.
    #[serde(default)]
    pub unmanaged_agents: Vec<String>,
    #[serde(default)]
    pub exposed_endpoints: Vec<ExposedEndpoint>,
}

/// `GET /api/v1/insights`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetInsights {
    pub generated_at: DateTime<Utc>,
    /// Agents that sent own metrics, by id order.
    #[serde(default)]
    pub agents: Vec<AgentInsight>,
    /// Throughput per collector pipeline over the whole fleet, by pipeline id.
    #[serde(default)]
    pub pipelines: Vec<PipelineThroughput>,
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
    /// Anomaly counts by kind.
    #[serde(default)]
    pub anomaly_counts: BTreeMap<AnomalyKind, u64>,
    pub security: SecurityInsights,
}

#[cfg(test)]
mod rounding_tests {
    use super::*;

    #[test]
    fn rates_are_serialised_to_the_thousandth() {
        let p = PipelineThroughput {
            pipeline: "logs/app".into(),
            agents: 3,
            accepted_per_second: 0.1 + 0.2 + 99.7 + 1e-13,
            refused_per_second: 2.0 / 3.0,
            sent_per_second: 0.0,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"pipeline":"logs/app","agents":3,"accepted_per_second":100.0,"refused_per_second":0.667,"sent_per_second":0.0}"#
        );
    }
}

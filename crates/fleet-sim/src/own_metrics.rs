//! A simulated collector's own metrics: when the server offers an own-metrics destination
//! (OpAMP `connection_settings.own_metrics`), each agent POSTs OTLP/HTTP metrics there
//! (gzip-compressed, as collectors do by default) every `--own-metrics-seconds`: cumulative
//! `otelcol_receiver_accepted_spans`, `otelcol_receiver_refused_spans`,
//! `otelcol_exporter_sent_spans` per pipeline of the running config (one instrumentation scope
//! per pipeline with the `otelcol.pipeline.id` scope attribute, as the collector's pipeline
//! telemetry does; the agent's rate is split evenly between its pipelines), CPU seconds and
//! RSS, at the rates the control sets (`throughput N`, `refused N` on `--control-stdin`).
//!
//! Lifecycle: one task per agent, started on the first offer, stopped with the simulation.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use otaas_opamp::client::Target;

/// Items per second every agent of this process receives and refuses (set by the control).
#[derive(Debug)]
pub(crate) struct Rates {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) every: Duration,
    /// `drift on`: agents report a hand-edited effective config (see `agent.rs`).
    pub(crate) drift: std::sync::atomic::AtomicBool,
    /// `flap on`: agents drop their connection shortly after each connect and reconnect (see
    /// `transport.rs`). A watch, so live sessions hear of the change at once.
    pub(crate) flap: tokio::sync::watch::Sender<bool>,
    /// `unhealthy on`: agents report every pipeline unhealthy (see `agent.rs`).
    pub(crate) unhealthy: std::sync::atomic::AtomicBool,
}

impl Rates {
    pub(crate) fn new(accepted: u64, every: Duration) -> Self {
        Self {
            accepted: AtomicU64::new(accepted),
            refused: AtomicU64::new(0),
            every,
            drift: std::sync::atomic::AtomicBool::new(false),
            flap: tokio::sync::watch::Sender::new(false),
            unhealthy: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn point(value: f64, attrs: Vec<KeyValue>, start: u64, now: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn counter(name: &str, p: NumberDataPoint) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![p],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// Cumulative counters of one pipeline (or of the agent, before it runs a config).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) accepted: f64,
    pub(crate) refused: f64,
    pub(crate) sent: f64,
}

/// The export request for an agent's counters at `now` (ns since the epoch): one scope per
/// pipeline (key `""`: no pipeline named), then one with the process metrics.
pub(crate) fn request(
    uid: &str,
    pipelines: &BTreeMap<String, Totals>,
    cpu: f64,
    start: u64,
    now: u64,
) -> ExportMetricsServiceRequest {
    let recv = || vec![kv("receiver", "otlp"), kv("transport", "http")];
    let mut scopes: Vec<ScopeMetrics> = pipelines
        .iter()
        .map(|(pipeline, t)| ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: "otaas-fleet-sim".to_owned(),
                attributes: if pipeline.is_empty() {
                    vec![]
                } else {
                    vec![kv(otaas_opamp::names::PIPELINE_ATTR, pipeline)]
                },
                ..Default::default()
            }),
            metrics: vec![
                counter(
                    "otelcol_receiver_accepted_spans",
                    point(t.accepted, recv(), start, now),
                ),
                counter(
                    "otelcol_receiver_refused_spans",
                    point(t.refused, recv(), start, now),
                ),
                counter(
                    "otelcol_exporter_sent_spans",
                    point(t.sent, vec![kv("exporter", "debug")], start, now),
                ),
            ],
            ..Default::default()
        })
        .collect();
    scopes.push(ScopeMetrics {
        metrics: vec![
            counter(
                "otelcol_process_cpu_seconds",
                point(cpu, vec![], start, now),
            ),
            Metric {
                name: "otelcol_process_memory_rss".to_owned(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![point(48.0 * 1024.0 * 1024.0, vec![], start, now)],
                })),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "otaas-fleet-sim"),
                    kv("service.instance.id", uid),
                ],
                ..Default::default()
            }),
            scope_metrics: scopes,
            ..Default::default()
        }],
    }
}

/// Adds `secs` worth of the current rates to the counters of the pipelines now running
/// (split evenly); pipelines no longer running are dropped, new ones start at zero.
fn advance(totals: &mut BTreeMap<String, Totals>, running: &[String], rates: &Rates, secs: f64) {
    let keys: Vec<String> = if running.is_empty() {
        vec![String::new()]
    } else {
        running.to_vec()
    };
    totals.retain(|k, _| keys.contains(k));
    let share = secs / keys.len() as f64;
    let accepted = rates.accepted.load(Ordering::Relaxed) as f64 * share;
    let refused = rates.refused.load(Ordering::Relaxed) as f64 * share;
    for k in keys {
        let t = totals.entry(k).or_default();
        t.accepted += accepted;
        t.refused += refused;
        t.sent += accepted;
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body)?;
    enc.finish()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends the agent's own metrics to `url` until `stop`; `running` holds the pipelines of the
/// agent's running config.
pub(crate) async fn run(
    uid: String,
    url: String,
    target: Arc<Target>,
    rates: Arc<Rates>,
    running: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
) {
    let start = now_ns();
    let mut last = start;
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut cpu = 0.0;
    let mut tick = tokio::time::interval(rates.every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = now_ns();
        let secs = now.saturating_sub(last) as f64 / 1e9;
        last = now;
        let pipelines = running.lock().unwrap_or_else(|p| p.into_inner()).clone();
        advance(&mut totals, &pipelines, &rates, secs);
        cpu += 0.01 * secs;
        let body = match gzip(&request(&uid, &totals, cpu, start, now).encode_to_vec()) {
            Ok(body) => body,
            Err(err) => {
                tracing::debug!(error = %err, "Compressing own metrics failed");
                continue;
            }
        };
        let mut req = target
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(http::header::CONTENT_ENCODING, "gzip")
            .body(body);
        if let Some(token) = &target.token {
            req = req.bearer_auth(token);
        }
        // Own metrics are best effort, like a collector's: a failed export is dropped.
        if let Err(err) = req.send().await {
            tracing::debug!(error = %err, "Own metrics export failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_split_between_running_pipelines() {
        let rates = Rates::new(100, Duration::from_secs(1));
        let mut totals = BTreeMap::new();
        // No config yet: the agent's counters, no pipeline.
        advance(&mut totals, &[], &rates, 1.0);
        assert_eq!(totals.keys().collect::<Vec<_>>(), [""]);
        // Two pipelines: half each; the unattributed series is gone.
        let running = ["logs/a".to_owned(), "traces/a".to_owned()];
        advance(&mut totals, &running, &rates, 2.0);
        advance(&mut totals, &running, &rates, 2.0);
        assert_eq!(totals.len(), 2);
        assert_eq!(totals["logs/a"].accepted, 200.0);
        assert_eq!(totals["traces/a"].sent, 200.0);
        // The request names each pipeline on its scope.
        let req = request("u", &totals, 0.0, 1, 2);
        let scopes = &req.resource_metrics[0].scope_metrics;
        assert_eq!(scopes.len(), 3);
        let named: Vec<&str> = scopes
            .iter()
            .filter_map(|s| s.scope.as_ref())
            .flat_map(|s| &s.attributes)
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(v) => Some(v.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(named, ["logs/a", "traces/a"]);
    }
}

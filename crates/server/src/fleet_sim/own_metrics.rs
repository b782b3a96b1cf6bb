//! A simulated collector's own metrics: when the server offers an own-metrics destination
//! (OpAMP `connection_settings.own_metrics`), each agent POSTs OTLP/HTTP metrics there every
//! `--own-metrics-seconds`: cumulative `otelcol_receiver_accepted_spans`,
//! `otelcol_receiver_refused_spans`, `otelcol_exporter_sent_spans`, CPU seconds and RSS, at the
//! rates the control sets (`throughput N`, `refused N` on `--control-stdin`).
//!
//! Lifecycle: one task per agent, started on the first offer, stopped with the simulation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use super::transport::Target;

/// Items per second every agent of this process receives and refuses (set by the control).
#[derive(Debug)]
pub(crate) struct Rates {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) every: Duration,
    /// `drift on`: agents report a hand-edited effective config (see `agent.rs`).
    pub(crate) drift: std::sync::atomic::AtomicBool,
}

impl Rates {
    pub(crate) fn new(accepted: u64, every: Duration) -> Self {
        Self {
            accepted: AtomicU64::new(accepted),
            refused: AtomicU64::new(0),
            every,
            drift: std::sync::atomic::AtomicBool::new(false),
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

/// The export request for an agent's counters at `now` (ns since the epoch).
pub(crate) fn request(
    uid: &str,
    totals: [f64; 4],
    start: u64,
    now: u64,
) -> ExportMetricsServiceRequest {
    let [accepted, refused, sent, cpu] = totals;
    let recv = || vec![kv("receiver", "otlp"), kv("transport", "http")];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "otaas-fleet-sim"),
                    kv("service.instance.id", uid),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    counter(
                        "otelcol_receiver_accepted_spans",
                        point(accepted, recv(), start, now),
                    ),
                    counter(
                        "otelcol_receiver_refused_spans",
                        point(refused, recv(), start, now),
                    ),
                    counter(
                        "otelcol_exporter_sent_spans",
                        point(sent, vec![kv("exporter", "debug")], start, now),
                    ),
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
            }],
            ..Default::default()
        }],
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends the agent's own metrics to `url` until `stop`.
pub(crate) async fn run(
    uid: String,
    url: String,
    target: Arc<Target>,
    rates: Arc<Rates>,
    stop: CancellationToken,
) {
    let start = now_ns();
    let mut last = start;
    let mut totals = [0.0f64; 4];
    let mut tick = tokio::time::interval(rates.every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = now_ns();
        let secs = now.saturating_sub(last) as f64 / 1e9;
        last = now;
        let accepted = rates.accepted.load(Ordering::Relaxed) as f64 * secs;
        totals[0] += accepted;
        totals[1] += rates.refused.load(Ordering::Relaxed) as f64 * secs;
        totals[2] += accepted;
        totals[3] += 0.01 * secs;
        let body = request(&uid, totals, start, now).encode_to_vec();
        let mut req = target
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
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

//! The agents' own metrics, as `POST /v1/metrics` on the OpAMP listener receives them over
//! OTLP/HTTP (the handler is `opamp/own_metrics.rs`): the OTLP metric types
//! (`opentelemetry-proto`) stay in this file; what leaves it is a [`Sample`] per agent.
//!
//! The agent is named by the resource attribute `service.instance.id` (its instance uid in
//! hex, as OpAMP agents report it); data for agents the registry does not know is ignored.
//! Metric names follow the collector's own telemetry, with `.` or `_` separators and with or
//! without the `otelcol_` prefix: `receiver_accepted_*`, `receiver_refused_*`,
//! `exporter_sent_*` (by the `receiver` / `exporter` attribute), `process_cpu_seconds`,
//! `process_memory_rss`. The pipeline is the `otelcol.pipeline.id` attribute of the data point
//! or, as the collector's pipeline telemetry puts it, of the instrumentation scope.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};

use super::detect::{Counters, Sample, Series};

/// The path agents are offered as their own-metrics destination.
pub use otaas_opamp::names::OWN_METRICS_PATH as METRICS_PATH;

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn number(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

use otaas_opamp::names::PIPELINE_ATTR;

/// Most distinct series (component × pipeline) kept per agent and report. A large collector
/// has a few dozen components in a handful of pipelines; the bound keeps an agent that makes
/// up names from growing our memory and `/metrics` without end (each series becomes gauges).
pub const MAX_SERIES_PER_AGENT: usize = 256;

/// What one export request holds: a sample per agent named in it, and how many data points
/// were left out because their agent was over [`MAX_SERIES_PER_AGENT`].
#[derive(Debug, Default)]
pub struct Samples {
    pub agents: Vec<(String, Sample)>,
    pub rejected_points: i64,
}

/// Turns one request into samples, one per agent named in it.
pub fn samples(req: ExportMetricsServiceRequest, now: DateTime<Utc>) -> Samples {
    let mut out = Vec::new();
    let mut rejected_points = 0i64;
    for rm in req.resource_metrics {
        let attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let Some(agent) = attr(&attrs, "service.instance.id") else {
            continue;
        };
        let agent = agent.to_ascii_lowercase().replace('-', "");
        let mut sample = Sample {
            at: now,
            series: BTreeMap::new(),
            cpu_seconds: None,
            memory_rss: None,
        };
        let mut latest = 0u64;
        for sm in rm.scope_metrics {
            let scope_attrs = sm.scope.map(|s| s.attributes).unwrap_or_default();
            let scope_pipeline = attr(&scope_attrs, PIPELINE_ATTR);
            for m in sm.metrics {
                let name = m.name.replace('.', "_");
                let name = name.strip_prefix("otelcol_").unwrap_or(&name).to_owned();
                let points = match m.data {
                    Some(metric::Data::Sum(s)) => s.data_points,
                    Some(metric::Data::Gauge(g)) => g.data_points,
                    _ => continue,
                };
                for p in &points {
                    latest = latest.max(p.time_unix_nano);
                    let v = number(p);
                    let pipeline = attr(&p.attributes, PIPELINE_ATTR).or(scope_pipeline);
                    let mut add = |kind: &str, field: fn(&mut Counters) -> &mut f64| {
                        let id = attr(&p.attributes, kind).unwrap_or("unknown");
                        let series = Series::new(format!("{kind}/{id}"), pipeline);
                        let full = sample.series.len() >= MAX_SERIES_PER_AGENT;
                        if full && !sample.series.contains_key(&series) {
                            rejected_points += 1;
                            return;
                        }
                        *field(sample.series.entry(series).or_default()) += v;
                    };
                    if name.starts_with("receiver_accepted_") {
                        add("receiver", |c| &mut c.accepted);
                    } else if name.starts_with("receiver_refused_") {
                        add("receiver", |c| &mut c.refused);
                    } else if name.starts_with("exporter_sent_") {
                        add("exporter", |c| &mut c.sent);
                    } else if name.starts_with("process_cpu_seconds") {
                        *sample.cpu_seconds.get_or_insert(0.0) += v;
                    } else if name.starts_with("process_memory_rss") {
                        *sample.memory_rss.get_or_insert(0.0) += v;
                    }
                }
            }
        }
        // The agent's own clock says when the counters were read; use it when it has one so
        // network delays do not distort rates.
        if latest > 0 {
            sample.at = DateTime::from_timestamp_nanos(latest as i64);
        }
        out.push((agent, sample));
    }
    Samples {
        agents: out,
        rejected_points,
    }
}

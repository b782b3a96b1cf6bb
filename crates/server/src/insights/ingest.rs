//! `POST /v1/metrics` on the OpAMP listener: the agents' own metrics over OTLP/HTTP
//! (`application/x-protobuf`). The OTLP wire types (`opentelemetry-proto`) stay in this file;
//! what leaves it is a [`Sample`] per agent.
//!
//! The agent is named by the resource attribute `service.instance.id` (its instance uid in
//! hex, as OpAMP agents report it); data for agents the registry does not know is ignored.
//! Metric names follow the collector's own telemetry, with `.` or `_` separators and with or
//! without the `otelcol_` prefix: `receiver_accepted_*`, `receiver_refused_*`,
//! `exporter_sent_*` (by the `receiver` / `exporter` attribute), `process_cpu_seconds`,
//! `process_memory_rss`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use otaas_opamp::InstanceUid;
use prost::Message as _;

use super::detect::{Counters, Sample};
use crate::opamp::OpampServer;

/// The path agents are offered as their own-metrics destination.
pub const METRICS_PATH: &str = "/v1/metrics";

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

/// Turns one request into samples, one per agent named in it.
pub fn samples(req: ExportMetricsServiceRequest, now: DateTime<Utc>) -> Vec<(String, Sample)> {
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        let attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let Some(agent) = attr(&attrs, "service.instance.id") else {
            continue;
        };
        let agent = agent.to_ascii_lowercase().replace('-', "");
        let mut sample = Sample {
            at: now,
            components: BTreeMap::new(),
            cpu_seconds: None,
            memory_rss: None,
        };
        let mut latest = 0u64;
        for sm in rm.scope_metrics {
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
                    let mut add = |kind: &str, field: fn(&mut Counters) -> &mut f64| {
                        let id = attr(&p.attributes, kind).unwrap_or("unknown");
                        let c = sample.components.entry(format!("{kind}/{id}")).or_default();
                        *field(c) += v;
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
    out
}

fn reply(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

/// The handler.
pub(crate) async fn post(
    State(server): State<Arc<OpampServer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Utc::now();
    if let Err(err) = server.authorize(&headers).await {
        server.count_refusal(peer, &err);
        return err.into_response();
    }
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"));
    if !protobuf {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-protobuf (OTLP/HTTP)",
        );
    }
    let req = match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(err) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("not an OTLP metrics export request: {err}"),
            );
        }
    };
    for (agent, sample) in samples(req, now) {
        // Only agents we know: the endpoint is not a general-purpose metrics sink.
        let known = InstanceUid::parse(&agent)
            .ok()
            .and_then(|uid| server.state.agents.get(uid))
            .is_some();
        if known {
            server.state.insights.record(&agent, sample);
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportMetricsServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

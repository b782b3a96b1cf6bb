//! `POST /v1/metrics` on the OpAMP listener: the agents' own metrics over OTLP/HTTP
//! (`application/x-protobuf`, plain or `Content-Encoding: gzip` — collectors compress by
//! default). The OTLP wire types (`opentelemetry-proto`) stay in this file; what leaves it is a
//! [`Sample`] per agent.
//!
//! The agent is named by the resource attribute `service.instance.id` (its instance uid in
//! hex, as OpAMP agents report it); data for agents the registry does not know is ignored.
//! Metric names follow the collector's own telemetry, with `.` or `_` separators and with or
//! without the `otelcol_` prefix: `receiver_accepted_*`, `receiver_refused_*`,
//! `exporter_sent_*` (by the `receiver` / `exporter` attribute), `process_cpu_seconds`,
//! `process_memory_rss`. The pipeline is the `otelcol.pipeline.id` attribute of the data point
//! or, as the collector's pipeline telemetry puts it, of the instrumentation scope.
//!
//! Errors follow OTLP/HTTP: 400 (undecodable or corrupt gzip), 413 (over the size limit after
//! decompression), 415 (a content type or encoding we do not read), each with a
//! `google.rpc.Status` body in the request's encoding (protobuf, or JSON for a JSON request).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use otaas_opamp::InstanceUid;
use prost::Message as _;

use super::detect::{Counters, Sample, Series};
use crate::opamp::OpampServer;

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

/// `google.rpc.Status`, the OTLP/HTTP error body (only the fields we fill).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC codes for the `code` field (clients must not act on it over HTTP, but it helps a
/// human reading the body).
const INVALID_ARGUMENT: i32 = 3;
const UNAUTHENTICATED: i32 = 16;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNIMPLEMENTED: i32 = 12;

/// Whether the request says it is OTLP/JSON: then the error body is JSON too.
fn wants_json(headers: &HeaderMap) -> bool {
    essence(headers).is_some_and(|ct| ct.eq_ignore_ascii_case("application/json"))
}

fn essence(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.split(';').next().unwrap_or_default().trim())
}

/// An error reply: `google.rpc.Status` in the request's encoding.
fn reply(status: StatusCode, headers: &HeaderMap, message: &str) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => UNAUTHENTICATED,
        StatusCode::PAYLOAD_TOO_LARGE => RESOURCE_EXHAUSTED,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => UNIMPLEMENTED,
        _ => INVALID_ARGUMENT,
    };
    if wants_json(headers) {
        let body = serde_json::json!({ "code": code, "message": message });
        return (status, axum::Json(body)).into_response();
    }
    let body = RpcStatus {
        code,
        message: message.to_owned(),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body.encode_to_vec(),
    )
        .into_response()
}

/// The handler.
pub(crate) async fn post(
    State(server): State<Arc<OpampServer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let now = Utc::now();
    if let Err(err) = server.authorize(peer, &headers).await {
        server.count_refusal(peer, &err);
        let mut resp = reply(StatusCode::UNAUTHORIZED, &headers, &err.to_string());
        if matches!(err, crate::opamp::AuthError::Store) {
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        } else if let crate::opamp::AuthError::Throttled(secs) = err {
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        } else {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        }
        return resp;
    }
    if !essence(&headers).is_some_and(|ct| ct.eq_ignore_ascii_case("application/x-protobuf")) {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &headers,
            "Content-Type must be application/x-protobuf (OTLP/HTTP protobuf; JSON is not read)",
        );
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &headers,
                &format!("Content-Encoding {other:?} is not supported (use gzip or none)"),
            );
        }
    };
    let limit = server.config.opamp_max_message_bytes;
    let too_large = || {
        reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            &headers,
            &format!("the metrics export exceeds the limit of {limit} bytes (after decompression)"),
        )
    };
    let Ok(raw) = axum::body::to_bytes(body, limit).await else {
        return too_large();
    };
    let body = if gzip {
        use crate::opamp::http::{GunzipError, gunzip};
        match gunzip(&raw, limit) {
            Ok(body) => body,
            Err(GunzipError::TooLarge) => return too_large(),
            Err(GunzipError::Corrupt(err)) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    &headers,
                    &format!("the body is not valid gzip: {err}"),
                );
            }
        }
    } else {
        raw
    };
    let req = match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(err) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &headers,
                &format!("not an OTLP metrics export request: {err}"),
            );
        }
    };
    let Samples {
        agents,
        rejected_points,
    } = samples(req, now);
    for (agent, sample) in agents {
        // Only agents we know: the endpoint is not a general-purpose metrics sink.
        let known = InstanceUid::parse(&agent)
            .ok()
            .and_then(|uid| server.state.agents.get(uid))
            .is_some();
        if known {
            server.state.insights.record(&agent, sample, now);
        }
    }
    // OTLP's partial success: the sender learns what was left out and why, and (being a
    // success) does not retry it.
    let mut response = ExportMetricsServiceResponse::default();
    if rejected_points > 0 {
        response.partial_success = Some(ExportMetricsPartialSuccess {
            rejected_data_points: rejected_points,
            error_message: format!(
                "more than {MAX_SERIES_PER_AGENT} series (component and pipeline) for one agent; \
                 the data points of further series were dropped"
            ),
        });
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        response.encode_to_vec(),
    )
        .into_response()
}

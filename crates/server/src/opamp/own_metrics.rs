//! `POST /v1/metrics` on the OpAMP listener: the agents' own metrics over OTLP/HTTP
//! (`application/x-protobuf`, plain or `Content-Encoding: gzip` — collectors compress by
//! default), authorized like an agent, decoded by `insights::ingest` and recorded by the
//! insights engine for the agents the registry knows.
//!
//! Errors follow OTLP/HTTP: 400 (undecodable or corrupt gzip), 413 (over the size limit after
//! decompression), 415 (a content type or encoding we do not read), each with a
//! `google.rpc.Status` body in the request's encoding (protobuf, or JSON for a JSON request).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use otaas_opamp::InstanceUid;
use prost::Message as _;

use super::OpampServer;
use crate::insights::ingest::{MAX_SERIES_PER_AGENT, Samples, samples};

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
        server.count_refusal(
            peer,
            &headers,
            super::server::Refused {
                interface: otaas_api::AuditInterface::Ingest,
                method: "POST",
                path: crate::insights::ingest::METRICS_PATH,
            },
            &err,
        );
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

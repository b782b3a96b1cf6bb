//! The plain HTTP transport: `POST /v1/opamp` with `Content-Type: application/x-protobuf`, one
//! AgentToServer in, one ServerToAgent out. Request bodies may be gzip-compressed; replies are
//! gzip-compressed only when the agent's `Accept-Encoding` allows it. The size limit applies
//! after decompression (413); an undecodable body is a 400 carrying a ServerErrorResponse, and
//! a `Content-Encoding` other than gzip or identity a 415 with one (never read as if plain).

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use otaas_opamp::framing;
use otaas_opamp::proto::{
    AgentToServer, ServerErrorResponse, ServerErrorResponseType, ServerToAgent,
};
use prost::Message as _;

use super::OpampServer;
use crate::fleet::Transport;

pub(crate) async fn post(
    State(server): State<Arc<OpampServer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(err) = server.authorize(peer, &headers).await {
        tracing::info!(peer = %peer, reason = %err, "Refused an OpAMP HTTP request");
        server.count_refusal(
            peer,
            &headers,
            super::server::Refused {
                interface: otaas_api::AuditInterface::Opamp,
                method: "POST",
                path: otaas_opamp::OPAMP_PATH,
            },
            &err,
        );
        return err.into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim());
    if essence != Some(otaas_opamp::CONTENT_TYPE_PROTOBUF) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "OpAMP over HTTP needs Content-Type: {}",
                otaas_opamp::CONTENT_TYPE_PROTOBUF
            ),
        )
            .into_response();
    }
    // Only gzip and identity are read; any other coding (br, deflate, a list of codings) would
    // otherwise be decoded as if it were uncompressed protobuf.
    let gzip = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity") => false,
        Some(Ok(v)) if v.trim().eq_ignore_ascii_case("gzip") => true,
        Some(v) => {
            let coding = v.unwrap_or("(not text)").trim();
            let mut response = refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {coding:?} is not supported; send gzip or identity"),
                &headers,
            );
            response.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, identity"),
            );
            return response;
        }
    };
    let limit = server.config.opamp_max_message_bytes;
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(raw) => raw,
        Err(err) => {
            let err = err.into_inner();
            if err.is::<http_body_util::LengthLimitError>() {
                return too_large(limit);
            }
            // E.g. the body stalled past the listener's body read timeout.
            return bad_request(format!("reading the request body failed: {err}"), &headers);
        }
    };
    let body = if gzip {
        match gunzip(&raw, limit) {
            Ok(body) => body,
            Err(GunzipError::TooLarge) => return too_large(limit),
            Err(GunzipError::Corrupt(err)) => {
                return bad_request(format!("request body is not valid gzip: {err}"), &headers);
            }
        }
    } else {
        raw
    };
    let msg = match framing::decode_http::<AgentToServer>(&body, limit) {
        Ok(msg) => msg,
        Err(err) => return bad_request(format!("undecodable AgentToServer: {err}"), &headers),
    };
    // Every poll is a request: only agents that are not connected yet (new, or back after a
    // restart or an outage) are new arrivals for the admission limit.
    let known = otaas_opamp::InstanceUid::from_bytes(&msg.instance_uid)
        .is_ok_and(|uid| server.registry().is_connected(uid));
    if !known
        && !server.state.shutdown.is_cancelled()
        && let Err(wait) = server.admit(peer)
    {
        let reply = super::retry_message(
            msg.instance_uid.clone(),
            wait,
            "too many agents connecting at once; retry later",
        );
        let mut response = protobuf_response(StatusCode::SERVICE_UNAVAILABLE, &reply, &headers);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::limits::retry_after_secs(wait)),
        );
        return response;
    }
    let reply = if server.state.shutdown.is_cancelled() {
        server.unavailable(msg.instance_uid.clone())
    } else {
        let endpoint = super::endpoint_url(&headers, "http", server.tls);
        let mut ctx = server
            .registry()
            .connection(Transport::Http, endpoint, None);
        server.registry().handle(&mut ctx, msg, chrono::Utc::now())
    };
    protobuf_response(StatusCode::OK, &reply, &headers)
}

pub(crate) enum GunzipError {
    TooLarge,
    Corrupt(std::io::Error),
}

/// Decompresses at most `limit` bytes: a gzip bomb stops at the limit, not at memory's end.
pub(crate) fn gunzip(raw: &[u8], limit: usize) -> Result<Bytes, GunzipError> {
    let mut out = Vec::new();
    GzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(Bytes::from(out))
}

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("OpAMP message exceeds the limit of {limit} bytes (after decompression)"),
    )
        .into_response()
}

fn bad_request(message: String, headers: &HeaderMap) -> Response {
    refuse(StatusCode::BAD_REQUEST, message, headers)
}

/// An error status with a `ServerErrorResponse` (type `BAD_REQUEST`) saying why.
fn refuse(status: StatusCode, message: String, headers: &HeaderMap) -> Response {
    let reply = ServerToAgent {
        error_response: Some(ServerErrorResponse {
            r#type: ServerErrorResponseType::BadRequest as i32,
            error_message: message,
            details: None,
        }),
        ..Default::default()
    };
    protobuf_response(status, &reply, headers)
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110: `gzip` or `*` with a non-zero q-value).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
        })
}

fn protobuf_response(status: StatusCode, reply: &ServerToAgent, headers: &HeaderMap) -> Response {
    let body = reply.encode_to_vec();
    let mut response = if accepts_gzip(headers) {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let gz = std::io::Write::write_all(&mut encoder, &body).and_then(|_| encoder.finish());
        match gz {
            Ok(gz) => {
                let mut r = (status, gz).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(_) => (status, body).into_response(),
        }
    } else {
        (status, body).into_response()
    };
    // Exactly this value: some clients compare the header string.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(otaas_opamp::CONTENT_TYPE_PROTOBUF),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn accept_encoding_q_values() {
        assert!(accepts_gzip(&with("gzip, deflate")));
        assert!(accepts_gzip(&with("br;q=1, *;q=0.1")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        std::io::Write::write_all(&mut enc, &vec![0u8; 1 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(matches!(gunzip(&bomb, 1000), Err(GunzipError::TooLarge)));
        assert_eq!(gunzip(&bomb, 1 << 20).ok().map(|b| b.len()), Some(1 << 20));
        assert!(matches!(
            gunzip(b"not gzip", 1000),
            Err(GunzipError::Corrupt(_))
        ));
    }
}

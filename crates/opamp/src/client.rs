//! The client side of OpAMP that `otaas agent` and `otaas fleet-sim` share: server URLs per
//! transport, TLS roots, reconnect backoff, the WebSocket settings, and one HTTP exchange with
//! its refusal and retry handling. Behind the `client` feature, so the server does not link it.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rand::Rng;
use tokio::time::sleep;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::framing;
use crate::proto::{AgentToServer, ServerToAgent};

/// Largest server message a client accepts (a rendered config is far smaller).
pub const MAX_MESSAGE: usize = 16 << 20;

/// What a client's connection settings can get wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server {url:?}: {reason}")]
    Server { url: String, reason: &'static str },
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("--ca-cert {path}: {reason}")]
    Ca {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Where and how a client connects.
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
    /// TLS settings for `wss://` (`None`: the library's defaults, system roots).
    pub ws_tls: Option<tokio_tungstenite::Connector>,
}

/// Exponential backoff with jitter (0.5 s, x1.5, +-50 %, capped at 30 s), like opamp-go's
/// client; the first retry after a working connection broke is immediate.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    const START: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(30);

    pub fn new() -> Self {
        Self { next: Self::START }
    }

    pub fn reset(&mut self) {
        self.next = Self::START;
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next.mul_f64(1.5)).min(Self::CAP);
        base.mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

/// Sleeps unless stopped first; true means "stop".
pub async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    if delay.is_zero() {
        return stop.is_cancelled();
    }
    tokio::select! {
        _ = sleep(delay) => false,
        _ = stop.cancelled() => true,
    }
}

/// Small read buffer and a bounded write buffer: the defaults (128 KiB eagerly allocated) would
/// cost far more per agent than everything else together.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(MAX_MESSAGE))
}

/// The delay of a `ServerErrorResponse{UNAVAILABLE}` with `RetryInfo`, if `msg` is one.
fn retry_info(msg: &ServerToAgent) -> Option<Duration> {
    use crate::proto::{ServerErrorResponseType, server_error_response::Details};
    let err = msg.error_response.as_ref()?;
    if err.r#type != ServerErrorResponseType::Unavailable as i32 {
        return None;
    }
    match err.details.as_ref()? {
        Details::RetryInfo(info) => Some(Duration::from_nanos(info.retry_after_nanoseconds)),
    }
}

pub fn retry_after_header(headers: &http::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// The outcome of one OpAMP HTTP request.
pub enum Posted {
    Reply(ServerToAgent),
    Failed {
        error: String,
        auth: bool,
        retry_after: Option<Duration>,
    },
}

/// POSTs one `AgentToServer` to an OpAMP HTTP endpoint (shared by fleet-sim and `otaas agent`).
/// A refusal's delay comes from its `RetryInfo` if it has one, else from `Retry-After`.
pub async fn post_opamp(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    msg: &AgentToServer,
) -> Posted {
    let mut req = http
        .post(url)
        .header(http::header::CONTENT_TYPE, crate::CONTENT_TYPE_PROTOBUF)
        .body(msg.encode_to_vec());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(err) => {
            return Posted::Failed {
                error: err.to_string(),
                auth: false,
                retry_after: None,
            };
        }
    };
    let status = resp.status();
    if !status.is_success() {
        let header = retry_after_header(resp.headers());
        // A 503 from an OpAMP server may carry ServerErrorResponse{UNAVAILABLE, RetryInfo}: its
        // delay is exact (the header only has whole seconds), so it wins.
        let protobuf = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes() == crate::CONTENT_TYPE_PROTOBUF.as_bytes());
        let retry_info = if protobuf {
            resp.bytes()
                .await
                .ok()
                .and_then(|body| framing::decode_http::<ServerToAgent>(&body, MAX_MESSAGE).ok())
                .and_then(|msg| retry_info(&msg))
        } else {
            None
        };
        return Posted::Failed {
            error: format!("http status {status}"),
            auth: status == reqwest::StatusCode::UNAUTHORIZED,
            retry_after: retry_info.or(header),
        };
    }
    match resp.bytes().await {
        Ok(body) => match framing::decode_http::<ServerToAgent>(&body, MAX_MESSAGE) {
            Ok(msg) => Posted::Reply(msg),
            Err(err) => Posted::Failed {
                error: err.to_string(),
                auth: false,
                retry_after: None,
            },
        },
        Err(err) => Posted::Failed {
            error: err.to_string(),
            auth: false,
            retry_after: None,
        },
    }
}

/// OpAMP transport of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// WebSocket: the server pushes configs at once.
    Ws,
    /// Plain HTTP POST polling at the heartbeat interval.
    Http,
}

/// TLS client settings from `--ca-cert`: the WebSocket connector and the PEM for reqwest.
pub fn tls_client(
    ca: Option<&std::path::Path>,
) -> Result<
    (
        Option<tokio_tungstenite::Connector>,
        Option<reqwest::Certificate>,
    ),
    ClientError,
> {
    // One process-wide provider, so library defaults never have to guess between two.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(path) = ca else {
        return Ok((None, None));
    };
    let err = |reason: String| ClientError::Ca {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate found".to_owned()));
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let http = reqwest::Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))?;
    Ok((
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))),
        Some(http),
    ))
}

/// Normalises a server URL (`--server`) for the chosen transport (scheme and default path).
pub fn endpoint(url: &str, transport: Transport) -> Result<String, ClientError> {
    let bad = |reason| ClientError::Server {
        url: url.to_owned(),
        reason,
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    let tls = match scheme {
        "http" | "ws" => false,
        "https" | "wss" => true,
        _ => return Err(bad("scheme must be http, https, ws or wss")),
    };
    let scheme = match (transport, tls) {
        (Transport::Ws, false) => "ws",
        (Transport::Ws, true) => "wss",
        (Transport::Http, false) => "http",
        (Transport::Http, true) => "https",
    };
    let rest = if rest.contains('/') {
        rest.to_owned()
    } else {
        format!("{rest}{}", crate::OPAMP_PATH)
    };
    Ok(format!("{scheme}://{rest}"))
}

/// Returns on SIGTERM or Ctrl-C: how `otaas agent` and `otaas fleet-sim` are asked to stop.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_follows_the_transport() {
        assert_eq!(
            endpoint("http://127.0.0.1:4320", Transport::Ws).unwrap(),
            "ws://127.0.0.1:4320/v1/opamp"
        );
        assert_eq!(
            endpoint("wss://h:1/x", Transport::Http).unwrap(),
            "https://h:1/x"
        );
        assert!(matches!(
            endpoint("ftp://h", Transport::Ws),
            Err(ClientError::Server { .. })
        ));
    }
}

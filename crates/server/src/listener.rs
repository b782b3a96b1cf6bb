//! The accept loop shared by the server's HTTP listeners: optional TLS (a rustls config from
//! [`crate::tls`]), a cap on open connections per source address, HTTP/1.1 + HTTP/2 with
//! upgrades (WebSocket), and graceful shutdown.
//!
//! Lifecycle: [`serve`] accepts until `shutdown` is cancelled, then stops accepting, asks every
//! open connection to finish its in-flight request and close (idle keep-alive connections close
//! at once), and returns when all have. Each connection runs in its own task holding a
//! [`ConnSlot`], so its per-address count drops when the task ends however it ends. Every
//! request carries the peer address (`ConnectInfo<SocketAddr>`) and a [`ConnectionGuard`]
//! sharing that slot: a handler that takes over the connection (a WebSocket upgrade, which
//! outlives hyper's connection task) keeps the guard, so the connection still counts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::limits::{ConnLimiter, ConnSlot};
use crate::refusals::JsonRefusals;

/// How long a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit without sending a complete request head (slow-loris guard;
/// also closes idle keep-alive connections, which clients re-open transparently).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a refused (over-limit) connection is kept to send its one response.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The per-address slot of the connection a request came on (see the module docs). Holding a
/// clone keeps the connection counted against `--max-conns-per-ip` /
/// `--opamp-max-conns-per-ip`.
#[derive(Clone, Debug)]
pub struct ConnectionGuard {
    _slot: Arc<ConnSlot>,
}

/// What a listener does besides HTTP.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// Log name, e.g. `"api"` or `"opamp"`.
    pub name: &'static str,
    /// TLS config (see [`crate::tls::server_config`]); `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Open connections allowed per source address (`ConnLimiter::new(0)`: unlimited).
    pub conn_limit: ConnLimiter,
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains (see module docs).
/// Connections from an address already at its limit get one `429 rate_limited` response with
/// `Retry-After` and `Connection: close` (after the TLS handshake when TLS is on, so the client
/// can read it) and are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ListenerOptions,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = options.name, error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let slot = options.conn_limit.admit(peer.ip());
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let name = options.name;
        match slot {
            Some(slot) => {
                let guard = ConnectionGuard {
                    _slot: Arc::new(slot),
                };
                let app = app
                    .clone()
                    .map_request(move |mut req: http::Request<Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        req.extensions_mut().insert(guard.clone());
                        req
                    });
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Some(io) = handshake(acceptor, tcp, peer, name).await else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(listener = name, %peer, error = %e, "Connection ended with an error");
                    }
                    // The service (and with it this task's guard) is dropped here; an upgraded
                    // connection's handler may still hold a clone.
                });
            }
            None => {
                let max = options.conn_limit.max();
                tracing::warn!(listener = name, %peer, max, "Too many connections from one address; refusing");
                tokio::spawn(async move {
                    let refuse = async {
                        let Some(io) = handshake(acceptor, tcp, peer, name).await else {
                            return;
                        };
                        let svc = hyper::service::service_fn(move |_req| async move {
                            Ok::<_, Infallible>(too_many_connections(max))
                        });
                        let _ = builder.serve_connection(io, svc).await;
                    };
                    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refuse).await;
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Completes the TLS handshake (bounded) when TLS is on.
async fn handshake(
    acceptor: Option<TlsAcceptor>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    name: &'static str,
) -> Option<TokioIo<Box<dyn Io>>> {
    // Requests hyper cannot parse are refused by hyper itself; `JsonRefusals` gives those
    // answers our JSON error body.
    let io: Box<dyn Io> = match acceptor {
        None => Box::new(JsonRefusals::new(tcp)),
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
        {
            Ok(Ok(tls)) => Box::new(JsonRefusals::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                return None;
            }
        },
    };
    Some(TokioIo::new(io))
}

/// A byte stream a connection runs on: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The one response an over-limit connection gets.
fn too_many_connections(max: usize) -> http::Response<axum::body::Body> {
    let body = otaas_api::ErrorBody::new(
        otaas_api::ErrorCode::RateLimited,
        format!("too many open connections from your address (limit {max}); close some and retry"),
        None,
    );
    http::Response::builder()
        .status(http::StatusCode::TOO_MANY_REQUESTS)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::RETRY_AFTER, "1")
        .header(http::header::CONNECTION, "close")
        .body(axum::body::Body::from(
            serde_json::to_vec(&body).expect("error bodies serialise"),
        ))
        .expect("static response parts are valid")
}

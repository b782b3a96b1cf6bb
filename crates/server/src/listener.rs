//! The accept loop shared by the server's HTTP listeners: optional TLS (a rustls config from
//! [`crate::tls`]), a cap on open connections per source address, HTTP/1.1 + HTTP/2 with
//! upgrades (WebSocket), and graceful shutdown.
//!
//! Lifecycle: [`serve`] accepts until `shutdown` is cancelled, then stops accepting, asks every
//! open connection to finish its in-flight request and close (idle keep-alive connections close
//! at once), and returns when all have. Each connection runs in its own task holding a
//! [`ConnSlot`], so its per-address count drops when the task ends however it ends.
//!
//! Timeouts, so that held connections cannot lock an address (or the listener) out: a new
//! connection must send its first byte within [`FIRST_BYTE_TIMEOUT`] and only then takes a
//! per-address slot (idle sockets never count against the cap); the TLS handshake has
//! `HANDSHAKE_TIMEOUT`; a request head (the first, and each next one on a keep-alive
//! connection, which is how idle keep-alive connections end) has [`HEADER_READ_TIMEOUT`]; a
//! request body that stops making progress for [`BODY_READ_TIMEOUT`] fails the request.
//! Upgraded WebSockets are timed by their session (`opamp/ws.rs`). Every
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
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::limits::{ConnLimiter, ConnSlot};
use crate::refusals::JsonRefusals;

/// How long a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may stay silent before it is closed uncounted (clients send their
/// request, or TLS ClientHello, as soon as they connect).
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit without sending a complete request head (slow-loris guard;
/// also closes idle keep-alive connections, which clients re-open transparently).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause allowed between two pieces of a request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
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
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let conn_limit = options.conn_limit.clone();
        let app = app.clone();
        let name = options.name;
        tokio::spawn(async move {
            // Silence costs nothing: a connection is counted only once it sends something.
            let Some(first) = first_byte(&tcp).await else {
                tracing::debug!(listener = name, %peer, "Connection sent nothing; closed");
                return;
            };
            // Plain HTTP sent to a TLS port gets one answer saying so (as a TLS handshake it
            // would only fail, and clients would retry a reset connection until they give up).
            if acceptor.is_some() && first != TLS_HANDSHAKE_RECORD {
                tracing::debug!(listener = name, %peer, "Plain HTTP on the TLS port; refused");
                let _ = tokio::time::timeout(
                    REFUSAL_TIMEOUT,
                    answer_once(&builder, TokioIo::new(tcp), plain_http_on_tls_port),
                )
                .await;
                return;
            }
            let Some(slot) = conn_limit.admit(peer.ip()) else {
                let max = conn_limit.max();
                tracing::warn!(listener = name, %peer, max, "Too many connections from one address; refusing");
                let refuse = async {
                    if let Some(io) = handshake(acceptor, tcp, peer, name).await {
                        answer_once(&builder, io, move || too_many_connections(max)).await;
                    }
                };
                // The handshake and the answer together, as before.
                let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refuse).await;
                return;
            };
            let guard = ConnectionGuard {
                _slot: Arc::new(slot),
            };
            let app = app.map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(guard.clone());
                req.map(|body| TimeoutBody::new(BODY_READ_TIMEOUT, body))
            });
            let Some(io) = handshake(acceptor, tcp, peer, name).await else {
                return;
            };
            let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(listener = name, %peer, error = %e, "Connection ended with an error");
            }
            // The service (and with it this task's guard) is dropped here; an upgraded
            // connection's handler may still hold a clone.
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The first byte of every TLS connection: the record type of the ClientHello (handshake, 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Waits (at most [`FIRST_BYTE_TIMEOUT`]) for the peer to send something and returns its first
/// byte, left in the socket; `None` when it sent nothing, closed, or failed.
async fn first_byte(tcp: &tokio::net::TcpStream) -> Option<u8> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, tcp.peek(&mut byte)).await {
        Ok(Ok(n)) if n > 0 => Some(byte[0]),
        _ => None,
    }
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
        // After the handshake the client must still send its request: until its first byte,
        // hyper (which first reads to tell HTTP/1 from HTTP/2) would wait for ever.
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
        {
            Ok(Ok(tls)) => Box::new(JsonRefusals::new(FirstRead::new(tls))),
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

/// A stream whose first read must bring data within [`FIRST_BYTE_TIMEOUT`]; after that it is
/// the stream itself (hyper's header timeout takes over).
struct FirstRead<T> {
    inner: T,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> FirstRead<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(FIRST_BYTE_TIMEOUT))),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstRead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.deadline = None,
            Poll::Pending => {
                if let Some(deadline) = self.deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
                }
            }
            _ => {}
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstRead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A byte stream a connection runs on: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Serves a refused connection: every request on it gets `response()` and the connection is
/// closed (the caller bounds how long that may take).
async fn answer_once<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    response: impl Fn() -> http::Response<axum::body::Body> + Clone + Send + 'static,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |_req| {
        let response = response.clone();
        async move { Ok::<_, Infallible>(response()) }
    });
    let _ = builder.serve_connection(io, svc).await;
}

/// A response with the JSON error body that closes the connection.
fn closing_error(
    status: http::StatusCode,
    code: otaas_api::ErrorCode,
    message: String,
    retry_after: Option<&'static str>,
) -> http::Response<axum::body::Body> {
    let body = otaas_api::ErrorBody::new(code, message, None);
    let mut response = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(seconds) = retry_after {
        response = response.header(http::header::RETRY_AFTER, seconds);
    }
    response
        .header(http::header::CONNECTION, "close")
        .body(axum::body::Body::from(
            serde_json::to_vec(&body).expect("error bodies serialise"),
        ))
        .expect("static response parts are valid")
}

/// The one response a plain-HTTP request to a TLS port gets.
fn plain_http_on_tls_port() -> http::Response<axum::body::Body> {
    closing_error(
        http::StatusCode::BAD_REQUEST,
        otaas_api::ErrorCode::BadRequest,
        "this port speaks TLS: use https:// (or wss:// for OpAMP)".to_owned(),
        None,
    )
}

/// The one response an over-limit connection gets.
fn too_many_connections(max: usize) -> http::Response<axum::body::Body> {
    closing_error(
        http::StatusCode::TOO_MANY_REQUESTS,
        otaas_api::ErrorCode::RateLimited,
        format!("too many open connections from your address (limit {max}); close some and retry"),
        Some("1"),
    )
}

//! Serving the provider: the tfplugin6 service (`rpc`), wire conversions (`convert`), the
//! go-plugin side services (`plugin`), AutoMTLS (`tls`) and the process contract (`handshake`).
//!
//! `serve` is the whole life of a provider process: check the environment, listen on a unix
//! socket (TLS when Terraform asked for AutoMTLS), print the handshake line, serve until
//! `GRPCController.Shutdown`, remove the socket.

pub mod convert;
pub mod handshake;
pub mod plugin;
pub mod rpc;
pub mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

pub use rpc::ProviderService;

use crate::framework::Registry;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;
use crate::proto::tfplugin6::provider_server::ProviderServer;

/// Terraform's client allows messages up to 2 GiB; providers conventionally accept 256 MiB.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    #[error("listening on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("writing the handshake line: {0}")]
    Stdout(std::io::Error),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How the process was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Started by Terraform: cookie checked, AutoMTLS if requested, handshake line on stdout.
    Managed,
    /// `--debug`: plaintext, prints `TF_REATTACH_PROVIDERS` for the user; runs until Ctrl-C.
    Debug,
}

/// Runs the provider process until shutdown.
pub async fn serve(
    registry: Registry,
    mode: Mode,
    provider_address: &str,
) -> Result<(), ServeError> {
    let env = |k: &str| std::env::var(k).ok();
    if mode == Mode::Managed {
        handshake::check_env(env)?;
    }
    let path = handshake::socket_path(env);
    let listener = UnixListener::bind(&path).map_err(|source| ServeError::Listen {
        path: path.clone(),
        source,
    })?;
    if let Some(gid) = env("PLUGIN_UNIX_SOCKET_GROUP").and_then(|g| g.trim().parse::<u32>().ok()) {
        // go-plugin makes the socket group-writable for the given group when asked.
        use std::os::unix::fs::PermissionsExt;
        let shared = std::os::unix::fs::chown(&path, None, Some(gid))
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)));
        if let Err(e) = shared {
            tracing::warn!(error = %e, gid, "Could not share the socket with PLUGIN_UNIX_SOCKET_GROUP");
        }
    }
    let mtls = match env("PLUGIN_CLIENT_CERT").filter(|c| !c.trim().is_empty()) {
        Some(pem) if mode == Mode::Managed => Some(tls::auto_mtls(&pem)?),
        _ => None,
    };

    let shutdown = CancellationToken::new();
    let service = ProviderService::new(registry);
    let stop = service.stop_token();
    {
        let mut out = std::io::stdout().lock();
        let line = match mode {
            Mode::Managed => handshake::handshake_line(
                &path,
                mtls.as_ref().map(|m| m.server_cert_der.as_slice()),
            ),
            Mode::Debug => format!(
                "Provider started in debug mode. To attach Terraform, set in your shell:\n\n    \
                 TF_REATTACH_PROVIDERS='{}'\n",
                handshake::reattach_json(provider_address, &path)
            ),
        };
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(ServeError::Stdout)?;
    }
    tracing::info!(socket = %path.display(), tls = mtls.is_some(), "Provider listening");

    match mode {
        // Terraform turns Ctrl-C into StopProvider; the signal itself must not kill us.
        Mode::Managed => {
            tokio::spawn(async move {
                if let Ok(mut sigint) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                {
                    while sigint.recv().await.is_some() {
                        tracing::debug!("Ignoring SIGINT; Terraform sends StopProvider");
                    }
                }
            });
        }
        Mode::Debug => {
            let token = shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                token.cancel();
            });
        }
    }

    let result = run_grpc(listener, mtls.map(|m| m.config), service, shutdown.clone()).await;
    stop.cancel();
    let _ = std::fs::remove_file(&path);
    result
}

/// Serves every service on `listener` until `shutdown` fires (or `Shutdown` is called).
pub async fn run_grpc(
    listener: UnixListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: ProviderService,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // go-plugin registers the health service under the name "plugin".
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let plugin = plugin::PluginServices::new(shutdown.clone());

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Conn, std::io::Error>>(16);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let accept_shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = accept_shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accepting a connection failed");
                        continue;
                    }
                },
            };
            let tx = tx.clone();
            let acceptor = acceptor.clone();
            // Each TLS handshake runs on its own task so a stuck client cannot block others.
            tokio::spawn(async move {
                let conn = match acceptor {
                    None => Conn::Plain(stream),
                    Some(a) => match a.accept(stream).await {
                        Ok(s) => Conn::Tls(Box::new(s)),
                        Err(e) => {
                            tracing::warn!(error = %e, "TLS handshake with the client failed");
                            return;
                        }
                    },
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });

    let provider = ProviderServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(GrpcControllerServer::new(plugin.clone()))
        .add_service(GrpcStdioServer::new(plugin.clone()))
        .add_service(GrpcBrokerServer::new(plugin))
        .add_service(provider)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// A client connection, plaintext or TLS, as tonic's server needs it.
pub enum Conn {
    Plain(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<UnixStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

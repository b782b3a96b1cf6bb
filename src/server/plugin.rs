//! go-plugin's side services that Terraform's plugin client talks to besides the provider:
//! `GRPCController` (shutdown), `GRPCStdio` (an empty stdio stream: our logs go to stderr) and
//! `GRPCBroker` (accepted but unused: providers open no sub-connections).

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::plugin::grpc_broker_server::GrpcBroker;
use crate::proto::plugin::grpc_controller_server::GrpcController;
use crate::proto::plugin::grpc_stdio_server::GrpcStdio;
use crate::proto::plugin::{ConnInfo, Empty, StdioData};

/// Serves all three go-plugin services. `shutdown` is the process-wide "stop serving" signal:
/// `GRPCController.Shutdown` cancels it, the server loop waits on it.
#[derive(Clone, Debug)]
pub struct PluginServices {
    shutdown: CancellationToken,
}

impl PluginServices {
    pub fn new(shutdown: CancellationToken) -> Self {
        PluginServices { shutdown }
    }
}

#[tonic::async_trait]
impl GrpcController for PluginServices {
    async fn shutdown(&self, _r: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::info!("GRPCController.Shutdown received: stopping");
        // Cancel after this reply is on its way, so the client sees an OK rather than a reset.
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            token.cancel();
        });
        Ok(Response::new(Empty {}))
    }
}

#[tonic::async_trait]
impl GrpcStdio for PluginServices {
    async fn stream_stdio(
        &self,
        _r: Request<()>,
    ) -> Result<Response<BoxStream<StdioData>>, Status> {
        // Nothing is ever mirrored; the stream stays open until shutdown so the client does not
        // log a premature end of stdio.
        let token = self.shutdown.clone();
        let stream = futures::stream::once(async move { token.cancelled_owned().await })
            .filter_map(|()| async { None });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl GrpcBroker for PluginServices {
    async fn start_stream(
        &self,
        r: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<BoxStream<ConnInfo>>, Status> {
        let mut incoming = r.into_inner();
        // Drain whatever the client sends (it never asks for a broker connection from a provider).
        tokio::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
        let token = self.shutdown.clone();
        let stream = futures::stream::once(async move { token.cancelled_owned().await })
            .filter_map(|()| async { None });
        Ok(Response::new(Box::pin(stream)))
    }
}

//! Test client for the provider's gRPC services: tonic's generic client with the generated
//! message types (the crate only generates server code), over a unix socket.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Every wait in these tests is bounded by this; hitting it fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A plaintext channel to a unix socket.
pub async fn unix_channel(path: PathBuf) -> Channel {
    bounded(
        "connecting",
        Endpoint::try_from("http://localhost")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            })),
    )
    .await
    .expect("connect to the provider socket")
}

pub async fn unary<Req, Resp>(ch: &Channel, path: &'static str, req: Req) -> Resp
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    try_unary(ch, path, req)
        .await
        .unwrap_or_else(|s| panic!("{path} failed: {s}"))
}

pub async fn try_unary<Req, Resp>(
    ch: &Channel,
    path: &'static str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    bounded("channel ready", grpc.ready())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    bounded(
        path,
        grpc.unary(
            tonic::Request::new(req),
            PathAndQuery::from_static(path),
            codec,
        ),
    )
    .await
    .map(tonic::Response::into_inner)
}

pub async fn server_streaming<Req, Resp>(ch: &Channel, path: &'static str, req: Req) -> Vec<Resp>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    bounded("channel ready", grpc.ready()).await.unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let mut stream = bounded(
        path,
        grpc.server_streaming(
            tonic::Request::new(req),
            PathAndQuery::from_static(path),
            codec,
        ),
    )
    .await
    .unwrap()
    .into_inner();
    let mut out = Vec::new();
    while let Some(item) = bounded("stream item", stream.message()).await.unwrap() {
        out.push(item);
    }
    out
}

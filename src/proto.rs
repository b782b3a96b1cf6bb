//! Generated protobuf/gRPC types (build.rs): `tfplugin6` (the provider protocol) and `plugin`
//! (go-plugin's controller, stdio and broker services). Wire types only; see `server::convert`.

#[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

#[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
pub mod plugin {
    tonic::include_proto!("plugin");
}

//! Generates the tfplugin6 and go-plugin gRPC server code from `proto/` with protox (no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tfplugin6/tfplugin6.proto",
        "proto/plugin/grpc_controller.proto",
        "proto/plugin/grpc_stdio.proto",
        "proto/plugin/grpc_broker.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The provider is only ever a server; tests use tonic's generic client.
        .build_client(false)
        // RPCs we do not implement (state stores, actions, ephemeral) answer Unimplemented,
        // which Terraform only sees when a configuration uses those features.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}

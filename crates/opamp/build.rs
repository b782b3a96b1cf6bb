//! Generates the OpAMP prost messages from `proto/opamp` with protox (pure Rust: no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    println!("cargo:rerun-if-changed={proto_root}/opamp");
    let fds = protox::compile(["opamp/opamp.proto"], [proto_root])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        // `bytes::Bytes` lets one rendered config body be shared by every agent's message
        // without a copy per agent.
        .bytes(".opamp.proto.v1")
        .compile_fds(fds)?;
    Ok(())
}

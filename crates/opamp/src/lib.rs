//! OpAMP wire types (generated from `proto/opamp`), WebSocket framing and message helpers.
//!
//! Map of the crate:
//! - [`proto`]: the prost messages, exactly as on the wire. Keep them at the edges.
//! - [`framing`]: the WebSocket message format (varint header 0 + protobuf) and size limits.
//! - [`caps`]: agent and server capability bit masks as typed sets.
//! - [`uid`]: the 16-byte agent instance uid.
//! - [`hash`]: config hashing shared by the server and the simulator.
//! - [`names`]: names the server and its agents agree on (config file entry, own metrics).
//! - `client` (feature `client`): the client plumbing `otaas agent` and `otaas fleet-sim` share.

pub mod caps;
#[cfg(feature = "client")]
pub mod client;
pub mod framing;
pub mod hash;
pub mod names;
pub mod uid;

/// Generated OpAMP messages (package `opamp.proto.v1`).
#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/opamp.proto.v1.rs"));
}

pub use caps::{AgentCaps, ServerCaps};
pub use framing::{FrameError, MAX_MESSAGE_BYTES_DEFAULT};
pub use uid::{InstanceUid, UidError};

/// The URL path of the OpAMP endpoint (spec default).
pub const OPAMP_PATH: &str = "/v1/opamp";
/// The only content type the plain HTTP transport uses, in both directions.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

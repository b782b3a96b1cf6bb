//! Fuzz check `opamp_frames`, shared by the cargo-fuzz target and the corpus regression test
//! (`crates/server/tests/fuzz_corpus.rs`): one OpAMP WebSocket message as the server reads it
//! (varint header, then an `AgentToServer` protobuf), through the same decoder and the same
//! registry call the WebSocket transport makes; the plain-HTTP decoder sees the same bytes.
//!
//! Input: the WebSocket message bytes. Invariants: no panic; a message that decodes re-encodes
//! and decodes back equal; the registry answers it with a ServerToAgent that encodes and
//! decodes back equal, and that echoes a valid instance uid.

use otaas_opamp::framing::{self, FrameError};
use otaas_opamp::proto::{AgentToServer, ServerToAgent};
use otaas_server::opamp::registry::{Registry, Transport};

/// The message size limit of the check (the server's default is 16 MiB; a small one lets the
/// fuzzer reach the limit).
pub(crate) const LIMIT: usize = 16 * 1024;

/// `"ok"` or the decode error's kind (`"empty"`, `"bad_header"`, `"non_zero_header"`,
/// `"too_large"`, `"protobuf"`); panics on a broken invariant.
pub(crate) fn check(data: &[u8]) -> &'static str {
    // The HTTP transport decodes a body with no header; it must not panic either, and agrees
    // with the WebSocket path on messages that carry the one-byte header 0.
    let http = framing::decode_http::<AgentToServer>(data.get(1..).unwrap_or_default(), LIMIT);
    let msg = match framing::decode::<AgentToServer>(data, LIMIT) {
        Ok(msg) => msg,
        Err(err) => {
            return match err {
                FrameError::Empty => "empty",
                FrameError::BadHeader(_) => "bad_header",
                FrameError::NonZeroHeader(_) => "non_zero_header",
                FrameError::TooLarge { .. } => "too_large",
                FrameError::Protobuf(_) => "protobuf",
            };
        }
    };
    if data[0] == 0 {
        assert_eq!(
            http.as_ref().ok(),
            Some(&msg),
            "HTTP and WebSocket decoders disagree"
        );
    }
    let again = framing::encode(&msg);
    let back: AgentToServer =
        framing::decode(&again, usize::MAX).expect("a re-encoded message decodes");
    assert_eq!(back, msg, "protobuf round trip changed the message");

    // What the WebSocket session does next: hand the message to the registry and send the
    // reply. Twice on one connection, as an agent repeating itself would.
    let registry = Registry::new(std::time::Duration::from_secs(30));
    let mut ctx = registry.connection(Transport::Ws, "ws://fuzz/v1/opamp".to_owned(), None);
    let now = chrono::Utc::now();
    for _ in 0..2 {
        let reply = registry.handle(&mut ctx, msg.clone(), now);
        let bytes = framing::encode(&reply);
        let decoded: ServerToAgent =
            framing::decode(&bytes, usize::MAX).expect("our reply decodes");
        assert_eq!(decoded, reply, "reply round trip changed it");
        if reply.error_response.is_none() {
            assert_eq!(
                reply.instance_uid.len(),
                16,
                "a reply without error names the agent"
            );
        }
    }
    registry.closed(&ctx);
    "ok"
}

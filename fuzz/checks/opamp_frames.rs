//! Fuzz check `opamp_frames`, shared by the cargo-fuzz target and the corpus regression test
//! (`crates/server/tests/fuzz_corpus.rs`): one OpAMP WebSocket message as the server reads it
//! (varint header, then an `AgentToServer` protobuf), through the same decoder and the same
//! registry call the WebSocket transport makes; the plain-HTTP decoder sees the same bytes.
//!
//! Input: the WebSocket message bytes. Invariants: no panic; a message that decodes re-encodes
//! and decodes back equal; the registry answers it with a ServerToAgent that encodes and
//! decodes back equal, and that echoes a valid instance uid; the report limits hold: a message
//! over one (small limits here, so the fuzzer reaches them) is refused with a
//! `ServerErrorResponse` naming the field and registers nothing, and every record the registry
//! keeps is within the limits.

use otaas_opamp::InstanceUid;
use otaas_opamp::framing::{self, FrameError};
use otaas_opamp::proto::{AgentToServer, ServerToAgent};
use otaas_server::fleet::report_limits::{self, ReportLimits};
use otaas_server::fleet::{AgentFilter, Transport};
use otaas_server::registry::Registry;

/// The message size limit of the check (the server's default is 16 MiB; a small one lets the
/// fuzzer reach the limit).
pub(crate) const LIMIT: usize = 16 * 1024;

/// The report limits of the check: small, so messages under [`LIMIT`] can exceed each of them.
pub(crate) const LIMITS: ReportLimits = ReportLimits {
    attributes: 8,
    attribute_bytes: 64,
    description_bytes: 256,
    health_depth: 4,
    health_components: 16,
    health_bytes: 1024,
    components: 32,
    components_bytes: 2048,
    effective_config_files: 2,
    effective_config_bytes: 1024,
};

/// `"ok"`, `"over_limit"` (decoded, refused for a report limit) or the decode error's kind
/// (`"empty"`, `"bad_header"`, `"non_zero_header"`, `"too_large"`, `"protobuf"`); panics on a
/// broken invariant.
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
    registry.set_report_limits(LIMITS);
    // Refused for a limit: a valid uid (an invalid one is refused first) and a part over one.
    let over = InstanceUid::from_bytes(&msg.instance_uid)
        .ok()
        .and(LIMITS.check(&msg).err());
    let mut ctx = registry.connection(Transport::Ws, "ws://fuzz/v1/opamp".to_owned(), None);
    let now = chrono::Utc::now();
    for _ in 0..2 {
        let reply = registry.handle(&mut ctx, msg.clone(), now);
        if let Some(over) = &over {
            let err = reply
                .error_response
                .as_ref()
                .expect("a message over a limit is refused");
            assert!(
                err.error_message.contains(over.field),
                "the refusal names the field: {}",
                err.error_message
            );
        }
        for rec in registry.list(&AgentFilter::default()) {
            if let Err(part) = report_limits::record_within(&rec, &LIMITS) {
                panic!("a kept record is over the limits in {part}: {rec:?}");
            }
        }
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
    if over.is_some() {
        assert!(
            registry.list(&AgentFilter::default()).is_empty(),
            "a refused message registered an agent"
        );
        return "over_limit";
    }
    "ok"
}

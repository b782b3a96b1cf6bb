//! Property tests for the OpAMP WebSocket framing and message decoding: round trips are exact,
//! and arbitrary or corrupted input yields an error, never a panic.

use otaas_opamp::framing::{self, FrameError};
use otaas_opamp::proto::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentToServer, AnyValue, ComponentHealth,
    EffectiveConfig, KeyValue, RemoteConfigStatus, ServerToAgent, any_value,
};
use proptest::prelude::*;
use prost::Message;

const LIMIT: usize = 1 << 20;

fn kv() -> impl Strategy<Value = KeyValue> {
    ("[a-z.]{1,12}", ".{0,16}").prop_map(|(key, value)| KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
    })
}

fn agent_to_server() -> impl Strategy<Value = AgentToServer> {
    (
        proptest::collection::vec(any::<u8>(), 16),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(kv(), 0..6),
        proptest::option::of((any::<bool>(), ".{0,20}")),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::option::of((proptest::collection::vec(any::<u8>(), 32), 0i32..4)),
    )
        .prop_map(
            |(uid, seq, caps, attrs, health, body, status)| AgentToServer {
                instance_uid: uid.into(),
                sequence_num: seq,
                capabilities: caps,
                agent_description: Some(AgentDescription {
                    identifying_attributes: attrs.clone(),
                    non_identifying_attributes: attrs,
                }),
                health: health.map(|(healthy, last_error)| ComponentHealth {
                    healthy,
                    last_error,
                    ..Default::default()
                }),
                effective_config: body.map(|body| EffectiveConfig {
                    config_map: Some(AgentConfigMap {
                        config_map: [(
                            "collector.yaml".to_owned(),
                            AgentConfigFile {
                                body: body.into(),
                                content_type: "text/yaml".to_owned(),
                            },
                        )]
                        .into(),
                    }),
                }),
                remote_config_status: status.map(|(hash, status)| RemoteConfigStatus {
                    last_remote_config_hash: hash.into(),
                    status,
                    error_message: String::new(),
                }),
                ..Default::default()
            },
        )
}

proptest! {
    #[test]
    fn ws_round_trip(msg in agent_to_server()) {
        let frame = framing::encode(&msg);
        prop_assert_eq!(frame[0], 0);
        prop_assert_eq!(framing::decode::<AgentToServer>(&frame, LIMIT).unwrap(), msg);
    }

    #[test]
    fn http_round_trip(msg in agent_to_server()) {
        let body = msg.encode_to_vec();
        prop_assert_eq!(framing::decode_http::<AgentToServer>(&body, LIMIT).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Either a message or an error; both decoders must return.
        let _ = framing::decode::<AgentToServer>(&bytes, LIMIT);
        let _ = framing::decode::<ServerToAgent>(&bytes, LIMIT);
        let _ = framing::decode_http::<AgentToServer>(&bytes, LIMIT);
    }

    #[test]
    fn non_zero_header_is_rejected(header in 1u64.., msg in agent_to_server()) {
        let mut frame = Vec::new();
        prost::encoding::encode_varint(header, &mut frame);
        msg.encode(&mut frame).unwrap();
        prop_assert_eq!(
            framing::decode::<AgentToServer>(&frame, usize::MAX),
            Err(FrameError::NonZeroHeader(header))
        );
    }

    #[test]
    fn varint_header_round_trip(value in any::<u64>()) {
        let mut buf = Vec::new();
        prost::encoding::encode_varint(value, &mut buf);
        prop_assert_eq!(framing::read_header(&buf).unwrap(), (value, buf.len()));
        // Every strict prefix of a multi-byte varint is truncated.
        for cut in 1..buf.len() {
            prop_assert_eq!(
                framing::read_header(&buf[..cut]),
                Err(FrameError::BadHeader("truncated varint"))
            );
        }
    }

    #[test]
    fn truncated_messages_error_or_differ(msg in agent_to_server(), cut in 1usize..64) {
        let frame = framing::encode(&msg);
        let cut = cut.min(frame.len() - 1).max(1);
        match framing::decode::<AgentToServer>(&frame[..frame.len() - cut], LIMIT) {
            // Cutting whole trailing fields can leave a valid, shorter message.
            Ok(decoded) => prop_assert_ne!(decoded, msg),
            Err(err) => prop_assert!(matches!(err, FrameError::Protobuf(_) | FrameError::Empty)),
        }
    }

    #[test]
    fn oversize_is_rejected_before_decoding(msg in agent_to_server()) {
        let frame = framing::encode(&msg);
        let limit = frame.len() - 1;
        prop_assert_eq!(
            framing::decode::<AgentToServer>(&frame, limit),
            Err(FrameError::TooLarge { size: frame.len(), limit })
        );
    }
}

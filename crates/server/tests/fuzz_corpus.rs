//! The `api_bodies`, `render_inputs` and `opamp_frames` fuzz targets' seed corpora
//! (`fuzz/seeds/`) as regular tests: every seed gives its expected outcome without a panic.
//!
//! The `opamp_frames` seeds are built from real messages here; `UPDATE_FUZZ_SEEDS=1 cargo test
//! -p otaas-server --test fuzz_corpus` rewrites them (review the diff).

#[path = "../../../fuzz/checks/api_bodies.rs"]
mod api_bodies;
#[path = "../../../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/checks/opamp_frames.rs"]
mod opamp_frames;
#[path = "../../../fuzz/checks/render_inputs.rs"]
mod render_inputs;

use std::collections::HashMap;

use otaas_opamp::framing;
use otaas_opamp::proto::*;

fn seeds(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

#[test]
fn api_bodies_seed_corpus() {
    let n = corpus::replay(&seeds("api_bodies"), api_bodies::check);
    assert!(n >= 15, "only {n} seeds");
}

#[test]
fn render_inputs_seed_corpus() {
    let n = corpus::replay(&seeds("render_inputs"), render_inputs::check);
    assert!(n >= 6, "only {n} seeds");
}

#[test]
fn opamp_frames_seed_corpus() {
    if std::env::var_os("UPDATE_FUZZ_SEEDS").is_some() {
        write_opamp_seeds();
    }
    let n = corpus::replay(&seeds("opamp_frames"), opamp_frames::check);
    assert!(n >= 15, "only {n} seeds");
}

/// The committed seeds are exactly what [`opamp_seeds`] builds (so they stay real messages).
#[test]
fn opamp_frames_seeds_are_up_to_date() {
    for (name, bytes) in opamp_seeds() {
        let path = seeds("opamp_frames").join(name);
        let stored = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FUZZ_SEEDS=1 writes it)", path.display()));
        assert_eq!(
            stored, bytes,
            "{name} differs; UPDATE_FUZZ_SEEDS=1 rewrites it"
        );
    }
}

fn write_opamp_seeds() {
    let dir = seeds("opamp_frames");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in opamp_seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

const UID: [u8; 16] = [
    0x01, 0x93, 0x5f, 0x3c, 0x7a, 0x10, 0x70, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
];

/// A first message as a collector sends it: everything reported.
fn full_state() -> AgentToServer {
    let config = "receivers: {otlp: {protocols: {http: {}}}}\nexporters: {debug: {}}\n";
    AgentToServer {
        instance_uid: UID.to_vec().into(),
        sequence_num: 0,
        agent_description: Some(AgentDescription {
            identifying_attributes: vec![
                kv("service.name", "otelcol"),
                kv("service.instance.id", "gw-1"),
            ],
            non_identifying_attributes: vec![kv("env", "prod"), kv("region", "eu")],
        }),
        capabilities: 0x3fff,
        health: Some(ComponentHealth {
            healthy: true,
            start_time_unix_nano: 1,
            status: "ok".into(),
            component_health_map: HashMap::from([(
                "receiver:otlp".to_owned(),
                ComponentHealth {
                    healthy: false,
                    last_error: "port in use".into(),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        }),
        effective_config: Some(EffectiveConfig {
            config_map: Some(AgentConfigMap {
                config_map: HashMap::from([(
                    "collector.yaml".to_owned(),
                    AgentConfigFile {
                        body: config.as_bytes().to_vec().into(),
                        content_type: "text/yaml".into(),
                    },
                )]),
            }),
        }),
        remote_config_status: Some(RemoteConfigStatus {
            last_remote_config_hash: vec![7; 32].into(),
            status: RemoteConfigStatuses::Failed as i32,
            error_message: "unknown component".into(),
        }),
        ..Default::default()
    }
}

/// One WebSocket message carrying `parts` merged: protobuf concatenation merges messages (map
/// entries accumulate), so a map of many entries is encoded in a fixed order although prost
/// keeps maps in a `HashMap`.
fn merged(parts: impl Iterator<Item = AgentToServer>) -> Vec<u8> {
    let mut out = vec![0u8];
    for part in parts {
        out.extend_from_slice(&prost::Message::encode_to_vec(&part));
    }
    out
}

/// `(file name, WebSocket message)`: names are `<expected outcome>__<description>`.
fn opamp_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let heartbeat = AgentToServer {
        instance_uid: UID.to_vec().into(),
        sequence_num: 5,
        capabilities: 0x3fff,
        ..Default::default()
    };
    let frame = |msg: &AgentToServer| framing::encode(msg);
    let with_header = |header: &[u8], msg: &AgentToServer| {
        let mut v = header.to_vec();
        v.extend_from_slice(&prost::Message::encode_to_vec(msg));
        v
    };
    let mut unknown_field = frame(&heartbeat);
    // Field 99, varint 1: a newer agent's field we do not know (skipped, not an error).
    unknown_field.extend_from_slice(&[0x98, 0x06, 0x01]);
    let mut too_large = vec![0u8];
    too_large.resize(opamp_frames::LIMIT + 1, 0);
    vec![
        ("ok__full_state", frame(&full_state())),
        ("ok__heartbeat", frame(&heartbeat)),
        (
            "ok__disconnect",
            frame(&AgentToServer {
                agent_disconnect: Some(AgentDisconnect {}),
                ..heartbeat.clone()
            }),
        ),
        (
            "ok__request_instance_uid",
            frame(&AgentToServer {
                flags: AgentToServerFlags::RequestInstanceUid as u64,
                ..full_state()
            }),
        ),
        (
            "ok__applied_status",
            frame(&AgentToServer {
                remote_config_status: Some(RemoteConfigStatus {
                    last_remote_config_hash: vec![9; 32].into(),
                    status: RemoteConfigStatuses::Applied as i32,
                    error_message: String::new(),
                }),
                ..heartbeat.clone()
            }),
        ),
        (
            "ok__short_uid",
            frame(&AgentToServer {
                instance_uid: vec![1, 2, 3].into(),
                ..full_state()
            }),
        ),
        ("ok__header_only", vec![0]),
        (
            "ok__multi_byte_zero_header",
            with_header(&[0x80, 0x00], &heartbeat),
        ),
        ("ok__unknown_field", unknown_field),
        ("empty__nothing", vec![]),
        ("non_zero_header__one", with_header(&[0x01], &heartbeat)),
        (
            "non_zero_header__two_bytes",
            with_header(&[0x80, 0x01], &heartbeat),
        ),
        ("bad_header__truncated_varint", vec![0x80, 0x80]),
        ("bad_header__eleven_bytes", vec![0xff; 11]),
        ("too_large__over_the_limit", too_large),
        (
            "over_limit__description_attributes",
            frame(&AgentToServer {
                agent_description: Some(AgentDescription {
                    identifying_attributes: vec![kv("service.name", "otelcol")],
                    non_identifying_attributes: (0..opamp_frames::LIMITS.attributes)
                        .map(|i| kv(&format!("k{i}"), "v"))
                        .collect(),
                }),
                ..full_state()
            }),
        ),
        (
            "over_limit__description_attribute_bytes",
            frame(&AgentToServer {
                agent_description: Some(AgentDescription {
                    identifying_attributes: vec![kv(
                        "service.name",
                        &"x".repeat(opamp_frames::LIMITS.attribute_bytes),
                    )],
                    non_identifying_attributes: vec![],
                }),
                ..full_state()
            }),
        ),
        (
            "over_limit__effective_config_bytes",
            frame(&AgentToServer {
                effective_config: Some(EffectiveConfig {
                    config_map: Some(AgentConfigMap {
                        config_map: HashMap::from([(
                            "collector.yaml".to_owned(),
                            AgentConfigFile {
                                body: format!(
                                    "receivers: {{}}\n#{}\n",
                                    "x".repeat(opamp_frames::LIMITS.effective_config_bytes)
                                )
                                .into_bytes()
                                .into(),
                                content_type: "text/yaml".into(),
                            },
                        )]),
                    }),
                }),
                ..full_state()
            }),
        ),
        (
            "over_limit__effective_config_files",
            merged(
                (0..=opamp_frames::LIMITS.effective_config_files).map(|i| AgentToServer {
                    effective_config: Some(EffectiveConfig {
                        config_map: Some(AgentConfigMap {
                            config_map: HashMap::from([(
                                format!("f{i}.yaml"),
                                AgentConfigFile {
                                    body: b"a: 1\n".to_vec().into(),
                                    content_type: "text/yaml".into(),
                                },
                            )]),
                        }),
                    }),
                    ..heartbeat.clone()
                }),
            ),
        ),
        (
            "over_limit__health_depth",
            frame(&AgentToServer {
                health: Some((0..opamp_frames::LIMITS.health_depth).fold(
                    ComponentHealth::default(),
                    |child, _| ComponentHealth {
                        component_health_map: HashMap::from([("c".to_owned(), child)]),
                        ..Default::default()
                    },
                )),
                ..heartbeat.clone()
            }),
        ),
        (
            "over_limit__available_components",
            // Distinct kinds: a map entry repeated in a later part replaces the earlier one.
            merged(
                (0..=opamp_frames::LIMITS.components).map(|i| AgentToServer {
                    available_components: Some(AvailableComponents {
                        components: HashMap::from([(
                            format!("kind{i:02}"),
                            ComponentDetails::default(),
                        )]),
                        hash: vec![3; 32].into(),
                    }),
                    ..heartbeat.clone()
                }),
            ),
        ),
        // Field 1 (bytes) claiming 100 bytes with none following.
        ("protobuf__truncated_bytes", vec![0x00, 0x0a, 0x64]),
        // Wire type 7 does not exist.
        ("protobuf__bad_wire_type", vec![0x00, 0x0f]),
        // Field 3 (AgentDescription) holding a KeyValue whose length runs past the end.
        (
            "protobuf__nested_truncated",
            vec![0x00, 0x1a, 0x04, 0x0a, 0x10, 0x0a, 0x01],
        ),
    ]
}

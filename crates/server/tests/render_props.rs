//! Property tests of the renderer: for generated groups, the output does not depend on input
//! order, always parses as YAML, hashes to its SHA-256, and redaction removes every secret.

use std::collections::BTreeMap;

use chrono::DateTime;
use otaas_api::*;
use otaas_server::auth::TokenKey;
use otaas_server::render::{redact_secrets, render};
use otaas_server::store::{BindingRecord, EndpointRecord, GroupRecord, PipelineRecord, Record};
use proptest::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn rec<I, S>(id: I, spec: S) -> Record<I, S> {
    let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    Record {
        id,
        revision: 1,
        created_at: t,
        updated_at: t,
        spec,
    }
}

/// A generated world: `n` pipelines, each with some endpoints (distinct ports) and bindings
/// whose headers carry secrets.
#[derive(Debug, Clone)]
struct World {
    pipelines: Vec<PipelineRecord>,
    endpoints: Vec<EndpointRecord>,
    bindings: Vec<BindingRecord>,
    secrets: Vec<String>,
}

fn signals() -> impl Strategy<Value = Vec<Signal>> {
    proptest::sample::subsequence(Signal::ALL.to_vec(), 1..=3)
}

fn world() -> impl Strategy<Value = World> {
    let pipeline = (
        signals(),
        0usize..3,
        0usize..3,
        proptest::collection::vec("[a-zA-Z0-9]{8,16}", 1..3),
        proptest::option::of(signals()),
        1u32..5,
    );
    proptest::collection::vec(pipeline, 1..4).prop_map(|specs| {
        let mut w = World {
            pipelines: vec![],
            endpoints: vec![],
            bindings: vec![],
            secrets: vec![],
        };
        let mut port = 4000u16;
        for (i, (sigs, n_ep, n_b, header_secrets, b_signals, token_version)) in
            specs.into_iter().enumerate()
        {
            let p = rec(
                PipelineId(Uuid::from_u128(i as u128 + 1)),
                PipelineSpec {
                    secrets: Default::default(),
                    keep_secrets: false,
                    name: format!("p{i}"),
                    description: String::new(),
                    signals: sigs,
                    receivers: BTreeMap::from([(
                        "hostmetrics".to_string(),
                        json!({"collection_interval": "10s", "scrapers": {"cpu": {}}}),
                    )]),
                    processors: vec![ProcessorSpec {
                        id: "batch".into(),
                        config: json!({}),
                    }],
                },
            );
            for j in 0..n_ep {
                port += 1;
                w.endpoints.push(rec(
                    EndpointId(Uuid::from_u128(1000 + (i * 10 + j) as u128)),
                    EndpointSpec {
                        name: format!("p{i}-e{j}"),
                        pipeline_id: p.id,
                        protocol: if j % 2 == 0 {
                            Protocol::OtlpGrpc
                        } else {
                            Protocol::OtlpHttp
                        },
                        port,
                        tls: None,
                        auth: EndpointAuth::Bearer,
                        token_version,
                        token_grace_seconds: 600,
                    },
                ));
            }
            for j in 0..n_b {
                let headers: BTreeMap<String, String> = header_secrets
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (format!("x-h{k}"), format!("{s}-{i}-{j}")))
                    .collect();
                w.secrets.extend(headers.values().cloned());
                w.bindings.push(rec(
                    ExporterBindingId(Uuid::from_u128(2000 + (i * 10 + j) as u128)),
                    ExporterBindingSpec {
                        secrets: Default::default(),
                        keep_secrets: false,
                        name: format!("p{i}-b{j}"),
                        pipeline_id: p.id,
                        signals: b_signals.clone(),
                        destinations: vec![DestinationSpec {
                            name: "d".into(),
                            kind: "otlphttp".into(),
                            endpoint: Some("http://sink:4318".into()),
                            headers,
                            keep_headers: false,
                            tls: None,
                            config: json!({"timeout": "5s", "compression": "gzip"}),
                        }],
                    },
                ));
            }
            w.pipelines.push(p);
        }
        w
    })
}

fn group(w: &World) -> GroupRecord {
    GroupRecord {
        record: rec(
            AgentGroupId(Uuid::from_u128(9)),
            AgentGroupSpec {
                pinned_revision: None,
                name: "g".into(),
                selector: BTreeMap::new(),
                pipeline_ids: w.pipelines.iter().map(|p| p.id).collect(),
                rollout: RolloutSpec::default(),
            },
        ),
        config_revision: 0,
        config_hash: String::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_free_parseable_hashed_and_redactable(w in world(), seed in any::<u64>()) {
        let key = TokenKey::from_bytes([5; 32]);
        let g = group(&w);
        let first = render(&g, &w.pipelines, &w.endpoints, &w.bindings, &key).unwrap();

        // Shuffle every input list (deterministically from the seed).
        let rot = |n: usize| if n == 0 { 0 } else { (seed as usize) % n };
        let mut p = w.pipelines.clone();
        let n = p.len();
        p.rotate_left(rot(n));
        let mut e = w.endpoints.clone();
        e.reverse();
        let mut b = w.bindings.clone();
        let n = b.len();
        b.rotate_right(rot(n));
        let mut g2 = g.clone();
        g2.record.spec.pipeline_ids.reverse();
        let second = render(&g2, &p, &e, &b, &key).unwrap();
        prop_assert_eq!(&first, &second);

        let _: serde_norway::Value = serde_norway::from_str(&first.yaml).unwrap();
        let want: [u8; 32] = Sha256::digest(first.yaml.as_bytes()).into();
        prop_assert_eq!(first.hash, want);

        let redacted = redact_secrets(&first.yaml).unwrap();
        for s in &w.secrets {
            prop_assert!(!redacted.contains(s.as_str()), "header secret {} survived", s);
        }
        for ep in &w.endpoints {
            let token = key.endpoint_token(ep.id, ep.spec.token_version);
            prop_assert!(!redacted.contains(&token), "ingest token survived");
        }
    }
}

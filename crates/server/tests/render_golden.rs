//! Golden-file tests of the renderer: each scenario's YAML must match
//! `tests/golden/<scenario>.yaml` byte for byte. Regenerate with `UPDATE_GOLDEN=1 cargo test
//! -p otaas-server --test render_golden` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use otaas_api::*;
use otaas_server::auth::TokenKey;
use otaas_server::render::{Gap, Missing, RenderError, RenderedConfig, render};
use otaas_server::store::{BindingRecord, EndpointRecord, GroupRecord, PipelineRecord, Record};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn rec<I, S>(id: I, spec: S) -> Record<I, S> {
    Record {
        id,
        revision: 1,
        created_at: t0(),
        updated_at: t0(),
        spec,
    }
}

fn key() -> TokenKey {
    TokenKey::from_bytes([42; 32])
}

fn pipeline(n: u128, name: &str, signals: Vec<Signal>) -> PipelineRecord {
    rec(
        PipelineId(uuid(n)),
        PipelineSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: name.into(),
            description: String::new(),
            signals,
            receivers: BTreeMap::new(),
            processors: vec![],
        },
    )
}

fn endpoint(
    n: u128,
    name: &str,
    p: &PipelineRecord,
    protocol: Protocol,
    port: u16,
) -> EndpointRecord {
    rec(
        EndpointId(uuid(n)),
        EndpointSpec {
            name: name.into(),
            pipeline_id: p.id,
            protocol,
            port,
            tls: None,
            auth: EndpointAuth::Bearer,
            token_version: 1,
            token_grace_seconds: otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
        },
    )
}

fn dest(name: &str, kind: &str, endpoint: Option<&str>) -> DestinationSpec {
    DestinationSpec {
        name: name.into(),
        kind: kind.into(),
        endpoint: endpoint.map(str::to_string),
        headers: BTreeMap::new(),
        keep_headers: false,
        tls: None,
        config: json!({}),
    }
}

fn binding(
    n: u128,
    name: &str,
    p: &PipelineRecord,
    destinations: Vec<DestinationSpec>,
) -> BindingRecord {
    rec(
        ExporterBindingId(uuid(n)),
        ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: name.into(),
            pipeline_id: p.id,
            signals: None,
            destinations,
        },
    )
}

fn group(name: &str, pipelines: &[&PipelineRecord]) -> GroupRecord {
    GroupRecord {
        record: rec(
            AgentGroupId(uuid(900)),
            AgentGroupSpec {
                pinned_revision: None,
                name: name.into(),
                selector: BTreeMap::from([("env".into(), "prod".into())]),
                pipeline_ids: pipelines.iter().map(|p| p.id).collect(),
                rollout: RolloutSpec::default(),
            },
        ),
        config_revision: 0,
        config_hash: String::new(),
    }
}

fn check_golden(scenario: &str, rendered: &RenderedConfig) {
    // The hash is the SHA-256 of the YAML body, whatever the scenario.
    let want_hash: [u8; 32] = Sha256::digest(rendered.yaml.as_bytes()).into();
    assert_eq!(rendered.hash, want_hash);
    // And the document is valid YAML.
    let _: serde_norway::Value = serde_norway::from_str(&rendered.yaml).unwrap();

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{scenario}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered.yaml).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        rendered.yaml,
        want,
        "{scenario} differs from {}",
        path.display()
    );
}

/// Endpoints with TLS (with and without client CA), bearer auth and no auth, gRPC and HTTP.
fn endpoints_scenario() -> (
    GroupRecord,
    Vec<PipelineRecord>,
    Vec<EndpointRecord>,
    Vec<BindingRecord>,
) {
    let mut p = pipeline(1, "checkout", vec![Signal::Traces, Signal::Metrics]);
    p.spec.processors = vec![
        ProcessorSpec {
            id: "memory_limiter".into(),
            config: json!({"limit_mib": 400, "check_interval": "1s"}),
        },
        ProcessorSpec {
            id: "batch".into(),
            config: json!({}),
        },
    ];
    let mut grpc = endpoint(10, "checkout-grpc", &p, Protocol::OtlpGrpc, 4317);
    grpc.spec.tls = Some(ServerTls {
        cert_file: "/etc/otel/tls/server.crt".into(),
        key_file: "/etc/otel/tls/server.key".into(),
        client_ca_file: Some("/etc/otel/tls/clients-ca.crt".into()),
    });
    let mut http = endpoint(11, "checkout-http", &p, Protocol::OtlpHttp, 4318);
    http.spec.tls = Some(ServerTls {
        cert_file: "/etc/otel/tls/server.crt".into(),
        key_file: "/etc/otel/tls/server.key".into(),
        client_ca_file: None,
    });
    http.spec.token_version = 3;
    let mut open = endpoint(12, "checkout-open", &p, Protocol::OtlpHttp, 14318);
    open.spec.auth = EndpointAuth::None;
    let b = binding(
        20,
        "checkout-out",
        &p,
        vec![dest("tempo", "otlp", Some("tempo:4317"))],
    );
    let g = group("eu-gateways", &[&p]);
    (g, vec![p], vec![grpc, http, open], vec![b])
}

#[test]
fn golden_endpoints_tls_and_auth() {
    let (g, p, e, b) = endpoints_scenario();
    let r = render(&g, &p, &e, &b, &key()).unwrap();
    // Tokens are derived from the key, the endpoint id and its token version.
    assert!(
        r.yaml
            .contains(&key().endpoint_token(EndpointId(uuid(10)), 1))
    );
    assert!(
        r.yaml
            .contains(&key().endpoint_token(EndpointId(uuid(11)), 3))
    );
    assert!(!r.yaml.contains("bearertokenauth/checkout-open"));
    check_golden("endpoints_tls_auth", &r);
}

/// Several bindings with several destinations: headers, client TLS, config merged under the
/// explicit fields, and a binding limited to one signal.
#[test]
fn golden_bindings_and_destinations() {
    let p = pipeline(
        1,
        "payments",
        vec![Signal::Traces, Signal::Metrics, Signal::Logs],
    );
    let e = endpoint(10, "payments-otlp", &p, Protocol::OtlpGrpc, 4317);
    let mut tempo = dest("tempo", "otlp", Some("tempo.internal:4317"));
    tempo.headers = BTreeMap::from([
        ("x-scope-orgid".to_string(), "org-7".to_string()),
        ("authorization".to_string(), "Bearer s3cret".to_string()),
    ]);
    tempo.tls = Some(ClientTls {
        ca_file: Some("/etc/otel/ca.crt".into()),
        ..ClientTls::default()
    });
    let mut mimir = dest(
        "mimir",
        "prometheusremotewrite",
        Some("http://mimir/api/v1/push"),
    );
    mimir.tls = Some(ClientTls {
        insecure: true,
        ..ClientTls::default()
    });
    // `endpoint` in config is overridden by the explicit field.
    mimir.config =
        json!({"endpoint": "ignored", "resource_to_telemetry_conversion": {"enabled": true}});
    let primary = binding(20, "primary", &p, vec![tempo, mimir]);
    let mut audit_file = dest("audit", "file", None);
    audit_file.config = json!({"path": "/var/log/otel/audit.json"});
    let mut audit = binding(
        21,
        "audit",
        &p,
        vec![audit_file, dest("console", "debug", None)],
    );
    audit.spec.signals = Some(vec![Signal::Logs]);
    let g = group("payments", &[&p]);
    let r = render(&g, &[p], &[e], &[primary, audit], &key()).unwrap();
    check_golden("bindings_destinations", &r);
}

/// Signal subsets across pipelines: a logs-only pipeline, a pipeline whose only binding takes
/// metrics, and a pipeline without bindings (left out of service.pipelines).
#[test]
fn golden_signal_subsets() {
    let mut logs = pipeline(1, "app-logs", vec![Signal::Logs]);
    logs.spec.receivers = BTreeMap::from([(
        "filelog".to_string(),
        json!({"include": ["/var/log/*.log"]}),
    )]);
    logs.spec.processors = vec![ProcessorSpec {
        id: "batch".into(),
        config: json!({"timeout": "5s"}),
    }];
    let mut host = pipeline(2, "host", vec![Signal::Traces, Signal::Metrics]);
    host.spec.receivers = BTreeMap::from([(
        "hostmetrics".to_string(),
        json!({"collection_interval": "30s", "scrapers": {"cpu": {}, "memory": {}}}),
    )]);
    let unfinished = pipeline(3, "unfinished", vec![Signal::Traces]);
    let unfinished_ep = endpoint(10, "unfinished-otlp", &unfinished, Protocol::OtlpHttp, 4318);
    let logs_out = binding(
        20,
        "logs-out",
        &logs,
        vec![dest("loki", "otlphttp", Some("http://loki:3100/otlp"))],
    );
    let mut host_out = binding(
        21,
        "host-out",
        &host,
        vec![dest(
            "prom",
            "otlphttp",
            Some("http://prom:9090/api/v1/otlp"),
        )],
    );
    host_out.spec.signals = Some(vec![Signal::Metrics, Signal::Logs]);
    let g = group("edge", &[&logs, &host, &unfinished]);
    let r = render(
        &g,
        &[logs, host, unfinished],
        &[unfinished_ep],
        &[logs_out, host_out],
        &key(),
    )
    .unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&r.yaml).unwrap();
    let names: Vec<String> = doc["service"]["pipelines"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["logs/app-logs", "metrics/host"]);
    check_golden("signal_subsets", &r);
}

#[test]
fn golden_empty_group() {
    let g = group("empty", &[]);
    let r = render(&g, &[], &[], &[], &key()).unwrap();
    check_golden("empty_group", &r);
}

#[test]
fn rendering_is_deterministic() {
    let (g, p, e, b) = endpoints_scenario();
    let first = render(&g, &p, &e, &b, &key()).unwrap();
    // Same inputs → same bytes.
    assert_eq!(render(&g, &p, &e, &b, &key()).unwrap(), first);
    // Input order and JSON key order do not matter either.
    let mut e_rev = e.clone();
    e_rev.reverse();
    let mut p2 = p.clone();
    p2[0].spec.processors[0].config = json!({"check_interval": "1s", "limit_mib": 400});
    assert_eq!(render(&g, &p2, &e_rev, &b, &key()).unwrap(), first);
    // A different key gives different tokens, hence a different config.
    assert_ne!(
        render(&g, &p, &e, &b, &TokenKey::from_bytes([1; 32]))
            .unwrap()
            .hash,
        first.hash
    );
}

#[test]
fn conflicting_inputs_are_render_errors() {
    let p = pipeline(1, "p", vec![Signal::Traces]);
    let a = endpoint(10, "a", &p, Protocol::OtlpGrpc, 4317);
    let b = endpoint(11, "b", &p, Protocol::OtlpHttp, 4317);
    let g = group("g", &[&p]);
    assert_eq!(
        render(&g, std::slice::from_ref(&p), &[a, b], &[], &key()).unwrap_err(),
        RenderError::PortConflict {
            port: 4317,
            first: "a".into(),
            second: "b".into()
        }
    );
    // A pipeline receiver `otlp` of pipeline "p" and an endpoint named "p" would both be otlp/p.
    let mut p2 = pipeline(2, "p", vec![Signal::Traces]);
    p2.spec.receivers.insert("otlp".into(), json!({}));
    let e = endpoint(12, "p", &p2, Protocol::OtlpGrpc, 4317);
    let g2 = group("g", &[&p2]);
    match render(&g2, &[p2], &[e], &[], &key()).unwrap_err() {
        RenderError::DuplicateComponent { id, .. } => assert_eq!(id, "otlp/p"),
        other => panic!("expected DuplicateComponent, got {other:?}"),
    }
}

/// The pipelines section of a rendered config: pipeline name → (receivers, processors,
/// exporters).
fn service_pipelines(yaml: &str) -> BTreeMap<String, [Vec<String>; 3]> {
    let doc: serde_norway::Value = serde_norway::from_str(yaml).unwrap();
    let ids = |v: &serde_norway::Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    doc["service"]["pipelines"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                [
                    ids(&v["receivers"]),
                    ids(&v["processors"]),
                    ids(&v["exporters"]),
                ],
            )
        })
        .collect()
}

/// Given a logs+metrics pipeline with a filelog and a hostmetrics receiver, a logs-only
/// processor and an exporter for every signal, when it is rendered, then filelog and k8spath
/// are only in logs/…, hostmetrics only in metrics/…, and batch in both.
#[test]
fn components_land_only_in_pipelines_of_signals_they_support() {
    let mut p = pipeline(1, "node", vec![Signal::Logs, Signal::Metrics]);
    p.spec.receivers = BTreeMap::from([
        (
            "filelog".to_string(),
            json!({"include": ["/var/log/*.log"]}),
        ),
        ("hostmetrics".to_string(), json!({"scrapers": {"cpu": {}}})),
    ]);
    p.spec.processors = vec![
        ProcessorSpec {
            id: "k8spath".into(),
            config: json!({}),
        },
        ProcessorSpec {
            id: "batch".into(),
            config: json!({}),
        },
    ];
    let b = binding(
        20,
        "out",
        &p,
        vec![dest("o", "otlphttp", Some("http://o:4318"))],
    );
    let g = group("node", &[&p]);
    let r = render(&g, &[p], &[], &[b], &key()).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        service_pipelines(&r.yaml),
        BTreeMap::from([
            (
                "logs/node".to_string(),
                [
                    s(&["filelog/node"]),
                    s(&["k8spath/node", "batch/node"]),
                    s(&["otlphttp/out.o"])
                ]
            ),
            (
                "metrics/node".to_string(),
                [
                    s(&["hostmetrics/node"]),
                    s(&["batch/node"]),
                    s(&["otlphttp/out.o"])
                ]
            ),
        ])
    );
}

/// Given a traces+logs pipeline whose only exporter is prometheus (metrics only), when it is
/// rendered, then no service pipeline is emitted and the exporter is left out too.
#[test]
fn a_signal_without_a_supporting_exporter_gets_no_pipeline() {
    let mut p = pipeline(1, "app", vec![Signal::Traces, Signal::Logs]);
    p.spec.receivers = BTreeMap::from([("otlp".to_string(), json!({"protocols": {"grpc": {}}}))]);
    let b = binding(
        20,
        "out",
        &p,
        vec![dest("prom", "prometheus", Some("0.0.0.0:9464"))],
    );
    let g = group("app", &[&p]);
    let r = render(&g, &[p], &[], &[b], &key()).unwrap();
    assert_eq!(service_pipelines(&r.yaml), BTreeMap::new());
    assert!(!r.yaml.contains("prometheus/out.prom"), "{}", r.yaml);
}

/// Given a group listing no pipeline, when it is rendered, then the report says so and the
/// config has no service pipeline.
#[test]
fn a_group_without_pipelines_is_reported_incomplete() {
    let g = group("empty", &[]);
    let r = render(&g, &[], &[], &[], &key()).unwrap();
    assert_eq!(r.gaps, vec![Gap::NoPipelines]);
    assert!(!r.is_complete());
    assert_eq!(r.service_pipelines, 0);
}

/// Given a group of three pipelines: one complete, one without any receiver, one without any
/// binding, when it is rendered, then only the complete one is in the YAML and the report names
/// the two others with what they lack.
#[test]
fn rendering_reports_each_pipeline_left_out_and_why() {
    let full = pipeline(1, "full", vec![Signal::Logs]);
    let no_recv = pipeline(2, "no-recv", vec![Signal::Traces]);
    let mut no_exp = pipeline(3, "no-exp", vec![Signal::Metrics, Signal::Logs]);
    no_exp.spec.receivers =
        BTreeMap::from([("otlp".to_string(), json!({"protocols": {"grpc": {}}}))]);
    let e = endpoint(10, "in", &full, Protocol::OtlpGrpc, 4317);
    let b1 = binding(
        20,
        "out",
        &full,
        vec![dest("a", "otlphttp", Some("http://a:4318"))],
    );
    let b2 = binding(
        21,
        "out2",
        &no_recv,
        vec![dest("b", "otlphttp", Some("http://b:4318"))],
    );
    let g = group("mixed", &[&full, &no_recv, &no_exp]);
    let r = render(
        &g,
        &[full.clone(), no_recv.clone(), no_exp.clone()],
        &[e],
        &[b1, b2],
        &key(),
    )
    .unwrap();
    assert_eq!(
        r.gaps,
        vec![
            Gap::Pipeline {
                id: no_exp.id,
                name: "no-exp".into(),
                signals: vec![Signal::Metrics, Signal::Logs],
                missing: Missing::Exporter,
            },
            Gap::Pipeline {
                id: no_recv.id,
                name: "no-recv".into(),
                signals: vec![Signal::Traces],
                missing: Missing::Receiver,
            },
        ]
    );
    assert_eq!(r.service_pipelines, 1);
    assert_eq!(
        service_pipelines(&r.yaml)
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["logs/full".to_string()]
    );
    assert_eq!(
        r.gaps[1].to_string(),
        "pipeline \"no-recv\" has no receiver for any of its signals (traces): add an endpoint \
         or a receiver to it"
    );
}

/// Given a logs-only receiver and a metrics-only exporter in a logs+metrics pipeline, when it
/// is rendered, then the pipeline is reported as lacking a shared signal.
#[test]
fn receivers_and_exporters_without_a_shared_signal_are_reported() {
    let mut p = pipeline(1, "split", vec![Signal::Logs, Signal::Metrics]);
    p.spec.receivers = BTreeMap::from([(
        "filelog".to_string(),
        json!({"include": ["/var/log/*.log"]}),
    )]);
    let b = binding(
        20,
        "out",
        &p,
        vec![dest("prom", "prometheus", Some("0.0.0.0:9464"))],
    );
    let g = group("split", &[&p]);
    let r = render(&g, &[p.clone()], &[], &[b], &key()).unwrap();
    assert_eq!(
        r.gaps,
        vec![Gap::Pipeline {
            id: p.id,
            name: "split".into(),
            signals: vec![Signal::Logs, Signal::Metrics],
            missing: Missing::SharedSignal,
        }]
    );
}

/// Given a complete group, the report is empty.
#[test]
fn a_complete_group_reports_no_gap() {
    let (g, p, e, b) = endpoints_scenario();
    let r = render(&g, &p, &e, &b, &key()).unwrap();
    assert_eq!(r.gaps, vec![]);
    assert!(r.is_complete());
}

/// A config key `<<` (or a value `<<`) is written quoted: plain, it is a YAML merge key to the
/// collector's parser, which would merge the mapping into its parent.
#[test]
fn a_merge_key_in_user_config_is_written_quoted() {
    let mut p = pipeline(1, "merge", vec![Signal::Traces]);
    p.spec.receivers.insert(
        "otlp".into(),
        json!({ "protocols": { "http": {} }, "<<": { "endpoint": "0.0.0.0:1" } }),
    );
    p.spec.processors.push(ProcessorSpec {
        id: "attributes".into(),
        config: json!({ "actions": [{ "key": "k", "value": "<<", "action": "insert" }] }),
    });
    let mut d = dest("tempo", "otlp", Some("tempo:4317"));
    d.config = json!({ "<<": { "compression": "none" }, "timeout": "5s" });
    let b = binding(20, "out", &p, vec![d]);
    let g = group("g", &[&p]);
    let r = render(
        &g,
        std::slice::from_ref(&p),
        &[],
        std::slice::from_ref(&b),
        &key(),
    )
    .unwrap();
    let plain: Vec<&str> = r
        .yaml
        .lines()
        .filter(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with("<<:") || l.ends_with(": <<")
        })
        .collect();
    assert!(plain.is_empty(), "plain merge keys: {plain:?}\n{}", r.yaml);
    assert_eq!(r.yaml.matches("'<<':").count(), 2, "{}", r.yaml);
    assert!(r.yaml.contains("value: '<<'"), "{}", r.yaml);
    // Stable: the same input renders the same bytes (no placeholder left behind).
    let again = render(&g, &[p], &[], &[b], &key()).unwrap();
    assert_eq!(r.yaml, again.yaml);
}

//! One table of collector configs, each with its expected verdict, checked by the real
//! collector's `validate` and by the collector-like checker (`render::check`) loaded with that
//! same collector's `components` output: both must agree with the expected verdict on every
//! row, and a refusal must carry the row's key phrase in both messages.
//!
//! The collector is `$OTAAS_COLLECTOR` (installed by `scripts/install-collector.sh` when unset,
//! so the test never silently skips). Its build has filelog, batch, memory_limiter, k8spath
//! and otlphttp; accepted rows use only those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::DateTime;
use otaas_api::*;
use otaas_server::auth::TokenKey;
use otaas_server::render::check::check;
use otaas_server::render::components::{ComponentTable, Kind, Support};
use otaas_server::render::render;
use otaas_server::store::{BindingRecord, GroupRecord, PipelineRecord, Record};
use serde_json::json;
use uuid::Uuid;

fn collector() -> PathBuf {
    if let Ok(path) = std::env::var("OTAAS_COLLECTOR") {
        return PathBuf::from(path);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tools = std::env::var("OTAAS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join(".tools"));
    let status = Command::new("bash")
        .arg(repo.join("scripts/install-collector.sh"))
        .arg(&tools)
        .status()
        .expect("run scripts/install-collector.sh");
    assert!(status.success(), "scripts/install-collector.sh failed");
    tools.join("bin/otelcol-contrib")
}

/// What the collector's `components` command prints.
fn components(bin: &Path) -> String {
    let out = Command::new(bin)
        .arg("components")
        .output()
        .expect("run collector components");
    assert!(out.status.success(), "{bin:?} components failed");
    String::from_utf8(out.stdout).expect("components output is UTF-8")
}

/// `validate --config FILE`: `Ok` when it exits 0, else its output (it exits 1 and prints
/// `Error: ...` on refusal).
fn validate(bin: &Path, dir: &Path, name: &str, yaml: &str) -> Result<(), String> {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(bin)
        .arg("validate")
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run collector validate");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

const FILELOG: &str = "  filelog/a:\n    include: [/tmp/otaas-collector-configs/*.log]\n";
const OTLPHTTP: &str = "  otlphttp/a:\n    endpoint: http://127.0.0.1:4318\n";
const MEMORY_LIMITER: &str = "  memory_limiter:\n    check_interval: 1s\n    limit_mib: 256\n";

/// A config with one filelog receiver, batch, memory_limiter, k8spath and one otlphttp
/// exporter defined, and `service` as given.
fn with_service(service: &str) -> String {
    format!(
        "receivers:\n{FILELOG}processors:\n  batch: {{}}\n{MEMORY_LIMITER}  k8spath: {{}}\nexporters:\n{OTLPHTTP}service:\n{service}"
    )
}

fn pipeline(signal_name: &str, body: &str) -> String {
    with_service(&format!("  pipelines:\n    {signal_name}:\n{body}"))
}

const LOGS_BODY: &str = "      receivers: [filelog/a]\n      exporters: [otlphttp/a]\n";

/// What the renderer makes of a logs+metrics pipeline with a filelog receiver and an
/// otlphttp binding: the case that made a real collector refuse to start before the renderer
/// honoured signal support.
fn rendered_logs_and_metrics() -> String {
    rendered_with_destination(json!({}), BTreeMap::new())
}

/// [`rendered_logs_and_metrics`] with the destination's `config` and the binding's secrets.
fn rendered_with_destination(
    config: serde_json::Value,
    secrets: BTreeMap<String, String>,
) -> String {
    let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let rec = |spec| Record {
        id: PipelineId(Uuid::from_u128(1)),
        revision: 1,
        created_at: t0,
        updated_at: t0,
        spec,
    };
    let p: PipelineRecord = rec(PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: "node".into(),
        description: String::new(),
        signals: vec![Signal::Logs, Signal::Metrics],
        receivers: BTreeMap::from([(
            "filelog".to_string(),
            json!({"include": ["/tmp/otaas-collector-configs/*.log"]}),
        )]),
        processors: vec![
            ProcessorSpec {
                id: "k8spath".into(),
                config: json!({}),
            },
            ProcessorSpec {
                id: "batch".into(),
                config: json!({}),
            },
        ],
    });
    let b = BindingRecord {
        id: ExporterBindingId(Uuid::from_u128(2)),
        revision: 1,
        created_at: t0,
        updated_at: t0,
        spec: ExporterBindingSpec {
            secrets,
            keep_secrets: false,
            name: "out".into(),
            pipeline_id: p.id,
            signals: None,
            destinations: vec![DestinationSpec {
                name: "sink".into(),
                kind: "otlphttp".into(),
                endpoint: Some("http://127.0.0.1:4318".into()),
                headers: BTreeMap::new(),
                keep_headers: false,
                tls: None,
                config,
            }],
        },
    };
    let g = GroupRecord {
        record: Record {
            id: AgentGroupId(Uuid::from_u128(3)),
            revision: 1,
            created_at: t0,
            updated_at: t0,
            spec: AgentGroupSpec {
                pinned_revision: None,
                name: "node".into(),
                selector: BTreeMap::new(),
                pipeline_ids: vec![p.id],
                rollout: RolloutSpec::default(),
            },
        },
        config_revision: 0,
        config_hash: String::new(),
    };
    render(&g, &[p], &[], &[b], &TokenKey::from_bytes([7; 32]))
        .unwrap()
        .yaml
}

/// One row: a name, the config, and `None` (accepted) or the phrase both refusals contain.
fn rows() -> Vec<(&'static str, String, Option<&'static str>)> {
    let logs = |body: &str| pipeline("logs/a", body);
    vec![
        // Accepted.
        ("logs_pipeline", logs(LOGS_BODY), None),
        (
            "logs_with_processors",
            logs(
                "      receivers: [filelog/a]\n      processors: [memory_limiter, k8spath, batch]\n      exporters: [otlphttp/a]\n",
            ),
            None,
        ),
        ("unnamed_pipeline", pipeline("logs", LOGS_BODY), None),
        (
            "two_logs_pipelines_share_components",
            with_service(&format!(
                "  pipelines:\n    logs/a:\n{LOGS_BODY}    logs/b:\n{LOGS_BODY}"
            )),
            None,
        ),
        (
            "unused_components_are_allowed",
            with_service(&format!("  pipelines:\n    logs:\n{LOGS_BODY}")).replace(
                "exporters:\n",
                "exporters:\n  otlphttp/spare:\n    endpoint: http://127.0.0.1:4319\n",
            ),
            None,
        ),
        (
            "rendered_logs_and_metrics_pipeline",
            rendered_logs_and_metrics(),
            None,
        ),
        // Refused: the document and the component ids.
        (
            "not_a_map",
            "- receivers\n- exporters\n".into(),
            Some("cannot be used as a Conf"),
        ),
        (
            "unknown_receiver_type",
            logs(LOGS_BODY).replace(
                "receivers:\n",
                "receivers:\n  otlp:\n    protocols: {grpc: {}}\n",
            ),
            Some("unknown type: \"otlp\""),
        ),
        (
            "unknown_processor_type",
            logs(LOGS_BODY).replace(
                "processors:\n",
                "processors:\n  attributes: {actions: []}\n",
            ),
            Some("unknown type: \"attributes\""),
        ),
        (
            "unknown_exporter_type",
            logs(LOGS_BODY).replace("exporters:\n", "exporters:\n  debug: {}\n"),
            Some("unknown type: \"debug\""),
        ),
        (
            "unknown_extension_type",
            format!("extensions:\n  health_check: {{}}\n{}", logs(LOGS_BODY)),
            Some("unknown type: \"health_check\""),
        ),
        (
            "invalid_name_in_id",
            logs("      receivers: [\"filelog/a b\"]\n      exporters: [otlphttp/a]\n")
                .replace("filelog/a:", "\"filelog/a b\":"),
            Some("invalid character(s) in name \"a b\""),
        ),
        (
            "invalid_type_in_id",
            logs(LOGS_BODY).replace("exporters:\n", "exporters:\n  otlp-http: {}\n"),
            Some("otlp-http"),
        ),
        (
            "unknown_pipeline_signal",
            pipeline("events/a", LOGS_BODY),
            Some("unknown pipeline signal: \"events\""),
        ),
        // Refused: pipelines.
        (
            "no_pipelines",
            with_service("  pipelines: {}\n"),
            Some("at least one pipeline"),
        ),
        (
            "no_service",
            format!("receivers:\n{FILELOG}exporters:\n{OTLPHTTP}"),
            Some("at least one pipeline"),
        ),
        (
            "pipeline_without_receivers",
            logs("      exporters: [otlphttp/a]\n"),
            Some("must have at least one receiver"),
        ),
        (
            "pipeline_without_exporters",
            logs("      receivers: [filelog/a]\n"),
            Some("must have at least one exporter"),
        ),
        (
            "undefined_receiver",
            logs("      receivers: [filelog/b]\n      exporters: [otlphttp/a]\n"),
            Some("references receiver \"filelog/b\" which is not configured"),
        ),
        (
            "undefined_processor",
            logs(
                "      receivers: [filelog/a]\n      processors: [batch/x]\n      exporters: [otlphttp/a]\n",
            ),
            Some("references processor \"batch/x\" which is not configured"),
        ),
        (
            "undefined_exporter",
            logs("      receivers: [filelog/a]\n      exporters: [otlphttp/b]\n"),
            Some("references exporter \"otlphttp/b\" which is not configured"),
        ),
        (
            "undefined_extension",
            with_service(&format!(
                "  extensions: [health_check]\n  pipelines:\n    logs:\n{LOGS_BODY}"
            )),
            Some("references extension \"health_check\" which is not configured"),
        ),
        (
            "processor_listed_twice",
            logs(
                "      receivers: [filelog/a]\n      processors: [batch, batch]\n      exporters: [otlphttp/a]\n",
            ),
            Some("references processor \"batch\" multiple times"),
        ),
        // Refused: a component in a pipeline of a signal it does not support.
        (
            "filelog_in_metrics_pipeline",
            pipeline("metrics/a", LOGS_BODY),
            Some(
                "failed to create \"filelog/a\" receiver for data type \"metrics\": telemetry type is not supported",
            ),
        ),
        (
            "filelog_in_traces_pipeline",
            pipeline("traces", LOGS_BODY),
            Some(
                "failed to create \"filelog/a\" receiver for data type \"traces\": telemetry type is not supported",
            ),
        ),
        (
            "k8spath_in_metrics_pipeline",
            with_service(&format!(
                "  pipelines:\n    logs:\n{LOGS_BODY}    metrics:\n      receivers: [filelog/a]\n      processors: [k8spath]\n      exporters: [otlphttp/a]\n"
            )),
            Some(
                "failed to create \"k8spath\" processor, in pipeline \"metrics\": telemetry type is not supported",
            ),
        ),
    ]
}

/// Given each row's config, when the real collector validates it and the checker (loaded with
/// that collector's components) checks it, then both give the row's verdict, and a refusal
/// names the same problem in both.
#[test]
fn real_collector_and_checker_agree_on_every_config() {
    let bin = collector();
    let table = ComponentTable::from_components_yaml(&components(&bin)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rows = rows();
    assert!(rows.len() >= 20, "{} rows", rows.len());
    let mut disagreements = Vec::new();
    for (name, yaml, want) in &rows {
        let real = validate(&bin, dir.path(), name, yaml);
        let sim = check(yaml, &table).map_err(|e| e.message);
        let verdict = |r: &Result<(), String>| match r {
            Ok(()) => "accepted".to_string(),
            Err(e) => format!("refused: {}", e.trim()),
        };
        println!(
            "{name}: collector {} | checker {}",
            verdict(&real),
            verdict(&sim)
        );
        let agrees = |r: &Result<(), String>| match (want, r) {
            (None, Ok(())) => true,
            (Some(phrase), Err(msg)) => msg.contains(phrase),
            _ => false,
        };
        if !agrees(&real) || !agrees(&sim) {
            disagreements.push(format!(
                "{name}: want {want:?}; collector {}; checker {}",
                verdict(&real),
                verdict(&sim)
            ));
        }
    }
    assert_eq!(disagreements, Vec::<String>::new());
}

/// The repo's signal table says what the collector build says for every type the build has.
#[test]
fn builtin_table_agrees_with_the_collector_build() {
    let bin = collector();
    let build = ComponentTable::from_components_yaml(&components(&bin)).unwrap();
    let builtin = ComponentTable::builtin();
    let mut compared = 0;
    for kind in [Kind::Receiver, Kind::Processor, Kind::Exporter] {
        for ty in build.types(kind) {
            assert_eq!(
                builtin.support(kind, ty),
                build.support(kind, ty),
                "{} {ty}",
                kind.as_str()
            );
            assert!(matches!(build.support(kind, ty), Support::Known(_)));
            compared += 1;
        }
    }
    assert_eq!(compared, 5);
}

/// A rendered config whose user values hold `${...}` references, one of them in a declared
/// secret: the real collector reads every one as the literal text the user wrote (its
/// resolved config, `print-initial-config`, shows them), while the same document without the
/// renderer's `$$` escaping makes it read a file.
#[test]
fn references_in_user_values_reach_the_collector_as_literal_text() {
    let bin = collector();
    let dir = tempfile::tempdir().unwrap();
    let note = "${file:/nonexistent/otaas-escape} and 5$";
    let secret = "pa$$${env:HOME}";
    let yaml = rendered_with_destination(
        json!({"headers": {"x-note": note, "x-secret": {"$secret": "s"}}}),
        BTreeMap::from([("s".to_string(), secret.to_string())]),
    );
    assert!(
        yaml.contains("$${file:/nonexistent/otaas-escape} and 5$$"),
        "{yaml}"
    );
    assert_eq!(validate(&bin, dir.path(), "escaped", &yaml), Ok(()));
    let file = dir.path().join("escaped.yaml");
    let out = Command::new(&bin)
        .args([
            "--feature-gates",
            "otelcol.printInitialConfig",
            "print-initial-config",
        ])
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run collector print-initial-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    let headers = &resolved["exporters"]["otlphttp/out.sink"]["headers"];
    assert_eq!(headers["x-note"].as_str(), Some(note), "{resolved:?}");
    assert_eq!(headers["x-secret"].as_str(), Some(secret), "{resolved:?}");
    // Without the escaping, the collector would expand the reference (and fail on the file).
    let unescaped = yaml.replace("$$", "$");
    let err = validate(&bin, dir.path(), "unescaped", &unescaped).unwrap_err();
    assert!(err.contains("/nonexistent/otaas-escape"), "{err}");
}

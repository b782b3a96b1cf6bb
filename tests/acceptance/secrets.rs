//! Secrets through adoption and write-only attributes: bindings with headers adopted by
//! `terraform query -generate-config-out` or `terraform plan -generate-config-out` apply with no
//! change to the server's headers, `headers_wo` never reaches state or plan, and headers are
//! removed only by `headers = {}`. Every file of the workspace (state, plans, generated HCL, the
//! `TF_LOG=trace` log) and the server's log are searched for the values.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use crate::harness::{Server, Workspace};

const SECRET_A: &str = "tenant-7f3e-never-in-state";
const SECRET_B: &str = "apikey-91c2-never-in-plan";
const SECRET_C: &str = "rotated-44d0-never-in-log";

fn pipeline(server: &Server) -> otaas_api::PipelineId {
    let spec = otaas_api::PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: "secrets".into(),
        description: String::new(),
        signals: vec![otaas_api::Signal::Logs],
        receivers: [(
            "filelog".to_string(),
            serde_json::json!({ "include": ["/var/log/app.log"] }),
        )]
        .into(),
        processors: vec![],
    };
    block_on(api(server).create_pipeline(&spec)).unwrap().id
}

/// A binding made through the API: one destination with two secret headers, one without.
fn binding_with_headers(server: &Server, pid: otaas_api::PipelineId, name: &str) {
    let dest = |name: &str, headers: BTreeMap<String, String>| otaas_api::DestinationSpec {
        name: name.into(),
        kind: "otlphttp".into(),
        endpoint: Some(format!("https://{name}.example:4318")),
        headers,
        keep_headers: false,
        tls: None,
        config: serde_json::json!({}),
    };
    block_on(
        api(server).create_exporter_binding(&otaas_api::ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: name.into(),
            pipeline_id: pid,
            signals: None,
            destinations: vec![
                dest(
                    "tempo",
                    [
                        ("x-scope-orgid".to_string(), SECRET_A.to_string()),
                        ("x-api-key".to_string(), SECRET_B.to_string()),
                    ]
                    .into(),
                ),
                dest("plain", BTreeMap::new()),
            ],
        }),
    )
    .unwrap();
}

/// Destination name → header digests, as the server reports them for binding `name`.
fn digests(server: &Server, name: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let b = block_on(api(server).find_exporter_binding(name))
        .unwrap()
        .unwrap_or_else(|| panic!("binding {name} is gone"));
    b.destinations
        .into_iter()
        .map(|d| (d.name, d.header_digests))
        .collect()
}

/// Panics naming the file when any file under `dir` (recursively) contains one of `secrets`.
fn assert_no_file_holds(dir: &Path, secrets: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_file_holds(&path, secrets);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds a secret",
                path.display()
            );
        }
    }
}

/// A workspace logging at trace level into `tf.log` inside it (searched with the rest).
fn traced_workspace(server: &Server, body: &str) -> Workspace {
    let mut ws = Workspace::for_server(server);
    let log = ws.path().join("tf.log");
    ws.set_env("TF_LOG", "trace");
    ws.set_env("TF_LOG_PATH", &log.to_string_lossy());
    ws.write("main.tf", &format!("{PROVIDER}\n{body}"));
    ws.init();
    ws
}

/// Plans into `tfplan` (with `extra` flags), checks the saved plan's JSON imports the binding
/// with no update, applies the saved plan and returns the apply's output.
fn plan_show_apply(ws: &Workspace, extra: &[&str]) -> String {
    let mut args = vec!["plan", "-input=false", "-no-color", "-out=tfplan"];
    args.extend_from_slice(extra);
    ws.terraform(&args).assert_success();
    let show = ws.terraform(&["show", "-json", "-no-color", "tfplan"]);
    show.assert_success();
    ws.write("tfplan.json", &show.stdout);
    let plan: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let changes = plan["resource_changes"].as_array().unwrap();
    let bindings: Vec<_> = changes
        .iter()
        .filter(|c| c["type"] == "otaas_exporter_binding")
        .collect();
    assert_eq!(bindings.len(), 1, "{}", show.stdout);
    assert_eq!(
        bindings[0]["change"]["actions"],
        serde_json::json!(["no-op"]),
        "{}",
        show.stdout
    );
    assert!(
        bindings[0]["change"]["importing"].is_object(),
        "{}",
        show.stdout
    );
    let run = ws.terraform(&["apply", "-input=false", "-no-color", "tfplan"]);
    run.assert_success();
    run.stdout
}

/// Given bindings with secret headers made through the API,
/// when `terraform query -generate-config-out` writes their configuration and it is applied,
/// then the server's header digests are exactly as before and no file, plan or log holds a value.
#[test]
fn query_generated_config_adopts_bindings_without_touching_headers() {
    let server = Server::start();
    let pid = pipeline(&server);
    binding_with_headers(&server, pid, "adopt-secrets");
    let before = digests(&server, "adopt-secrets");
    assert_eq!(before["tempo"].len(), 2);
    assert_eq!(
        before["tempo"]["x-scope-orgid"],
        otaas_api::header_digest(SECRET_A)
    );

    // When terraform query generates the configuration
    let ws = traced_workspace(&server, "");
    ws.write(
        "main.tfquery.hcl",
        "list \"otaas_exporter_binding\" \"found\" {\n  provider = otaas\n}\n",
    );
    let generated = ws.query_generate("generated.tf");
    assert!(
        generated.contains(r#"resource "otaas_exporter_binding" "found_0""#),
        "{generated}"
    );

    // Then the saved plan imports it with no update, and applying it keeps the headers
    let applied = plan_show_apply(&ws, &[]);
    assert!(
        applied.contains("1 imported, 0 added, 0 changed, 0 destroyed"),
        "{applied}"
    );
    assert_eq!(digests(&server, "adopt-secrets"), before);
    let state = values(&ws, "otaas_exporter_binding.found_0");
    assert_eq!(state["destinations"][0]["headers"], serde_json::Value::Null);
    assert_eq!(
        state["destinations"][0]["header_digests"],
        serde_json::to_value(&before["tempo"]).unwrap()
    );
    assert_plan_clean(&ws);
    assert_eq!(digests(&server, "adopt-secrets"), before);

    // And the secrets are nowhere: workspace files (state, HCL, plan, trace log), server log
    assert!(ws.read("tf.log").contains("PlanResourceChange"));
    assert_no_file_holds(ws.path(), &[SECRET_A, SECRET_B]);
    let log = server.log();
    assert!(!log.contains(SECRET_A) && !log.contains(SECRET_B));
}

/// The same adoption through `import` blocks and `terraform plan -generate-config-out`.
#[test]
fn plan_generated_config_from_import_blocks_keeps_headers() {
    let server = Server::start();
    let pid = pipeline(&server);
    binding_with_headers(&server, pid, "import-secrets");
    let before = digests(&server, "import-secrets");

    let ws = traced_workspace(
        &server,
        "import {\n  to = otaas_exporter_binding.adopted\n  id = \"import-secrets\"\n}\n",
    );
    let run = ws.terraform(&[
        "plan",
        "-input=false",
        "-no-color",
        "-generate-config-out=generated.tf",
    ]);
    run.assert_success();
    let generated = ws.read("generated.tf");
    assert!(
        generated.contains(r#"resource "otaas_exporter_binding" "adopted""#),
        "{generated}"
    );
    let applied = plan_show_apply(&ws, &[]);
    assert!(
        applied.contains("1 imported, 0 added, 0 changed, 0 destroyed"),
        "{applied}"
    );
    assert_eq!(digests(&server, "import-secrets"), before);
    assert_plan_clean(&ws);
    assert_no_file_holds(ws.path(), &[SECRET_A, SECRET_B]);
    let log = server.log();
    assert!(!log.contains(SECRET_A) && !log.contains(SECRET_B));
}

fn wo_binding_tf(pid: &str, endpoint: &str, headers: &str, version: u32) -> String {
    format!(
        r#"
resource "otaas_exporter_binding" "b" {{
  name        = "wo"
  pipeline_id = "{pid}"
  destinations = [{{
    name               = "tempo"
    type               = "otlphttp"
    endpoint           = "{endpoint}"
    headers_wo         = {headers}
    headers_wo_version = {version}
  }}]
}}
"#
    )
}

fn headers_binding_tf(pid: &str, endpoint: &str, headers: Option<&str>) -> String {
    let headers = headers.map_or(String::new(), |h| format!("headers = {h}"));
    format!(
        r#"
resource "otaas_exporter_binding" "h" {{
  name        = "plain-headers"
  pipeline_id = "{pid}"
  destinations = [{{
    name     = "tempo"
    type     = "otlphttp"
    endpoint = "{endpoint}"
    {headers}
  }}]
}}
"#
    )
}

/// `headers_wo`: sent on create and on a `headers_wo_version` change only, never in state or
/// plan; and with `headers`, omitting them keeps the server's values while `{}` removes them.
#[test]
fn write_only_headers_and_removal_only_by_empty_map() {
    let server = Server::start();
    let pid = pipeline(&server).to_string();
    let digest = |v: &str| otaas_api::header_digest(v);

    // Setting both is refused at the attribute
    let ws = traced_workspace(&server, "");
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            wo_binding_tf(&pid, "https://a:4318", r#"{ x = "1" }"#, 1).replace(
                "headers_wo_version = 1",
                "headers_wo_version = 1\n    headers = { y = \"2\" }"
            )
        ),
    );
    let bad = ws.terraform(&["validate", "-no-color"]);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(bad.stderr.contains("Conflicting headers"), "{}", bad.stderr);
    assert!(bad.stderr.contains("headers_wo"), "{}", bad.stderr);

    // Given a binding created with headers_wo, its value from an ephemeral variable (as a
    // secret would come from a vault; a literal would sit in main.tf and in the plan's
    // configuration section)
    let mut ws = ws;
    let wo = |endpoint: &str, version: u32| {
        format!(
            "{PROVIDER}\n{}\n{}",
            "variable \"orgid\" {\n  type      = string\n  sensitive = true\n  ephemeral = true\n}\n",
            wo_binding_tf(&pid, endpoint, "{ \"x-scope-orgid\" = var.orgid }", version)
        )
    };
    ws.set_env("TF_VAR_orgid", SECRET_A);
    ws.write("main.tf", &wo("https://a:4318", 1));
    ws.apply();
    let expected = BTreeMap::from([("x-scope-orgid".to_string(), digest(SECRET_A))]);
    assert_eq!(digests(&server, "wo")["tempo"], expected);
    let state = values(&ws, "otaas_exporter_binding.b");
    assert_eq!(
        state["destinations"][0]["headers_wo"],
        serde_json::Value::Null
    );
    assert_eq!(
        state["destinations"][0]["header_digests"],
        serde_json::to_value(&expected).unwrap()
    );
    assert_plan_clean(&ws);

    // When another attribute changes (and headers_wo too, without a version bump)
    ws.set_env("TF_VAR_orgid", SECRET_B);
    ws.write("main.tf", &wo("https://b:4318", 1));
    let run = ws.apply();
    assert!(run.stdout.contains("0 added, 1 changed"), "{}", run.stdout);
    // Then the headers are not resent: the server keeps the first value
    assert_eq!(digests(&server, "wo")["tempo"], expected);
    assert_plan_clean(&ws);

    // When headers_wo_version changes, the headers are replaced
    ws.set_env("TF_VAR_orgid", SECRET_C);
    ws.write("main.tf", &wo("https://b:4318", 2));
    ws.terraform(&["plan", "-input=false", "-no-color", "-out=tfplan"])
        .assert_success();
    let show = ws.terraform(&["show", "-json", "-no-color", "tfplan"]);
    ws.write("tfplan.json", &show.stdout);
    let plan: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(
        plan["resource_changes"][0]["change"]["after"]["destinations"][0]["header_digests"],
        serde_json::json!({ "x-scope-orgid": digest(SECRET_C) })
    );
    ws.terraform(&["apply", "-input=false", "-no-color", "tfplan"])
        .assert_success();
    assert_eq!(
        digests(&server, "wo")["tempo"],
        BTreeMap::from([("x-scope-orgid".to_string(), digest(SECRET_C))])
    );
    assert_plan_clean(&ws);

    // And with `headers`: omitting them keeps the server's values, `{}` removes them
    let hws = workspace(
        &server,
        &headers_binding_tf(&pid, "https://a:4318", Some(r#"{ "x-api-key" = "k1" }"#)),
    );
    hws.apply();
    let kept = BTreeMap::from([("x-api-key".to_string(), digest("k1"))]);
    assert_eq!(digests(&server, "plain-headers")["tempo"], kept);
    hws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            headers_binding_tf(&pid, "https://a:4318", None)
        ),
    );
    hws.apply();
    assert_eq!(digests(&server, "plain-headers")["tempo"], kept);
    assert_plan_clean(&hws);
    hws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            headers_binding_tf(&pid, "https://a:4318", Some("{}"))
        ),
    );
    hws.apply();
    assert_eq!(digests(&server, "plain-headers")["tempo"], BTreeMap::new());
    assert_plan_clean(&hws);

    // The write-only values were in no file of the workspace, no log
    assert_no_file_holds(ws.path(), &[SECRET_A, SECRET_B, SECRET_C]);
    let log = server.log();
    assert!(!log.contains(SECRET_A) && !log.contains(SECRET_C));
}

fn grace_endpoint_tf(pid: &str, token_version: u32, grace: &str) -> String {
    format!(
        r#"
resource "otaas_endpoint" "e" {{
  name               = "rotating"
  pipeline_id        = "{pid}"
  protocol           = "otlp_http"
  port               = 4318
  token_version      = {token_version}
  token_grace_period = "{grace}"
}}
"#
    )
}

/// Given an endpoint with `token_grace_period = "2s"` in a group's pipeline,
/// when `token_version` is bumped,
/// then the group's config accepts two tokens, and a few seconds later the server rolls out a
/// revision with one token by itself.
#[test]
fn endpoint_token_grace_period_through_terraform() {
    let server = Server::start();
    let api = api(&server);
    let pid = pipeline(&server);
    block_on(
        api.create_exporter_binding(&otaas_api::ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "console".into(),
            pipeline_id: pid,
            signals: None,
            destinations: vec![otaas_api::DestinationSpec {
                name: "out".into(),
                kind: "debug".into(),
                endpoint: None,
                headers: BTreeMap::new(),
                keep_headers: false,
                tls: None,
                config: serde_json::json!({}),
            }],
        }),
    )
    .unwrap();
    let group = block_on(api.create_agent_group(&otaas_api::AgentGroupSpec {
        pinned_revision: None,
        name: "grace".into(),
        selector: [("env".to_string(), "grace".to_string())].into(),
        pipeline_ids: vec![pid],
        rollout: Default::default(),
    }))
    .unwrap();
    let pid = pid.to_string();

    // A duration that is not one is refused at the attribute
    let ws = workspace(&server, &grace_endpoint_tf(&pid, 1, "soon"));
    let bad = ws.terraform(&["validate", "-no-color"]);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stderr.contains("Invalid grace period"),
        "{}",
        bad.stderr
    );

    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", grace_endpoint_tf(&pid, 1, "2s")),
    );
    ws.apply();
    let e = block_on(api.find_endpoint("rotating")).unwrap().unwrap();
    assert_eq!(e.token_grace_seconds, 2);
    assert_plan_clean(&ws);

    // When the token is rotated
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", grace_endpoint_tf(&pid, 2, "2s")),
    );
    ws.apply();
    let config = || block_on(api.agent_group_config(group.id)).unwrap();
    let during = config();
    // Then both tokens are accepted (values redacted in the API)
    assert!(
        during
            .yaml
            .contains("tokens:\n    - <redacted>\n    - <redacted>\n"),
        "{}",
        during.yaml
    );
    // And after the grace the server alone rolls out a revision with the new token only
    wait_until(60, "the revision that ends the grace", || {
        config().revision > during.revision
    });
    let after = config();
    assert_eq!(after.revision, during.revision + 1);
    assert!(after.yaml.contains("token: <redacted>"), "{}", after.yaml);
    assert!(!after.yaml.contains("tokens:"), "{}", after.yaml);
    assert_plan_clean(&ws);
}

const PIPE_SECRET: &str = "kafka-pw-5b1e-never-in-state";
const PIPE_SECRET_2: &str = "kafka-pw-77aa-rotated";
const BIND_SECRET: &str = "dd-key-c3f9-in-state-only";
const INLINE_PW: &str = "inline-pw-0e4d";

/// A pipeline whose kafka receiver takes its password from `secrets_wo` (an ephemeral
/// variable) and whose second receiver holds an undeclared password inline, and a binding
/// whose destination takes an API key from `secrets` and holds a URL password.
fn secret_objects_tf(version: u32) -> String {
    format!(
        r#"
variable "kafka_pw" {{
  type      = string
  sensitive = true
  ephemeral = true
}}

resource "otaas_pipeline" "p" {{
  name    = "vault"
  signals = ["logs"]
  receivers = {{
    kafka = jsonencode({{
      brokers = ["kafka:9092"]
      auth    = {{ sasl = {{ username = "bob", mechanism = "PLAIN", password = {{ "$secret" = "kafka-pw" }} }} }}
    }})
    "kafka/inline" = jsonencode({{
      brokers = ["kafka:9093"]
      auth    = {{ sasl = {{ username = "bob", mechanism = "PLAIN", password = "{INLINE_PW}" }} }}
    }})
  }}
  secrets_wo         = {{ kafka-pw = var.kafka_pw }}
  secrets_wo_version = {version}
}}

resource "otaas_exporter_binding" "b" {{
  name        = "vault"
  pipeline_id = otaas_pipeline.p.id
  destinations = [{{
    name     = "intake"
    type     = "otlphttp"
    endpoint = "https://bob:{INLINE_PW}@intake.example:4318"
    config   = jsonencode({{ headers = {{ DD-API-KEY = {{ "$secret" = "dd" }} }} }})
  }}]
  secrets = {{ dd = "{BIND_SECRET}" }}
}}
"#
    )
}

/// Given a pipeline with `secrets_wo` and a binding with `secrets` referenced from their
/// configs, and credentials written inline,
/// when they are applied, re-planned, rotated and imported,
/// then the server holds the digests of the values, the plan stays empty (the server's
/// redacted answers are no diff), `secrets_wo` is in no file or log, and an import keeps the
/// server's secrets.
#[test]
fn pipeline_and_binding_secrets_through_terraform() {
    let server = Server::start();
    let digest = otaas_api::header_digest;
    let mut ws = traced_workspace(&server, "");
    ws.set_env("TF_VAR_kafka_pw", PIPE_SECRET);
    ws.write("main.tf", &format!("{PROVIDER}\n{}", secret_objects_tf(1)));
    ws.apply();
    let api = api(&server);
    let p = block_on(api.find_pipeline("vault")).unwrap().unwrap();
    assert_eq!(
        p.secret_digests,
        BTreeMap::from([("kafka-pw".to_string(), digest(PIPE_SECRET))])
    );
    // (the server shows the inline credentials redacted)
    assert_eq!(
        p.receivers["kafka/inline"]["auth"]["sasl"]["password"],
        "<redacted>"
    );
    let b = block_on(api.find_exporter_binding("vault"))
        .unwrap()
        .unwrap();
    assert_eq!(
        b.secret_digests,
        BTreeMap::from([("dd".to_string(), digest(BIND_SECRET))])
    );
    let state = values(&ws, "otaas_pipeline.p");
    assert_eq!(state["secrets_wo"], serde_json::Value::Null);
    assert_eq!(
        state["secret_digests"],
        serde_json::json!({ "kafka-pw": digest(PIPE_SECRET) })
    );
    assert!(
        state["receivers"]["kafka/inline"]
            .as_str()
            .unwrap()
            .contains(INLINE_PW),
        "state keeps the configured document"
    );
    assert_eq!(
        values(&ws, "otaas_exporter_binding.b")["secrets"],
        serde_json::json!({ "dd": BIND_SECRET })
    );
    assert_plan_clean(&ws);

    // When the write-only value changes without a version bump, nothing is sent
    ws.set_env("TF_VAR_kafka_pw", PIPE_SECRET_2);
    assert_plan_clean(&ws);
    // When the version moves, the new value replaces the old
    ws.write("main.tf", &format!("{PROVIDER}\n{}", secret_objects_tf(2)));
    ws.apply();
    let p = block_on(api.find_pipeline("vault")).unwrap().unwrap();
    assert_eq!(p.secret_digests["kafka-pw"], digest(PIPE_SECRET_2));
    assert_plan_clean(&ws);

    // When another configuration imports the pipeline without its secrets or inline password
    let imported = traced_workspace(
        &server,
        r#"
import {
  to = otaas_pipeline.imp
  id = "vault"
}

resource "otaas_pipeline" "imp" {
  name    = "vault"
  signals = ["logs"]
  receivers = {
    kafka = jsonencode({
      brokers = ["kafka:9092"]
      auth    = { sasl = { username = "bob", mechanism = "PLAIN", password = { "$secret" = "kafka-pw" } } }
    })
    "kafka/inline" = jsonencode({
      brokers = ["kafka:9093"]
      auth    = { sasl = { username = "bob", mechanism = "PLAIN", password = "<redacted>" } }
    })
  }
}
"#,
    );
    let run = imported.apply();
    // Then the import changes nothing on the server: the secrets and the inline password stay
    assert!(
        run.stdout.contains("1 imported, 0 added, 0 changed"),
        "{}",
        run.stdout
    );
    let after = block_on(api.find_pipeline("vault")).unwrap().unwrap();
    assert_eq!(after.secret_digests, p.secret_digests);
    assert_eq!(after.revision, p.revision);
    assert_plan_clean(&imported);

    // And the write-only values are in no file of the workspaces, no log
    assert_no_file_holds(ws.path(), &[PIPE_SECRET, PIPE_SECRET_2]);
    assert_no_file_holds(imported.path(), &[PIPE_SECRET, PIPE_SECRET_2, BIND_SECRET]);
    let log = server.log();
    for s in [PIPE_SECRET, PIPE_SECRET_2, BIND_SECRET, INLINE_PW] {
        assert!(!log.contains(s), "server log holds {s}");
    }
}

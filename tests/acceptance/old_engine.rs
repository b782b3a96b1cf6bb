//! The acceptance suite's core on an engine older than Terraform 1.11 (1.10: no write-only
//! attributes, resource identity, list resources or actions), as OpenTofu and older Terraform
//! users run the provider: create with a rollout waited for, a clean plan, import on the command
//! line and with an `import` block, drift, data sources, destroy. What such an engine lacks
//! degrades without a warning or an error (the provider's actions are simply absent from the
//! schema it reads); a write-only value, which it would keep in state, is refused at the
//! attribute.

use crate::common::*;
use crate::harness::tools;
use crate::harness::{FleetSim, Server, Workspace};

/// Every resource and the data sources, with a sensitive `headers` map (not `headers_wo`).
const CONFIG: &str = r#"
resource "otaas_pipeline" "app" {
  name    = "old-app"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/app/*.log"] })
  }
  processors = [{ id = "batch" }]
}

resource "otaas_endpoint" "ingest" {
  name          = "old-ingest"
  pipeline_id   = otaas_pipeline.app.id
  protocol      = "otlp_http"
  port          = 4318
  auth          = "bearer"
  token_version = 1
}

resource "otaas_exporter_binding" "out" {
  name        = "old-out"
  pipeline_id = otaas_pipeline.app.id
  destinations = [
    {
      name     = "gw"
      type     = "otlphttp"
      endpoint = "http://gateway.internal:4318"
      headers  = { "x-scope-orgid" = "tenant-old" }
    },
  ]
}

resource "otaas_agent_group" "g" {
  name             = "old"
  selector         = { env = "old" }
  pipeline_ids     = [otaas_pipeline.app.id]
  wait_for_rollout = true
  depends_on       = [otaas_exporter_binding.out]
}

data "otaas_agent_group_status" "g" {
  group_id = otaas_agent_group.g.id
}

data "otaas_agents" "old" {
  selector = { env = "old" }
}

data "otaas_pipeline" "app" {
  name = otaas_pipeline.app.name
}

output "applied" {
  value = data.otaas_agent_group_status.g.applied
}

output "agents" {
  value = length(data.otaas_agents.old.agents)
}

output "pipeline_signals" {
  value = data.otaas_pipeline.app.signals
}
"#;

/// A workspace on the old engine for `server`, with `body` as main.tf, initialised.
fn old_workspace(server: &Server, body: &str) -> Workspace {
    let mut ws = Workspace::for_server(server);
    ws.set_engine(tools::old_terraform());
    ws.write("main.tf", &format!("{PROVIDER}\n{body}"));
    ws.init();
    ws
}

#[track_caller]
fn assert_quiet(run: &crate::harness::process::Finished) {
    for what in ["Warning", "Error"] {
        assert!(
            !run.stdout.contains(what) && !run.stderr.contains(what),
            "{} printed a {what}:\n{}\n{}",
            run.command,
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn the_core_lifecycle_runs_on_terraform_1_10() {
    let server = Server::start();
    let api = api(&server);
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "old")
        .start();

    // Given every resource and three data sources, applied by Terraform 1.10
    let ws = old_workspace(&server, CONFIG);
    let run = ws.apply();
    assert_quiet(&run);
    // Then the apply waited for the rollout, and the data sources read the fleet
    let outputs = ws.terraform(&["output", "-json"]);
    outputs.assert_success();
    let outputs: serde_json::Value = serde_json::from_str(&outputs.stdout).unwrap();
    assert_eq!(outputs["applied"]["value"], 2, "{}", run.stdout);
    assert_eq!(outputs["agents"]["value"], 2);
    assert_eq!(
        outputs["pipeline_signals"]["value"],
        serde_json::json!(["logs"])
    );
    // And the endpoint's generated token is there, as a sensitive value
    assert!(
        values(&ws, "otaas_endpoint.ingest")["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    // And the header value is in state only as the sensitive attribute it is on this engine
    let binding = values(&ws, "otaas_exporter_binding.out");
    assert_eq!(
        binding["destinations"][0]["headers"]["x-scope-orgid"],
        "tenant-old"
    );
    // And the next plan is clean, without a word about what this engine lacks
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(0);
    assert_quiet(&plan);
    // And this engine reads the provider's schema with its actions simply left out
    let schema = ws.terraform(&["providers", "schema", "-json"]);
    schema.assert_success();
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    let otaas = &schema["provider_schemas"]["registry.terraform.io/otaas/otaas"];
    assert!(
        otaas["resource_schemas"]["otaas_agent_group"].is_object(),
        "{otaas}"
    );
    assert!(otaas.get("action_schemas").is_none(), "{otaas}");

    // Import on the command line and with an import block gives the same state
    let pipeline = values(&ws, "otaas_pipeline.app");
    let id = pipeline["id"].as_str().expect("id").to_owned();
    let body = CONFIG.split("resource \"otaas_endpoint\"").next().unwrap();
    assert!(body.contains("otaas_pipeline") && !body.contains("otaas_endpoint"));
    let (iws, imported) = cli_import_old(&server, body, "otaas_pipeline.app", &id);
    assert_eq!(imported, pipeline);
    iws.plan_detailed_exitcode().assert_code(0);
    let by_name = old_workspace(
        &server,
        &format!("{body}\nimport {{\n  to = otaas_pipeline.app\n  id = \"old-app\"\n}}\n"),
    );
    let run = by_name.apply();
    assert!(
        run.stdout
            .contains("1 imported, 0 added, 0 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    assert_quiet(&run);
    assert_eq!(values(&by_name, "otaas_pipeline.app"), pipeline);
    drop((iws, by_name));

    // When someone changes the pipeline behind Terraform's back, the plan shows the drift
    let on_server = block_on(api.get_pipeline(id.parse().unwrap())).unwrap();
    let mut spec = otaas_api::PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: on_server.name.clone(),
        description: "changed by hand".into(),
        signals: on_server.signals.clone(),
        receivers: on_server.receivers.clone(),
        processors: on_server.processors.clone(),
    };
    block_on(api.update_pipeline(on_server.id, &spec, None)).unwrap();
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(2);
    assert!(
        plan.stdout.contains(r#""changed by hand" ->"#),
        "{}",
        plan.stdout
    );
    // And the apply puts it back
    ws.apply();
    ws.plan_detailed_exitcode().assert_code(0);
    spec.description = block_on(api.get_pipeline(on_server.id))
        .unwrap()
        .description;
    assert_eq!(spec.description, "");

    // A write-only value, which this engine would keep in state, is refused at the attribute
    let wo = CONFIG.replace(
        r#"headers  = { "x-scope-orgid" = "tenant-old" }"#,
        r#"headers_wo = { "x-scope-orgid" = "tenant-secret" }"#,
    );
    ws.write("main.tf", &format!("{PROVIDER}\n{wo}"));
    let refused = ws.plan_detailed_exitcode();
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("Write-only attribute not supported")
            && refused.stderr.contains("Terraform 1.11"),
        "{}",
        refused.stderr
    );
    assert!(
        !ws.read("terraform.tfstate").contains("tenant-secret"),
        "the write-only value reached the state"
    );
    ws.write("main.tf", &format!("{PROVIDER}\n{CONFIG}"));

    // When destroyed, nothing is left on the server
    let run = ws.destroy();
    assert_quiet(&run);
    assert_eq!(block_on(api.list_pipelines()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_agent_groups()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_endpoints()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_exporter_bindings()).unwrap(), vec![]);
}

/// `terraform import ADDR ID` on the old engine into a fresh workspace with `body`.
fn cli_import_old(
    server: &Server,
    body: &str,
    address: &str,
    id: &str,
) -> (Workspace, serde_json::Value) {
    let ws = old_workspace(server, body);
    let run = ws.import(address, id);
    assert_quiet(&run);
    let v = values(&ws, address);
    (ws, v)
}

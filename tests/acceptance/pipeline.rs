//! `otaas_pipeline` end to end: create, clean plan, import four ways, update in place, drift
//! made through the REST API, destroy; JSON reformatting is no diff; bad input names the
//! attribute.

use crate::common::*;
use crate::harness::Server;

const PIPELINE: &str = r#"
resource "otaas_pipeline" "p" {
  name        = "checkout"
  description = "checkout telemetry"
  signals     = ["traces", "metrics"]
  receivers = {
    "hostmetrics" = jsonencode({ collection_interval = "30s", scrapers = { cpu = {} } })
  }
  processors = [
    { id = "memory_limiter", config = jsonencode({ limit_mib = 400, check_interval = "1s" }) },
    { id = "batch" },
  ]
}
"#;

/// The same pipeline, with its JSON written by hand in another layout and key order.
const PIPELINE_REFORMATTED: &str = r#"
resource "otaas_pipeline" "p" {
  name        = "checkout"
  description = "checkout telemetry"
  signals     = ["metrics", "traces"]
  receivers = {
    "hostmetrics" = <<-JSON
      { "scrapers": { "cpu": {} },
        "collection_interval": "30s" }
    JSON
  }
  processors = [
    { id = "memory_limiter", config = "{\"check_interval\": \"1s\", \"limit_mib\": 400}" },
    { id = "batch", config = "{ }" },
  ]
}
"#;

#[test]
fn pipeline_lifecycle() {
    let server = Server::start();
    let api = api(&server);

    // Given a pipeline created by Terraform
    let ws = workspace(&server, PIPELINE);
    ws.apply();
    let created = values(&ws, "otaas_pipeline.p");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["revision"], 1);
    assert_eq!(created["processors"][1]["config"], "{}");
    let on_server = block_on(api.get_pipeline(id.parse().unwrap())).expect("pipeline exists");
    assert_eq!(on_server.name, "checkout");
    assert_eq!(
        on_server.processors[0].config,
        serde_json::json!({"limit_mib": 400, "check_interval": "1s"})
    );
    // Then the next plan is clean, also with the JSON reformatted
    assert_plan_clean(&ws);
    ws.write("main.tf", &format!("{PROVIDER}\n{PIPELINE_REFORMATTED}"));
    assert_plan_clean(&ws);
    ws.write("main.tf", &format!("{PROVIDER}\n{PIPELINE}"));

    // Import by id and by name, on the CLI and with import blocks (id and identity), gives the
    // same state
    assert_eq!(
        cli_import_clean(&server, PIPELINE, "otaas_pipeline.p", &id),
        created
    );
    assert_eq!(
        cli_import_clean(&server, PIPELINE, "otaas_pipeline.p", "checkout"),
        created
    );
    assert_eq!(
        block_import(&server, PIPELINE, "otaas_pipeline.p", r#"id = "checkout""#),
        created
    );
    assert_eq!(
        block_import(
            &server,
            PIPELINE,
            "otaas_pipeline.p",
            &format!("identity = {{ id = \"{id}\" }}")
        ),
        created
    );

    // When the processors change, the pipeline is updated in place
    let updated_cfg = PIPELINE.replace(
        r#"{ id = "batch" },"#,
        r#"{ id = "batch", config = jsonencode({ timeout = "2s" }) },"#,
    );
    ws.write("main.tf", &format!("{PROVIDER}\n{updated_cfg}"));
    let run = ws.apply();
    assert!(
        run.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    let updated = values(&ws, "otaas_pipeline.p");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["revision"], 2);
    let on_server = block_on(api.get_pipeline(id.parse().unwrap())).unwrap();
    assert_eq!(
        on_server.processors[1].config,
        serde_json::json!({"timeout": "2s"})
    );
    assert_plan_clean(&ws);

    // When someone changes the description through the API, the next plan shows the drift
    let mut spec = otaas_api::PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: on_server.name.clone(),
        description: "changed by hand".into(),
        signals: on_server.signals.clone(),
        receivers: on_server.receivers.clone(),
        processors: on_server.processors.clone(),
    };
    block_on(api.update_pipeline(on_server.id, &spec, Some(on_server.revision))).unwrap();
    let plan = assert_plan_changes(&ws);
    // (Terraform pads attribute names to the longest in the block: compare words)
    let words = plan.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(r#"~ description = "changed by hand" -> "checkout telemetry""#),
        "{plan}"
    );
    // And a change of a processor's config is drift too
    spec.description = "checkout telemetry".into();
    spec.processors[1].config = serde_json::json!({"timeout": "9s"});
    block_on(api.update_pipeline(on_server.id, &spec, None)).unwrap();
    let plan = assert_plan_changes(&ws);
    assert!(plan.contains("9s"), "{plan}");
    ws.apply();
    assert_plan_clean(&ws);

    // When destroyed, nothing is left on the server
    ws.destroy();
    assert_eq!(block_on(api.list_pipelines()).unwrap(), vec![]);
}

#[test]
fn pipeline_bad_input_names_the_attribute() {
    let server = Server::start();
    let ws = workspace(
        &server,
        r#"
resource "otaas_pipeline" "bad" {
  name    = "Not A Name"
  signals = ["traces", "profiles"]
  receivers = { "otlp receiver" = jsonencode([1, 2]) }
  processors = [{ id = "batch", config = "{not json" }]
}

resource "otaas_endpoint" "bad" {
  name        = "in"
  pipeline_id = "not-a-uuid"
  protocol    = "otlp_tcp"
  port        = 70000
}

resource "otaas_agent_group" "bad" {
  name            = "g"
  rollout         = { strategy = "canary", batch_sizes = [0] }
  rollout_timeout = "soon"
}
"#,
    );
    let run = ws.terraform(&["plan", "-no-color", "-input=false"]);
    run.assert_code(1);
    let out = &run.stderr;
    for expected in [
        "Invalid name",
        "with otaas_pipeline.bad,",
        "on main.tf line 10, in resource \"otaas_pipeline\" \"bad\":",
        "\"profiles\" is not a signal",
        "Invalid component id",
        "must be a JSON object",
        "The value is not valid JSON",
        "\"otlp_tcp\" is not allowed here; use one of \"otlp_grpc\", \"otlp_http\".",
        "The value must be a whole number from 1 to 65535; got 70000.",
        "pipeline_id must be a pipeline's id (a UUID)",
        "The canary strategy needs canary_percent (1-100).",
        "rollout_timeout must be a duration",
        "The value must be a whole number from 1 to 4294967295; got 0.",
        // The group lists no pipeline (unset defaults to `[]`): a collector would run nothing.
        "No pipeline",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Nothing was created.
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap(), vec![]);
}

/// Given a filelog receiver in a metrics-only pipeline, or a prometheus destination in a
/// logs-only binding, when planning, then each is an error at its attribute (a collector would
/// refuse both), and nothing is created.
#[test]
fn components_supporting_none_of_their_signals_fail_the_plan_at_the_attribute() {
    let server = Server::start();
    let plan_errors = |body: &str| {
        let ws = workspace(&server, body);
        let run = ws.terraform(&["plan", "-no-color", "-input=false"]);
        run.assert_code(1);
        run.stderr.clone()
    };
    let out = plan_errors(
        r#"
resource "otaas_pipeline" "m" {
  name      = "m"
  signals   = ["metrics"]
  receivers = { "filelog" = jsonencode({ include = ["/var/log/*.log"] }) }
}
"#,
    );
    for expected in [
        "Component supports none of its signals",
        "with otaas_pipeline.m,",
        "receivers = { \"filelog\" = jsonencode",
        "The receiver \"filelog\" supports logs but would run for metrics",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let out = plan_errors(
        r#"
resource "otaas_pipeline" "l" {
  name      = "l"
  signals   = ["logs", "metrics"]
  receivers = { "filelog" = jsonencode({ include = ["/var/log/*.log"] }) }
}

resource "otaas_exporter_binding" "b" {
  name         = "b"
  pipeline_id  = otaas_pipeline.l.id
  signals      = ["logs"]
  destinations = [{ name = "prom", type = "prometheus", endpoint = "0.0.0.0:9464" }]
}
"#,
    );
    for expected in [
        "Component supports none of its signals",
        "with otaas_exporter_binding.b,",
        "destinations = [{ name = \"prom\", type = \"prometheus\"",
        "The exporter \"prometheus\" supports metrics but would run for logs",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap(), vec![]);
}

//! The plan shows the collector config: `collector_config` of pipelines, endpoints and exporter
//! bindings is what the server's renderer makes of them, computed while planning, so a plan that
//! changes a processor shows the YAML lines that change, and warns which agent groups (and how
//! many agents) the change reaches; applying it leaves nothing to plan.

use crate::common::*;
use crate::harness::{FleetSim, Server};

fn config(timeout: &str) -> String {
    format!(
        r#"
resource "otaas_pipeline" "app" {{
  name       = "plan-app"
  signals    = ["logs"]
  receivers  = {{ "filelog" = jsonencode({{ include = ["/var/log/app.log"] }}) }}
  processors = [{{ id = "batch", config = jsonencode({{ timeout = "{timeout}" }}) }}]
}}

resource "otaas_endpoint" "in" {{
  name        = "plan-in"
  pipeline_id = otaas_pipeline.app.id
  protocol    = "otlp_http"
  port        = 4318
  auth        = "none"
}}

resource "otaas_exporter_binding" "out" {{
  name         = "plan-out"
  pipeline_id  = otaas_pipeline.app.id
  destinations = [{{ name = "console", type = "debug", config = jsonencode({{ verbosity = "basic" }}) }}]
}}

resource "otaas_agent_group" "g" {{
  name         = "plan-group"
  selector     = {{ team = "plan" }}
  pipeline_ids = [otaas_pipeline.app.id]
  depends_on   = [otaas_exporter_binding.out, otaas_endpoint.in]
}}
"#
    )
}

#[test]
fn a_plan_that_changes_a_processor_shows_the_collector_config_lines_that_change() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(3)
        .label("team", "plan")
        .start();
    wait_for_agents(&server, ("team", "plan"), 3);
    let ws = workspace(&server, &config("1s"));
    ws.apply();
    // What each object renders, as the agents receive it.
    let pipeline = values(&ws, "otaas_pipeline.app");
    assert_eq!(
        pipeline["collector_config"],
        "receivers:\n  filelog/plan-app:\n    include:\n    - /var/log/app.log\nprocessors:\n  batch/plan-app:\n    timeout: 1s\n"
    );
    assert_eq!(
        values(&ws, "otaas_exporter_binding.out")["collector_config"],
        "exporters:\n  debug/plan-out.console:\n    verbosity: basic\n"
    );
    assert_eq!(
        values(&ws, "otaas_endpoint.in")["collector_config"],
        "receivers:\n  otlp/plan-in:\n    protocols:\n      http:\n        endpoint: 0.0.0.0:4318\n"
    );
    let group = block_on(api(&server).find_agent_group("plan-group"))
        .unwrap()
        .unwrap();
    let rendered = block_on(api(&server).agent_group_config(group.id))
        .unwrap()
        .yaml;
    assert!(
        rendered.contains("batch/plan-app:\n    timeout: 1s"),
        "{rendered}"
    );
    assert_plan_clean(&ws);

    // When the processor changes, the plan shows the YAML line that changes and warns
    ws.write(
        "main.tf",
        &format!("{}\n{}", crate::common::PROVIDER, config("5s")),
    );
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(2);
    let out = &plan.stdout;
    let line = |sign: char, text: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(sign) && l.contains(text))
    };
    assert!(line('-', "timeout: 1s"), "{out}");
    assert!(line('+', "timeout: 5s"), "{out}");
    assert!(out.contains("collector_config"), "{out}");
    let warnings = format!("{}{}", plan.stdout, plan.stderr);
    assert!(warnings.contains("\"plan-group\" (3 agents)"), "{warnings}");

    // Then applying it reaches the group, and nothing is left to plan
    ws.apply();
    assert_plan_clean(&ws);
    let rendered = block_on(api(&server).agent_group_config(group.id))
        .unwrap()
        .yaml;
    assert!(
        rendered.contains("batch/plan-app:\n    timeout: 5s"),
        "{rendered}"
    );
    assert!(
        values(&ws, "otaas_pipeline.app")["collector_config"]
            .as_str()
            .unwrap()
            .contains("timeout: 5s")
    );
}

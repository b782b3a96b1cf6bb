//! Agent health as Terraform reads it: a real collector under `otaas agent` whose exporter
//! cannot reach its destination shows up in `data.otaas_agent` / `data.otaas_agents` as
//! unhealthy, with a reason naming the exporter, its component health and the agent's status.

use serde_json::Value;

use crate::common::*;
use crate::harness::{RealAgent, Server};

/// A local port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

fn health_tf(log: &str, port: u16, agent_id: &str) -> String {
    format!(
        r#"
resource "otaas_pipeline" "app" {{
  name      = "health-app"
  signals   = ["logs"]
  receivers = {{ "filelog" = jsonencode({{ include = ["{log}"], start_at = "beginning", poll_interval = "100ms" }}) }}
  processors = [{{ id = "batch", config = jsonencode({{ timeout = "200ms" }}) }}]
}}

resource "otaas_exporter_binding" "out" {{
  name         = "health-out"
  pipeline_id  = otaas_pipeline.app.id
  destinations = [{{ name = "gone", type = "otlphttp", endpoint = "http://127.0.0.1:{port}" }}]
}}

resource "otaas_agent_group" "g" {{
  name             = "health"
  selector         = {{ env = "health" }}
  pipeline_ids     = [otaas_pipeline.app.id]
  # The rollout's own health gate would see the failing exporter too; this test is about what
  # the data sources say afterwards.
  wait_for_rollout = false
  depends_on       = [otaas_exporter_binding.out]
}}

data "otaas_agent" "a" {{
  id         = "{agent_id}"
  depends_on = [otaas_agent_group.g]
}}

data "otaas_agents" "sick" {{
  health     = "unhealthy"
  depends_on = [otaas_agent_group.g]
}}

output "agent" {{
  value = data.otaas_agent.a
}}

output "sick" {{
  value = [for a in data.otaas_agents.sick.agents : {{ id = a.id, reason = a.unhealthy_reason }}]
}}
"#
    )
}

#[test]
fn an_exporter_that_cannot_reach_its_destination_makes_the_agent_unhealthy_with_the_reason() {
    // Given a real collector under `otaas agent`, and a file with lines to send
    let server = Server::start();
    let agent = RealAgent::start(&server, "env=health");
    wait_for_agents(&server, ("env", "health"), 1);
    let api = api(&server);
    let agent_id = block_on(api.list_agents(&Default::default())).unwrap()[0]
        .id
        .clone();
    let log = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(log.path(), "one\ntwo\nthree\n").unwrap();
    let log = log.path().display().to_string();

    // When a group sends those lines with otlphttp to a closed local port
    let port = closed_port();
    let ws = workspace(&server, &health_tf(&log, port, &agent_id));
    let run = ws.try_apply();
    assert!(run.code == 0, "{}\n{}", run.stderr, agent.log());

    // Then within 60 s, `data.otaas_agent` read by Terraform says unhealthy, naming the exporter
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let outputs = loop {
        let run = ws.try_apply();
        assert!(run.code == 0, "{}\n{}", run.stderr, agent.log());
        let out = ws.terraform(&["output", "-json"]);
        out.assert_success();
        let outputs: Value = serde_json::from_str(&out.stdout).unwrap();
        // Before its config runs the agent is unhealthy too ("waiting for a config"): wait
        // for the reason this test is about.
        let a = &outputs["agent"]["value"];
        if a["healthy"] == Value::Bool(false)
            && a["unhealthy_reason"]
                .as_str()
                .is_some_and(|r| r.contains("/exporter:"))
        {
            break outputs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not turn unhealthy within 60 s: {outputs:#}\n{}",
            agent.log()
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let a = &outputs["agent"]["value"];
    let exporter = "otlphttp/health-out.gone";
    let refused = format!("127.0.0.1:{port}: connect: connection refused");
    let reason = a["unhealthy_reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "pipeline:logs/health-app/exporter:{exporter}: failed to make an HTTP request"
        )) && reason.ends_with(&refused),
        "{reason}"
    );
    // And the component health lists the pipeline and the exporter, both unhealthy
    let components: Vec<(String, bool, String)> = a["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["healthy"].as_bool().unwrap(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        components,
        [
            (
                "pipeline:logs/health-app".to_owned(),
                false,
                "StatusRecoverableError".to_owned()
            ),
            (
                format!("pipeline:logs/health-app/exporter:{exporter}"),
                false,
                "StatusRecoverableError".to_owned()
            ),
        ]
    );
    let exporter_error = a["components"][1]["last_error"].as_str().unwrap();
    assert!(exporter_error.ends_with(&refused), "{exporter_error}");
    // And the agent's own status and last error say the same, and its config applied
    let status = a["health_status"].as_str().unwrap();
    assert!(
        status.starts_with("running (pid ") && status.ends_with("; 1 exporter(s) failing"),
        "{status}"
    );
    let last_error = a["last_error"].as_str().unwrap();
    assert!(
        last_error.starts_with(&format!("exporter {exporter} fails to send: ")),
        "{last_error}"
    );
    assert_eq!(a["remote_config_status"], "applied");
    assert_eq!(a["remote_config_error"], "");
    // And the filtered list carries the same reason
    assert_eq!(
        outputs["sick"]["value"],
        serde_json::json!([{ "id": agent_id, "reason": reason }])
    );
    ws.destroy();
}

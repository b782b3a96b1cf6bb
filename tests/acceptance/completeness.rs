//! The completeness rule through the real Terraform engine: a group with no pipeline fails the
//! plan at `pipeline_ids`; a group whose pipeline has no exporter yet is refused at apply with a
//! diagnostic naming the pipeline and advising `depends_on`; destroying the whole configuration
//! works whatever order Terraform picks (deletes are never refused).

use crate::common::*;
use crate::harness::{FleetSim, Server};

const PIPELINE: &str = r#"
resource "otaas_pipeline" "a" {
  name      = "edge-a"
  signals   = ["logs"]
  receivers = { "otlp" = jsonencode({ protocols = { http = {} } }) }
  processors = [{ id = "batch" }]
}
"#;

const BINDING: &str = r#"
resource "otaas_exporter_binding" "out" {
  name         = "edge-out"
  pipeline_id  = otaas_pipeline.a.id
  destinations = [{ name = "console", type = "debug" }]
}
"#;

fn group(depends_on: &str) -> String {
    format!(
        r#"
resource "otaas_agent_group" "g" {{
  name            = "edge"
  selector        = {{ env = "acc" }}
  pipeline_ids    = [otaas_pipeline.a.id]
  rollout_timeout = "2m"
  {depends_on}
}}
"#
    )
}

/// Terraform wraps diagnostics at spaces: compare with every run of whitespace as one space.
#[track_caller]
fn assert_all_in(text: &str, wants: &[&str]) {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in wants {
        assert!(flat.contains(want), "{want:?} not in:\n{text}");
    }
}

/// Given a group with `pipeline_ids = []`, when planned, then the plan fails at the attribute
/// and nothing is created.
#[test]
fn a_group_without_pipelines_fails_the_plan_at_pipeline_ids() {
    let server = Server::start();
    let ws = workspace(
        &server,
        r#"
resource "otaas_agent_group" "g" {
  name         = "empty"
  pipeline_ids = []
}
"#,
    );
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(1);
    assert_all_in(
        &plan.stderr,
        &[
            "No pipeline",
            "otaas_agent_group.g",
            "pipeline_ids",
            "An agent group needs at least one pipeline in pipeline_ids",
        ],
    );
    assert_eq!(block_on(api(&server).list_agent_groups()).unwrap(), vec![]);
}

/// Given a group whose pipeline has a receiver but no binding yet, when applied, then apply
/// fails with the server's 422 at `pipeline_ids`, naming the group and the pipeline and telling
/// to add the binding and `depends_on`; when the binding is added with `depends_on`, apply
/// succeeds and the fleet runs the config; and `terraform destroy` removes everything even
/// without `depends_on` (the binding may go first).
#[test]
fn a_group_applied_before_its_binding_is_refused_and_destroy_always_works() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "acc")
        .start();
    wait_for_agents(&server, ("env", "acc"), 2);

    // When the group is applied before any binding exists
    let ws = workspace(&server, &format!("{PIPELINE}\n{}", group("")));
    let run = ws.try_apply();
    // Then apply fails with the diagnostic at pipeline_ids, and no group exists
    run.assert_code(1);
    assert_all_in(
        &run.stderr,
        &[
            "otaas_agent_group.g",
            "pipeline_ids",
            "agent group \"edge\" would have an incomplete collector config",
            "pipeline \"edge-a\" has no exporter for any of its signals (logs)",
            "add an exporter binding",
            "depends_on",
        ],
    );
    assert_eq!(block_on(api(&server).list_agent_groups()).unwrap(), vec![]);

    // When the binding is added and the group depends on it
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{PIPELINE}\n{BINDING}\n{}",
            group("depends_on = [otaas_exporter_binding.out]")
        ),
    );
    ws.apply();
    // Then the group exists with its first config, applied by the fleet
    let g = values(&ws, "otaas_agent_group.g");
    assert_eq!(g["config_revision"], 1);
    let status =
        block_on(api(&server).group_status(g["id"].as_str().unwrap().parse().unwrap())).unwrap();
    assert_eq!((status.matched, status.applied), (2, 2));
    assert_plan_clean(&ws);

    // When depends_on is dropped (binding and group are then independent) and all is destroyed
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{PIPELINE}\n{BINDING}\n{}", group("")),
    );
    ws.apply();
    ws.destroy();
    // Then nothing is left on the server
    let api = api(&server);
    assert_eq!(block_on(api.list_agent_groups()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_exporter_bindings()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_pipelines()).unwrap(), vec![]);
}

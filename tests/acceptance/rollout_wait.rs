//! Apply waits for every change that reaches agents: a pipeline or exporter binding change is
//! rolled out to a real collector under `otaas agent`, apply returns once it runs it (and a data
//! source read after it sees the new revision) or fails naming the group, the agent and the
//! component the collector refused. A change that reaches no group does not wait; the
//! provider block's defaults and the per-resource override apply. Also the warning for a
//! selector that matches no agent and the import hint of a name clash.

use serde_json::Value;

use crate::common::*;
use crate::harness::process::Finished;
use crate::harness::{FleetSim, RealAgent, Server, Workspace};

/// A file-tailing pipeline (`start_at` as given) with an OTLP/HTTP binding (`destinations`), a
/// group of the agents labelled env=wait, and the group's status read after the pipeline and
/// the binding changed.
fn real_tf(log: &str, start_at: &str, destinations: &str) -> String {
    format!(
        r#"
resource "otaas_pipeline" "p" {{
  name       = "tail"
  signals    = ["logs"]
  receivers  = {{ "filelog" = jsonencode({{ include = ["{log}"], start_at = "{start_at}" }}) }}
  processors = [{{ id = "batch" }}]
  rollout_timeout = "2m"
}}

resource "otaas_exporter_binding" "out" {{
  name         = "tail-out"
  pipeline_id  = otaas_pipeline.p.id
  destinations = [{destinations}]
  rollout_timeout = "2m"
}}

resource "otaas_agent_group" "g" {{
  name            = "wait"
  selector        = {{ env = "wait" }}
  pipeline_ids    = [otaas_pipeline.p.id]
  rollout_timeout = "2m"
  depends_on      = [otaas_exporter_binding.out]
}}

data "otaas_agent_group_status" "s" {{
  group_id   = otaas_agent_group.g.id
  depends_on = [otaas_pipeline.p, otaas_exporter_binding.out]
}}
"#
    )
}

/// What a run printed, with Terraform's line wrapping undone (every run of whitespace is one
/// space), so a diagnostic's sentences can be looked for whole.
fn flat(run: &Finished) -> String {
    format!("{} {}", run.stdout, run.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

const SINK: &str = r#"{ name = "sink", type = "otlphttp", endpoint = "http://127.0.0.1:9" }"#;

/// A server, one real collector under `otaas agent` with env=wait, and a file for it to tail.
fn real_fleet() -> (Server, RealAgent, tempfile::NamedTempFile, String) {
    let server = Server::start();
    let agent = RealAgent::start(&server, "env=wait");
    wait_for_agents(&server, ("env", "wait"), 1);
    let log = tempfile::NamedTempFile::new().unwrap();
    let agent_id = block_on(api(&server).list_agents(&Default::default())).unwrap()[0]
        .id
        .clone();
    (server, agent, log, agent_id)
}

/// The group's config revision and hash on the server, and what the agent runs.
fn group_and_agent(server: &Server) -> (i64, String, Option<String>, otaas_api::RemoteConfigState) {
    let api = api(server);
    let g = block_on(api.find_agent_group("wait")).unwrap().unwrap();
    let agent = block_on(api.list_agents(&Default::default()))
        .unwrap()
        .remove(0);
    (
        g.config_revision,
        g.config_hash,
        agent.remote_config_hash,
        agent.remote_config_status,
    )
}

/// Applies `tf` and asserts it succeeded only once the agent runs the group's new revision,
/// which the status data source read in the same apply reports too.
#[track_caller]
fn assert_applied_and_read(ws: &Workspace, server: &Server, agent: &RealAgent, revision: i64) {
    let run = ws.try_apply();
    assert!(run.code == 0, "{}\n{}", run.stderr, agent.log());
    // Then, right after apply returned, the agent already runs the new revision
    let (config_revision, hash, agent_hash, agent_state) = group_and_agent(server);
    assert_eq!(config_revision, revision);
    assert_eq!(
        (agent_hash, agent_state),
        (Some(hash.clone()), otaas_api::RemoteConfigState::Applied)
    );
    // And the data source read after the change saw that revision, complete
    let s = values(ws, "data.otaas_agent_group_status.s");
    assert_eq!(
        (
            s["revision"].clone(),
            s["config_hash"].clone(),
            s["state"].clone()
        ),
        (
            Value::from(revision),
            Value::from(hash),
            Value::from("complete")
        )
    );
}

#[test]
fn pipeline_changes_wait_for_the_collector_and_fail_naming_what_it_refused() {
    let (server, agent, log, agent_id) = real_fleet();
    let log = log.path().display().to_string();
    // Given a group whose collector runs the pipeline (config revision 1)
    let ws = workspace(&server, &real_tf(&log, "beginning", SINK));
    assert_applied_and_read(&ws, &server, &agent, 1);

    // When the pipeline changes in a way the collector accepts
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", real_tf(&log, "end", SINK)),
    );
    // Then apply returns once the collector runs revision 2, and the data source shows it
    assert_applied_and_read(&ws, &server, &agent, 2);

    // When the pipeline changes in a way the collector refuses (start_at = "middle")
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", real_tf(&log, "middle", SINK)),
    );
    let run = ws.try_apply();
    // Then apply fails at the pipeline, naming the group, the agent and the component
    run.assert_code(1);
    for want in [
        "Rollout failed",
        "otaas_pipeline.p",
        "change to pipeline \"tail\"",
        "agent group \"wait\"",
        "1 failed",
        agent_id.as_str(),
        "filelog",
        "middle",
    ] {
        assert!(
            flat(&run).contains(want),
            "{want:?} not in:\n{}",
            run.stderr
        );
    }
    // And the server recorded revision 3 as failed (apply did not return before the verdict)
    let g = block_on(api(&server).find_agent_group("wait"))
        .unwrap()
        .unwrap();
    let status = block_on(api(&server).group_status(g.id)).unwrap();
    assert_eq!(
        (status.revision, status.state),
        (3, otaas_api::RolloutState::Failed)
    );
}

#[test]
fn binding_changes_wait_for_the_collector_and_fail_naming_what_it_refused() {
    let (server, agent, log, agent_id) = real_fleet();
    let log = log.path().display().to_string();
    // Given a group whose collector runs the pipeline and its binding (config revision 1)
    let ws = workspace(&server, &real_tf(&log, "beginning", SINK));
    assert_applied_and_read(&ws, &server, &agent, 1);

    // When the binding gains a destination the collector accepts
    let two = format!(
        r#"{SINK}, {{ name = "backup", type = "otlphttp", endpoint = "http://127.0.0.1:10" }}"#
    );
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", real_tf(&log, "beginning", &two)),
    );
    // Then apply returns once the collector runs revision 2, and the data source shows it
    assert_applied_and_read(&ws, &server, &agent, 2);

    // When the binding gains a destination the collector refuses (a queue without consumers)
    let bad = format!(
        r#"{SINK}, {{ name = "backup", type = "otlphttp", endpoint = "http://127.0.0.1:10", config = jsonencode({{ sending_queue = {{ num_consumers = 0 }} }}) }}"#
    );
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", real_tf(&log, "beginning", &bad)),
    );
    let run = ws.try_apply();
    // Then apply fails at the binding, naming the group, the agent and the exporter
    run.assert_code(1);
    for want in [
        "Rollout failed",
        "otaas_exporter_binding.out",
        "change to exporter binding \"tail-out\"",
        "agent group \"wait\"",
        agent_id.as_str(),
        "otlphttp/",
        "num_consumers",
    ] {
        assert!(
            flat(&run).contains(want),
            "{want:?} not in:\n{}",
            run.stderr
        );
    }
}

/// Two pipelines, only `a` in the group; the group is a canary that bakes for an hour, so any
/// rollout after its first stays in progress and a wait for it cannot end in time.
fn baking_tf(a_processors: &str, other_processors: &str, a_extra: &str) -> String {
    format!(
        r#"
provider "otaas" {{
  rollout_timeout = "5s"
}}

resource "otaas_pipeline" "a" {{
  name       = "in-group"
  signals    = ["logs"]
  receivers  = {{ "otlp" = jsonencode({{ protocols = {{ http = {{}} }} }}) }}
  processors = [{a_processors}]
  {a_extra}
}}

resource "otaas_exporter_binding" "a" {{
  name         = "in-group-out"
  pipeline_id  = otaas_pipeline.a.id
  destinations = [{{ name = "console", type = "debug" }}]
}}

resource "otaas_pipeline" "other" {{
  name       = "in-no-group"
  signals    = ["logs"]
  receivers  = {{ "otlp" = jsonencode({{ protocols = {{ http = {{}} }} }}) }}
  processors = [{other_processors}]
}}

resource "otaas_agent_group" "g" {{
  name         = "baking"
  selector     = {{ env = "bake" }}
  pipeline_ids = [otaas_pipeline.a.id]
  rollout = {{
    strategy       = "canary"
    canary_percent = 50
    bake_seconds   = 3600
  }}
  rollout_timeout = "2m"
  depends_on      = [otaas_exporter_binding.a]
}}
"#
    )
}

#[test]
fn only_changes_that_reach_a_group_wait_with_the_provider_default_or_their_own_setting() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "bake")
        .start();
    wait_for_agents(&server, ("env", "bake"), 2);
    let batch = r#"{ id = "batch" }"#;
    let two = r#"{ id = "batch" }, { id = "memory_limiter", config = jsonencode({ check_interval = "1s", limit_mib = 100 }) }"#;
    // Given a group whose first revision reached both agents; its next rollouts bake an hour
    let ws = workspace(&server, &baking_tf(batch, batch, ""));
    ws.apply();
    let api = api(&server);
    let g = block_on(api.find_agent_group("baking")).unwrap().unwrap();
    assert_eq!(g.config_revision, 1);

    // When a pipeline in no group changes
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", baking_tf(batch, two, "")),
    );
    // Then apply succeeds: nothing reached an agent, so there was nothing to wait for
    let run = ws.try_apply();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        block_on(api.get_agent_group(g.id)).unwrap().config_revision,
        1
    );

    // When the group's pipeline changes, with the provider's rollout_timeout of 5s
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", baking_tf(two, two, "")),
    );
    let run = ws.try_apply();
    // Then apply waited for the group and gave up after the provider's timeout, at the pipeline
    run.assert_code(1);
    for want in [
        "Rollout timed out",
        "otaas_pipeline.a",
        "agent group \"baking\"",
        "config revision 2",
        "within 5s",
        "rollout_timeout",
    ] {
        assert!(
            flat(&run).contains(want),
            "{want:?} not in:\n{}",
            run.stderr
        );
    }

    // When the pipeline changes again with wait_for_rollout = false on the resource
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            baking_tf(batch, two, "wait_for_rollout = false")
        ),
    );
    // Then apply returns although that rollout bakes too
    let run = ws.try_apply();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status = block_on(api.group_status(g.id)).unwrap();
    assert_eq!(
        (status.revision, status.state),
        (3, otaas_api::RolloutState::InProgress)
    );
    // And the local setting alone is no change for the server
    assert_plan_clean(&ws);
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", baking_tf(batch, two, "")),
    );
    let run = ws.try_apply();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let p = block_on(api.find_pipeline("in-group")).unwrap().unwrap();
    assert_eq!(p.revision, 3);
    assert_eq!(
        block_on(api.get_agent_group(g.id)).unwrap().config_revision,
        3
    );

    // When an endpoint is added to the group's pipeline, with its own rollout_timeout of 3s
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}\n{}",
            baking_tf(batch, two, ""),
            r#"
resource "otaas_endpoint" "in" {
  name            = "in-group-in"
  pipeline_id     = otaas_pipeline.a.id
  protocol        = "otlp_http"
  port            = 14318
  auth            = "none"
  rollout_timeout = "3s"
}
"#
        ),
    );
    let run = ws.try_apply();
    // Then the endpoint's apply waited for the group too, for its own 3s
    run.assert_code(1);
    for want in [
        "Rollout timed out",
        "otaas_endpoint.in",
        "change to endpoint \"in-group-in\"",
        "config revision 4",
        "within 3s",
    ] {
        assert!(
            flat(&run).contains(want),
            "{want:?} not in:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_selector_matching_no_agent_is_a_warning() {
    let server = Server::start();
    // Given a group whose selector no connected agent has
    let ws = workspace(
        &server,
        r#"
resource "otaas_pipeline" "p" {
  name      = "lonely"
  signals   = ["logs"]
  receivers = { "otlp" = jsonencode({ protocols = { http = {} } }) }
}

resource "otaas_exporter_binding" "out" {
  name         = "lonely-out"
  pipeline_id  = otaas_pipeline.p.id
  destinations = [{ name = "console", type = "debug" }]
}

resource "otaas_agent_group" "g" {
  name         = "nobody"
  selector     = { env = "nowhere" }
  pipeline_ids = [otaas_pipeline.p.id]
  depends_on   = [otaas_exporter_binding.out]
}
"#,
    );
    // When applied
    let run = ws.apply();
    // Then it succeeds with a warning that says why and how to check the labels
    let out = flat(&run);
    for want in [
        "Warning: Selector matches no agent",
        "agent group \"nobody\" (env=nowhere)",
        "config revision 1 is complete without any agent having applied it",
        "selector=env=nowhere",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
}

#[test]
fn a_name_clash_says_how_to_import_and_the_import_works() {
    let server = Server::start();
    // Given a pipeline made outside Terraform
    let existing = block_on(api(&server).create_pipeline(&otaas_api::PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: "taken".into(),
        description: String::new(),
        signals: vec![otaas_api::Signal::Logs],
        receivers: Default::default(),
        processors: Vec::new(),
    }))
    .unwrap();
    let body = r#"
resource "otaas_pipeline" "mine" {
  name    = "taken"
  signals = ["logs"]
}
"#;
    // When a configuration creates one with the same name
    let ws = workspace(&server, body);
    let run = ws.try_apply();
    // Then apply fails at the name with the command and the block that adopt it
    run.assert_code(1);
    for want in [
        "The pipeline \"taken\" already exists",
        "terraform import otaas_pipeline.<label> taken",
        "to = otaas_pipeline.<label>",
        "id = \"taken\"",
        "name_taken",
    ] {
        assert!(
            flat(&run).contains(want),
            "{want:?} not in:\n{}",
            run.stderr
        );
    }
    // And following the hint adopts the existing pipeline, which then plans clean
    let v = block_import(&server, body, "otaas_pipeline.mine", r#"id = "taken""#);
    assert_eq!(v["id"], existing.id.to_string());
}

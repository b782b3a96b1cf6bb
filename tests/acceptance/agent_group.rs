//! `otaas_agent_group` end to end with `fleet-sim` agents: apply waits until every matched agent
//! applied the group's config; imports; update in place (a new rollout); drift; destroy. And a
//! fleet that rejects a component makes apply fail with the agents and their error named.

use serde_json::Value;

use crate::common::*;
use crate::harness::{FleetSim, RealAgent, Server};

fn group_tf(pipelines: &str, max_failures: u32) -> String {
    format!(
        r#"
resource "otaas_pipeline" "a" {{
  name    = "edge-a"
  signals = ["logs"]
  receivers = {{ "otlp" = jsonencode({{ protocols = {{ http = {{}} }} }}) }}
  processors = [{{ id = "batch" }}]
}}

resource "otaas_pipeline" "b" {{
  name    = "edge-b"
  signals = ["metrics"]
  receivers = {{ "hostmetrics" = jsonencode({{ scrapers = {{ cpu = {{}} }} }}) }}
}}

resource "otaas_exporter_binding" "out" {{
  name         = "edge-out"
  pipeline_id  = otaas_pipeline.a.id
  destinations = [{{ name = "console", type = "debug" }}]
}}

resource "otaas_exporter_binding" "out_b" {{
  name         = "edge-out-b"
  pipeline_id  = otaas_pipeline.b.id
  destinations = [{{ name = "console", type = "debug" }}]
}}

resource "otaas_agent_group" "g" {{
  name         = "edge"
  selector     = {{ env = "acc" }}
  pipeline_ids = [{pipelines}]
  rollout = {{
    strategy     = "all_at_once"
    max_failures = {max_failures}
  }}
  rollout_timeout = "2m"
  depends_on      = [otaas_exporter_binding.out, otaas_exporter_binding.out_b]
}}
"#
    )
}

/// Every agent with env=acc reports APPLIED for `hash`.
fn assert_fleet_on(server: &Server, hash: &str, n: usize) {
    let agents = block_on(api(server).list_agents(&otaas_api::AgentQuery {
        selector: [("env".to_string(), "acc".to_string())].into(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(agents.len(), n);
    for a in agents {
        assert_eq!(
            (a.remote_config_hash.as_deref(), a.remote_config_status),
            (Some(hash), otaas_api::RemoteConfigState::Applied),
            "agent {}",
            a.id
        );
    }
}

#[test]
fn agent_group_waits_for_rollout() {
    let server = Server::start();
    let api = api(&server);
    let _fleet = FleetSim::builder(&server)
        .agents(3)
        .label("env", "acc")
        .start();
    wait_for_agents(&server, ("env", "acc"), 3);

    // Given a group over the fleet: apply returns once all three agents applied its config
    let ws = workspace(&server, &group_tf("otaas_pipeline.a.id", 0));
    ws.apply();
    let created = values(&ws, "otaas_agent_group.g");
    let hash = created["config_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    assert_eq!(created["wait_for_rollout"], true);
    assert_eq!(created["rollout"]["strategy"], "all_at_once");
    assert_fleet_on(&server, &hash, 3);
    let id = created["id"].as_str().unwrap().to_string();
    let status = block_on(api.group_status(id.parse().unwrap())).unwrap();
    assert_eq!(
        (status.state, status.matched, status.applied, status.failed),
        (otaas_api::status::RolloutState::Complete, 3, 3, 0)
    );
    assert_plan_clean(&ws);

    // Import by id and name gives the same state
    let pa = values(&ws, "otaas_pipeline.a")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let standalone = format!(
        r#"
resource "otaas_agent_group" "g" {{
  name         = "edge"
  selector     = {{ env = "acc" }}
  pipeline_ids = ["{pa}"]
  rollout = {{
    strategy     = "all_at_once"
    max_failures = 0
  }}
  rollout_timeout = "2m"
}}
"#
    );
    let mut expected = created.clone();
    // rollout_timeout is a provider-side setting: an import gets the default.
    expected["rollout_timeout"] = "10m".into();
    for key in [id.as_str(), "edge"] {
        let (iws, imported) = cli_import(&server, &standalone, "otaas_agent_group.g", key);
        assert_eq!(imported, expected, "{key}");
        // Only the local setting differs from the config: an update that touches nothing remote.
        let plan = iws.plan_detailed_exitcode();
        plan.assert_code(2);
        assert!(
            plan.stdout
                .contains(r#"~ rollout_timeout  = "10m" -> "2m""#),
            "{}",
            plan.stdout
        );
        iws.apply();
        assert_eq!(values(&iws, "otaas_agent_group.g"), created);
    }
    for target in [
        r#"id = "edge""#.to_string(),
        format!("identity = {{ id = \"{id}\" }}"),
    ] {
        let imported = block_import_expect(
            &server,
            &standalone,
            "otaas_agent_group.g",
            &target,
            "1 imported, 0 added, 1 changed, 0 destroyed",
        );
        assert_eq!(imported, created, "{target}");
    }
    assert_eq!(
        block_on(api.get_agent_group(id.parse().unwrap()))
            .unwrap()
            .revision,
        1
    );

    // When a second pipeline is added, the group is updated in place and apply waits again
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            group_tf("otaas_pipeline.a.id, otaas_pipeline.b.id", 0)
        ),
    );
    let run = ws.apply();
    assert!(
        run.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    let updated = values(&ws, "otaas_agent_group.g");
    let new_hash = updated["config_hash"].as_str().unwrap().to_string();
    assert_ne!(new_hash, hash);
    assert_eq!(updated["revision"], 2);
    assert_fleet_on(&server, &new_hash, 3);
    assert_plan_clean(&ws);

    // When max_failures is changed through the API, the plan shows the drift
    let g = block_on(api.get_agent_group(id.parse().unwrap())).unwrap();
    let mut rollout = g.rollout.clone();
    rollout.max_failures = 5;
    let spec = otaas_api::AgentGroupSpec {
        pinned_revision: None,
        name: g.name.clone(),
        selector: g.selector.clone(),
        pipeline_ids: g.pipeline_ids.clone(),
        rollout,
    };
    block_on(api.update_agent_group(g.id, &spec, None)).unwrap();
    let plan = assert_plan_changes(&ws);
    assert!(plan.contains("~ max_failures  = 5 -> 0"), "{plan}");

    // When destroyed, nothing is left on the server
    ws.destroy();
    assert_eq!(block_on(api.list_agent_groups()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_pipelines()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_exporter_bindings()).unwrap(), vec![]);
}

#[test]
fn rollout_rejected_by_agents_fails_apply_naming_them() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "acc")
        .reject_components(&["kafka"])
        .start();
    wait_for_agents(&server, ("env", "acc"), 2);
    let agents: Vec<String> = block_on(api(&server).list_agents(&Default::default()))
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();

    // Given a group whose config uses an exporter the agents lack
    let tf = group_tf("otaas_pipeline.a.id", 0).replace(
        r#"destinations = [{ name = "console", type = "debug" }]
}

resource "otaas_exporter_binding" "out_b""#,
        r#"destinations = [{ name = "bus", type = "kafka", config = jsonencode({ brokers = ["kafka:9092"] }) }]
}

resource "otaas_exporter_binding" "out_b""#,
    );
    assert!(tf.contains("kafka:9092"));
    let ws = workspace(&server, &tf);
    // When applied, then apply fails and says which agents failed, and why
    let run = ws.try_apply();
    run.assert_code(1);
    assert!(run.stderr.contains("Rollout failed"), "{}", run.stderr);
    assert!(run.stderr.contains("2 failed"), "{}", run.stderr);
    for id in &agents {
        assert!(
            run.stderr.contains(id.as_str()),
            "agent {id} not named: {}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("kafka"), "{}", run.stderr);
    // And the group exists, tainted, so the next apply tries again
    let group: Value = values(&ws, "otaas_agent_group.g");
    assert_eq!(group["name"], "edge");
    let show = ws.show_json();
    let tainted = show["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["address"] == "otaas_agent_group.g" && r["tainted"] == true);
    assert!(tainted, "{show}");
}

#[test]
fn rollout_timeout_fails_apply_at_the_attribute() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "acc")
        .start();
    wait_for_agents(&server, ("env", "acc"), 2);

    // Given a group whose first rollout completes (revision 1 reaches both agents)
    let ws = workspace(&server, &group_tf("otaas_pipeline.a.id", 0));
    ws.apply();
    let first = values(&ws, "otaas_agent_group.g");

    // When the next change is a canary that bakes far longer than rollout_timeout
    let slow = group_tf("otaas_pipeline.a.id, otaas_pipeline.b.id", 0)
        .replace(
            r#"strategy     = "all_at_once""#,
            r#"strategy       = "canary"
    canary_percent = 50
    bake_seconds   = 3600"#,
        )
        .replace(r#"rollout_timeout = "2m""#, r#"rollout_timeout = "3s""#);
    assert!(slow.contains("bake_seconds   = 3600") && slow.contains(r#""3s""#));
    ws.write("main.tf", &format!("{PROVIDER}\n{slow}"));
    let run = ws.try_apply();

    // Then apply fails with a diagnostic at rollout_timeout that says where the rollout stands
    run.assert_code(1);
    assert!(run.stderr.contains("Rollout timed out"), "{}", run.stderr);
    assert!(run.stderr.contains("within 3s"), "{}", run.stderr);
    assert!(run.stderr.contains("rollout_timeout"), "{}", run.stderr);
    assert!(run.stderr.contains("2 matched"), "{}", run.stderr);
    // And the server still holds the new revision, rolling out (the canary is baking)
    let id: otaas_api::AgentGroupId = first["id"].as_str().unwrap().parse().unwrap();
    let status = block_on(api(&server).group_status(id)).unwrap();
    assert_eq!(status.revision, 2);
    assert_eq!(
        status.state,
        otaas_api::status::RolloutState::InProgress,
        "{status:?}"
    );
}

/// A pipeline tailing a file into an OTLP/HTTP destination, a second pipeline (in no group yet)
/// exporting to Kafka, and a group of the agents labelled `env=real`.
fn real_tf(log: &str, group_pipelines: &str, processors: &str) -> String {
    format!(
        r#"
resource "otaas_pipeline" "a" {{
  name      = "real-a"
  signals   = ["logs"]
  receivers = {{ "filelog" = jsonencode({{ include = ["{log}"], start_at = "beginning" }}) }}
  processors = [{processors}]
}}

resource "otaas_exporter_binding" "out" {{
  name         = "real-out"
  pipeline_id  = otaas_pipeline.a.id
  destinations = [{{ name = "sink", type = "otlphttp", endpoint = "http://127.0.0.1:9" }}]
}}

resource "otaas_pipeline" "k" {{
  name      = "real-kafka"
  signals   = ["logs"]
  receivers = {{ "filelog" = jsonencode({{ include = ["{log}"] }}) }}
}}

resource "otaas_exporter_binding" "k" {{
  name         = "real-kafka-out"
  pipeline_id  = otaas_pipeline.k.id
  destinations = [{{ name = "bus", type = "kafka", config = jsonencode({{ brokers = ["127.0.0.1:9092"] }}) }}]
}}

resource "otaas_agent_group" "g" {{
  name            = "real"
  selector        = {{ env = "real" }}
  pipeline_ids    = [{group_pipelines}]
  rollout_timeout = "2m"
  depends_on      = [otaas_exporter_binding.out, otaas_exporter_binding.k]
}}
"#
    )
}

#[test]
fn a_component_the_agents_lack_fails_the_plan_at_the_attribute() {
    let server = Server::start();
    let agent = RealAgent::start(&server, "env=real");
    wait_for_agents(&server, ("env", "real"), 1);
    let api = api(&server);
    wait_until(60, "the agent's components", || {
        block_on(api.list_agents(&Default::default()))
            .is_ok_and(|a| a.iter().any(|a| a.available_components.is_some()))
    });
    let log = tempfile::NamedTempFile::new().unwrap();
    let log = log.path().display().to_string();

    // Given a group whose config the real collector runs (apply waits for APPLIED)
    let ws = workspace(
        &server,
        &real_tf(&log, "otaas_pipeline.a.id", r#"{ id = "batch" }"#),
    );
    let run = ws.try_apply();
    assert!(run.code == 0, "{}\n{}", run.stderr, agent.log());
    let agent_id = block_on(api.list_agents(&Default::default())).unwrap()[0]
        .id
        .clone();

    // When the group would also run the Kafka pipeline (this collector has no kafka exporter)
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            real_tf(
                &log,
                "otaas_pipeline.a.id, otaas_pipeline.k.id",
                r#"{ id = "batch" }"#
            )
        ),
    );
    let plan = ws.plan_detailed_exitcode();
    // Then the plan fails at pipeline_ids, naming the component and the agent
    plan.assert_code(1);
    for want in [
        "Component not available on the target agents",
        "otaas_agent_group.g",
        "pipeline_ids",
        "exporter \"kafka\"",
        agent_id.as_str(),
    ] {
        assert!(
            plan.stderr.contains(want),
            "{want:?} not in:\n{}",
            plan.stderr
        );
    }

    // When the group's pipeline gains a processor this build lacks
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}",
            real_tf(
                &log,
                "otaas_pipeline.a.id",
                r#"{ id = "batch" }, { id = "transform", config = jsonencode({ log_statements = [] }) }"#
            )
        ),
    );
    let plan = ws.plan_detailed_exitcode();
    // Then the plan fails at the pipeline's processors
    plan.assert_code(1);
    for want in [
        "otaas_pipeline.a",
        "processors",
        "processor \"transform\"",
        agent_id.as_str(),
    ] {
        assert!(
            plan.stderr.contains(want),
            "{want:?} not in:\n{}",
            plan.stderr
        );
    }
    // When the group's binding gains a Kafka destination
    let kafka_dest = r#"destinations = [{ name = "sink", type = "otlphttp", endpoint = "http://127.0.0.1:9" }, { name = "bus", type = "kafka", config = jsonencode({ brokers = ["127.0.0.1:9092"] }) }]"#;
    let tf = real_tf(&log, "otaas_pipeline.a.id", r#"{ id = "batch" }"#).replacen(
        r#"destinations = [{ name = "sink", type = "otlphttp", endpoint = "http://127.0.0.1:9" }]"#,
        kafka_dest,
        1,
    );
    assert!(tf.contains(kafka_dest));
    ws.write("main.tf", &format!("{PROVIDER}\n{tf}"));
    let plan = ws.plan_detailed_exitcode();
    // Then the plan fails at the binding's destinations
    plan.assert_code(1);
    for want in [
        "otaas_exporter_binding.out",
        "destinations",
        "exporter \"kafka\"",
        agent_id.as_str(),
    ] {
        assert!(
            plan.stderr.contains(want),
            "{want:?} not in:\n{}",
            plan.stderr
        );
    }
    // And nothing changed on the server
    let g = block_on(api.find_agent_group("real")).unwrap().unwrap();
    assert_eq!(g.config_revision, 1);
}

//! Pinning a group to an earlier config revision and the rollout actions, with the real engine
//! and fleet-sim agents: `pinned_revision` brings every agent back to that revision's hash
//! (apply waits for it), later pipeline writes make new revisions the agents do not get, and
//! removing the pin brings them forward to the latest; `terraform apply -invoke` pauses,
//! resumes and rolls back a rollout, the rollback reporting its progress.

use otaas_api::{AgentQuery, RolloutState};

use crate::common::*;
use crate::harness::process::Finished;
use crate::harness::{FleetSim, Server, Workspace};

/// A logs pipeline whose batch processor times out after `timeout` (each value renders a new
/// config revision), its binding, and a group over the `env` agents with `group_extra` in it.
fn config(env: &str, timeout: &str, pipeline_extra: &str, group_extra: &str) -> String {
    format!(
        r#"
resource "otaas_pipeline" "p" {{
  name       = "{env}-app"
  signals    = ["logs"]
  receivers  = {{ "filelog" = jsonencode({{ include = ["/var/log/{env}/*.log"] }}) }}
  processors = [{{ id = "batch", config = jsonencode({{ timeout = "{timeout}" }}) }}]
  {pipeline_extra}
}}

resource "otaas_exporter_binding" "out" {{
  name         = "{env}-out"
  pipeline_id  = otaas_pipeline.p.id
  destinations = [{{ name = "gw", type = "otlphttp", endpoint = "http://127.0.0.1:9" }}]
}}

resource "otaas_agent_group" "g" {{
  name         = "{env}"
  selector     = {{ env = "{env}" }}
  pipeline_ids = [otaas_pipeline.p.id]
  depends_on   = [otaas_exporter_binding.out]
  {group_extra}
}}
"#
    )
}

/// The config hash each connected agent with `env` runs and has applied (sorted).
fn agent_hashes(server: &Server, env: &str) -> Vec<Option<String>> {
    let query = AgentQuery {
        selector: [("env".to_owned(), env.to_owned())].into(),
        connected: Some(true),
        ..Default::default()
    };
    let mut hashes: Vec<Option<String>> = block_on(api(server).list_agents(&query))
        .unwrap()
        .into_iter()
        .map(|a| {
            (a.remote_config_status == otaas_api::RemoteConfigState::Applied)
                .then_some(a.remote_config_hash)
                .flatten()
        })
        .collect();
    hashes.sort();
    hashes
}

/// The group's latest config revision and hash on the server (the state's are as of the
/// group's own last apply, before a pipeline change in the same run).
fn group_hash(ws: &Workspace, server: &Server) -> (i64, String) {
    let id = values(ws, "otaas_agent_group.g")["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let g = block_on(api(server).get_agent_group(id)).unwrap();
    (g.config_revision, g.config_hash)
}

/// Terraform's output with its line wrapping undone.
fn flat(run: &Finished) -> String {
    format!("{} {}", run.stdout, run.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Given a group of 3 agents on config revision 2 (batched, steps of 1 then the rest), when it
/// is pinned to revision 1, then apply returns once every agent runs revision 1's hash and the
/// plan is clean; when the pipeline changes while pinned, then revision 3 is made but the agents
/// stay on revision 1; when the pin is removed, then apply returns once every agent runs
/// revision 3's hash.
#[test]
fn a_pin_holds_the_agents_on_an_earlier_revision_and_removing_it_brings_them_forward() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(3)
        .label("env", "pin")
        .start();
    wait_for_agents(&server, ("env", "pin"), 3);
    let rollout = r#"rollout = { strategy = "batched", batch_sizes = [1, 2] }"#;
    let ws = workspace(&server, &config("pin", "1s", "", rollout));
    ws.apply();
    let (rev1, hash1) = group_hash(&ws, &server);
    assert_eq!(rev1, 1);
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", config("pin", "2s", "", rollout)),
    );
    ws.apply();
    let (rev2, hash2) = group_hash(&ws, &server);
    assert_eq!(rev2, 2);
    assert_ne!(hash1, hash2);
    assert_eq!(agent_hashes(&server, "pin"), vec![Some(hash2.clone()); 3]);

    // When the group is pinned to revision 1
    let pinned = format!("{rollout}\n  pinned_revision = 1");
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", config("pin", "2s", "", &pinned)),
    );
    ws.apply();
    // Then every agent runs revision 1 again once apply returned, and the status targets it
    assert_eq!(agent_hashes(&server, "pin"), vec![Some(hash1.clone()); 3]);
    let g = values(&ws, "otaas_agent_group.g");
    assert_eq!(g["pinned_revision"], 1);
    let id = g["id"].as_str().unwrap().parse().unwrap();
    let status = block_on(api(&server).group_status(id)).unwrap();
    assert_eq!(
        (status.revision, status.config_hash.as_str(), status.state),
        (1, hash1.as_str(), RolloutState::Complete)
    );
    assert_plan_clean(&ws);

    // When the pipeline changes while the group is pinned
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", config("pin", "3s", "", &pinned)),
    );
    ws.apply();
    // Then the group has a new revision, but its agents stay on the pinned one
    let (rev3, hash3) = group_hash(&ws, &server);
    assert_eq!(rev3, 3);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(agent_hashes(&server, "pin"), vec![Some(hash1.clone()); 3]);

    // When the pin is removed
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", config("pin", "3s", "", rollout)),
    );
    ws.apply();
    // Then every agent runs the latest revision once apply returned
    assert_eq!(agent_hashes(&server, "pin"), vec![Some(hash3.clone()); 3]);
    assert!(values(&ws, "otaas_agent_group.g")["pinned_revision"].is_null());
    assert_plan_clean(&ws);
}

/// Given a new group, when it is applied with `pinned_revision` set, then the plan fails at the
/// attribute and nothing is created.
#[test]
fn a_new_group_cannot_be_pinned() {
    let server = Server::start();
    let ws = workspace(&server, &config("newpin", "1s", "", "pinned_revision = 1"));
    let run = ws.try_apply();
    run.assert_code(1);
    assert!(
        flat(&run).contains("Cannot pin a new agent group"),
        "{}",
        run.stderr
    );
    assert_eq!(block_on(api(&server).list_agent_groups()).unwrap(), vec![]);
}

const ACTIONS: &str = r#"
action "otaas_rollout_pause" "p" {
  config {
    group_id = otaas_agent_group.g.id
  }
}

action "otaas_rollout_resume" "r" {
  config {
    group_id = otaas_agent_group.g.id
  }
}

action "otaas_rollout_rollback" "b" {
  config {
    group_id = otaas_agent_group.g.id
    timeout  = "2m"
  }
}
"#;

fn invoke(ws: &Workspace, action: &str) -> Finished {
    ws.terraform(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &format!("-invoke=action.{action}"),
    ])
}

/// Given a group of 2 agents on revision 1 whose canary (1 agent) of revision 2 bakes for an
/// hour, when the pause action is invoked, then the rollout is paused; when resume is invoked,
/// it is in progress again; when the rollback action is invoked, then it reports the agents
/// coming back, and when it returns the rollout is rolled back and every agent runs revision 1.
/// Invoking rollback again on a group whose rollout completed fails, pointing at the pin.
#[test]
fn rollout_actions_pause_resume_and_roll_back_a_group() {
    let server = Server::start();
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "act")
        .start();
    wait_for_agents(&server, ("env", "act"), 2);
    let canary = r#"rollout = { strategy = "canary", canary_percent = 50, bake_seconds = 3600 }"#;
    // The pipeline's change must not wait for an hour's bake.
    let no_wait = "wait_for_rollout = false";
    let ws = workspace(
        &server,
        &format!("{}\n{ACTIONS}", config("act", "1s", no_wait, canary)),
    );
    ws.apply();
    let (_, hash1) = group_hash(&ws, &server);
    let id: otaas_api::AgentGroupId = values(&ws, "otaas_agent_group.g")["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let status = || block_on(api(&server).group_status(id)).unwrap();
    assert_eq!(status().state, RolloutState::Complete);

    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}\n{ACTIONS}",
            config("act", "2s", no_wait, canary)
        ),
    );
    ws.apply();
    let (_, hash2) = group_hash(&ws, &server);
    wait_until(60, "the canary to run revision 2", || {
        agent_hashes(&server, "act").contains(&Some(hash2.clone()))
    });
    assert_eq!(status().state, RolloutState::InProgress);

    // When the pause action is invoked
    let run = invoke(&ws, "otaas_rollout_pause.p");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Then the rollout is paused
    assert_eq!(status().state, RolloutState::Paused);
    assert!(
        flat(&run).contains("revision 2 is paused"),
        "{}",
        run.stdout
    );

    // When the resume action is invoked, then it is in progress again
    let run = invoke(&ws, "otaas_rollout_resume.r");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(status().state, RolloutState::InProgress);

    // When the rollback action is invoked
    let run = invoke(&ws, "otaas_rollout_rollback.b");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Then it reported the agents coming back, and every agent runs revision 1 again
    assert!(
        flat(&run).contains("2 of 2 agents back on revision 1"),
        "{}",
        run.stdout
    );
    let st = status();
    assert_eq!(
        (st.state, st.last_good_revision),
        (RolloutState::RolledBack, Some(1))
    );
    assert_eq!(agent_hashes(&server, "act"), vec![Some(hash1.clone()); 2]);
    // Invoking actions changed nothing Terraform manages
    assert_plan_clean(&ws);

    // Given a rollout that completed (a new revision with no bake), rollback is refused with
    // the way to go back instead
    let quick = r#"rollout = { strategy = "all_at_once" }"#;
    ws.write(
        "main.tf",
        &format!(
            "{PROVIDER}\n{}\n{ACTIONS}",
            config("act", "3s", no_wait, quick)
        ),
    );
    ws.apply();
    assert_eq!(status().state, RolloutState::Complete);
    let run = invoke(&ws, "otaas_rollout_rollback.b");
    run.assert_code(1);
    assert!(
        flat(&run).contains("pinned_revision"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

//! Every configuration under `examples/` is applied against a real server with fleet-sim agents
//! labelled as the examples expect, its outputs checked, and destroyed; the action examples are
//! invoked with `terraform apply -invoke` on a rollout their canary holds.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use otaas_api::{AgentGroupSpec, RolloutSpec};
use serde_json::Value;

use crate::common::*;
use crate::harness::process;
use crate::harness::tools::{self, repo_root};
use crate::harness::{FleetSim, Server, Workspace};

/// The rendered YAML with `hash` as the server stored it (unredacted: what agents receive),
/// read from the server's SQLite store.
fn stored_yaml(server: &Server, hash: &str) -> String {
    let db = server.data_dir().join("otaas.db");
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
        r = c.execute('SELECT yaml FROM group_revisions WHERE hash = ? LIMIT 1', (sys.argv[2],)).fetchone()\n\
        sys.stdout.write(r[0] if r else '')\n";
    let out = process::run(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&db)
            .arg(hash),
        Duration::from_secs(30),
    );
    out.assert_success();
    assert!(!out.stdout.is_empty(), "no stored config with hash {hash}");
    out.stdout
}

/// `otaas check-config --config FILE [--components FILE]`.
fn otaas_check(config: &Path, components: Option<&Path>) -> process::Finished {
    let mut cmd = Command::new(tools::otaas());
    cmd.arg("check-config").arg("--config").arg(config);
    if let Some(c) = components {
        cmd.arg("--components").arg(c);
    }
    process::run(&mut cmd, Duration::from_secs(30))
}

/// Every group's rendered config (unredacted) is one a collector accepts: the real collector's
/// `validate` when its build has every component type the config uses, else the collector-like
/// checker with the repo's component table. An example without a group is rendered through a
/// probe group over its pipelines that matches no agent. Prints which check each config got.
fn validate_rendered(server: &Server, dir: &str) {
    let api = api(server);
    let scratch = tempfile::tempdir().unwrap();
    let build = scratch.path().join("components.yaml");
    let components = process::run(
        Command::new(tools::collector()).arg("components"),
        Duration::from_secs(60),
    );
    components.assert_success();
    fs::write(&build, &components.stdout).unwrap();

    let mut groups = block_on(api.list_agent_groups()).unwrap();
    let mut probe = None;
    if groups.is_empty() {
        let pipelines = block_on(api.list_pipelines()).unwrap();
        if pipelines.is_empty() {
            println!("{dir}: no pipeline, nothing to render");
            return;
        }
        let spec = |ids: Vec<otaas_api::PipelineId>| AgentGroupSpec {
            pinned_revision: None,
            name: "example-probe".into(),
            selector: BTreeMap::from([("otaas-example-probe".into(), "none".into())]),
            pipeline_ids: ids,
            rollout: RolloutSpec::default(),
        };
        let incomplete =
            |e: &otaas_api::ClientError| e.code() == Some(otaas_api::ErrorCode::IncompleteConfig);
        let g = match block_on(
            api.create_agent_group(&spec(pipelines.iter().map(|p| p.id).collect())),
        ) {
            Ok(g) => g,
            // The server refuses a group with a pipeline lacking a receiver or an exporter
            // (completed by an endpoint or binding in another configuration): probe the
            // pipelines that are complete on their own.
            Err(e) if incomplete(&e) => {
                let mut complete = Vec::new();
                for p in &pipelines {
                    match block_on(api.create_agent_group(&spec(vec![p.id]))) {
                        Ok(g) => {
                            block_on(api.delete_agent_group(g.id)).unwrap();
                            complete.push(p.id);
                        }
                        Err(e) if incomplete(&e) => {}
                        Err(e) => panic!("{dir}: probing pipeline {:?}: {e}", p.name),
                    }
                }
                if complete.is_empty() {
                    println!(
                        "{dir}: its pipelines need a receiver and an exporter to render; nothing to check"
                    );
                    return;
                }
                block_on(api.create_agent_group(&spec(complete))).unwrap()
            }
            Err(e) => panic!("{dir}: creating the probe group: {e}"),
        };
        probe = Some(g.id);
        groups = vec![g];
    }
    for g in &groups {
        let yaml = stored_yaml(server, &g.config_hash);
        let has_pipeline = serde_norway::from_str::<serde_norway::Value>(&yaml)
            .ok()
            .and_then(|d| {
                d["service"]["pipelines"]
                    .as_mapping()
                    .map(|m| !m.is_empty())
            })
            .unwrap_or(false);
        if probe.is_some() && !has_pipeline {
            // A pipeline with no exporter (or receiver) of its own renders nothing until an
            // endpoint or binding completes it in another configuration.
            println!(
                "{dir}: its pipelines need a receiver and an exporter to render; nothing to check"
            );
            continue;
        }
        let file = scratch.path().join(format!("{}.yaml", g.name));
        fs::write(&file, &yaml).unwrap();
        let with_build = otaas_check(&file, Some(&build));
        if with_build.code == 0 {
            let real = process::run(
                Command::new(tools::collector())
                    .arg("validate")
                    .arg("--config")
                    .arg(&file),
                Duration::from_secs(60),
            );
            assert_eq!(
                real.code, 0,
                "{dir}: the real collector refused group {:?}'s config:\n{yaml}\n{}{}",
                g.name, real.stdout, real.stderr
            );
            println!(
                "{dir}: group {:?}: real collector validate: accepted",
                g.name
            );
        } else {
            assert!(
                with_build.stderr.contains("unknown type"),
                "{dir}: group {:?}'s config refused for more than a missing type:\n{yaml}\n{}",
                g.name,
                with_build.stderr
            );
            let builtin = otaas_check(&file, None);
            assert_eq!(
                builtin.code, 0,
                "{dir}: the checker refused group {:?}'s config:\n{yaml}\n{}",
                g.name, builtin.stderr
            );
            println!(
                "{dir}: group {:?}: uses types the collector build lacks; checker with the repo's table: accepted",
                g.name
            );
        }
    }
    if let Some(id) = probe {
        block_on(api.delete_agent_group(id)).unwrap();
    }
}

/// A workspace with the example's files (plus the provider requirement when the example has no
/// `terraform {}` block of its own), applied; returns it and `terraform output -json`.
fn apply_example(server: &Server, dir: &str, vars: &[(&str, &str)]) -> (Workspace, Value) {
    let mut ws = Workspace::for_server(server);
    for (k, v) in vars {
        ws.set_env(&format!("TF_VAR_{k}"), v);
    }
    let path = repo_root().join("examples").join(dir);
    let mut has_terraform_block = false;
    for entry in fs::read_dir(&path).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".tf") {
            continue;
        }
        let text = fs::read_to_string(entry.path())
            .unwrap()
            // The provider example names a fixed address; point it at this test's server.
            .replace("http://127.0.0.1:8080", &server.api_url());
        has_terraform_block |= text.contains("required_providers");
        ws.write(&name, &text);
    }
    if !has_terraform_block {
        ws.write("versions.tf", PROVIDER);
    }
    ws.init();
    assert_saved_plan_renders_as_json(&ws, dir);
    ws.apply();
    validate_rendered(server, dir);
    let out = ws.terraform(&["output", "-json"]);
    out.assert_success();
    let outputs: Value = serde_json::from_str(&out.stdout).unwrap();
    (ws, outputs)
}

/// A saved plan renders with `terraform show -json` (what policy and cost tools read): every
/// planned create is listed, with the server-assigned id unknown rather than made up.
fn assert_saved_plan_renders_as_json(ws: &Workspace, dir: &str) {
    ws.terraform(&["plan", "-input=false", "-no-color", "-out=example.tfplan"])
        .assert_success();
    let show = ws.terraform(&["show", "-json", "example.tfplan"]);
    show.assert_success();
    let plan: Value = serde_json::from_str(&show.stdout)
        .unwrap_or_else(|e| panic!("{dir}: show -json is not JSON ({e}): {}", show.stdout));
    for rc in plan["resource_changes"].as_array().into_iter().flatten() {
        if rc["mode"] == "managed" && rc["change"]["actions"] == serde_json::json!(["create"]) {
            assert_eq!(rc["change"]["after_unknown"]["id"], true, "{dir}: {rc}");
        }
    }
    ws.remove("example.tfplan");
}

/// Destroys and checks the server holds no managed objects any more.
fn destroy_all(server: &Server, ws: &Workspace) {
    ws.destroy();
    let api = api(server);
    assert_eq!(block_on(api.list_agent_groups()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_exporter_bindings()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_endpoints()).unwrap(), vec![]);
    assert_eq!(block_on(api.list_pipelines()).unwrap(), vec![]);
}

#[test]
fn every_example_applies() {
    let server = Server::start();
    let _eu = FleetSim::builder(&server)
        .agents(2)
        .label("env", "example")
        .label("region", "eu")
        .label("team", "status")
        .start();
    let _demo = FleetSim::builder(&server)
        .agents(2)
        .label("env", "demo")
        .start();
    wait_for_agents(&server, ("env", "example"), 2);
    wait_for_agents(&server, ("env", "demo"), 2);

    let (ws, _) = apply_example(&server, "provider", &[]);
    destroy_all(&server, &ws);

    for dir in ["otaas_pipeline", "otaas_endpoint", "otaas_exporter_binding"] {
        let (ws, _) = apply_example(&server, &format!("resources/{dir}"), &[]);
        assert_plan_clean(&ws);
        destroy_all(&server, &ws);
    }

    // The group example's two agents applied its config by the time apply returned.
    let (ws, _) = apply_example(&server, "resources/otaas_agent_group", &[]);
    let group = values(&ws, "otaas_agent_group.edge_eu");
    let status =
        block_on(api(&server).group_status(group["id"].as_str().unwrap().parse().unwrap()))
            .unwrap();
    assert_eq!((status.matched, status.applied), (2, 2));
    assert_plan_clean(&ws);
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(&server, "data-sources/otaas_agent_group_status", &[]);
    let health = &out["group_health"]["value"];
    assert_eq!(health["state"], "complete", "{out}");
    assert_eq!(
        (health["matched"].clone(), health["applied"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(health["failed"], 0);
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(&server, "data-sources/otaas_agents", &[]);
    assert_eq!(
        out["unhealthy_agents"]["value"],
        serde_json::json!([]),
        "{out}"
    );
    let listed = ws.show_json();
    let agents = listed["values"]["root_module"]["resources"][0]["values"]["agents"]
        .as_array()
        .expect("agents")
        .len();
    assert_eq!(agents, 2);
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(&server, "data-sources/otaas_agent", &[]);
    // The first agent (by id) as the REST API reports it.
    let first = block_on(api(&server).list_agents(&Default::default())).unwrap()[0].clone();
    let expected = serde_json::to_value(first.remote_config_status).unwrap();
    assert_eq!(out["first_agent_status"]["value"], expected, "{out}");
    let health = &out["first_agent_health"]["value"];
    assert_eq!(health["healthy"], first.healthy.unwrap_or(false), "{out}");
    assert_eq!(
        health["reason"],
        first.unhealthy_reason().unwrap_or_default(),
        "{out}"
    );
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(&server, "data-sources/otaas_fleet_insights", &[]);
    let watch = &out["fleet_watch"]["value"];
    assert_eq!(
        watch["open_endpoints"],
        serde_json::json!(["insights-demo-open"]),
        "{out}"
    );
    assert_eq!(watch["flapping_agents"], serde_json::json!([]), "{out}");
    destroy_all(&server, &ws);

    // The group's YAML as the API serves it (redacted), with who and what made the revision.
    let (ws, out) = apply_example(&server, "data-sources/otaas_agent_group_config", &[]);
    let cfg = &out["group_config"]["value"];
    let group = values(&ws, "otaas_agent_group.config_demo");
    let served =
        block_on(api(&server).agent_group_config(group["id"].as_str().unwrap().parse().unwrap()))
            .unwrap();
    assert_eq!(cfg["revision"], 1, "{out}");
    assert_eq!(cfg["sha256"], served.sha256.as_str(), "{out}");
    assert_eq!(cfg["first_hash"], served.sha256.as_str(), "{out}");
    assert_eq!(cfg["yaml"], served.yaml.as_str(), "{out}");
    let yaml = cfg["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("<redacted>") && !yaml.contains("config-demo-key"),
        "{yaml}"
    );
    assert_eq!(cfg["cause"], "agent_group config-demo", "{out}");
    assert_eq!(
        cfg["changed_by"],
        served
            .cause
            .token_description
            .as_deref()
            .unwrap_or_default(),
        "{out}"
    );
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(&server, "data-sources/otaas_pipeline", &[]);
    assert_eq!(
        out["lookup_demo_signals"]["value"],
        serde_json::json!(["logs"])
    );
    destroy_all(&server, &ws);

    // With no otaas object left, nothing is adopted: the for_each import example imports
    // nothing, and the candidates are what the API lists as adoptable with unmanaged agents.
    let (ws, out) = apply_example(&server, "data-sources/otaas_discovered_pipelines", &[]);
    assert_eq!(
        out["adopted_pipelines"]["value"],
        serde_json::json!([]),
        "{out}"
    );
    let candidates = block_on(api(&server).list_discovered_pipelines())
        .unwrap()
        .into_iter()
        .filter(|p| p.adoptable && p.unmanaged_agents > 0)
        .count();
    assert_eq!(
        out["adoption_candidates"]["value"].as_array().map(Vec::len),
        Some(candidates),
        "{out}"
    );
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(&server, "quickstart", &[]);
    let fleet = &out["fleet"]["value"];
    assert_eq!(fleet["state"], "complete", "{out}");
    assert_eq!(
        (fleet["matched"].clone(), fleet["applied"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(fleet["agents"], 2);
    assert_plan_clean(&ws);
    let run = ws.plan_detailed_exitcode();
    assert_no_secret(&run, server.admin_token());
    destroy_all(&server, &ws);

    // The demo's real-collector example, here applied to the simulated `env=demo` agents
    // (strict: they check it as a collector would).
    let log_dir = tempfile::tempdir().unwrap();
    let log_file = log_dir.path().join("app.log");
    let (ws, out) = apply_example(
        &server,
        "real-collector",
        &[("log_file", log_file.to_str().unwrap())],
    );
    let fleet = &out["fleet"]["value"];
    assert_eq!(
        (fleet["matched"].clone(), fleet["applied"].clone()),
        (2.into(), 2.into()),
        "{out}"
    );
    destroy_all(&server, &ws);

    // Each action example, invoked on a rollout its canary holds: pause pauses it, resume
    // resumes a paused one, rollback sends both agents back to the first revision.
    use otaas_api::RolloutState::{InProgress, Paused, RolledBack};
    for (name, before, after) in [
        ("pause", None, Paused),
        ("resume", Some(Paused), InProgress),
        ("rollback", None, RolledBack),
    ] {
        let dir = format!("actions/otaas_rollout_{name}");
        let (ws, _) = apply_example(&server, &dir, &[]);
        let id: otaas_api::AgentGroupId = values(&ws, &format!("otaas_agent_group.{name}"))["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let first = block_on(api(&server).get_agent_group(id))
            .unwrap()
            .config_hash;
        start_canary(&server, &ws, id);
        if before == Some(Paused) {
            block_on(api(&server).pause_rollout(id)).unwrap();
        }
        let run = ws.terraform(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            &format!("-invoke=action.otaas_rollout_{name}.{name}"),
        ]);
        assert_eq!(run.code, 0, "{dir}: {}\n{}", run.stdout, run.stderr);
        let status = block_on(api(&server).group_status(id)).unwrap();
        assert_eq!(status.state, after, "{dir}: {}", run.stdout);
        if after == RolledBack {
            assert_eq!((status.matched, status.applied), (2, 2), "{dir}");
            let agents = block_on(api(&server).list_agents(&otaas_api::AgentQuery {
                group_id: Some(id),
                ..Default::default()
            }))
            .unwrap();
            assert!(
                agents
                    .iter()
                    .all(|a| a.remote_config_hash.as_deref() == Some(first.as_str())),
                "{dir}: not every agent is back on the first revision"
            );
        }
        destroy_all(&server, &ws);
    }
}

/// Adds a processor to the action example's pipeline (without waiting: the canary bakes for
/// an hour) and waits until the canary agent runs the new revision.
fn start_canary(server: &Server, ws: &Workspace, id: otaas_api::AgentGroupId) {
    let text = ws.read("action.tf");
    let changed = text.replacen(
        "  signals = [\"logs\"]\n",
        "  signals = [\"logs\"]\n  processors = [{ id = \"batch\" }]\n  wait_for_rollout = false\n",
        1,
    );
    assert_ne!(
        text, changed,
        "the example's pipeline has no `signals` line to extend"
    );
    ws.write("action.tf", &changed);
    ws.apply();
    let api = api(server);
    wait_until(60, "the canary to run the new revision", || {
        block_on(api.group_status(id)).is_ok_and(|st| {
            st.revision == 2 && st.state == otaas_api::RolloutState::InProgress && st.applied == 1
        })
    });
}

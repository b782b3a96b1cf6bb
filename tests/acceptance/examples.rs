//! Every configuration under `examples/` is applied against a real server with fleet-sim agents
//! labelled as the examples expect, its outputs checked, and destroyed.

use std::fs;

use serde_json::Value;

use crate::common::*;
use crate::harness::tools::repo_root;
use crate::harness::{FleetSim, Server, Workspace};

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
        block_on(api(&server).agent_group_status(group["id"].as_str().unwrap().parse().unwrap()))
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

    let (ws, out) = apply_example(&server, "data-sources/otaas_pipeline", &[]);
    assert_eq!(
        out["lookup_demo_signals"]["value"],
        serde_json::json!(["logs"])
    );
    destroy_all(&server, &ws);

    let (ws, out) = apply_example(
        &server,
        "quickstart",
        &[
            ("otaas_endpoint", &server.api_url()),
            ("otaas_token", server.admin_token()),
        ],
    );
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
}

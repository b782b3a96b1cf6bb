//! `otaas_fleet_insights` against a real server and `fleet-sim` agents that report their own
//! metrics: per agent and per pipeline throughput, a group filter, unmanaged agents and an
//! endpoint without TLS or auth, as Terraform reads them.

use serde_json::Value;

use crate::common::*;
use crate::harness::{FleetSim, Server};

const INSIGHTS_TF: &str = r#"
variable "group_id" {
  type = string
}

data "otaas_fleet_insights" "all" {}

data "otaas_fleet_insights" "group" {
  group_id = var.group_id
}

output "all" {
  value = data.otaas_fleet_insights.all
}

output "group" {
  value = data.otaas_fleet_insights.group
}
"#;

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 0.01)
}

#[test]
fn fleet_insights_reads_load_pipelines_and_security() {
    let server = Server::start();
    let api = api(&server);
    // Given a group of two agents receiving 120 items/s each, reporting every second, over
    // one pipeline with two signals; another agent matching no group; an open endpoint
    let pipeline = block_on(
        api.create_pipeline(&otaas_api::PipelineSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "shop".into(),
            description: String::new(),
            signals: vec![otaas_api::Signal::Traces, otaas_api::Signal::Logs],
            receivers: [(
                "otlp".to_string(),
                serde_json::json!({"protocols": {"http": {}}}),
            )]
            .into(),
            processors: vec![],
        }),
    )
    .unwrap();
    // A pipeline is rendered once it has somewhere to send to.
    block_on(
        api.create_exporter_binding(&otaas_api::ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "shop-out".into(),
            pipeline_id: pipeline.id,
            signals: None,
            destinations: vec![otaas_api::DestinationSpec {
                name: "console".into(),
                kind: "debug".into(),
                endpoint: None,
                headers: Default::default(),
                keep_headers: false,
                tls: None,
                config: serde_json::json!({}),
            }],
        }),
    )
    .unwrap();
    let group = block_on(api.create_agent_group(&otaas_api::AgentGroupSpec {
        pinned_revision: None,
        name: "shop".into(),
        selector: [("fleet".to_string(), "shop".to_string())].into(),
        pipeline_ids: vec![pipeline.id],
        rollout: Default::default(),
    }))
    .unwrap();
    let endpoint = block_on(api.create_endpoint(&otaas_api::EndpointSpec {
        name: "shop-open".into(),
        pipeline_id: pipeline.id,
        protocol: otaas_api::Protocol::OtlpHttp,
        port: 4318,
        tls: None,
        auth: otaas_api::EndpointAuth::None,
        token_version: 1,
        token_grace_seconds: otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
    }))
    .unwrap();
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("fleet", "shop")
        .own_metrics(120, 1)
        .start();
    let _stray = FleetSim::builder(&server)
        .label("fleet", "nowhere")
        .own_metrics(10, 1)
        .start();
    wait_until(60, "both pipelines reported by both group agents", || {
        block_on(api.insights()).is_ok_and(|i| {
            i.agents
                .iter()
                .filter(|a| a.group_id == Some(group.id) && a.pipelines.len() == 2)
                .count()
                == 2
                && i.agents.len() == 3
        })
    });
    let stray_id = block_on(api.list_agents(&otaas_api::AgentQuery {
        selector: [("fleet".to_string(), "nowhere".to_string())].into(),
        ..Default::default()
    }))
    .unwrap()[0]
        .id
        .clone();

    // When Terraform reads the insights, for the fleet and for the group
    let mut ws = crate::harness::Workspace::for_server(&server);
    ws.set_env("TF_VAR_group_id", &group.id.to_string());
    ws.write("main.tf", &format!("{PROVIDER}\n{INSIGHTS_TF}"));
    ws.init();
    ws.apply();
    let out = ws.terraform(&["output", "-json"]);
    out.assert_success();
    let out: Value = serde_json::from_str(&out.stdout).unwrap();
    let all = &out["all"]["value"];
    let grp = &out["group"]["value"];

    // Then the fleet view has all three agents, the group view only the group's two
    assert_eq!(all["agents"].as_array().unwrap().len(), 3, "{all}");
    let agents = grp["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{grp}");
    assert_eq!(grp["group_id"], group.id.to_string());
    for a in agents {
        assert_eq!(a["group_id"], group.id.to_string());
        // Each agent's rate, split evenly over its two collector pipelines
        assert!(close(&a["accepted_per_second"], 120.0), "{a}");
        assert!(close(&a["sent_per_second"], 120.0), "{a}");
        assert!(a["reports"].as_f64().unwrap() >= 2.0, "{a}");
        assert_eq!(a["memory_rss_bytes"], 48.0 * 1024.0 * 1024.0);
        let pipes = a["pipelines"].as_array().unwrap();
        let names: Vec<&str> = pipes
            .iter()
            .map(|p| p["pipeline"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["logs/shop", "traces/shop"]);
        for p in pipes {
            assert!(close(&p["accepted_per_second"], 60.0), "{p}");
            assert_eq!(p["refused_per_second"], 0.0);
        }
    }
    // And the group's pipelines are summed over its two agents; the stray agent names none
    let pipes = grp["pipelines"].as_array().unwrap();
    assert_eq!(pipes.len(), 2, "{grp}");
    for p in pipes {
        assert_eq!(p["agents"], 2);
        assert!(close(&p["accepted_per_second"], 120.0), "{p}");
    }
    // The fleet list is the same two (read in a separate request, so compared loosely)
    let fleet_pipes = all["pipelines"].as_array().unwrap();
    assert_eq!(fleet_pipes.len(), 2, "{all}");
    assert!(
        fleet_pipes
            .iter()
            .all(|p| close(&p["accepted_per_second"], 120.0))
    );
    // A steady fleet: nothing flagged in the group
    assert_eq!(grp["anomalies"], serde_json::json!([]));
    assert_eq!(grp["anomaly_counts"], serde_json::json!({}));
    // And the security lists: the stray agent is unmanaged, the open endpoint exposed, and no
    // agent was refused (this server does not require agent tokens)
    assert_eq!(all["unmanaged_agents"], serde_json::json!([stray_id]));
    assert_eq!(
        all["exposed_endpoints"],
        serde_json::json!([{
            "endpoint_id": endpoint.id.to_string(),
            "name": "shop-open",
            "tls": false,
            "auth": false,
        }])
    );
    assert_eq!(all["auth_failures"], serde_json::json!([]));
    assert!(all["generated_at"].as_str().unwrap().contains('T'));
    ws.destroy();
}

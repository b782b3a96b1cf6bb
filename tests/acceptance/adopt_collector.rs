//! Adopting a collector that ran before otaas, end to end with the real collector and the real
//! Terraform engine: a collector under `otaas agent --config` runs a hand-written config
//! (filelog → batch → otlphttp to a local sink); discovery lists its pipeline; the adoption
//! claims it without restarting the collector; `terraform query -generate-config-out` writes
//! HCL that imports the adopted objects and then plans clean; data keeps reaching the sink; and
//! a change made in Terraform reaches the collector.

use serde_json::Value;

use crate::common::*;
use crate::harness::sink::Sink;
use crate::harness::{RealAgent, Server};

fn hand_written(log: &str, sink: &str) -> String {
    format!(
        "# written by hand, long before otaas\n\
         receivers:\n  filelog:\n    include: [{log}]\n    start_at: beginning\n    poll_interval: 100ms\n\
         processors:\n  batch:\n    timeout: 200ms\n\
         exporters:\n  otlphttp:\n    endpoint: {sink}\n    compression: none\n\
         service:\n  pipelines:\n    logs:\n      receivers: [filelog]\n      processors: [batch]\n      exporters: [otlphttp]\n"
    )
}

const QUERY: &str = r#"
list "otaas_pipeline" "adopted" {
  provider = otaas
  config {
    name_prefix = "handmade"
  }
}
list "otaas_exporter_binding" "adopted" {
  provider = otaas
  config {
    name_prefix = "handmade"
  }
}
list "otaas_agent_group" "adopted" {
  provider = otaas
  config {
    name_prefix = "handmade"
  }
}
"#;

/// The pids of the collectors the agent started, in order (its `collector_started` events).
fn collector_pids(agent: &RealAgent) -> Vec<u64> {
    agent
        .log()
        .lines()
        // The daemon log prefixes stdout lines with `out| `.
        .filter_map(|l| l.strip_prefix("out| "))
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v["event"] == "collector_started")
        .filter_map(|v| v["pid"].as_u64())
        .collect()
}

fn append(path: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the log");
    writeln!(f, "{line}").expect("append to the log");
}

#[test]
fn a_running_collector_is_adopted_into_terraform_without_a_restart() {
    // Given a collector under `otaas agent` started from a hand-written config, sending the
    // lines of a file to a local sink
    let server = Server::start();
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "adopt-line-one\n").unwrap();
    let config = dir.path().join("collector.yaml");
    let hand = hand_written(&log.display().to_string(), &sink.url);
    std::fs::write(&config, &hand).unwrap();
    let agent = RealAgent::start_with_config(&server, "team=handmade", &config);
    wait_for_agents(&server, ("team", "handmade"), 1);
    wait_until(60, "the first line at the sink", || {
        sink.received("adopt-line-one")
    });
    // The agent says the collector runs once it stayed up a moment (data may come first).
    wait_until(30, "the collector_started event", || {
        !collector_pids(&agent).is_empty()
    });
    let pids = collector_pids(&agent);
    assert_eq!(pids.len(), 1, "{}", agent.log());

    // When discovery lists what it runs
    let api = api(&server);
    let mut found = Vec::new();
    wait_until(30, "the discovered pipeline", || {
        found = block_on(api.list_discovered_pipelines()).unwrap_or_default();
        !found.is_empty()
    });
    assert_eq!(found.len(), 1, "{found:#?}");
    let discovered = &found[0];
    assert_eq!(discovered.agents, 1);
    assert_eq!(discovered.unmanaged_agents, 1);
    assert!(discovered.adoptable, "{discovered:#?}");
    assert_eq!(discovered.signals, vec![otaas_api::Signal::Logs]);
    assert_eq!(
        discovered.common_labels.get("team").map(String::as_str),
        Some("handmade")
    );

    // Then a dry run says nothing changes on the collector, and the adoption claims it
    let request = |dry_run| otaas_api::discovery::AdoptRequest {
        dry_run,
        name: Some("handmade".into()),
        group: Some(otaas_api::discovery::AdoptGroup {
            name: "handmade".into(),
            selector: None,
            pipeline_ids: vec![],
            rollout: Default::default(),
        }),
        ..Default::default()
    };
    let plan = block_on(api.adopt_discovered_pipeline(&discovered.id, &request(true))).unwrap();
    assert!(plan.equivalent, "{plan:#?}");
    assert_eq!(plan.agents.len(), 1, "{plan:#?}");
    assert!(!plan.agents[0].changes, "{plan:#?}");
    let done = block_on(api.adopt_discovered_pipeline(&discovered.id, &request(false))).unwrap();
    let gid = done.created.as_ref().unwrap().group_id.unwrap();
    let group = block_on(api.get_agent_group(gid)).unwrap();
    wait_until(60, "the agent to apply the adopted config", || {
        block_on(api.list_agents(&Default::default())).is_ok_and(|a| {
            a.len() == 1
                && a[0].remote_config_hash.as_deref() == Some(group.config_hash.as_str())
                && a[0].status == otaas_api::AgentStatus::Applied
        })
    });
    // ... without restarting its collector (a restart would re-read the file from the start)
    assert_eq!(collector_pids(&agent), pids, "{}", agent.log());
    // ... and what it runs is still the same pipeline, now managed
    let after = block_on(api.get_discovered_pipeline(&discovered.id)).unwrap();
    assert_eq!(after.agents, 1);
    assert_eq!(after.unmanaged_agents, 0);
    assert_eq!(after.managed.len(), 1, "{after:#?}");
    assert_eq!(after.managed[0].group_id, gid);

    // When terraform query writes HCL for the adopted objects, and it is applied
    let ws = workspace(&server, "");
    ws.write("adopt.tfquery.hcl", QUERY);
    let generated = ws.query_generate("generated.tf");
    assert!(generated.contains("identity = {"), "{generated}");
    let run = ws.apply();
    assert!(
        run.stdout
            .contains("3 imported, 0 added, 0 changed, 0 destroyed"),
        "{}\n{generated}",
        run.stdout
    );
    // Then the next plan is empty, the collector still runs and data still reaches the sink
    assert_plan_clean(&ws);
    assert_eq!(collector_pids(&agent), pids, "{}", agent.log());
    append(&log, "adopt-line-two");
    wait_until(60, "a line written after the adoption at the sink", || {
        sink.received("adopt-line-two")
    });

    // When a change is made in Terraform (the batch timeout)
    assert!(generated.contains("200ms"), "{generated}");
    ws.write("generated.tf", &generated.replace("200ms", "300ms"));
    let run = ws.apply();
    assert!(
        run.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    // Then it reaches the collector: a new revision, applied by a restarted collector
    let group = block_on(api.get_agent_group(gid)).unwrap();
    assert!(group.config_revision > 1);
    wait_until(60, "the agent to apply the change", || {
        block_on(api.list_agents(&Default::default())).is_ok_and(|a| {
            a[0].effective_config_hash.as_deref() == Some(group.config_hash.as_str())
                && a[0].status == otaas_api::AgentStatus::Applied
        })
    });
    let agents = block_on(api.list_agents(&otaas_api::AgentQuery::default())).unwrap();
    let one = block_on(api.get_agent(&agents[0].id)).unwrap();
    assert!(
        one.effective_config
            .as_deref()
            .unwrap_or_default()
            .contains("300ms"),
        "{one:#?}"
    );
    assert_eq!(collector_pids(&agent).len(), 2, "{}", agent.log());
    append(&log, "adopt-line-three");
    wait_until(60, "a line written after the change at the sink", || {
        sink.received("adopt-line-three")
    });
}

//! Adopting the fleet you already have: collectors run a pipeline otaas does not manage, it is
//! discovered, adopted through the API with a group, and `terraform query` with the list
//! resources filtered by `discovered_pipeline_id` generates config that imports exactly the
//! adopted objects and then plans clean. Also `otaas discovered` against the same server.

use std::process::Command;
use std::time::Duration;

use otaas_api::discovery::AdoptRequest;

use crate::common::*;
use crate::harness::{FleetSim, Server, Workspace, process, tools};

/// The four list blocks, each narrowed to the objects managing discovered pipeline `id`.
fn query(id: &str) -> String {
    [
        "otaas_pipeline",
        "otaas_endpoint",
        "otaas_exporter_binding",
        "otaas_agent_group",
    ]
    .iter()
    .map(|ty| {
        format!(
            "list \"{ty}\" \"adopted\" {{\n  provider = otaas\n  config {{\n    \
                 discovered_pipeline_id = \"{id}\"\n  }}\n}}\n"
        )
    })
    .collect()
}

fn logs_pipeline(name: &str, path: &str) -> otaas_api::PipelineSpec {
    otaas_api::PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: name.into(),
        description: String::new(),
        signals: vec![otaas_api::Signal::Logs],
        receivers: [(
            "filelog".to_string(),
            serde_json::json!({"include": [path], "start_at": "beginning"}),
        )]
        .into(),
        processors: vec![otaas_api::ProcessorSpec {
            id: "batch".into(),
            config: serde_json::json!({"timeout": "2s"}),
        }],
    }
}

fn binding(name: &str, pipeline_id: otaas_api::PipelineId) -> otaas_api::ExporterBindingSpec {
    otaas_api::ExporterBindingSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: name.into(),
        pipeline_id,
        signals: None,
        destinations: vec![otaas_api::DestinationSpec {
            name: "sink".into(),
            kind: "otlphttp".into(),
            endpoint: Some("http://sink.example:4318".into()),
            headers: Default::default(),
            keep_headers: false,
            tls: None,
            config: serde_json::json!({}),
        }],
    }
}

/// A collector config written by hand, long before otaas: OTLP and a log file in, batched,
/// out over OTLP/HTTP.
const HAND_WRITTEN: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
  filelog:
    include: [/var/log/legacy.log]
    start_at: beginning
processors:
  batch:
    timeout: 2s
exporters:
  otlphttp:
    endpoint: http://sink.example:4318
service:
  pipelines:
    logs:
      receivers: [otlp, filelog]
      processors: [batch]
      exporters: [otlphttp]
";

/// Given two simulated agents running a hand-written logs pipeline, and an unrelated
/// pipeline with a binding that otaas does manage,
/// when the discovered pipeline is adopted with a group and `terraform query` lists the four
/// object types filtered by its id,
/// then the generated config holds exactly the adopted objects, imports them with no change,
/// the next plan is empty, and `otaas discovered` shows the pipeline managed by the new group;
/// an unknown discovered id fails the query at `discovered_pipeline_id`.
#[test]
fn adopted_pipeline_is_imported_by_filtered_query_and_plans_clean() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.yaml");
    std::fs::write(&config, HAND_WRITTEN).unwrap();
    let _legacy = FleetSim::builder(&server)
        .agents(2)
        .label("team", "legacy")
        .effective_config(&config)
        .start();
    wait_for_agents(&server, ("team", "legacy"), 2);
    let api = api(&server);
    let other =
        block_on(api.create_pipeline(&logs_pipeline("other", "/var/log/other.log"))).unwrap();
    let other_binding =
        block_on(api.create_exporter_binding(&binding("other-out", other.id))).unwrap();

    // The agents' pipeline shows up as unmanaged and adoptable.
    let mut found = None;
    wait_until(30, "the legacy pipeline discovered as unmanaged", || {
        found = block_on(api.list_discovered_pipelines())
            .ok()
            .and_then(|all| {
                all.into_iter()
                    .find(|p| p.agents == 2 && p.unmanaged_agents == 2)
            });
        found.is_some()
    });
    let discovered = found.unwrap();
    assert!(discovered.adoptable, "{discovered:?}");
    assert!(discovered.managed.is_empty(), "{discovered:?}");

    // When it is adopted with a group for the agents running it
    let adoption = block_on(api.adopt_discovered_pipeline(
        &discovered.id,
        &AdoptRequest {
            name: Some("adopted".into()),
            group: Some(otaas_api::discovery::AdoptGroup {
                name: "adopted".into(),
                selector: None,
                pipeline_ids: vec![],
                rollout: Default::default(),
            }),
            ..Default::default()
        },
    ))
    .unwrap();
    assert!(adoption.equivalent, "{:?}", adoption.differences);
    let created = adoption.created.expect("objects created");
    // The OTLP receiver became an endpoint and the exporter a binding: every list is exercised.
    assert_eq!(
        (
            created.endpoint_ids.len(),
            created.exporter_binding_ids.len()
        ),
        (1, 1),
        "{created:?}"
    );
    let group_id = created.group_id.expect("a group");
    let mut ids = vec![created.pipeline_id.to_string(), group_id.to_string()];
    ids.extend(created.endpoint_ids.iter().map(ToString::to_string));
    ids.extend(created.exporter_binding_ids.iter().map(ToString::to_string));

    // and terraform query generates config for the objects managing it
    let ws = workspace(&server, "");
    ws.write("main.tfquery.hcl", &query(&discovered.id));
    let generated = ws.query_generate("generated.tf");

    // Then the generated config names exactly the adopted objects
    for id in &ids {
        assert!(
            generated.contains(id.as_str()),
            "{id} missing in:\n{generated}"
        );
    }
    for unrelated in [other.id.to_string(), other_binding.id.to_string()] {
        assert!(
            !generated.contains(&unrelated),
            "{unrelated} in:\n{generated}"
        );
    }
    let n = ids.len();
    let plan = ws.plan_detailed_exitcode();
    assert!(
        plan.stdout.contains(&format!(
            "Plan: {n} to import, 0 to add, 0 to change, 0 to destroy."
        )),
        "{}\n{generated}",
        plan.stdout
    );
    // and imports them without any change, after which the plan is empty
    let run = ws.apply();
    assert!(
        run.stdout
            .contains(&format!("{n} imported, 0 added, 0 changed, 0 destroyed")),
        "{}",
        run.stdout
    );
    assert_plan_clean(&ws);

    // The discovered pipeline now says the new group manages it, in the CLI's table too.
    let out = process::run(
        Command::new(tools::otaas())
            .arg("discovered")
            .env("OTAAS_ENDPOINT", server.api_url())
            .env("OTAAS_TOKEN", server.admin_token()),
        Duration::from_secs(60),
    );
    out.assert_success();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&discovered.id[..12]))
        .unwrap_or_else(|| panic!("no row for {} in:\n{}", discovered.id, out.stdout));
    assert!(row.ends_with("adopted/adopted"), "{}", out.stdout);

    // The for_each import example (for engines without `terraform query`) imports the adopted
    // pipeline from the data source's managed ids, with no change.
    let example = Workspace::for_server(&server);
    let dir = tools::repo_root().join("examples/data-sources/otaas_discovered_pipelines");
    for file in ["versions.tf", "data-source.tf", "import.tf"] {
        example.write(file, &std::fs::read_to_string(dir.join(file)).unwrap());
    }
    example.init();
    let run = example.apply();
    assert!(
        run.stdout
            .contains("1 imported, 0 added, 0 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    assert_plan_clean(&example);
    assert_eq!(
        values(
            &example,
            &format!("otaas_pipeline.adopted[\"{}\"]", created.pipeline_id)
        )["name"],
        "adopted"
    );

    // An id no collector runs fails the query, naming the attribute.
    let bad = Workspace::for_server(&server);
    bad.write("main.tf", PROVIDER);
    bad.write("main.tfquery.hcl", &query(&"0".repeat(64)));
    bad.init();
    let failed = bad.try_query_generate("generated.tf");
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    let text = format!("{}{}", failed.stdout, failed.stderr);
    assert!(
        text.contains("Discovered pipeline not found") && text.contains("discovered_pipeline_id"),
        "{text}"
    );
}

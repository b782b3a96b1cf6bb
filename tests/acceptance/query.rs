//! `terraform query`: objects created outside Terraform are listed by the four list resources,
//! `-generate-config-out` writes config plus identity import blocks, and that config imports
//! everything and then plans clean.

use crate::common::*;
use crate::harness::Server;

const QUERY: &str = r#"
list "otaas_pipeline" "all" {
  provider = otaas
}
list "otaas_endpoint" "all" {
  provider = otaas
}
list "otaas_exporter_binding" "all" {
  provider = otaas
}
list "otaas_agent_group" "all" {
  provider = otaas
  config {
    name_prefix = "adopt"
  }
}
"#;

#[test]
fn query_generates_config_that_plans_clean() {
    let server = Server::start();
    let api = api(&server);
    // Given a fleet configured through the API only
    let p = block_on(
        api.create_pipeline(&otaas_api::PipelineSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "adopt-me".into(),
            description: "made by hand".into(),
            signals: vec![otaas_api::Signal::Logs, otaas_api::Signal::Traces],
            receivers: [(
                "otlp".to_string(),
                serde_json::json!({"protocols": {"grpc": {}}}),
            )]
            .into(),
            processors: vec![otaas_api::ProcessorSpec {
                id: "batch".into(),
                config: serde_json::json!({"timeout": "5s", "send_batch_size": 512}),
            }],
        }),
    )
    .unwrap();
    block_on(api.create_endpoint(&otaas_api::EndpointSpec {
        name: "adopt-in".into(),
        pipeline_id: p.id,
        protocol: otaas_api::Protocol::OtlpGrpc,
        port: 4317,
        tls: None,
        auth: otaas_api::EndpointAuth::None,
        token_version: 1,
        token_grace_seconds: otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
    }))
    .unwrap();
    block_on(
        api.create_exporter_binding(&otaas_api::ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "adopt-out".into(),
            pipeline_id: p.id,
            signals: None,
            destinations: vec![otaas_api::DestinationSpec {
                name: "console".into(),
                kind: "debug".into(),
                endpoint: None,
                headers: Default::default(),
                keep_headers: false,
                tls: None,
                config: serde_json::json!({"verbosity": "basic"}),
            }],
        }),
    )
    .unwrap();
    for name in ["adopt-group", "other-group"] {
        block_on(api.create_agent_group(&otaas_api::AgentGroupSpec {
            pinned_revision: None,
            name: name.into(),
            selector: [("adopt".to_string(), name.to_string())].into(),
            pipeline_ids: vec![p.id],
            rollout: otaas_api::RolloutSpec {
                strategy: otaas_api::RolloutStrategy::Batched,
                batch_sizes: vec![1, 5],
                ..Default::default()
            },
        }))
        .unwrap();
    }

    // When terraform query generates config for it
    let ws = workspace(&server, "");
    ws.write("main.tfquery.hcl", QUERY);
    let generated = ws.query_generate("generated.tf");
    for expected in [
        r#"resource "otaas_pipeline" "all_0""#,
        r#"resource "otaas_endpoint" "all_0""#,
        r#"resource "otaas_exporter_binding" "all_0""#,
        r#"resource "otaas_agent_group" "all_0""#,
        "identity = {",
    ] {
        assert!(
            generated.contains(expected),
            "missing {expected:?} in:\n{generated}"
        );
    }
    // The name_prefix filter left the other group out.
    assert!(!generated.contains("other-group"), "{generated}");

    // Then the generated config imports everything without any change, and plans clean after
    let plan = ws.plan_detailed_exitcode();
    assert!(
        plan.stdout
            .contains("Plan: 4 to import, 0 to add, 0 to change, 0 to destroy."),
        "{}\n{generated}",
        plan.stdout
    );
    let run = ws.apply();
    assert!(
        run.stdout
            .contains("4 imported, 0 added, 0 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    assert_plan_clean(&ws);
    let state = values(&ws, "otaas_pipeline.all_0");
    assert_eq!(state["id"], p.id.to_string());
    assert_eq!(state["description"], "made by hand");

    // And each list example under examples/list-resources runs and lists what it should
    for (ty, expected) in [
        ("otaas_pipeline", "adopt-me"),
        // Its name_prefix ("checkout") matches none of these.
        (
            "otaas_endpoint",
            "list.otaas_endpoint.checkout] returned 0 results",
        ),
        ("otaas_exporter_binding", "adopt-out"),
        ("otaas_agent_group", "other-group"),
    ] {
        // The example directory as it is: its versions.tf makes it a root module of its own.
        let dir = crate::harness::tools::repo_root()
            .join("examples/list-resources")
            .join(ty);
        let qws = crate::harness::Workspace::for_server(&server);
        for file in ["versions.tf", "list.tfquery.hcl"] {
            qws.write(file, &std::fs::read_to_string(dir.join(file)).unwrap());
        }
        qws.init();
        let run = qws.terraform(&["query", "-no-color"]);
        run.assert_success();
        assert!(run.stdout.contains(expected), "{ty}: {}", run.stdout);
    }
}

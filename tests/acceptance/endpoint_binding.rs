//! `otaas_endpoint` and `otaas_exporter_binding` end to end, on one server: create, clean plan,
//! imports, update in place, drift through the REST API, destroy; the endpoint token and header
//! values never appear in Terraform's output.

use serde_json::Value;

use crate::common::*;
use crate::harness::Server;

/// A pipeline the endpoint and binding hang off, created through the API (the import
/// workspaces then name it by id, without managing it).
fn pipeline(server: &Server, name: &str) -> String {
    let spec = otaas_api::PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: name.into(),
        description: String::new(),
        signals: vec![otaas_api::Signal::Traces, otaas_api::Signal::Logs],
        receivers: Default::default(),
        processors: vec![],
    };
    block_on(api(server).create_pipeline(&spec))
        .expect("pipeline")
        .id
        .to_string()
}

fn endpoint_tf(pipeline_id: &str, port: u16, token_version: u32) -> String {
    format!(
        r#"
resource "otaas_endpoint" "e" {{
  name          = "ingest"
  pipeline_id   = "{pipeline_id}"
  protocol      = "otlp_http"
  port          = {port}
  token_version = {token_version}
  tls = {{
    cert_file = "/etc/otel/tls.crt"
    key_file  = "/etc/otel/tls.key"
  }}
}}
"#
    )
}

/// The values without the attributes an import cannot know.
fn without(mut v: Value, keys: &[&str]) -> Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

#[test]
fn endpoint_lifecycle_and_token() {
    let server = Server::start();
    let api = api(&server);
    let pid = pipeline(&server, "ingest");

    // Given an endpoint with bearer auth (the default)
    let ws = workspace(&server, &endpoint_tf(&pid, 4318, 1));
    let apply = ws.apply();
    let created = values(&ws, "otaas_endpoint.e");
    let token = created["token"].as_str().expect("a token").to_string();
    assert!(token.len() >= 16, "token {} chars", token.len());
    assert_eq!(created["auth"], "bearer");
    assert_eq!(created["token_version"], 1);
    // Then the token never shows in Terraform's output
    assert_no_secret(&apply, &token);
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(0);
    assert_no_secret(&plan, &token);
    let id = created["id"].as_str().unwrap().to_string();
    let on_server = block_on(api.get_endpoint(id.parse().unwrap())).unwrap();
    assert_eq!((on_server.port, on_server.token.clone()), (4318, None));

    // Import (CLI by id and name, import block by name and identity): the same state except the
    // token, which the server showed only once
    let tf = endpoint_tf(&pid, 4318, 1);
    for (imported, how) in [
        (
            cli_import_clean(&server, &tf, "otaas_endpoint.e", &id),
            "cli id",
        ),
        (
            cli_import_clean(&server, &tf, "otaas_endpoint.e", "ingest"),
            "cli name",
        ),
        (
            block_import(&server, &tf, "otaas_endpoint.e", r#"id = "ingest""#),
            "block name",
        ),
        (
            block_import(
                &server,
                &tf,
                "otaas_endpoint.e",
                &format!("identity = {{ id = \"{id}\" }}"),
            ),
            "block identity",
        ),
    ] {
        assert_eq!(imported["token"], Value::Null, "{how}");
        assert_eq!(
            without(imported, &["token"]),
            without(created.clone(), &["token"]),
            "{how}"
        );
    }

    // When the port changes, the endpoint is updated in place and keeps its token
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", endpoint_tf(&pid, 4319, 1)),
    );
    let run = ws.apply();
    assert!(
        run.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    let updated = values(&ws, "otaas_endpoint.e");
    assert_eq!(
        (updated["port"].clone(), updated["revision"].clone()),
        (4319.into(), 2.into())
    );
    assert_eq!(updated["token"], token.as_str());
    assert_eq!(updated["id"], created["id"]);

    // When token_version is bumped, a new token is minted (unknown in the plan) and kept
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", endpoint_tf(&pid, 4319, 2)),
    );
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(2);
    // Terraform pads `=` to the longest attribute name (`token_grace_period`).
    assert!(
        plan.stdout.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("~ token ") && l.ends_with("= (sensitive value)")
        }),
        "{}",
        plan.stdout
    );
    assert_no_secret(&plan, &token);
    let run = ws.apply();
    let rotated = values(&ws, "otaas_endpoint.e");
    let new_token = rotated["token"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    assert_no_secret(&run, &new_token);
    assert_plan_clean(&ws);

    // When someone changes the port through the API, the plan shows it
    let e = block_on(api.get_endpoint(id.parse().unwrap())).unwrap();
    let spec = otaas_api::EndpointSpec {
        name: e.name.clone(),
        pipeline_id: e.pipeline_id,
        protocol: e.protocol,
        port: 9999,
        tls: e.tls.clone(),
        auth: e.auth,
        token_version: e.token_version,
        token_grace_seconds: e.token_grace_seconds,
    };
    block_on(api.update_endpoint(e.id, &spec, None)).unwrap();
    let plan = assert_plan_changes(&ws);
    assert!(
        plan.lines()
            .any(|l| l.trim_start().starts_with("~ port ") && l.ends_with("= 9999 -> 4319")),
        "{plan}"
    );

    // When destroyed, the endpoint is gone from the server
    ws.destroy();
    assert_eq!(block_on(api.list_endpoints()).unwrap(), vec![]);
}

const HEADER_SECRET: &str = "tenant-secret-7f3a9c";

fn binding_tf(pipeline_id: &str, extra_destination: bool) -> String {
    let extra = if extra_destination {
        r#"{ name = "audit", type = "file", config = jsonencode({ path = "/var/log/otel/audit.json" }) },"#
    } else {
        ""
    };
    format!(
        r#"
resource "otaas_exporter_binding" "b" {{
  name        = "orders-out"
  pipeline_id = "{pipeline_id}"
  signals     = ["traces"]
  destinations = [
    {{
      name     = "tempo"
      type     = "otlp"
      endpoint = "tempo.internal:4317"
      headers  = {{ "x-scope-orgid" = "{HEADER_SECRET}" }}
      tls      = {{ insecure = true }}
    }},
    {extra}
  ]
}}
"#
    )
}

#[test]
fn exporter_binding_lifecycle_and_headers() {
    let server = Server::start();
    let api = api(&server);
    let pid = pipeline(&server, "orders");

    // Given a binding whose destination has a secret header
    let ws = workspace(&server, &binding_tf(&pid, false));
    let apply = ws.apply();
    assert_no_secret(&apply, HEADER_SECRET);
    let created = values(&ws, "otaas_exporter_binding.b");
    assert_eq!(
        created["destinations"][0]["headers"]["x-scope-orgid"],
        HEADER_SECRET
    );
    assert_eq!(
        created["destinations"][0]["tls"]["insecure_skip_verify"],
        false
    );
    assert_eq!(created["destinations"][0]["config"], "{}");
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(0);
    assert_no_secret(&plan, HEADER_SECRET);
    let id = created["id"].as_str().unwrap().to_string();
    let b = block_on(api.get_exporter_binding(id.parse().unwrap())).unwrap();
    assert_eq!(
        b.destinations[0].header_digests["x-scope-orgid"],
        otaas_api::header_digest(HEADER_SECRET)
    );

    // Import: everything but the header values (the server never returns them) matches; the
    // plan after a CLI import says the headers will be written
    let tf = binding_tf(&pid, false);
    let strip_headers = |mut v: Value| {
        v["destinations"][0]["headers"] = Value::Null;
        v
    };
    for key in [id.as_str(), "orders-out"] {
        let (iws, imported) = cli_import(&server, &tf, "otaas_exporter_binding.b", key);
        assert_eq!(
            strip_headers(imported),
            strip_headers(created.clone()),
            "{key}"
        );
        let plan = iws.plan_detailed_exitcode();
        plan.assert_code(2);
        assert!(plan.stdout.contains("1 to change"), "{}", plan.stdout);
        assert_no_secret(&plan, HEADER_SECRET);
    }
    // An import block applies the configured headers right away: then the state is the same
    for target in [
        r#"id = "orders-out""#.to_string(),
        format!("identity = {{ id = \"{id}\" }}"),
    ] {
        let imported = block_import_expect(
            &server,
            &tf,
            "otaas_exporter_binding.b",
            &target,
            "1 imported, 0 added, 1 changed, 0 destroyed",
        );
        let mut expected = created.clone();
        expected["revision"] = imported["revision"].clone();
        assert_eq!(imported, expected, "{target}");
    }

    // When a header value is changed through the API, the plan shows drift without the value
    ws.apply(); // refresh the revision after the import blocks' writes
    let b = block_on(api.get_exporter_binding(id.parse().unwrap())).unwrap();
    let mut spec = otaas_api::ExporterBindingSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: b.name.clone(),
        pipeline_id: b.pipeline_id,
        signals: b.signals.clone(),
        destinations: vec![otaas_api::DestinationSpec {
            name: "tempo".into(),
            kind: "otlp".into(),
            endpoint: Some("tempo.internal:4317".into()),
            headers: [("x-scope-orgid".to_string(), "hand-edited-value".to_string())].into(),
            keep_headers: false,
            tls: b.destinations[0].tls.clone(),
            config: serde_json::json!({}),
        }],
    };
    block_on(api.update_exporter_binding(b.id, &spec, None)).unwrap();
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(2);
    assert!(plan.stdout.contains("1 to change"), "{}", plan.stdout);
    assert_no_secret(&plan, HEADER_SECRET);
    assert_no_secret(&plan, "hand-edited-value");
    // And an endpoint changed through the API too
    spec.destinations[0].headers =
        [("x-scope-orgid".to_string(), HEADER_SECRET.to_string())].into();
    spec.destinations[0].endpoint = Some("elsewhere:4317".into());
    block_on(api.update_exporter_binding(b.id, &spec, None)).unwrap();
    let plan = assert_plan_changes(&ws);
    // Terraform pads `=` to the longest attribute name of the object (`header_digests`).
    assert!(
        plan.lines()
            .any(|l| l.trim_start().starts_with("~ endpoint ")
                && l.ends_with(r#"= "elsewhere:4317" -> "tempo.internal:4317""#)),
        "{plan}"
    );

    // When a destination is added, the binding is updated in place
    ws.write(
        "main.tf",
        &format!("{PROVIDER}\n{}", binding_tf(&pid, true)),
    );
    let run = ws.apply();
    assert!(
        run.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run, HEADER_SECRET);
    let b = block_on(api.get_exporter_binding(id.parse().unwrap())).unwrap();
    assert_eq!(b.destinations.len(), 2);
    assert_eq!(
        b.destinations[0].endpoint.as_deref(),
        Some("tempo.internal:4317")
    );
    assert_plan_clean(&ws);

    // When destroyed, the binding is gone from the server
    ws.destroy();
    assert_eq!(block_on(api.list_exporter_bindings()).unwrap(), vec![]);
}

//! The provider against `otaas serve --tls-self-signed` (REST API and OpAMP over TLS, with the
//! private CA the server generated): with `ca_cert_pem` set to that CA a pipeline, a bearer
//! endpoint, a binding with a secret header and a group are applied, and agents connected over
//! `wss://` run the config; with another CA, or none, the plan stops at the provider block with
//! a diagnostic on `ca_cert_pem`.
//!
//! Secrets put in through Terraform (the header value, the endpoint's ingest token, the admin
//! token) appear in no Terraform output — with the provider's debug log on — and in no line
//! of the server's debug log.

use crate::common::*;
use crate::harness::{FleetSim, Server, Workspace};

const HEADER_SECRET: &str = "tls-header-secret-5b2e91c4";

/// The provider block (with `ca_cert_pem` read from `ca.pem` in the workspace) and the objects.
fn config() -> String {
    format!(
        r#"
{PROVIDER}
provider "otaas" {{
  ca_cert_pem = file("${{path.module}}/ca.pem")
}}

resource "otaas_pipeline" "p" {{
  name       = "over-tls"
  signals    = ["traces"]
  receivers  = {{ "otlp" = jsonencode({{ protocols = {{ http = {{}} }} }}) }}
  processors = [{{ id = "batch", config = jsonencode({{}}) }}]
}}

resource "otaas_endpoint" "in" {{
  name        = "over-tls-in"
  pipeline_id = otaas_pipeline.p.id
  protocol    = "otlp_http"
  port        = 4318
  auth        = "bearer"
}}

resource "otaas_exporter_binding" "out" {{
  name        = "over-tls-out"
  pipeline_id = otaas_pipeline.p.id
  destinations = [{{
    name     = "tempo"
    type     = "otlp"
    endpoint = "tempo.internal:4317"
    headers  = {{ "x-api-key" = "{HEADER_SECRET}" }}
  }}]
}}

resource "otaas_agent_group" "g" {{
  name            = "over-tls"
  selector        = {{ env = "tls" }}
  pipeline_ids    = [otaas_pipeline.p.id]
  rollout_timeout = "2m"
  depends_on      = [otaas_exporter_binding.out, otaas_endpoint.in]
}}
"#
    )
}

/// A workspace for `server` with `ca.pem` holding `ca` and the provider's debug log on.
fn workspace_with_ca(server: &Server, ca: &str) -> Workspace {
    let mut ws = Workspace::for_server(server);
    ws.set_env("TF_LOG_PROVIDER", "DEBUG");
    ws.write("ca.pem", ca);
    ws.write("main.tf", &config());
    ws.init();
    ws
}

#[test]
fn provider_over_tls_with_ca_cert_pem() {
    let server = Server::start_with_flags(&["--tls-self-signed"], &[("OTAAS_LOG", "debug")]);
    assert!(server.api_url().starts_with("https://"));
    let _fleet = FleetSim::builder(&server)
        .agents(2)
        .label("env", "tls")
        .start();
    wait_for_agents(&server, ("env", "tls"), 2);

    // Given the generated CA in ca_cert_pem, apply creates everything and waits for the agents
    let ws = workspace_with_ca(&server, &server.ca_cert_pem());
    let apply = ws.apply();
    assert!(
        apply.stdout.contains("4 added, 0 changed, 0 destroyed"),
        "{}",
        apply.stdout
    );
    let group = values(&ws, "otaas_agent_group.g");
    let hash = group["config_hash"].as_str().unwrap().to_owned();
    let agents = block_on(api(&server).list_agents(&otaas_api::AgentQuery {
        selector: [("env".to_string(), "tls".to_string())].into(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(agents.len(), 2);
    for a in &agents {
        assert_eq!(a.status, otaas_api::AgentStatus::Applied, "{a:?}");
        assert_eq!(a.remote_config_hash.as_deref(), Some(hash.as_str()));
    }
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(0);

    // Then no secret is in Terraform's output (the provider's debug log included)
    let token = values(&ws, "otaas_endpoint.in")["token"]
        .as_str()
        .expect("an ingest token")
        .to_owned();
    assert!(
        apply.stderr.contains("[DEBUG]"),
        "the provider's debug log was not captured:\n{}",
        apply.stderr
    );
    for secret in [HEADER_SECRET, token.as_str(), server.admin_token()] {
        assert_no_secret(&apply, secret);
        assert_no_secret(&plan, secret);
    }

    // Given a CA that did not issue the server's certificate, the plan fails on ca_cert_pem
    let other = Server::start_with_flags(&["--tls-self-signed"], &[]);
    let wrong = workspace_with_ca(&server, &other.ca_cert_pem());
    let run = wrong.terraform(&["plan", "-input=false", "-no-color"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    // Terraform wraps diagnostic text: compare with the line breaks folded.
    let stderr = run.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "Error: Server certificate not trusted",
        r#"with provider["registry.terraform.io/otaas/otaas"]"#,
        // (The reason varies: both generated CAs have the same name, so the verifier may find
        // the wrong CA and report a bad signature rather than an unknown issuer.)
        "is not signed by a CA in ca_cert_pem (invalid peer certificate:",
        // Terraform points at the attribute: its source line in the provider block
        r#"ca_cert_pem = file("${path.module}/ca.pem")"#,
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} not in:\n{}",
            run.stderr
        );
    }

    // and the server's debug log never held a secret either
    let log = server.log();
    assert!(log.contains("DEBUG"), "debug logging was not on:\n{log}");
    for secret in [HEADER_SECRET, token.as_str(), server.admin_token()] {
        assert!(!log.contains(secret), "a secret appeared in the server log");
    }
}

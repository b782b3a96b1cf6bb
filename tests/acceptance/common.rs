//! Helpers the resource scenarios share: a typed API client on the test's server (to check
//! what Terraform did, and to change things behind its back), state lookups and output checks.

use std::future::Future;

use serde_json::Value;

use crate::harness::{Server, Workspace};

/// Runs one async API call from a synchronous test.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// An API client with the server's admin token.
pub(crate) fn api(server: &Server) -> otaas_api::Client {
    otaas_api::Client::new(otaas_api::ClientConfig::new(
        server.api_url(),
        server.admin_token(),
    ))
    .expect("api client")
}

/// The `values` of one resource in the workspace's state.
#[track_caller]
pub(crate) fn values(ws: &Workspace, address: &str) -> Value {
    ws.state_resource(address)
        .unwrap_or_else(|| panic!("{address} is not in the state"))["values"]
        .clone()
}

/// The provider block every configuration starts with (the endpoint and token come from the
/// workspace's OTAAS_ENDPOINT/OTAAS_TOKEN).
pub(crate) const PROVIDER: &str = r#"
terraform {
  required_providers {
    otaas = { source = "otaas/otaas" }
  }
}
"#;

/// A workspace for `server` holding `PROVIDER` + `body` as main.tf, initialised.
pub(crate) fn workspace(server: &Server, body: &str) -> Workspace {
    let ws = Workspace::for_server(server);
    ws.write("main.tf", &format!("{PROVIDER}\n{body}"));
    ws.init();
    ws
}

/// Asserts that a plan shows no changes (exit code 0).
#[track_caller]
pub(crate) fn assert_plan_clean(ws: &Workspace) {
    ws.plan_detailed_exitcode().assert_code(0);
}

/// Asserts that a plan shows changes (exit 2) and returns its output.
#[track_caller]
pub(crate) fn assert_plan_changes(ws: &Workspace) -> String {
    let run = ws.plan_detailed_exitcode();
    run.assert_code(2);
    run.stdout.clone()
}

/// Imports `address` with `terraform import ADDR ID` into a fresh workspace with `body` as
/// config and returns the imported values (after Terraform's read).
pub(crate) fn cli_import(server: &Server, body: &str, address: &str, id: &str) -> Value {
    let ws = workspace(server, body);
    ws.import(address, id);
    let v = values(&ws, address);
    assert_plan_clean(&ws);
    v
}

/// Imports through an `import {}` block (`target` is `id = "..."` or `identity = {...}`) in a
/// fresh workspace, applies, and returns the state values.
pub(crate) fn block_import(server: &Server, body: &str, address: &str, target: &str) -> Value {
    let ws = workspace(
        server,
        &format!("{body}\nimport {{\n  to = {address}\n  {target}\n}}\n"),
    );
    let run = ws.apply();
    assert!(
        run.stdout.contains("1 imported, 0 added, 0 changed, 0 destroyed"),
        "import block apply: {}",
        run.stdout
    );
    let v = values(&ws, address);
    assert_plan_clean(&ws);
    v
}

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

/// An API client with the server's admin token (trusting its generated CA when it has one).
pub(crate) fn api(server: &Server) -> otaas_api::Client {
    let mut config = otaas_api::ClientConfig::new(server.api_url(), server.admin_token());
    config.ca_cert_pem = server.ca_cert_path().map(|_| server.ca_cert_pem());
    otaas_api::Client::new(config).expect("api client")
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
/// config; returns the workspace and the imported values (after Terraform's read).
pub(crate) fn cli_import(
    server: &Server,
    body: &str,
    address: &str,
    id: &str,
) -> (Workspace, Value) {
    let ws = workspace(server, body);
    ws.import(address, id);
    let v = values(&ws, address);
    (ws, v)
}

/// `cli_import` whose result must plan clean; returns the imported values.
pub(crate) fn cli_import_clean(server: &Server, body: &str, address: &str, id: &str) -> Value {
    let (ws, v) = cli_import(server, body, address, id);
    assert_plan_clean(&ws);
    v
}

/// Imports through an `import {}` block (`target` is `id = "..."` or `identity = {...}`) in a
/// fresh workspace, applies, and returns the state values.
pub(crate) fn block_import(server: &Server, body: &str, address: &str, target: &str) -> Value {
    block_import_expect(
        server,
        body,
        address,
        target,
        "1 imported, 0 added, 0 changed, 0 destroyed",
    )
}

/// `block_import` whose apply summary must contain `summary`.
pub(crate) fn block_import_expect(
    server: &Server,
    body: &str,
    address: &str,
    target: &str,
    summary: &str,
) -> Value {
    let ws = workspace(
        server,
        &format!("{body}\nimport {{\n  to = {address}\n  {target}\n}}\n"),
    );
    let run = ws.apply();
    assert!(
        run.stdout.contains(summary),
        "import block apply: {}",
        run.stdout
    );
    let v = values(&ws, address);
    assert_plan_clean(&ws);
    v
}

/// Asserts that no captured output of `run` contains `secret`.
#[track_caller]
pub(crate) fn assert_no_secret(run: &crate::harness::process::Finished, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "a secret appeared in the output of {}",
        run.command
    );
}

/// Polls `check` every 100 ms until it returns true; fails the test after `secs` seconds.
#[track_caller]
pub(crate) fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits until the server lists `n` connected agents with `label=value`.
pub(crate) fn wait_for_agents(server: &Server, label: (&str, &str), n: usize) {
    let api = api(server);
    let query = otaas_api::AgentQuery {
        selector: [(label.0.to_string(), label.1.to_string())].into(),
        connected: Some(true),
        ..Default::default()
    };
    wait_until(
        60,
        &format!("{n} agents with {}={}", label.0, label.1),
        || block_on(api.list_agents(&query)).is_ok_and(|a| a.len() == n),
    );
}

/// Successful (200) `GET`s the server counted on its Prometheus `/metrics`, on `route` or on
/// every route (each scrape of `/metrics` counts itself).
pub(crate) fn successful_gets(server: &Server, route: Option<&str>) -> u64 {
    let text = block_on(async {
        reqwest::get(format!("{}/metrics", server.api_url()))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    });
    let route = route.map(|r| format!("route=\"{r}\""));
    text.lines()
        .filter(|l| {
            l.starts_with("otaas_http_requests_total{")
                && l.contains("method=\"GET\"")
                && l.contains("status=\"200\"")
                && route.as_ref().is_none_or(|r| l.contains(r.as_str()))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<u64>().ok()))
        .sum()
}

//! `otaas bench --quick` end to end: both backends, every benchmark, the results file. The quick
//! sizes prove the command works (servers, fleets, Terraform with both providers, handshakes,
//! clean-up); the figures of a debug build on a shared machine are not checked against targets.

use std::process::Command;
use std::time::Duration;

use crate::harness::{process, tools};

/// Every benchmark with its row in the table, given the quick run's sizes.
const ROWS: [&str; 16] = [
    "| idle | server RSS per idle WebSocket agent (200 agents) | SQLite |",
    "| idle | server CPU, 200 idle WebSocket agents | PostgreSQL |",
    "| push | new revision → APPLIED on the server, 50 / 99 / 100 % of 20 WebSocket agents",
    "| push | new revision → APPLIED on the server, 50 / 99 / 100 % of 200 WebSocket agents",
    "| http | server CPU, 200 HTTP agents polling every 2 s | SQLite |",
    "| terraform | terraform apply (create): 10 otaas_pipeline vs 10 null_resource | PostgreSQL |",
    "| terraform | terraform plan (refresh, no changes): 10 otaas_pipeline vs 10 null_resource | SQLite |",
    "| terraform | terraform apply (create): 20 otaas_pipeline vs 20 null_resource | SQLite |",
    "| handshake | provider start → handshake line (median of 3) |",
    "| tls | server RSS per idle WebSocket agent over TLS, wss:// (200 agents) | PostgreSQL |",
    "| collector | new revision → APPLIED, a real collector under `otaas agent`",
    "| console | fleet page `GET /fleet` (200 agents, first page of 50): server time (`Server-Timing`) p50 / p95 of 10 | SQLite |",
    "| console | fleet page `GET /fleet?after=<middle agent>` (200 agents): server time (`Server-Timing`) p50 / p95 of 10 | SQLite |",
    "| console | group page `GET /groups/ID` (group of 200 agents, 2 revisions and their diff): server time (`Server-Timing`) p50 / p95 of 10 | SQLite |",
    "| console | server RSS with the console open: 20 live streams (half /fleet/live, half /groups/ID/live) after 20 loads of each page, per agent (200 agents) | SQLite |",
    "| console | server CPU with 20 live streams open (200 agents, over 2s) | SQLite |",
];

/// Given the built binaries and the tools, when `otaas bench --quick` runs on both backends,
/// then it exits 0, prints a row for every figure on each backend, and writes the results
/// file with the machine's description.
#[test]
fn bench_quick_runs_end_to_end() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir.path().join("bench/RESULTS.md");
    let postgres = std::env::var("OTAAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let run = process::run(
        Command::new(tools::otaas())
            .args(["bench", "--quick", "--backend", "both"])
            .arg("--out")
            .arg(&out)
            .arg("--postgres-url")
            .arg(&postgres)
            .arg("--terraform")
            .arg(tools::terraform())
            .arg("--null-provider")
            .arg(tools::null_provider())
            .arg("--provider")
            .arg(tools::otaas_provider())
            .arg("--collector")
            .arg(tools::collector()),
        Duration::from_secs(600),
    );
    run.assert_success();
    for row in ROWS {
        assert!(
            run.stdout.contains(row),
            "no row {row:?} in the table:\n{}",
            run.stdout
        );
    }
    for (backend, expected) in [("SQLite", 16), ("PostgreSQL", 11)] {
        let rows = run
            .stdout
            .lines()
            .filter(|l| l.contains(&format!("| {backend} |")))
            .count();
        // idle ×2, push ×2, http, tls, collector, terraform ×2 per size; console ×5 (SQLite
        // only).
        assert_eq!(rows, expected, "rows for {backend}:\n{}", run.stdout);
    }
    // The servers run with their default API rate limit, and Terraform's requests are counted.
    let terraform_rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("| terraform |"))
        .collect();
    assert_eq!(terraform_rows.len(), 8, "{}", run.stdout);
    // Each with where the CPU went: Terraform with the provider, and the server.
    for row in terraform_rows {
        assert!(
            row.contains(", 0 throttled; CPU: Terraform + provider "),
            "{row}"
        );
        assert!(row.contains(" s (provider "), "{row}");
        assert!(row.contains(" s), server "), "{row}");
        assert!(row.contains("null_resource "), "{row}");
    }
    let results = std::fs::read_to_string(&out).expect("the results file was written");
    assert!(results.starts_with("# otaas bench results\n"), "{results}");
    assert!(results.contains("- CPU: "), "{results}");
    assert!(
        results.contains("- load average (1/5/15 min): "),
        "{results}"
    );
    assert!(results.contains(ROWS[0]), "{results}");
    assert!(
        results.contains("the OpAMP per-address cap (1,024 connections per source address) is off"),
        "the results say which default the run changed:\n{results}"
    );
}

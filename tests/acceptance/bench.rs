//! `otaas bench --quick` end to end: both backends, every benchmark, the results file. The quick
//! sizes prove the command works (servers, fleets, Terraform with both providers, handshakes,
//! clean-up); the figures of a debug build on a shared machine are not checked against targets.

use std::process::Command;
use std::time::Duration;

use crate::harness::{process, tools};

/// Every benchmark with its row in the table, given the quick run's sizes.
const ROWS: [&str; 8] = [
    "| idle | server RSS per idle WebSocket agent (200 agents) | SQLite |",
    "| idle | server CPU, 200 idle WebSocket agents | PostgreSQL |",
    "| push | new revision → APPLIED on the server, 50 / 99 / 100 % of 20 WebSocket agents",
    "| push | new revision → APPLIED on the server, 50 / 99 / 100 % of 200 WebSocket agents",
    "| http | server CPU, 200 HTTP agents polling every 2 s | SQLite |",
    "| terraform | terraform apply (create): 10 otaas_pipeline vs 10 null_resource | PostgreSQL |",
    "| terraform | terraform plan (refresh, no changes): 10 otaas_pipeline vs 10 null_resource | SQLite |",
    "| handshake | provider start → handshake line (median of 3) |",
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
            .arg(tools::otaas_provider()),
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
    for backend in ["SQLite", "PostgreSQL"] {
        let rows = run
            .stdout
            .lines()
            .filter(|l| l.contains(&format!("| {backend} |")))
            .count();
        // idle ×2, push ×2, http, terraform ×2.
        assert_eq!(rows, 7, "rows for {backend}:\n{}", run.stdout);
    }
    let results = std::fs::read_to_string(&out).expect("the results file was written");
    assert!(results.starts_with("# otaas bench results\n"), "{results}");
    assert!(results.contains("- CPU: "), "{results}");
    assert!(
        results.contains("- load average (1/5/15 min): "),
        "{results}"
    );
    assert!(results.contains(ROWS[0]), "{results}");
}

//! `otaas fleet-sim --effective-config`: simulated agents report hand-written collector configs
//! as their effective configs (agent `i` file `i % n`, byte for byte), as collectors configured
//! before otaas would; the server lists them unmanaged with those configs. Files that are not
//! YAML maps stop the simulator at start.

use std::process::{Command, Stdio};

use otaas_api::agents::{AgentQuery, AgentStatus};
use otaas_testkit::procs::{Serve, Sim, free_addr, wait_for};

/// The same filelog → batch → debug pipeline, five ways: other names, key order, flow or
/// block style, comments (and one file reading another log, so not all are the same).
fn hand_written() -> Vec<String> {
    vec![
        "receivers: {filelog: {include: [/var/log/a.log]}}\nprocessors: {batch: {}}\nexporters: {debug: {}}\nservice: {pipelines: {logs: {receivers: [filelog], processors: [batch], exporters: [debug]}}}\n".to_owned(),
        "# host b\nexporters:\n  debug: {}\nprocessors:\n  batch:\nreceivers:\n  filelog/app:\n    include:\n      - /var/log/a.log\nservice:\n  pipelines:\n    logs/app:\n      exporters: [debug]\n      processors: [batch]\n      receivers: [filelog/app]\n".to_owned(),
        "{\"service\": {\"pipelines\": {\"logs\": {\"receivers\": [\"filelog\"], \"processors\": [\"batch\"], \"exporters\": [\"debug\"]}}}, \"receivers\": {\"filelog\": {\"include\": [\"/var/log/a.log\"]}}, \"processors\": {\"batch\": null}, \"exporters\": {\"debug\": null}}\n".to_owned(),
        "receivers:\n  filelog:\n    include: [/var/log/a.log]   # the app\nprocessors:\n  batch: {}\nexporters:\n  debug/console: {}\nservice:\n  pipelines:\n    logs/x:\n      receivers: [filelog]\n      processors: [batch]\n      exporters: [debug/console]\n".to_owned(),
        "receivers: {filelog: {include: [/var/log/other.log]}}\nprocessors: {batch: {}}\nexporters: {debug: {}}\nservice: {pipelines: {logs: {receivers: [filelog], processors: [batch], exporters: [debug]}}}\n".to_owned(),
    ]
}

fn sha256_hex(body: &str) -> String {
    otaas_opamp::hash::to_hex(&otaas_opamp::hash::sha256(body.as_bytes()))
}

/// Given five hand-written configs, when ten simulated agents start with them, then agent `i`
/// is listed unmanaged with file `i % 5` as its effective config (its exact hash), and the
/// redacted config the API shows runs the same thing.
#[tokio::test(flavor = "multi_thread")]
async fn simulated_agents_report_hand_written_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::start(&tmp.path().join("server"), &free_addr(), &[]);
    let client = server.client();
    let files = hand_written();
    let mut args = vec![
        "--agents".to_owned(),
        "10".to_owned(),
        "--labels".to_owned(),
        "idx={i}".to_owned(),
    ];
    for (n, body) in files.iter().enumerate() {
        let path = tmp.path().join(format!("hand-{n}.yaml"));
        std::fs::write(&path, body).unwrap();
        args.push("--effective-config".to_owned());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _sim = Sim::start(&server.ws_url(), &args);

    let agents = wait_for("ten agents with effective configs", || async {
        let agents = client.list_agents(&AgentQuery::default()).await.ok()?;
        (agents.len() == 10 && agents.iter().all(|a| a.effective_config_hash.is_some()))
            .then_some(agents)
    })
    .await;
    for a in &agents {
        let i: usize = a.labels["idx"].parse().unwrap();
        assert_eq!(
            a.effective_config_hash.as_deref(),
            Some(sha256_hex(&files[i % 5]).as_str()),
            "agent {i}"
        );
        assert_eq!(a.status, AgentStatus::Unmanaged, "agent {i}");
        assert_eq!(a.remote_config_hash, None, "agent {i}");
    }
    let one = agents.iter().find(|a| a.labels["idx"] == "6").unwrap();
    let shown = client.get_agent(&one.id).await.unwrap().effective_config;
    let shown = shown.expect("effective config");
    assert!(
        otaas_collector::shape::equivalent(&shown, &files[1]),
        "{shown}"
    );
}

/// Given a file that is not a YAML map, when fleet-sim starts with it, then it exits with an
/// error naming the flag and the file, before connecting anywhere.
#[test]
fn a_file_that_is_not_a_yaml_map_stops_the_simulator() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("list.yaml");
    std::fs::write(&path, "- receivers\n- exporters\n").unwrap();
    let out = Command::new(otaas_testkit::bin::otaas())
        .args(["fleet-sim", "--server", "ws://127.0.0.1:9/v1/opamp"])
        .arg("--effective-config")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "--effective-config {}: not a YAML map",
            path.display()
        )),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("\"started\""), "{stdout}");
}

/// Pipeline `p` of five distinct ones (another log file each), written in `style` 0 or 1:
/// other names, key order, flow or block style.
fn distinct(p: usize, style: usize) -> String {
    let log = format!("/var/log/app{p}.log");
    if style == 0 {
        format!(
            "receivers: {{filelog: {{include: [{log}], start_at: end}}}}\nprocessors: {{batch: {{timeout: 1s}}}}\nexporters: {{debug: {{verbosity: basic}}}}\nservice: {{pipelines: {{logs: {{receivers: [filelog], processors: [batch], exporters: [debug]}}}}}}\n"
        )
    } else {
        format!(
            "service:\n  pipelines:\n    logs/p{p}:\n      exporters: [debug/x]\n      processors: [batch/y]\n      receivers: [filelog/z]\nexporters:\n  debug/x:\n    verbosity: basic\nprocessors:\n  batch/y:\n    timeout: 1s\nreceivers:\n  filelog/z:\n    start_at: end\n    include:\n    - {log}\n"
        )
    }
}

/// Given 100 simulated agents running 5 distinct pipelines, each written two ways (same
/// content, different formatting, key order and names), when discovery lists them, then there
/// are 5 discovered pipelines with 20 agents each, all unmanaged and adoptable.
#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_agents_on_five_pipelines_are_discovered_as_five() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::start(&tmp.path().join("server"), &free_addr(), &[]);
    let client = server.client();
    let mut args: Vec<String> = ["--agents", "100", "--labels", "idx={i}"]
        .map(str::to_owned)
        .to_vec();
    // Agent i reports file i % 10: pipeline (i % 10) % 5, written in style (i % 10) / 5.
    for n in 0..10 {
        let path = tmp.path().join(format!("hand-{n}.yaml"));
        std::fs::write(&path, distinct(n % 5, n / 5)).unwrap();
        args.push("--effective-config".to_owned());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _sim = Sim::start(&server.ws_url(), &args);

    let found = wait_for("five discovered pipelines over 100 agents", || async {
        let found = client.list_discovered_pipelines().await.ok()?;
        (found.iter().map(|p| p.agents).sum::<u64>() == 100).then_some(found)
    })
    .await;
    assert_eq!(found.len(), 5, "{found:#?}");
    let mut logs: Vec<String> = Vec::new();
    for p in &found {
        assert_eq!(p.agents, 20, "{p:#?}");
        assert_eq!(p.unmanaged_agents, 20);
        assert!(p.adoptable, "{p:#?}");
        let include = &p.pipelines[0].receivers[0].config["include"][0];
        logs.push(include.as_str().unwrap().to_owned());
    }
    logs.sort();
    let want: Vec<String> = (0..5).map(|p| format!("/var/log/app{p}.log")).collect();
    assert_eq!(logs, want);
}

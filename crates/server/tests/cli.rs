//! The `otaas` command line as a first-time user meets it: shell completions, the token scope
//! spelt as the API spells it, and logs without terminal colour codes when they go to a file.

use otaas_testkit::procs;

use std::process::Command;

fn otaas(args: &[&str]) -> std::process::Output {
    Command::new(otaas_testkit::bin::otaas())
        .args(args)
        .output()
        .expect("run otaas")
}

#[test]
fn completions_cover_every_subcommand_and_refuse_unknown_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = otaas(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in [
            "serve",
            "agent",
            "fleet-sim",
            "token",
            "bench",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = otaas(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn token_scope_read_only_is_spelt_as_in_the_api() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    for spelling in ["read_only", "read-only"] {
        let out = otaas(&["token", "create", "--scope", spelling, "--data-dir", dir]);
        assert!(out.status.success(), "{spelling}: {out:?}");
        let token = String::from_utf8(out.stdout).unwrap();
        assert!(token.trim().starts_with("otaas_"), "{token}");
    }
    let out = otaas(&["token", "list", "--data-dir", dir]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.matches("read_only").count(), 2, "{table}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    // Given otaas serve with its stderr going to a pipe (as to a log file)
    let data = tempfile::tempdir().unwrap();
    let server = procs::Serve::start(data.path(), "127.0.0.1:0", &[]);
    let lines = server.stderr.lock().unwrap().clone();
    drop(server);
    // Then its log lines are plain text
    assert!(lines.iter().any(|l| l.contains("INFO")), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "ANSI escape in: {lines:?}"
    );
}

/// `otaas ARGS` against `server`, endpoint and token from the environment as the provider
/// takes them: (success, stdout, stderr).
fn read_cmd(server: &procs::Serve, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(otaas_testkit::bin::otaas())
        .args(args)
        .env("OTAAS_ENDPOINT", format!("http://{}", server.api))
        .env("OTAAS_TOKEN", procs::ADMIN)
        .env_remove("OTAAS_CA_CERT_FILE")
        .output()
        .expect("run otaas");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Given a server with a group at revision 2 (a processor added to its pipeline) and three
/// simulated agents, two labelled `tier=0` (the group's selector), when the read commands run, then `otaas groups`
/// lists the group at revision 2, `group NAME revisions` names each revision's cause,
/// `group NAME diff 1 2` shows the added processor, `group NAME status` the rollout,
/// `agents --selector tier=0` only those two agents, each with `--output json` parsing as
/// the API's objects; an unknown group is an error naming it.
#[tokio::test(flavor = "multi_thread")]
async fn read_commands_show_groups_revisions_diffs_and_agents() {
    use otaas_api::*;
    let data = tempfile::tempdir().unwrap();
    let server = procs::Serve::builder(data.path()).start();
    let client = server.client();
    let spec = |processors: serde_json::Value| -> PipelineSpec {
        serde_json::from_value(serde_json::json!({
            "name": "web-logs", "signals": ["logs"],
            "receivers": { "filelog": { "include": ["/var/log/web.log"] } },
            "processors": processors
        }))
        .unwrap()
    };
    let p = client
        .create_pipeline(&spec(serde_json::json!([])))
        .await
        .unwrap();
    let binding: ExporterBindingSpec = serde_json::from_value(serde_json::json!({
        "name": "web-out", "pipeline_id": p.id,
        "destinations": [{ "name": "console", "type": "debug" }]
    }))
    .unwrap();
    client.create_exporter_binding(&binding).await.unwrap();
    let group: AgentGroupSpec = serde_json::from_value(serde_json::json!({
        "name": "web", "selector": { "tier": "0" }, "pipeline_ids": [p.id]
    }))
    .unwrap();
    client.create_agent_group(&group).await.unwrap();
    let batch = serde_json::json!([{ "id": "batch", "config": { "timeout": "9s" } }]);
    client
        .update_pipeline(p.id, &spec(batch), None)
        .await
        .unwrap();
    let _sim = procs::Sim::start(
        &server.ws_url(),
        &["--agents", "3", "--labels", "tier={i%2},idx={i}"],
    );
    procs::wait_for("three agents", || async {
        let n = client.list_agents(&AgentQuery::default()).await.ok()?.len();
        (n == 3).then_some(())
    })
    .await;

    let (ok, out, err) = read_cmd(&server, &["groups"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("REVISION"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("web ") && lines[1].contains(" 2 "),
        "{out}"
    );
    let (ok, out, err) = read_cmd(&server, &["groups", "--output", "json"]);
    assert!(ok, "{err}");
    let groups: Vec<AgentGroup> = serde_json::from_str(&out).unwrap();
    assert_eq!(groups[0].config_revision, 2);

    let (ok, out, err) = read_cmd(&server, &["group", "web", "revisions"]);
    assert!(ok, "{err}");
    assert!(out.contains("agent_group web (revision 1)"), "{out}");
    assert!(out.contains("pipeline web-logs (revision 2)"), "{out}");
    assert!(out.contains("admin token (--admin-token)"), "{out}");
    let (ok, out, _) = read_cmd(&server, &["group", "web", "revisions", "--output", "json"]);
    assert!(ok);
    let revs: Vec<GroupRevisionSummary> = serde_json::from_str(&out).unwrap();
    assert_eq!(revs.len(), 2);

    let (ok, out, err) = read_cmd(&server, &["group", "web", "diff", "1", "2"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("--- revision 1"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with('+') && l.contains("timeout: 9s")),
        "{out}"
    );

    let (ok, out, err) = read_cmd(&server, &["group", "web", "status"]);
    assert!(ok, "{err}");
    assert!(out.contains("revision") && out.contains("matched"), "{out}");
    let (ok, out, _) = read_cmd(&server, &["group", "web", "status", "--output", "json"]);
    assert!(ok);
    let status: GroupStatus = serde_json::from_str(&out).unwrap();
    assert_eq!(status.revision, 2);

    let (ok, out, err) = read_cmd(&server, &["agents", "--selector", "tier=0"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "header and two agents: {out}");
    let (ok, out, _) = read_cmd(
        &server,
        &["agents", "--selector", "tier=0", "--output", "json"],
    );
    assert!(ok);
    let agents: Vec<Agent> = serde_json::from_str(&out).unwrap();
    assert_eq!(agents.len(), 2);
    assert!(agents.iter().all(|a| a.labels["tier"] == "0"));

    let (ok, _, err) = read_cmd(&server, &["group", "nope", "revisions"]);
    assert!(!ok);
    assert!(err.contains("no agent group is named \"nope\""), "{err}");
}

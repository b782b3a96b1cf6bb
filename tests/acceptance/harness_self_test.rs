//! Self-tests of the harness itself, with providers that already work: HashiCorp's Go null provider
//! (installed from the filesystem mirror by a real `terraform init`) and Terraform's built-in
//! `terraform` provider. They prove the engine, the mirror and the Workspace helpers, so that a
//! failing otaas acceptance test points at otaas, not at the machinery.

use serde_json::json;

use crate::harness::Workspace;
use crate::harness::terraform::NULL_PROVIDER_VERSION;
use crate::harness::tools::supports_query;

fn null_config(revision: &str) -> String {
    format!(
        r#"
terraform {{
  required_providers {{
    null = {{ source = "hashicorp/null", version = "{NULL_PROVIDER_VERSION}" }}
  }}
}}

resource "null_resource" "probe" {{
  triggers = {{ revision = "{revision}" }}
}}
"#
    )
}

/// Given the null provider in the mirror, when a null_resource is created, left alone, changed and
/// destroyed, then Terraform installs it from the mirror and reports exactly those changes.
#[test]
fn harness_null_provider() {
    let ws = Workspace::new();
    ws.write("main.tf", &null_config("one"));

    // init installs from our filesystem mirror (nothing else is configured) and locks that version.
    let init = ws.init();
    assert!(
        init.stdout.contains(&format!(
            "Installed hashicorp/null v{NULL_PROVIDER_VERSION}"
        )),
        "init did not install the null provider from the mirror:\n{}",
        init.stdout
    );
    let lock = ws.read(".terraform.lock.hcl");
    assert!(
        lock.contains(r#"provider "registry.terraform.io/hashicorp/null""#)
            && lock.contains(&format!(r#"version     = "{NULL_PROVIDER_VERSION}""#)),
        "unexpected lock file:\n{lock}"
    );

    ws.apply();
    let state = ws.show_json();
    let engine = state["terraform_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(supports_query(&engine), "engine too old: {engine}");
    let created = ws
        .state_resource("null_resource.probe")
        .expect("null_resource.probe in state");
    assert_eq!(
        created["provider_name"],
        json!("registry.terraform.io/hashicorp/null")
    );
    assert_eq!(created["values"]["triggers"], json!({ "revision": "one" }));
    let first_id = created["values"]["id"]
        .as_str()
        .expect("id is a string")
        .to_owned();
    assert!(!first_id.is_empty());

    // Unchanged configuration: no changes.
    ws.plan_detailed_exitcode().assert_code(0);

    // A changed trigger forces replacement: exit code 2, and apply gives a new id.
    ws.write("main.tf", &null_config("two"));
    let plan = ws.plan_detailed_exitcode();
    plan.assert_code(2);
    assert!(
        plan.stdout
            .contains("Plan: 1 to add, 0 to change, 1 to destroy."),
        "unexpected plan:\n{}",
        plan.stdout
    );
    ws.apply();
    let replaced = ws
        .state_resource("null_resource.probe")
        .expect("null_resource.probe in state");
    assert_eq!(replaced["values"]["triggers"], json!({ "revision": "two" }));
    assert_ne!(replaced["values"]["id"], json!(first_id));
    ws.plan_detailed_exitcode().assert_code(0);

    // destroy leaves an empty state.
    ws.destroy();
    assert_eq!(ws.state_resources(), Vec::<serde_json::Value>::new());
}

/// Given a resource that exists outside the state, when `import` runs, then the state holds it under
/// the given id and a plan is clean. (The null provider cannot import; the built-in one can.)
#[test]
fn harness_import() {
    let ws = Workspace::new();
    ws.write("main.tf", "resource \"terraform_data\" \"adopted\" {}\n");
    ws.init();
    ws.import("terraform_data.adopted", "external-42");
    let adopted = ws
        .state_resource("terraform_data.adopted")
        .expect("terraform_data.adopted in state");
    assert_eq!(adopted["values"]["id"], json!("external-42"));
    assert_eq!(
        adopted["provider_name"],
        json!("terraform.io/builtin/terraform")
    );
    ws.plan_detailed_exitcode().assert_code(0);
}

/// Given a `list` block for a provider without list resources, when `terraform query` runs, then
/// the engine (>= 1.14 has the command) loads the provider's schema and names the missing list
/// resource. The success path needs our provider's list resources and is tested with them.
#[test]
fn harness_query_reaches_provider() {
    let ws = Workspace::new();
    ws.write("main.tf", &null_config("one"));
    ws.write(
        "probe.tfquery.hcl",
        "list \"null_resource\" \"all\" {\n  provider = null\n}\n",
    );
    ws.init();
    let query = ws.try_query_generate("generated.tf");
    query.assert_code(1);
    assert!(
        query
            .stderr
            .contains("does not support list resource \"null_resource\""),
        "unexpected query output:\n{}",
        query.stderr
    );
    assert!(!ws.path().join("generated.tf").exists());
}

/// Given a command that outlives its deadline, when the harness runs it, then the test fails
/// with "timed out" instead of hanging.
#[test]
#[should_panic(expected = "timed out after")]
fn harness_command_timeout_fails_the_test() {
    crate::harness::process::run(
        std::process::Command::new("sleep").arg("60"),
        std::time::Duration::from_millis(200),
    );
}

/// Given a daemon (the machinery behind Server and FleetSim), when it prints on stderr and is
/// stopped, then every line reached the observer and the log, and SIGTERM ended it.
#[test]
fn harness_daemon_lines_and_stop() {
    use std::sync::mpsc;
    use std::time::Duration;

    let (tx, rx) = mpsc::channel();
    let mut daemon = crate::harness::process::Daemon::spawn(
        "sh",
        std::process::Command::new("sh").args([
            "-c",
            "echo 'otaas: api listening on 127.0.0.1:1' >&2; echo ready; exec sleep 60",
        ]),
        move |line| {
            let _ = tx.send(line.to_owned());
        },
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a stderr line"),
        "otaas: api listening on 127.0.0.1:1"
    );
    daemon.assert_running();
    // 128 + SIGTERM (15): stopped by the harness, not by the grace-period SIGKILL.
    assert_eq!(daemon.stop(Duration::from_secs(30)), 143);
    let log = daemon.log();
    assert!(
        log.contains("err| otaas: api listening on 127.0.0.1:1\n"),
        "log: {log}"
    );
}

/// Given this test process, when the harness asks for `otaas`, then it is built by cargo into this
/// target dir and profile (the binary Server and FleetSim run).
#[test]
fn harness_builds_otaas() {
    use std::os::unix::fs::PermissionsExt;

    let otaas = crate::harness::tools::otaas();
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/acceptance-HASH -> target/<profile>/otaas
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("profile dir");
    if std::env::var_os("OTAAS_BIN").is_none() {
        assert_eq!(otaas, profile_dir.join("otaas"));
    }
    let meta = std::fs::metadata(otaas).expect("otaas binary exists");
    assert_eq!(
        meta.permissions().mode() & 0o111,
        0o111,
        "otaas is executable"
    );
}

/// Given the machine's PostgreSQL, when a PgDatabase is created and dropped, then the database
/// exists (reachable at its URL) while held and is gone afterwards.
#[test]
fn harness_postgres_database() {
    use crate::harness::PgDatabase;
    use crate::harness::postgres::psql;

    let db = PgDatabase::create();
    let name = db.name().to_owned();
    let current = psql(db.url(), "SELECT current_database()");
    current.assert_success();
    assert_eq!(current.stdout.trim(), name);
    let admin = db.url().replace(&format!("/{name}"), "/postgres");
    drop(db);
    let left = psql(
        &admin,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    );
    left.assert_success();
    assert_eq!(left.stdout.trim(), "0");
}

/// The engine check accepts 1.14 and later (pre-releases included) and nothing older.
#[test]
fn harness_engine_version_check() {
    assert!(supports_query("1.15.5"));
    assert!(supports_query("1.14.0-rc1"));
    assert!(supports_query("2.0.0"));
    assert!(!supports_query("1.11.4"));
    assert!(!supports_query("1.9.0"));
    assert!(!supports_query(""));
}

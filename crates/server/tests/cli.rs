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

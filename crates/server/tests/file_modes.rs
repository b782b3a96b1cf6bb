//! The data dir and the files `otaas serve` keeps in it are private to the server's user.
//!
//! Given a data dir created `0755` beforehand (and, in the second case, a world-readable
//! database left there by an older version), when a real `otaas serve` starts under umask 022
//! and takes writes, then the dir is `0700` and the database, its `-wal` and `-shm` files and
//! the generated `admin-token` are `0600`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use otaas_testkit::procs::Serve;
use serde_json::json;

/// A server without `--admin-token` (so it writes `admin-token`).
fn start(data_dir: &Path) -> Serve {
    Serve::builder(data_dir)
        .bootstrap_admin()
        .defaults()
        .start()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Starts the server on `dir`, writes an exporter binding (header values reach the WAL) and
/// checks every mode while the server runs (the `-wal` and `-shm` files exist only then).
async fn serve_and_check(dir: &Path) {
    // What a shell usually has: without our own umask, new files would be 0644.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let serve = start(dir);
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}/api/v1", serve.api);
    let p: serde_json::Value = http
        .post(format!("{base}/pipelines"))
        .bearer_auth(token.trim())
        .json(&json!({ "name": "p", "signals": ["traces"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = http
        .post(format!("{base}/exporter-bindings"))
        .bearer_auth(token.trim())
        .json(
            &json!({ "name": "b", "pipeline_id": p["id"], "destinations": [{
            "name": "d", "type": "otlp", "endpoint": "tempo:4317",
            "headers": { "x-api-key": "secret" } }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let mut wrong = Vec::new();
    if mode(dir) != 0o700 {
        wrong.push(format!("data dir {:o}", mode(dir)));
    }
    for name in ["otaas.db", "otaas.db-wal", "otaas.db-shm", "admin-token"] {
        let m = mode(&dir.join(name));
        if m != 0o600 {
            wrong.push(format!("{name} {m:o}"));
        }
    }
    assert!(wrong.is_empty(), "not private: {wrong:?}");
    drop(serve);
}

fn open_dir(parent: &Path) -> std::path::PathBuf {
    let dir = parent.join("data");
    std::fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test]
async fn new_files_in_an_existing_0755_data_dir_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = open_dir(tmp.path());
    serve_and_check(&dir).await;
}

#[tokio::test]
async fn a_world_readable_database_left_by_an_older_version_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = open_dir(tmp.path());
    // An empty file is an empty SQLite database; SQLite gives new -wal/-shm files the mode of
    // the database file, whatever the umask.
    std::fs::write(dir.join("otaas.db"), b"").unwrap();
    std::fs::set_permissions(dir.join("otaas.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    serve_and_check(&dir).await;
}

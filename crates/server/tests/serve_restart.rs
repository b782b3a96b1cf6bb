//! Real-socket tests: the real `otaas` binary on 127.0.0.1 (port 0), driven through the typed
//! client. Data survives a graceful restart, on SQLite and on PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use otaas_api::*;

/// A running `otaas serve`; killed on drop if the test did not stop it.
struct Server {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(data_dir: &Path, database: Option<&str>) -> Self {
        let mut cmd = Command::new(otaas_testkit::bin::otaas());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--opamp-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("OTAAS_ADMIN_TOKEN")
        .env_remove("OTAAS_DATABASE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(db) = database {
            cmd.args(["--database", db]);
        }
        let mut child = cmd.spawn().expect("spawn otaas");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                if let Some(addr) = line.strip_prefix("otaas: api listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "otaas did not report its address; stderr:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Self {
            child,
            addr,
            stderr: log,
        }
    }

    fn client(&self, token: &str) -> Client {
        Client::new(ClientConfig::new(format!("http://{}", self.addr), token)).unwrap()
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "otaas exited with {status}");
                std::thread::sleep(Duration::from_millis(50));
                return self.stderr.lock().unwrap().clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("otaas did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a small fleet config, restarts the server, and checks everything is still there.
async fn data_survives_restart(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    // Given a fresh server that generated its admin token into the data dir
    let server = Server::start(&data_dir, database.as_deref());
    let token_file = data_dir.join("admin-token");
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let c = server.client(&admin);
    // A wrong token is refused with a typed 401
    let err = server.client("wrong").list_pipelines().await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");

    // When objects are created through the client
    let p = c.create_pipeline(&pipeline_spec("checkout")).await.unwrap();
    let e = c
        .create_endpoint(&endpoint_spec("checkout-otlp", p.id, 4318))
        .await
        .unwrap();
    let ingest = e.token.clone().unwrap();
    let b = c
        .create_exporter_binding(&binding_spec("checkout-out", p.id))
        .await
        .unwrap();
    let g = c
        .create_agent_group(&group_spec("eu", vec![p.id]))
        .await
        .unwrap();
    let mut spec = pipeline_spec("checkout");
    spec.description = "second revision".into();
    let p = c.update_pipeline(p.id, &spec, Some(1)).await.unwrap();
    let cfg = c.agent_group_config(g.id).await.unwrap();
    assert_eq!(cfg.sha256, g.config_hash);
    assert!(
        !cfg.yaml.contains(&ingest),
        "the API never shows the ingest token again"
    );
    let history = c.agent_group_revisions(g.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].sha256, cfg.sha256);
    // Typed errors: stale If-Match → 409, unknown id → 404, dangling reference → 422 + field
    let err = c.update_pipeline(p.id, &spec, Some(1)).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some(ErrorCode::RevisionMismatch))
    );
    let err = c.get_pipeline(PipelineId::new()).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = c
        .create_endpoint(&endpoint_spec("x", PipelineId::new(), 1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.field()),
        (Some(422), Some("pipeline_id"))
    );
    let err = c.delete_pipeline(p.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InUse));
    let log1 = server.stop();

    // Then after a restart on the same data dir/database, everything is still there
    let server = Server::start(&data_dir, database.as_deref());
    let c = server.client(&admin);
    // (Reads carry neither the token nor the rollouts a write answered with.)
    let p_read = Pipeline {
        secret_digests: Default::default(),
        rollouts: None,
        ..p.clone()
    };
    assert_eq!(c.get_pipeline(p.id).await.unwrap(), p_read);
    assert_eq!(c.find_pipeline("checkout").await.unwrap(), Some(p_read));
    let mut e_read = e.clone();
    e_read.token = None;
    e_read.rollouts = None;
    assert_eq!(c.get_endpoint(e.id).await.unwrap(), e_read);
    let b_read = ExporterBinding {
        secret_digests: Default::default(),
        rollouts: None,
        ..b.clone()
    };
    assert_eq!(c.get_exporter_binding(b.id).await.unwrap(), b_read);
    assert_eq!(c.list_agent_groups().await.unwrap().len(), 1);
    assert_eq!(c.agent_group_config(g.id).await.unwrap(), cfg);
    // and the objects can still be changed and deleted
    c.delete_agent_group(g.id).await.unwrap();
    assert!(c.get_agent_group(g.id).await.unwrap_err().is_not_found());
    let log2 = server.stop();

    // Secrets never reach the log
    for log in [&log1, &log2] {
        assert!(!log.contains(&admin), "admin token in log");
        assert!(!log.contains(&ingest), "ingest token in log");
        assert!(!log.contains("secret-org"), "header secret in log");
    }
    assert!(log1.contains("generated an admin token"), "{log1}");
    assert!(log2.contains("admin token from an earlier start"), "{log2}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_data_survives_restart() {
    data_survives_restart(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_data_survives_restart() {
    // A fresh schema, created (and migrated) here, used by the server through search_path.
    let schema = fresh_schema();
    drop(
        otaas_server::store::postgres::PgStore::open(&pg_url(), Some(&schema))
            .await
            .unwrap(),
    );
    let url = format!("{}?options[search_path]={schema}", pg_url());
    let result = tokio::spawn(data_survives_restart(Some(url))).await;
    otaas_server::store::postgres::PgStore::drop_schema(&pg_url(), &schema)
        .await
        .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[test]
fn token_create_and_version_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(otaas_testkit::bin::otaas())
        .args(["token", "create", "--description", "ci fleet", "--data-dir"])
        .arg(dir.path())
        .env_remove("OTAAS_DATABASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("otaas_agent_"), "{token}");
    // The token is verifiable against the same database
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
        let store = otaas_server::store::sqlite::SqliteStore::open(&url)
            .await
            .unwrap();
        assert!(
            otaas_server::auth::verify_agent_token(&store, None, &token)
                .await
                .unwrap()
        );
    });
    let out = Command::new(otaas_testkit::bin::otaas())
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("otaas {}\n", env!("CARGO_PKG_VERSION"))
    );
}

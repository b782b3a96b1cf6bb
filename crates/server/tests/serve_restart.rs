//! Real-socket tests: the real `otaas` binary on 127.0.0.1 (port 0), driven through the typed
//! client. Data survives a graceful restart, on SQLite and on PostgreSQL.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use otaas_api::*;
use otaas_testkit::procs::Serve;

/// A server that generated its admin token into `data_dir`, on SQLite there or on `database`.
fn start(data_dir: &Path, database: Option<&str>) -> Serve {
    let db: Vec<&str> = database
        .map(|db| vec!["--database", db])
        .unwrap_or_default();
    Serve::builder(data_dir)
        .bootstrap_admin()
        .defaults()
        .args(&db)
        .start()
}

/// Creates a small fleet config, restarts the server, and checks everything is still there.
async fn data_survives_restart(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    // Given a fresh server that generated its admin token into the data dir
    let server = start(&data_dir, database.as_deref());
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
    let c = server.client_as(&admin);
    // A wrong token is refused with a typed 401
    let err = server
        .client_as("wrong")
        .list_pipelines()
        .await
        .unwrap_err();
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
    let server = start(&data_dir, database.as_deref());
    let c = server.client_as(&admin);
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

//! Test support shared by the integration tests: fresh stores on both backends and spec
//! builders. Not every test file uses every helper.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use otaas_api::*;
use otaas_server::store::Store;
use otaas_server::store::postgres::PgStore;
use otaas_server::store::sqlite::SqliteStore;
use serde_json::json;

pub use otaas_testkit::pg::{fresh_schema, pg_url};

/// Runs `body` with a store on a fresh SQLite file, removed afterwards.
pub async fn with_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    body(store, url).await;
}

/// Runs `body` with a store in a fresh PostgreSQL schema, dropped afterwards even when the
/// body panics. The second argument reopens the same schema (for restart tests).
pub async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = fresh_schema();
    let store: Arc<dyn Store> = Arc::new(
        PgStore::open(&pg_url(), Some(&schema))
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (database test) must be reachable"),
    );
    let result = AssertUnwindSafe(body(store, schema.clone()))
        .catch_unwind()
        .await;
    PgStore::drop_schema(&pg_url(), &schema).await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

pub fn pipeline_spec(name: &str) -> PipelineSpec {
    PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: name.into(),
        description: String::new(),
        signals: vec![Signal::Traces, Signal::Metrics],
        receivers: BTreeMap::new(),
        processors: vec![ProcessorSpec {
            id: "batch".into(),
            config: json!({}),
        }],
    }
}

pub fn endpoint_spec(name: &str, pipeline_id: PipelineId, port: u16) -> EndpointSpec {
    EndpointSpec {
        name: name.into(),
        pipeline_id,
        protocol: Protocol::OtlpHttp,
        port,
        tls: None,
        auth: EndpointAuth::Bearer,
        token_version: 1,
        token_grace_seconds: otaas_api::DEFAULT_TOKEN_GRACE_SECONDS,
    }
}

pub fn binding_spec(name: &str, pipeline_id: PipelineId) -> ExporterBindingSpec {
    ExporterBindingSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: name.into(),
        pipeline_id,
        signals: None,
        destinations: vec![DestinationSpec {
            name: "tempo".into(),
            kind: "otlp".into(),
            endpoint: Some("tempo:4317".into()),
            headers: BTreeMap::from([("x-scope-orgid".to_string(), "secret-org".to_string())]),
            keep_headers: false,
            tls: None,
            config: json!({}),
        }],
    }
}

pub fn group_spec(name: &str, pipeline_ids: Vec<PipelineId>) -> AgentGroupSpec {
    AgentGroupSpec {
        pinned_revision: None,
        name: name.into(),
        selector: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        pipeline_ids,
        rollout: RolloutSpec::default(),
    }
}

/// A binding to the `debug` exporter (no network): what a test pipeline needs to be rendered
/// into a group's config when the test does not care where data goes.
pub fn debug_binding_spec(name: &str, pipeline_id: PipelineId) -> ExporterBindingSpec {
    let mut b = binding_spec(name, pipeline_id);
    b.destinations[0].kind = "debug".into();
    b.destinations[0].endpoint = None;
    b.destinations[0].headers.clear();
    b
}

/// Who the tests' config writes are recorded as.
pub fn actor() -> otaas_server::revisions::Actor {
    otaas_server::revisions::Actor {
        token_id: None,
        description: "test".into(),
    }
}

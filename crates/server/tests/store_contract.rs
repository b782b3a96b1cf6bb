//! The store contract: one suite, run against SQLite and against PostgreSQL
//! (`postgres://postgres@127.0.0.1:5432/test`, a fresh schema per test, dropped afterwards).

mod common;

use std::sync::Arc;

use common::*;
use otaas_api::*;
use otaas_server::policy::ConfigPolicy;
use otaas_server::revisions::{Actor, ConfigWriter, WriteError};
use otaas_server::store::{Kind, Store, StoreError};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A store and the config writer on it: writes go through the writer (which renders the
/// groups they reach), reads straight to the store.
#[derive(Clone)]
struct S {
    store: Arc<dyn Store>,
    w: ConfigWriter,
}

impl S {
    fn new(store: Arc<dyn Store>) -> Self {
        let w = ConfigWriter::new(store.clone(), Arc::new(ConfigPolicy::default()));
        Self { store, w }
    }
}

impl std::ops::Deref for S {
    type Target = dyn Store;
    fn deref(&self) -> &dyn Store {
        &*self.store
    }
}

async fn pipeline_crud(s: S) {
    // Given an empty store, when a pipeline is created
    let a =
        s.w.create_pipeline(pipeline_spec("b-second"))
            .await
            .unwrap();
    assert!(a.revisions.is_empty());
    let a = a.value;
    assert_eq!(a.revision, 1);
    assert_eq!(a.spec, pipeline_spec("b-second"));
    // then it can be read by id, by name and in the list (ordered by name)
    assert_eq!(s.get_pipeline(a.id).await.unwrap(), a);
    assert_eq!(s.find_pipeline("b-second").await.unwrap(), Some(a.clone()));
    assert_eq!(s.find_pipeline("nope").await.unwrap(), None);
    let b =
        s.w.create_pipeline(pipeline_spec("a-first"))
            .await
            .unwrap()
            .value;
    let names: Vec<String> = s
        .list_pipelines()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.spec.name)
        .collect();
    assert_eq!(names, vec!["a-first", "b-second"]);

    // Names are unique per kind, on create and on rename.
    match s.w.create_pipeline(pipeline_spec("a-first")).await {
        Err(WriteError::Store(StoreError::NameTaken { kind, name })) => {
            assert_eq!((kind, name.as_str()), (Kind::Pipeline, "a-first"))
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    match s
        .w
        .update_pipeline(&actor(), a.id, pipeline_spec("a-first"), None)
        .await
    {
        Err(WriteError::Store(StoreError::NameTaken { name, .. })) => assert_eq!(name, "a-first"),
        other => panic!("expected NameTaken, got {other:?}"),
    }

    // Updates bump the revision; If-Match guards against lost updates.
    let mut spec = pipeline_spec("b-second");
    spec.description = "changed".into();
    let a2 =
        s.w.update_pipeline(&actor(), a.id, spec.clone(), Some(1))
            .await
            .unwrap()
            .value;
    assert_eq!(a2.revision, 2);
    assert_eq!(a2.spec.description, "changed");
    assert_eq!(a2.created_at, a.created_at);
    match s
        .w
        .update_pipeline(&actor(), a.id, spec.clone(), Some(1))
        .await
    {
        Err(WriteError::Store(StoreError::RevisionMismatch {
            expected, actual, ..
        })) => assert_eq!((expected, actual), (1, 2)),
        other => panic!("expected RevisionMismatch, got {other:?}"),
    }
    assert_eq!(s.get_pipeline(a.id).await.unwrap().revision, 2);
    // Without If-Match the update is unconditional.
    assert_eq!(
        s.w.update_pipeline(&actor(), a.id, spec, None)
            .await
            .unwrap()
            .value
            .revision,
        3
    );

    // Delete, then it is gone.
    s.w.delete_pipeline(b.id).await.unwrap();
    assert!(matches!(
        s.get_pipeline(b.id).await,
        Err(StoreError::NotFound {
            kind: Kind::Pipeline,
            ..
        })
    ));
    assert!(matches!(
        s.w.delete_pipeline(b.id).await,
        Err(WriteError::Store(StoreError::NotFound { .. }))
    ));
    assert!(matches!(
        s.w.update_pipeline(&actor(), PipelineId::new(), pipeline_spec("x"), None)
            .await,
        Err(WriteError::Store(StoreError::NotFound { .. }))
    ));
}

async fn references(s: S) {
    let p = s.w.create_pipeline(pipeline_spec("p")).await.unwrap().value;
    let missing = PipelineId::new();

    // Dangling references are refused and name the field.
    match s
        .w
        .create_endpoint(&actor(), endpoint_spec("e", missing, 4318))
        .await
    {
        Err(WriteError::Store(StoreError::DanglingReference { field, kind, id })) => {
            assert_eq!(
                (field.as_str(), kind, id),
                ("pipeline_id", Kind::Pipeline, missing.to_string())
            )
        }
        other => panic!("expected DanglingReference, got {other:?}"),
    }
    match s
        .w
        .create_group(&actor(), group_spec("g", vec![p.id, missing]))
        .await
    {
        Err(WriteError::Store(StoreError::DanglingReference { field, .. })) => {
            assert_eq!(field, "pipeline_ids[1]")
        }
        other => panic!("expected DanglingReference, got {other:?}"),
    }
    assert_eq!(
        s.find_group("g").await.unwrap(),
        None,
        "failed create left nothing"
    );
    match s
        .w
        .create_binding(&actor(), binding_spec("b", missing))
        .await
    {
        Err(WriteError::Store(StoreError::DanglingReference { field, .. })) => {
            assert_eq!(field, "pipeline_id")
        }
        other => panic!("expected DanglingReference, got {other:?}"),
    }

    // A referenced pipeline cannot be deleted; the error names each referrer in turn.
    let e =
        s.w.create_endpoint(&actor(), endpoint_spec("e", p.id, 4318))
            .await
            .unwrap()
            .value;
    let b =
        s.w.create_binding(&actor(), binding_spec("b", p.id))
            .await
            .unwrap()
            .value;
    let g =
        s.w.create_group(&actor(), group_spec("g", vec![p.id]))
            .await
            .unwrap()
            .value;
    let expect_in_use = |r: Result<_, WriteError>, want_kind: Kind, want_name: &str| match r {
        Err(WriteError::Store(StoreError::InUse {
            kind,
            name,
            referrer_kind,
            referrer_name,
            ..
        })) => {
            assert_eq!(kind, Kind::Pipeline);
            assert_eq!(name, "p");
            assert_eq!(
                (referrer_kind, referrer_name.as_str()),
                (want_kind, want_name)
            );
        }
        other => panic!("expected InUse, got {other:?}"),
    };
    expect_in_use(s.w.delete_pipeline(p.id).await, Kind::Endpoint, "e");
    s.w.delete_endpoint(&actor(), e.id).await.unwrap();
    expect_in_use(s.w.delete_pipeline(p.id).await, Kind::ExporterBinding, "b");
    s.w.delete_binding(&actor(), b.id).await.unwrap();
    expect_in_use(s.w.delete_pipeline(p.id).await, Kind::AgentGroup, "g");
    s.w.delete_group(g.record.id).await.unwrap();
    s.w.delete_pipeline(p.id).await.unwrap();
    assert_eq!(s.list_pipelines().await.unwrap(), vec![]);
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

async fn group_revisions(s: S) {
    // Given a pipeline with an endpoint and a binding, and a group using it
    let p =
        s.w.create_pipeline(pipeline_spec("checkout"))
            .await
            .unwrap()
            .value;
    let e =
        s.w.create_endpoint(&actor(), endpoint_spec("checkout-otlp", p.id, 4318))
            .await
            .unwrap()
            .value;
    s.w.create_binding(&actor(), binding_spec("checkout-out", p.id))
        .await
        .unwrap();
    let w =
        s.w.create_group(&actor(), group_spec("eu", vec![p.id]))
            .await
            .unwrap();
    let g = w.value;
    // then the group starts at config revision 1, announced by the write
    assert_eq!(g.config_revision, 1);
    assert_eq!(w.revisions.len(), 1);
    let r1 = s.group_revision(g.record.id, None).await.unwrap();
    assert_eq!(w.revisions[0], r1);
    assert_eq!((r1.revision, r1.hash.clone()), (1, g.config_hash.clone()));
    assert_eq!(r1.hash, sha256_hex(&r1.yaml));
    // and the YAML carries the endpoint's derived token and the header secret
    let token = s.w.token_key().endpoint_token(e.id, 1);
    assert!(r1.yaml.contains(&token));
    assert!(r1.yaml.contains("secret-org"));
    assert!(r1.yaml.contains("traces/checkout:"));

    // When a change leaves the YAML identical (description), no revision is made
    let mut spec = pipeline_spec("checkout");
    spec.description = "only words".into();
    let w =
        s.w.update_pipeline(&actor(), p.id, spec.clone(), None)
            .await
            .unwrap();
    assert!(w.revisions.is_empty());
    assert_eq!(s.get_group(g.record.id).await.unwrap().config_revision, 1);
    // nor when only the selector changes (the object revision moves, the config does not)
    let mut gspec = group_spec("eu", vec![p.id]);
    gspec.selector.insert("region".into(), "eu".into());
    let w =
        s.w.update_group(&actor(), g.record.id, gspec, Some(1))
            .await
            .unwrap();
    assert!(w.revisions.is_empty());
    assert_eq!((w.value.record.revision, w.value.config_revision), (2, 1));

    // When the pipeline's processors change, revision 2 appears
    spec.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: serde_json::json!({"limit_mib": 400}),
    });
    let w =
        s.w.update_pipeline(&actor(), p.id, spec, None)
            .await
            .unwrap();
    assert_eq!(w.revisions.len(), 1);
    assert_eq!(w.revisions[0].revision, 2);
    assert!(w.revisions[0].yaml.contains("memory_limiter/checkout"));

    // An endpoint token rotation without grace changes the YAML: revision 3, old token gone
    // (with a grace the old token stays until it ends: tests/api.rs, rotated_endpoint_token_*)
    let mut espec = endpoint_spec("checkout-otlp", p.id, 4318);
    espec.token_version = 2;
    espec.token_grace_seconds = 0;
    let w =
        s.w.update_endpoint(&actor(), e.id, espec, Some(1))
            .await
            .unwrap();
    assert_eq!(w.revisions.len(), 1);
    let r3 = &w.revisions[0];
    assert_eq!(r3.revision, 3);
    assert!(!r3.yaml.contains(&token));
    assert!(r3.yaml.contains(&s.w.token_key().endpoint_token(e.id, 2)));

    // History is kept, oldest first, and each revision can be read back
    let history = s.group_revisions(g.record.id).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(s.group_revision(g.record.id, Some(1)).await.unwrap(), r1);
    let g_now = s.get_group(g.record.id).await.unwrap();
    assert_eq!(
        (g_now.config_revision, g_now.config_hash.clone()),
        (3, r3.hash.clone())
    );

    // Deleting the group removes its history
    s.w.delete_group(g.record.id).await.unwrap();
    assert!(matches!(
        s.group_revision(g.record.id, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn failed_render_writes_nothing(s: S) {
    // Given a group whose pipeline has an endpoint on port 4318
    let p = s.w.create_pipeline(pipeline_spec("p")).await.unwrap().value;
    s.w.create_endpoint(&actor(), endpoint_spec("first", p.id, 4318))
        .await
        .unwrap();
    s.w.create_binding(&actor(), binding_spec("out", p.id))
        .await
        .unwrap();
    let g =
        s.w.create_group(&actor(), group_spec("g", vec![p.id]))
            .await
            .unwrap()
            .value;
    // When a second endpoint on the same port is added
    let err =
        s.w.create_endpoint(&actor(), endpoint_spec("second", p.id, 4318))
            .await
            .unwrap_err();
    // Then the write fails with the render error and nothing of it remains
    match err {
        WriteError::Render { group, source } => {
            assert_eq!(group, "g");
            assert_eq!(
                source.to_string(),
                "port 4318 is used by both endpoint \"first\" and endpoint \"second\""
            );
        }
        other => panic!("expected Render, got {other:?}"),
    }
    assert_eq!(s.find_endpoint("second").await.unwrap(), None);
    assert_eq!(s.list_endpoints().await.unwrap().len(), 1);
    assert_eq!(s.group_revisions(g.record.id).await.unwrap().len(), 1);
}

async fn moving_an_endpoint_rerenders_both_groups(s: S) {
    // Each pipeline has a receiver of its own, so moving the endpoint leaves both complete.
    let with_receiver = |name: &str| {
        let mut spec = pipeline_spec(name);
        spec.receivers
            .insert("otlp".into(), json!({"protocols": {"grpc": {}}}));
        spec
    };
    let p1 =
        s.w.create_pipeline(with_receiver("one"))
            .await
            .unwrap()
            .value;
    let p2 =
        s.w.create_pipeline(with_receiver("two"))
            .await
            .unwrap()
            .value;
    s.w.create_binding(&actor(), binding_spec("out1", p1.id))
        .await
        .unwrap();
    s.w.create_binding(&actor(), binding_spec("out2", p2.id))
        .await
        .unwrap();
    let g1 =
        s.w.create_group(&actor(), group_spec("g1", vec![p1.id]))
            .await
            .unwrap()
            .value;
    let g2 =
        s.w.create_group(&actor(), group_spec("g2", vec![p2.id]))
            .await
            .unwrap()
            .value;
    let e =
        s.w.create_endpoint(&actor(), endpoint_spec("e", p1.id, 4318))
            .await
            .unwrap();
    assert_eq!(
        e.revisions.iter().map(|r| r.group_id).collect::<Vec<_>>(),
        vec![g1.record.id]
    );
    let moved =
        s.w.update_endpoint(&actor(), e.value.id, endpoint_spec("e", p2.id, 4318), None)
            .await
            .unwrap();
    let mut touched: Vec<_> = moved
        .revisions
        .iter()
        .map(|r| (r.group_id, r.revision))
        .collect();
    touched.sort();
    let mut want = vec![(g1.record.id, 3), (g2.record.id, 2)];
    want.sort();
    assert_eq!(touched, want);
}

async fn tokens(s: S) {
    assert_eq!(s.count_active_tokens(TokenScope::Admin).await.unwrap(), 0);
    let t = s
        .create_token(TokenScope::Agent, "fleet", "ab".repeat(32).as_str())
        .await
        .unwrap();
    assert_eq!(
        (t.scope, t.description.as_str()),
        (TokenScope::Agent, "fleet")
    );
    assert_eq!(
        s.find_token_by_hash(&"ab".repeat(32)).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(s.find_token_by_hash(&"cd".repeat(32)).await.unwrap(), None);
    assert_eq!(s.count_active_tokens(TokenScope::Agent).await.unwrap(), 1);
    assert_eq!(s.count_active_tokens(TokenScope::Admin).await.unwrap(), 0);
    assert!(t.is_active(chrono::Utc::now()));
}

/// The data written before a reopen is all there after it, and the token key is stable.
async fn survives_reopen(before: S, reopen: impl std::future::Future<Output = S>) {
    let p = before
        .w
        .create_pipeline(pipeline_spec("p"))
        .await
        .unwrap()
        .value;
    let e = before
        .w
        .create_endpoint(&actor(), endpoint_spec("e", p.id, 4318))
        .await
        .unwrap()
        .value;
    before
        .w
        .create_binding(&actor(), binding_spec("b", p.id))
        .await
        .unwrap();
    let g = before
        .w
        .create_group(&actor(), group_spec("g", vec![p.id]))
        .await
        .unwrap()
        .value;
    let token = before.w.token_key().endpoint_token(e.id, 1);
    let yaml = before.group_revision(g.record.id, None).await.unwrap();
    drop(before);
    let after = reopen.await;
    assert_eq!(after.get_pipeline(p.id).await.unwrap(), p);
    assert_eq!(after.get_endpoint(e.id).await.unwrap(), e);
    assert_eq!(after.get_group(g.record.id).await.unwrap(), g);
    assert_eq!(after.group_revision(g.record.id, None).await.unwrap(), yaml);
    assert_eq!(after.w.token_key().endpoint_token(e.id, 1), token);
}

/// Concurrent writers: every update lands, group revisions stay gap-free, and of several
/// creates with one name exactly one wins.
async fn concurrent_writes(s: S) {
    let p = s.w.create_pipeline(pipeline_spec("p")).await.unwrap().value;
    s.w.create_endpoint(&actor(), endpoint_spec("e", p.id, 4318))
        .await
        .unwrap();
    s.w.create_binding(&actor(), binding_spec("b", p.id))
        .await
        .unwrap();
    let g =
        s.w.create_group(&actor(), group_spec("g", vec![p.id]))
            .await
            .unwrap()
            .value;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut spec = pipeline_spec("p");
            spec.processors[0].config = serde_json::json!({ "send_batch_size": i + 1 });
            s.w.update_pipeline(&actor(), p.id, spec, None)
                .await
                .unwrap()
        }));
    }
    let mut made: Vec<i64> = Vec::new();
    for t in tasks {
        let w = t.await.unwrap();
        assert_eq!(
            w.revisions.len(),
            1,
            "each distinct config is a new revision"
        );
        made.push(w.revisions[0].revision);
    }
    made.sort();
    assert_eq!(made, (2..=9).collect::<Vec<_>>());
    assert_eq!(s.get_pipeline(p.id).await.unwrap().revision, 9);
    assert_eq!(s.get_group(g.record.id).await.unwrap().config_revision, 9);

    let mut tasks = Vec::new();
    for _ in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.w.create_pipeline(pipeline_spec("same")).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(WriteError::Store(StoreError::NameTaken { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1);
}

/// Given a pipeline with an endpoint and no binding, a group over it is refused with
/// `Incomplete` at `pipeline_ids` and not stored; with a binding it is created; deleting the
/// binding then succeeds and makes no new revision (nothing complete is left), and the group
/// is still there.
async fn completeness(s: S) {
    let p = s.w.create_pipeline(pipeline_spec("p")).await.unwrap().value;
    s.w.create_endpoint(&actor(), endpoint_spec("e", p.id, 4318))
        .await
        .unwrap();
    match s
        .w
        .create_group(&actor(), group_spec("g", vec![p.id]))
        .await
    {
        Err(WriteError::Incomplete { group, field, .. }) => {
            assert_eq!((group.as_str(), field), ("g", "pipeline_ids"))
        }
        other => panic!("expected Incomplete, got {other:?}"),
    }
    assert_eq!(s.list_groups().await.unwrap(), vec![]);
    let b =
        s.w.create_binding(&actor(), binding_spec("b", p.id))
            .await
            .unwrap();
    assert_eq!(b.revisions, vec![]);
    let g =
        s.w.create_group(&actor(), group_spec("g", vec![p.id]))
            .await
            .unwrap()
            .value;
    assert_eq!(g.config_revision, 1);
    let deleted = s.w.delete_binding(&actor(), b.value.id).await.unwrap();
    assert_eq!(deleted.revisions, vec![]);
    let after = s.get_group(g.record.id).await.unwrap();
    assert_eq!(
        (after.config_revision, after.config_hash),
        (1, g.config_hash)
    );
}

/// Declared secrets and header values: kept on `keep_*`, replaced otherwise, and rendered into
/// the group's config (the only place they leave the store).
async fn secrets(s: S) {
    // Given a pipeline and a binding with secrets referenced from their configs
    let mut spec = pipeline_spec("p");
    spec.secrets = [("pw".to_string(), "store-pw-1".to_string())].into();
    spec.receivers.insert(
        "kafka".into(),
        json!({"auth": {"sasl": {"password": {"$secret": "pw"}}}}),
    );
    let p = s.w.create_pipeline(spec.clone()).await.unwrap().value;
    assert_eq!(p.spec.secrets["pw"], "store-pw-1");
    let mut b = binding_spec("b", p.id);
    b.secrets = [("key".to_string(), "store-key-1".to_string())].into();
    b.destinations[0].config = json!({"compression": {"$secret": "key"}});
    let b = s.w.create_binding(&actor(), b).await.unwrap().value;
    let g =
        s.w.create_group(&actor(), group_spec("g", vec![p.id]))
            .await
            .unwrap()
            .value;
    let yaml = s.group_revision(g.record.id, None).await.unwrap().yaml;
    for v in ["store-pw-1", "store-key-1", "secret-org"] {
        assert!(yaml.contains(v), "{v} not rendered: {yaml}");
    }
    // When the pipeline is updated keeping its secrets, Then they stay
    let mut keep = spec.clone();
    keep.secrets.clear();
    keep.keep_secrets = true;
    keep.description = "kept".into();
    let kept =
        s.w.update_pipeline(&actor(), p.id, keep, None)
            .await
            .unwrap()
            .value;
    assert_eq!(kept.spec.secrets, spec.secrets);
    assert!(!kept.spec.keep_secrets);
    // When they are replaced, Then the new value is stored and rendered
    let mut new = spec.clone();
    new.secrets = [("pw".to_string(), "store-pw-2".to_string())].into();
    let w =
        s.w.update_pipeline(&actor(), p.id, new, None)
            .await
            .unwrap();
    assert_eq!(
        s.get_pipeline(p.id).await.unwrap().spec.secrets["pw"],
        "store-pw-2"
    );
    let yaml = &w.revisions[0].yaml;
    assert!(
        yaml.contains("store-pw-2") && !yaml.contains("store-pw-1"),
        "{yaml}"
    );
    // And the binding reads back with its secrets and headers
    let read = s.get_binding(b.id).await.unwrap();
    assert_eq!(read.spec.secrets["key"], "store-key-1");
    assert_eq!(
        read.spec.destinations[0].headers["x-scope-orgid"],
        "secret-org"
    );
    let listed = s.list_bindings().await.unwrap();
    assert_eq!(listed[0].spec, read.spec);
}

/// The `body` and `secrets` columns of the pipelines and bindings: the values are in neither
/// in clear; the latter holds them sealed with the server key.
async fn assert_stored_apart(rows: Vec<(String, String)>) {
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (body, secrets) in rows {
        for v in ["store-pw-2", "store-key-1", "secret-org"] {
            assert!(!body.contains(v), "{v} in the body column: {body}");
            assert!(!secrets.contains(v), "{v} in clear in the secrets column");
        }
        assert!(secrets.starts_with("v1:"), "{secrets}");
    }
}

const BODIES: &str =
    "SELECT body, secrets FROM pipelines UNION ALL SELECT body, secrets FROM exporter_bindings";

#[tokio::test]
async fn sqlite_secrets_are_stored_apart() {
    with_sqlite(|s, url| async move {
        secrets(S::new(s)).await;
        let store = otaas_server::store::sqlite::SqliteStore::open(&url)
            .await
            .unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(BODIES)
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_stored_apart(rows).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_secrets_are_stored_apart() {
    with_postgres(|s, schema| async move {
        secrets(S::new(s)).await;
        let store = otaas_server::store::postgres::PgStore::open(&pg_url(), Some(&schema))
            .await
            .unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(BODIES)
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_stored_apart(rows).await;
    })
    .await;
}

/// A group with an endpoint and binding, then `updates` pipeline changes that each make a
/// new revision (a processor's config changes): (group id, pipeline id).
async fn group_with_history(s: &S, actor: &Actor, updates: usize) -> (AgentGroupId, PipelineId) {
    let p =
        s.w.create_pipeline(pipeline_spec("hist"))
            .await
            .unwrap()
            .value;
    s.w.create_endpoint(actor, endpoint_spec("hist-otlp", p.id, 4318))
        .await
        .unwrap();
    s.w.create_binding(actor, binding_spec("hist-out", p.id))
        .await
        .unwrap();
    let g =
        s.w.create_group(actor, group_spec("hist", vec![p.id]))
            .await
            .unwrap()
            .value;
    for i in 0..updates {
        let mut spec = pipeline_spec("hist");
        spec.processors = vec![ProcessorSpec {
            id: "batch".into(),
            config: json!({ "timeout": format!("{}s", i + 1) }),
        }];
        let w = s.w.update_pipeline(actor, p.id, spec, None).await.unwrap();
        assert_eq!(w.revisions.len(), 1);
    }
    (g.record.id, p.id)
}

/// Given a group created and changed by a token holder, when its revisions are read back,
/// then each carries that token's id and description and the object written with its
/// revision after the write (the group for revision 1, the pipeline for revision 2).
async fn revision_causes(s: S) {
    let actor = Actor {
        token_id: Some(TokenId::new()),
        description: "deploy bot".into(),
    };
    let (gid, pid) = group_with_history(&s, &actor, 1).await;
    let revs = s.group_revisions(gid).await.unwrap();
    let causes: Vec<_> = revs.iter().map(|r| r.cause.clone()).collect();
    assert_eq!(
        causes,
        vec![
            RevisionCause {
                token_id: actor.token_id,
                token_description: Some("deploy bot".into()),
                cause_kind: Some("agent_group".into()),
                cause_id: Some(gid.to_string()),
                cause_name: Some("hist".into()),
                cause_revision: Some(1),
            },
            RevisionCause {
                token_id: actor.token_id,
                token_description: Some("deploy bot".into()),
                cause_kind: Some("pipeline".into()),
                cause_id: Some(pid.to_string()),
                cause_name: Some("hist".into()),
                cause_revision: Some(2),
            },
        ]
    );
    assert_eq!(
        s.group_revision(gid, Some(2)).await.unwrap().cause,
        causes[1]
    );
}

/// Given a group with revisions 1 to 5, when revisions up to 4 are deleted except 2, then 1,
/// 3 and 4 go, 2 stays, and 5 stays both as the latest and as beyond `up_to`; a keep-set
/// without the latest never deletes it.
async fn delete_revisions_except(s: S) {
    let (gid, _) = group_with_history(&s, &actor(), 4).await;
    let n = s
        .delete_revisions_except(gid, 4, &[2].into())
        .await
        .unwrap();
    assert_eq!(n, 3);
    let left: Vec<i64> = s
        .group_revisions(gid)
        .await
        .unwrap()
        .iter()
        .map(|r| r.revision)
        .collect();
    assert_eq!(left, vec![2, 5]);
    s.delete_revisions_except(gid, 5, &Default::default())
        .await
        .unwrap();
    let left: Vec<i64> = s
        .group_revisions(gid)
        .await
        .unwrap()
        .iter()
        .map(|r| r.revision)
        .collect();
    assert_eq!(left, vec![5]);
}

/// Given a group with six revisions, a retention of two, an agent reporting revision 2's hash
/// and a stored rollout of revision 6 whose last good revision is 1, when retention runs against
/// this backend, then revisions 1 (the rollback target) and 2 stay with the newest two and 3 and
/// 4 are gone.
async fn retention_keeps_what_agents_run(s: S) {
    let (gid, _) = group_with_history(&s, &actor(), 5).await;
    let revs = s.group_revisions(gid).await.unwrap();
    let state = otaas_server::state::AppState::new(
        s.store.clone(),
        otaas_server::config::ServeConfig::for_data_dir(std::env::temp_dir()),
    );
    let agent: otaas_server::fleet::AgentRecord = serde_json::from_value(json!({
        "id": "00112233445566778899aabbccddeeff",
        "remote_config_hash": revs[1].hash,
        "connected": true,
    }))
    .unwrap();
    state.agents.load(vec![agent]);
    let now = chrono::Utc::now();
    let good = otaas_server::rollout::plan::Rollout::complete_at(1, revs[0].hash.clone(), now);
    let rollout = otaas_server::rollout::plan::Rollout::start(&good, 6, revs[5].hash.clone(), now);
    assert_eq!(rollout.last_good, Some(1));
    s.put_rollout(gid, &serde_json::to_string(&rollout).unwrap())
        .await
        .unwrap();
    let mut retention =
        <otaas_server::retention::Retention as axum::extract::FromRef<_>>::from_ref(&state);
    retention.policy = otaas_server::retention::Policy { count: 2, days: 0 };
    otaas_server::retention::prune(&retention, now)
        .await
        .unwrap();
    let left: Vec<i64> = s
        .group_revisions(gid)
        .await
        .unwrap()
        .iter()
        .map(|r| r.revision)
        .collect();
    assert_eq!(left, vec![1, 2, 5, 6]);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_sqlite(|s, _| super::$name(super::S::new(s))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_postgres(|s, _| super::$name(super::S::new(s))).await;
                }
            )*
        }
    };
}

contract!(
    completeness,
    pipeline_crud,
    references,
    group_revisions,
    failed_render_writes_nothing,
    moving_an_endpoint_rerenders_both_groups,
    tokens,
    concurrent_writes,
    revision_causes,
    delete_revisions_except,
    retention_keeps_what_agents_run,
);

#[tokio::test]
async fn sqlite_survives_reopen() {
    with_sqlite(|s, url| async move {
        survives_reopen(S::new(s), async move {
            S::new(Arc::new(
                otaas_server::store::sqlite::SqliteStore::open(&url)
                    .await
                    .unwrap(),
            ))
        })
        .await
    })
    .await;
}

#[tokio::test]
async fn postgres_survives_reopen() {
    with_postgres(|s, schema| async move {
        survives_reopen(S::new(s), async move {
            S::new(Arc::new(
                otaas_server::store::postgres::PgStore::open(&pg_url(), Some(&schema))
                    .await
                    .unwrap(),
            ))
        })
        .await
    })
    .await;
}

/// Two stores on one PostgreSQL schema act like two replicas: their writes serialise through
/// the advisory lock, so group revisions stay gap-free across both.
#[tokio::test]
async fn postgres_replicas_share_revisions() {
    with_postgres(|a, schema| async move {
        let a = S::new(a);
        let b = S::new(Arc::new(
            otaas_server::store::postgres::PgStore::open(&pg_url(), Some(&schema))
                .await
                .unwrap(),
        ));
        // Both replicas derive the same endpoint tokens.
        let p = a.w.create_pipeline(pipeline_spec("p")).await.unwrap().value;
        let e =
            a.w.create_endpoint(&actor(), endpoint_spec("e", p.id, 4318))
                .await
                .unwrap()
                .value;
        assert_eq!(
            a.w.token_key().endpoint_token(e.id, 1),
            b.w.token_key().endpoint_token(e.id, 1)
        );
        a.w.create_binding(&actor(), binding_spec("b", p.id))
            .await
            .unwrap();
        let g =
            b.w.create_group(&actor(), group_spec("g", vec![p.id]))
                .await
                .unwrap()
                .value;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut spec = pipeline_spec("p");
                spec.processors[0].config = serde_json::json!({ "timeout": format!("{i}s") });
                s.w.update_pipeline(&actor(), p.id, spec, None)
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let history = a.group_revisions(g.record.id).await.unwrap();
        assert_eq!(
            history.iter().map(|r| r.revision).collect::<Vec<_>>(),
            (1..=11).collect::<Vec<_>>()
        );
    })
    .await;
}

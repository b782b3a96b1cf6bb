//! REST API tests through the real router with `tower::ServiceExt::oneshot` (no socket) on a
//! fresh SQLite store. Every error case asserts the status and the error body's code and field.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use otaas_api::*;
use otaas_server::config::{Secret, ServeConfig};
use otaas_server::events::Event;
use otaas_server::state::AppState;
use otaas_server::store::sqlite::SqliteStore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token";

struct Harness {
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        let mut config = ServeConfig::for_data_dir(dir.path());
        config.admin_token = Some(Secret::new(ADMIN));
        config.max_body_bytes = 16 * 1024;
        Self {
            state: AppState::new(store, config),
            _dir: dir,
        }
    }

    fn app(&self) -> Router {
        otaas_server::api::router(self.state.clone())
    }

    /// Sends a request; returns status, headers' If-Match-free view and the JSON body (or
    /// `Value::Null` when empty, or a string for text bodies).
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.raw(method, path, body.map(|b| b.to_string()), &[])
            .await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        self.send(req).await
    }

    async fn create(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }
}

/// Asserts an error response: status, code and field.
#[track_caller]
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], json!(code), "body: {}", got.1);
    assert_eq!(got.1["error"]["field"], json!(field), "body: {}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message missing: {}",
        got.1
    );
}

fn pipeline_json(name: &str) -> Value {
    json!({
        "name": name,
        "signals": ["traces", "metrics"],
        "processors": [{ "id": "batch" }]
    })
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_auth_is_required_on_api_routes() {
    let h = Harness::new().await;
    // No token
    let req = Request::get("/api/v1/pipelines")
        .body(Body::empty())
        .unwrap();
    assert_error(
        &h.send(req).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // Wrong token
    let req = Request::get("/api/v1/pipelines")
        .header("authorization", "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_error(
        &h.send(req).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // An agent enrollment token is not an API token
    let (_, t) = h
        .call(
            "POST",
            "/api/v1/tokens",
            Some(json!({"description": "fleet"})),
        )
        .await;
    let agent = t["token"].as_str().unwrap().to_string();
    let req = Request::get("/api/v1/pipelines")
        .header("authorization", format!("Bearer {agent}"))
        .body(Body::empty())
        .unwrap();
    assert_error(&h.send(req).await, StatusCode::FORBIDDEN, "forbidden", None);
    // A minted admin token works, as does the flag's
    let (status, t) = h
        .call("POST", "/api/v1/tokens", Some(json!({"scope": "admin"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let req = Request::get("/api/v1/pipelines")
        .header(
            "authorization",
            format!("Bearer {}", t["token"].as_str().unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await, (StatusCode::OK, json!({"items": []})));
    // Failures are counted
    let (_, metrics) = h.call("GET", "/metrics", None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("otaas_api_auth_failures_total 3\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn pipeline_crud_with_if_match() {
    let h = Harness::new().await;
    let p = h
        .create("/api/v1/pipelines", pipeline_json("checkout"))
        .await;
    assert_eq!(p["name"], "checkout");
    assert_eq!(p["revision"], 1);
    assert_eq!(p["signals"], json!(["traces", "metrics"]));
    assert_eq!(p["processors"], json!([{ "id": "batch", "config": {} }]));
    let id = p["id"].as_str().unwrap();

    // A read is the written object without the write's rollouts (none: the pipeline is in no
    // group).
    let mut written = p.clone();
    assert_eq!(
        written.as_object_mut().unwrap().remove("rollouts"),
        Some(json!([]))
    );
    assert_eq!(
        h.call("GET", &format!("/api/v1/pipelines/{id}"), None)
            .await,
        (StatusCode::OK, written.clone())
    );
    assert_eq!(
        h.call("GET", "/api/v1/pipelines", None).await,
        (StatusCode::OK, json!({ "items": [written.clone()] }))
    );
    assert_eq!(
        h.call("GET", "/api/v1/pipelines?name=checkout", None).await,
        (StatusCode::OK, json!({ "items": [written.clone()] }))
    );
    assert_eq!(
        h.call("GET", "/api/v1/pipelines?name=other", None).await,
        (StatusCode::OK, json!({ "items": [] }))
    );
    assert_error(
        &h.call("GET", "/api/v1/pipelines?colour=red", None).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        Some("colour"),
    );

    // Update with the current revision
    let mut body = pipeline_json("checkout");
    body["description"] = json!("v2");
    let path = format!("/api/v1/pipelines/{id}");
    let (status, p2) = h
        .raw(
            "PUT",
            &path,
            Some(body.to_string()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p2}");
    assert_eq!(
        (p2["revision"].clone(), p2["description"].clone()),
        (json!(2), json!("v2"))
    );
    // A stale revision is a conflict and changes nothing
    body["description"] = json!("lost");
    assert_error(
        &h.raw("PUT", &path, Some(body.to_string()), &[("if-match", "1")])
            .await,
        StatusCode::CONFLICT,
        "revision_mismatch",
        Some("If-Match"),
    );
    assert_eq!(h.call("GET", &path, None).await.1["description"], "v2");
    assert_error(
        &h.raw("PUT", &path, Some(body.to_string()), &[("if-match", "abc")])
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        Some("If-Match"),
    );

    // Delete, then 404
    assert_eq!(
        h.call("DELETE", &path, None).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_error(
        &h.call("GET", &path, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &h.call("DELETE", &path, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &h.call("PUT", &path, Some(pipeline_json("checkout"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &h.call("GET", "/api/v1/pipelines/not-a-uuid", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let h = Harness::new().await;
    let post = |body: &str| h.raw("POST", "/api/v1/pipelines", Some(body.to_string()), &[]);

    assert_error(
        &post("{\"name\": ").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
        None,
    );
    assert_error(
        &post(r#"{"name":"a","signals":["logs"],"colour":"red"}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        Some("colour"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":["logs"],"processors":[{"id":"batch","cfg":{}}]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        Some("processors[0].cfg"),
    );
    assert_error(
        &post(r#"{"name":"a"}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        Some("signals"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":["logs"],"processors":[{"config":{}}]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        Some("processors[0].id"),
    );
    assert_error(
        &post(r#"{"name":"Bad Name","signals":["logs"]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("name"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":["spans"]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("signals[0]"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":[]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("signals"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":["logs"],"processors":[{"id":"Batch/x"}]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("processors[0].id"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":["logs"],"receivers":{"filelog":[1]}}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("receivers.filelog"),
    );
    assert_error(
        &post(r#"{"name":"a","signals":["logs"],"processors":[{"id":"batch","config":"x"}]}"#)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("processors[0].config"),
    );
    // Not declared as JSON
    let req = Request::post("/api/v1/pipelines")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::from(pipeline_json("a").to_string()))
        .unwrap();
    assert_error(
        &h.send(req).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        Some("Content-Type"),
    );
    // Larger than --max-body-bytes (16 KiB here)
    let mut big = pipeline_json("big");
    big["description"] = json!("x".repeat(20 * 1024));
    assert_error(
        &post(&big.to_string()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    // Names are unique per kind
    h.create("/api/v1/pipelines", pipeline_json("a")).await;
    assert_error(
        &post(&pipeline_json("a").to_string()).await,
        StatusCode::CONFLICT,
        "name_taken",
        Some("name"),
    );
    // Nothing of the failed requests was stored
    let (_, list) = h.call("GET", "/api/v1/pipelines", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn endpoints_show_their_token_only_when_minted() {
    let h = Harness::new().await;
    let p = h.create("/api/v1/pipelines", pipeline_json("p")).await;
    let pid = p["id"].as_str().unwrap();
    let spec =
        json!({ "name": "p-otlp", "pipeline_id": pid, "protocol": "otlp_http", "port": 4318 });
    let e = h.create("/api/v1/endpoints", spec.clone()).await;
    let token = e["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("otaas_ingest_"), "{token}");
    assert_eq!(
        (e["auth"].clone(), e["token_version"].clone()),
        (json!("bearer"), json!(1))
    );
    let id = e["id"].as_str().unwrap();
    let path = format!("/api/v1/endpoints/{id}");

    // Reads never carry it
    let (_, got) = h.call("GET", &path, None).await;
    assert_eq!(got.get("token"), None);
    let (_, list) = h.call("GET", "/api/v1/endpoints?name=p-otlp", None).await;
    assert_eq!(list["items"][0]["id"], json!(id));
    assert!(!list.to_string().contains(&token));

    // An update without a version bump does not mint one; a bump does, and it differs
    let mut upd = spec.clone();
    upd["port"] = json!(4319);
    let (status, got) = h.call("PUT", &path, Some(upd.clone())).await;
    assert_eq!((status, got.get("token")), (StatusCode::OK, None));
    upd["token_version"] = json!(2);
    let (status, got) = h.call("PUT", &path, Some(upd)).await;
    assert_eq!(status, StatusCode::OK);
    let rotated = got["token"].as_str().unwrap();
    assert_ne!(rotated, token);

    // Bad input
    let mut bad = spec.clone();
    bad["name"] = json!("other");
    bad["pipeline_id"] = json!(PipelineId::new().to_string());
    assert_error(
        &h.call("POST", "/api/v1/endpoints", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "dangling_reference",
        Some("pipeline_id"),
    );
    let mut bad = spec.clone();
    bad["port"] = json!(0);
    assert_error(
        &h.call("POST", "/api/v1/endpoints", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("port"),
    );
    let mut bad = spec.clone();
    bad["protocol"] = json!("zipkin");
    assert_error(
        &h.call("POST", "/api/v1/endpoints", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("protocol"),
    );
    let mut bad = spec;
    bad["tls"] = json!({ "cert_file": "/c" });
    assert_error(
        &h.call("POST", "/api/v1/endpoints", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        Some("tls.key_file"),
    );

    // A referenced pipeline cannot be deleted; the error names the endpoint
    let got = h
        .call("DELETE", &format!("/api/v1/pipelines/{pid}"), None)
        .await;
    assert_error(&got, StatusCode::CONFLICT, "in_use", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("endpoint \"p-otlp\""),
        "{}",
        got.1
    );
    assert_eq!(
        h.call("DELETE", &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call("DELETE", &format!("/api/v1/pipelines/{pid}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

/// The latest rendered YAML of a group as agents receive it (with its secrets).
async fn latest_yaml(store: &dyn otaas_server::store::Store, gid: &str) -> (i64, String) {
    let r = store
        .group_revision(gid.parse().unwrap(), None)
        .await
        .unwrap();
    (r.revision, r.yaml)
}

/// Given an endpoint with bearer auth and a 2 s grace in a rendered group,
/// when its token is rotated,
/// then the group's config accepts the old and the new token,
/// and once the grace is over the server rolls out, by itself, a revision with only the new one;
/// the deadline is in the store, so a restarted server (a fresh store on the same database)
/// ends it too.
#[tokio::test]
async fn rotated_endpoint_token_stays_valid_for_the_grace_period_then_stops() {
    let h = Harness::new().await;
    let p = h
        .create(
            "/api/v1/pipelines",
            json!({ "name": "p", "signals": ["logs"] }),
        )
        .await;
    let pid = p["id"].as_str().unwrap();
    h.create(
        "/api/v1/exporter-bindings",
        json!({ "name": "out", "pipeline_id": pid,
                "destinations": [{ "name": "console", "type": "debug" }] }),
    )
    .await;
    let spec = json!({ "name": "ingest", "pipeline_id": pid, "protocol": "otlp_http",
                       "port": 4318, "token_grace_seconds": 2 });
    let e = h.create("/api/v1/endpoints", spec.clone()).await;
    // The group comes last: before the endpoint its pipeline has no receiver.
    let g = h
        .create(
            "/api/v1/agent-groups",
            json!({ "name": "g", "selector": { "env": "x" }, "pipeline_ids": [pid] }),
        )
        .await;
    let gid = g["id"].as_str().unwrap();
    assert_eq!(e["token_grace_seconds"], json!(2));
    let old = e["token"].as_str().unwrap().to_string();
    let (_, yaml) = latest_yaml(h.state.store.as_ref(), gid).await;
    assert!(yaml.contains(&format!("token: {old}")), "{yaml}");

    // When the token is rotated
    let mut rotate = spec.clone();
    rotate["token_version"] = json!(2);
    let path = format!("/api/v1/endpoints/{}", e["id"].as_str().unwrap());
    let (status, rotated) = h.call("PUT", &path, Some(rotate)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);

    // Then during the grace both are accepted (the extension's `tokens` list)
    let (during_rev, yaml) = latest_yaml(h.state.store.as_ref(), gid).await;
    let both = format!("tokens:\n    - {new}\n    - {old}\n");
    assert!(yaml.contains(&both), "{yaml}");
    assert!(!yaml.contains("token: "), "{yaml}");
    let (_, shown) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/config"), None)
        .await;
    let shown = shown["yaml"].as_str().unwrap();
    assert!(!shown.contains(&old) && !shown.contains(&new), "{shown}");

    // And after it, a server started on the same database rolls out a revision with the new
    // token only, without any write
    let url = format!("sqlite://{}", h._dir.path().join("otaas.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let restarted = AppState::new(store, ServeConfig::for_data_dir(h._dir.path()));
    let mut events = restarted.events.subscribe();
    let task = tokio::spawn(otaas_server::token_grace::run(restarted.clone()));
    let announced = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Ok(Event::GroupRevision { revision, .. }) = events.recv().await {
                return revision;
            }
        }
    })
    .await
    .expect("no revision within 30 s of a 2 s grace");
    let (after_rev, yaml) = latest_yaml(h.state.store.as_ref(), gid).await;
    assert_eq!((announced, after_rev), (during_rev + 1, during_rev + 1));
    assert!(yaml.contains(&format!("token: {new}")), "{yaml}");
    assert!(!yaml.contains(&old), "{yaml}");
    assert_eq!(
        h.call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
            .await
            .1["config_revision"],
        json!(after_rev)
    );

    // A rotation with no grace cuts the old token off at once; the grace is bounded
    let mut now = spec.clone();
    now["token_version"] = json!(3);
    now["token_grace_seconds"] = json!(0);
    let (_, third) = h.call("PUT", &path, Some(now)).await;
    let third = third["token"].as_str().unwrap().to_string();
    let (_, yaml) = latest_yaml(h.state.store.as_ref(), gid).await;
    assert!(yaml.contains(&format!("token: {third}")), "{yaml}");
    assert!(!yaml.contains(&new), "{yaml}");
    let mut bad = spec;
    bad["token_grace_seconds"] = json!(MAX_TOKEN_GRACE_SECONDS + 1);
    assert_error(
        &h.call("PUT", &path, Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("token_grace_seconds"),
    );
    restarted.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn binding_headers_are_write_only() {
    let h = Harness::new().await;
    let p = h.create("/api/v1/pipelines", pipeline_json("p")).await;
    let pid = p["id"].as_str().unwrap();
    let spec = json!({
        "name": "out",
        "pipeline_id": pid,
        "signals": ["traces"],
        "destinations": [
            { "name": "tempo", "type": "otlp", "endpoint": "tempo:4317",
              "headers": { "x-scope-orgid": "very-secret-org" }, "tls": { "insecure": true } },
            { "name": "audit", "type": "file", "config": { "path": "/tmp/a.json" } }
        ]
    });
    let b = h.create("/api/v1/exporter-bindings", spec.clone()).await;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(b"very-secret-org")));
    assert_eq!(
        b["destinations"][0]["header_digests"],
        json!({ "x-scope-orgid": digest })
    );
    assert_eq!(
        b["destinations"][0]["tls"],
        json!({ "insecure": true, "insecure_skip_verify": false })
    );
    assert_eq!(
        b["destinations"][1]["config"],
        json!({ "path": "/tmp/a.json" })
    );
    assert!(!b.to_string().contains("very-secret-org"));
    let path = format!("/api/v1/exporter-bindings/{}", b["id"].as_str().unwrap());
    let (_, got) = h.call("GET", &path, None).await;
    let mut written = b.clone();
    assert_eq!(
        written.as_object_mut().unwrap().remove("rollouts"),
        Some(json!([]))
    );
    assert_eq!(got, written.clone());
    assert!(!got.to_string().contains("very-secret-org"));
    assert_eq!(
        h.call("GET", "/api/v1/exporter-bindings?name=out", None)
            .await,
        (StatusCode::OK, json!({ "items": [written.clone()] }))
    );
    let (status, upd) = h
        .raw("PUT", &path, Some(spec.to_string()), &[("if-match", "1")])
        .await;
    assert_eq!(
        (status, upd["revision"].clone()),
        (StatusCode::OK, json!(2))
    );

    let mut bad = spec.clone();
    bad["destinations"] = json!([]);
    assert_error(
        &h.call("PUT", &path, Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("destinations"),
    );
    let mut bad = spec.clone();
    bad["destinations"][1]["name"] = json!("tempo");
    assert_error(
        &h.call("PUT", &path, Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("destinations[1].name"),
    );
    let mut bad = spec;
    bad["destinations"][0]["secret"] = json!("x");
    assert_error(
        &h.call("PUT", &path, Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        Some("destinations[0].secret"),
    );
    assert_eq!(
        h.call("DELETE", &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &h.call("GET", &path, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

/// Given a binding whose destination has headers and a group rendering it,
/// when an update sets `keep_headers` instead of `headers`,
/// then the server keeps the values (same digests, same rendered config);
/// and only `headers = {}` without `keep_headers` removes them.
#[tokio::test]
async fn binding_keep_headers_keeps_the_servers_values_and_empty_headers_remove_them() {
    let h = Harness::new().await;
    let p = h
        .create(
            "/api/v1/pipelines",
            json!({ "name": "p", "signals": ["logs"],
                    "receivers": { "filelog": { "include": ["/var/log/app.log"] } } }),
        )
        .await;
    let pid = p["id"].as_str().unwrap();
    let spec = |dest: Value| json!({ "name": "out", "pipeline_id": pid, "destinations": [dest] });
    let b = h
        .create(
            "/api/v1/exporter-bindings",
            spec(
                json!({ "name": "tempo", "type": "otlp", "endpoint": "tempo:4317",
                         "headers": { "x-scope-orgid": "kept-secret", "x-api-key": "k2" } }),
            ),
        )
        .await;
    // The group comes after the binding: before it, its pipeline has no exporter.
    let g = h
        .create(
            "/api/v1/agent-groups",
            json!({ "name": "g", "selector": { "env": "x" }, "pipeline_ids": [pid] }),
        )
        .await;
    let gpath = format!("/api/v1/agent-groups/{}", g["id"].as_str().unwrap());
    let digests = b["destinations"][0]["header_digests"].clone();
    assert_eq!(
        digests,
        json!({ "x-api-key": format!("sha256:{}", hex::encode(Sha256::digest(b"k2"))),
                "x-scope-orgid": format!("sha256:{}", hex::encode(Sha256::digest(b"kept-secret"))) })
    );
    let rev_before = h.call("GET", &gpath, None).await.1["config_revision"].clone();
    let path = format!("/api/v1/exporter-bindings/{}", b["id"].as_str().unwrap());

    // keep_headers with a change elsewhere: values kept, only the endpoint changes.
    let (status, kept) = h
        .call(
            "PUT",
            &path,
            Some(spec(
                json!({ "name": "tempo", "type": "otlp", "endpoint": "tempo:4318",
                              "keep_headers": true }),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["destinations"][0]["header_digests"], digests);
    let (_, cfg) = h.call("GET", &format!("{gpath}/config"), None).await;
    let yaml = cfg["yaml"].as_str().unwrap();
    assert!(yaml.contains("x-scope-orgid: <redacted>"), "{yaml}");
    assert!(yaml.contains("tempo:4318"), "{yaml}");

    // keep_headers alone: nothing changes on the server, so no new config revision.
    let rev_kept = h.call("GET", &gpath, None).await.1["config_revision"].clone();
    let (status, again) = h
        .call(
            "PUT",
            &path,
            Some(spec(
                json!({ "name": "tempo", "type": "otlp", "endpoint": "tempo:4318",
                              "keep_headers": true }),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["destinations"][0]["header_digests"], digests);
    assert_eq!(
        h.call("GET", &gpath, None).await.1["config_revision"],
        rev_kept
    );
    assert_eq!(rev_kept, json!(rev_before.as_i64().unwrap() + 1));

    // keep_headers and headers together: refused at the flag, nothing written.
    assert_error(
        &h.call(
            "PUT",
            &path,
            Some(spec(
                json!({ "name": "tempo", "type": "otlp", "keep_headers": true,
                              "headers": { "x-scope-orgid": "other" } }),
            )),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("destinations[0].keep_headers"),
    );
    assert_eq!(
        h.call("GET", &path, None).await.1["destinations"][0]["header_digests"],
        digests
    );

    // A renamed destination has nothing to keep.
    let (_, renamed) = h
        .call(
            "PUT",
            &path,
            Some(spec(
                json!({ "name": "mimir", "type": "otlp", "keep_headers": true }),
            )),
        )
        .await;
    assert_eq!(renamed["destinations"][0]["header_digests"], json!({}));

    // Back to headers, then `{}` removes them.
    h.call(
        "PUT",
        &path,
        Some(spec(json!({ "name": "tempo", "type": "otlp",
                          "headers": { "x-scope-orgid": "kept-secret" } }))),
    )
    .await;
    let (status, removed) = h
        .call(
            "PUT",
            &path,
            Some(spec(
                json!({ "name": "tempo", "type": "otlp", "headers": {} }),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["destinations"][0]["header_digests"], json!({}));
}

#[tokio::test]
async fn agent_groups_render_and_announce_revisions() {
    let h = Harness::new().await;
    let mut events = h.state.events.subscribe();
    let p = h
        .create("/api/v1/pipelines", pipeline_json("checkout"))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let e = h
        .create(
            "/api/v1/endpoints",
            json!({ "name": "checkout-otlp", "pipeline_id": pid, "protocol": "otlp_grpc", "port": 4317 }),
        )
        .await;
    h.create(
        "/api/v1/exporter-bindings",
        json!({ "name": "out", "pipeline_id": pid,
                "destinations": [{ "name": "tempo", "type": "otlp", "endpoint": "tempo:4317",
                                   "headers": { "authorization": "Bearer hdr-secret" } }] }),
    )
    .await;
    let spec = json!({
        "name": "eu",
        "selector": { "env": "prod" },
        "pipeline_ids": [pid],
        "rollout": { "strategy": "canary", "canary_percent": 10, "bake_seconds": 60, "auto_rollback": true }
    });
    let g = h.create("/api/v1/agent-groups", spec.clone()).await;
    assert_eq!(
        (g["revision"].clone(), g["config_revision"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(g["rollout"]["strategy"], "canary");
    let gid: AgentGroupId = g["id"].as_str().unwrap().parse().unwrap();

    // The config route returns the YAML (secrets redacted) and the SHA-256 of the real
    // document, which is the group's config_hash and the hash of the stored revision
    let (status, cfg) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/config"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let yaml = cfg["yaml"].as_str().unwrap();
    assert_eq!(cfg["sha256"], g["config_hash"]);
    let stored = h.state.store.group_revision(gid, None).await.unwrap();
    assert_eq!(
        cfg["sha256"],
        json!(hex::encode(Sha256::digest(stored.yaml.as_bytes())))
    );
    assert_eq!(
        (
            cfg["revision"].clone(),
            cfg["file_name"].clone(),
            cfg["content_type"].clone()
        ),
        (json!(1), json!("collector.yaml"), json!("text/yaml"))
    );
    assert!(yaml.contains("traces/checkout:"));
    let ingest = e["token"].as_str().unwrap();
    assert!(
        !yaml.contains("hdr-secret") && !yaml.contains(ingest),
        "{yaml}"
    );
    assert!(yaml.contains("authorization: <redacted>"), "{yaml}");
    assert!(yaml.contains("token: <redacted>"), "{yaml}");
    // while agents get the real values
    assert!(stored.yaml.contains("Bearer hdr-secret"));
    assert!(stored.yaml.contains(ingest));

    // The revision was announced, then the group change
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        Event::GroupRevision {
            group_id: gid,
            revision: 1,
            hash: g["config_hash"].as_str().unwrap().into()
        }
    );
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Event::GroupChanged { group_id: gid });

    // A pipeline change that alters the YAML makes revision 2 and announces it
    let mut body = pipeline_json("checkout");
    body["processors"] = json!([{ "id": "batch", "config": { "timeout": "2s" } }]);
    assert_eq!(
        h.call("PUT", &format!("/api/v1/pipelines/{pid}"), Some(body))
            .await
            .0,
        StatusCode::OK
    );
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    match got {
        Event::GroupRevision {
            group_id, revision, ..
        } => assert_eq!((group_id, revision), (gid, 2)),
        other => panic!("expected a revision, got {other:?}"),
    }
    let (_, g2) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    let (status, history) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let revs: Vec<(i64, String)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap(),
                r["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        revs,
        vec![
            (1, g["config_hash"].as_str().unwrap().to_string()),
            (2, g2["config_hash"].as_str().unwrap().to_string())
        ]
    );
    assert_eq!(
        (g2["revision"].clone(), g2["config_revision"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        h.call("GET", "/api/v1/agent-groups?name=eu", None).await,
        (StatusCode::OK, json!({ "items": [g2.clone()] }))
    );

    // Group update with If-Match; stale one is refused
    let path = format!("/api/v1/agent-groups/{gid}");
    let (status, g3) = h
        .raw("PUT", &path, Some(spec.to_string()), &[("if-match", "1")])
        .await;
    assert_eq!((status, g3["revision"].clone()), (StatusCode::OK, json!(2)));
    assert_error(
        &h.raw("PUT", &path, Some(spec.to_string()), &[("if-match", "1")])
            .await,
        StatusCode::CONFLICT,
        "revision_mismatch",
        Some("If-Match"),
    );

    // Bad input
    let mut bad = spec.clone();
    bad["name"] = json!("other");
    bad["pipeline_ids"] = json!([pid, PipelineId::new().to_string()]);
    assert_error(
        &h.call("POST", "/api/v1/agent-groups", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "dangling_reference",
        Some("pipeline_ids[1]"),
    );
    let mut bad = spec.clone();
    bad["name"] = json!("other");
    bad["rollout"] = json!({ "strategy": "canary" });
    assert_error(
        &h.call("POST", "/api/v1/agent-groups", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("rollout.canary_percent"),
    );
    let mut bad = spec.clone();
    bad["rollout"]["speed"] = json!(1);
    assert_error(
        &h.call("POST", "/api/v1/agent-groups", Some(bad)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        Some("rollout.speed"),
    );
    // A second endpoint on the same port cannot be rendered into the group: 422, nothing kept
    let got = h
        .call(
            "POST",
            "/api/v1/endpoints",
            Some(
                json!({ "name": "dup", "pipeline_id": pid, "protocol": "otlp_http", "port": 4317 }),
            ),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("port"),
    );
    assert_eq!(
        h.call("GET", "/api/v1/endpoints?name=dup", None).await.1,
        json!({ "items": [] })
    );

    // Deleting the referenced pipeline names the group (after the endpoint and binding go)
    for kind in ["endpoints", "exporter-bindings"] {
        let (_, list) = h.call("GET", &format!("/api/v1/{kind}"), None).await;
        for item in list["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            assert_eq!(
                h.call("DELETE", &format!("/api/v1/{kind}/{id}"), None)
                    .await
                    .0,
                StatusCode::NO_CONTENT
            );
        }
    }
    let got = h
        .call("DELETE", &format!("/api/v1/pipelines/{pid}"), None)
        .await;
    assert_error(&got, StatusCode::CONFLICT, "in_use", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent group \"eu\""),
        "{}",
        got.1
    );

    // Delete the group: its config is gone too
    assert_eq!(
        h.call("DELETE", &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &h.call("GET", &format!("{path}/config"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &h.call("GET", &format!("{path}/revisions"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn enrollment_tokens_are_shown_once_and_verifiable() {
    let h = Harness::new().await;
    let (status, t) = h
        .call(
            "POST",
            "/api/v1/tokens",
            Some(json!({ "description": "eu fleet" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (t["scope"].clone(), t["description"].clone()),
        (json!("agent"), json!("eu fleet"))
    );
    let token = t["token"].as_str().unwrap();
    assert!(token.starts_with("otaas_agent_"));
    let store = h.state.store.as_ref();
    assert!(
        otaas_server::auth::verify_agent_token(store, None, token)
            .await
            .unwrap()
    );
    assert!(
        !otaas_server::auth::verify_agent_token(store, None, "otaas_agent_wrong")
            .await
            .unwrap()
    );
    // Stored hashed: the database has the hash, not the token
    let rec = store
        .find_token_by_hash(&otaas_server::auth::hash_token(token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.id.to_string(), t["id"].as_str().unwrap());
    assert_error(
        &h.call("POST", "/api/v1/tokens", Some(json!({ "scope": "root" })))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("scope"),
    );
    assert_error(
        &h.call("POST", "/api/v1/tokens", Some(json!({ "ttl": 5 })))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        Some("ttl"),
    );
}

#[tokio::test]
async fn health_ready_metrics_and_fallbacks() {
    let h = Harness::new().await;
    let get = |p: &'static str| Request::get(p).body(Body::empty()).unwrap();
    assert_eq!(
        h.send(get("/healthz")).await,
        (StatusCode::OK, json!("ok\n"))
    );
    assert_eq!(
        h.send(get("/readyz")).await,
        (StatusCode::OK, json!("ready\n"))
    );
    h.call("GET", "/api/v1/pipelines", None).await;
    let (status, m) = h.send(get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        m.as_str().unwrap().contains(
            "otaas_http_requests_total{method=\"GET\",route=\"/api/v1/pipelines\",status=\"200\"} 1\n"
        ),
        "{m}"
    );
    assert_error(
        &h.call("GET", "/api/v1/nothing", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &h.call("PATCH", "/api/v1/pipelines", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        None,
    );
}

/// The answer to a write names the groups whose rendered config it changed, with their new
/// config revision and hash (what a client waits for); a write that reaches no group says so
/// with `[]`, and reads carry no `rollouts` at all.
#[tokio::test]
async fn writes_answer_with_the_rollouts_they_started() {
    let h = Harness::new().await;
    // Given a group "eu" running pipeline "checkout" (a receiver and an exporter)
    let p = h
        .create(
            "/api/v1/pipelines",
            json!({ "name": "checkout", "signals": ["logs"],
                    "receivers": { "otlp": { "protocols": { "http": {} } } } }),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["rollouts"], json!([]));
    let b = h
        .create(
            "/api/v1/exporter-bindings",
            json!({ "name": "out", "pipeline_id": pid,
                    "destinations": [{ "name": "console", "type": "debug" }] }),
        )
        .await;
    assert_eq!(b["rollouts"], json!([]));
    let g = h
        .create(
            "/api/v1/agent-groups",
            json!({ "name": "eu", "selector": { "env": "prod" }, "pipeline_ids": [pid] }),
        )
        .await;
    assert_eq!(g["config_revision"], json!(1));
    let gid = g["id"].as_str().unwrap().to_string();

    // When the pipeline gains a processor
    let (status, p2) = h
        .call(
            "PUT",
            &format!("/api/v1/pipelines/{pid}"),
            Some(json!({ "name": "checkout", "signals": ["logs"],
                         "receivers": { "otlp": { "protocols": { "http": {} } } },
                         "processors": [{ "id": "batch" }] })),
        )
        .await;
    // Then the answer names the group and its new revision, as the group now reports it
    assert_eq!(status, StatusCode::OK, "{p2}");
    let (_, g2) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    assert_eq!(g2["config_revision"], json!(2));
    assert_eq!(
        p2["rollouts"],
        json!([{ "group_id": gid, "group_name": "eu", "config_revision": 2,
                 "config_hash": g2["config_hash"] }])
    );

    // When the binding gains a destination, and an endpoint is added: each a new revision
    let bid = b["id"].as_str().unwrap().to_string();
    let (status, b2) = h
        .call(
            "PUT",
            &format!("/api/v1/exporter-bindings/{bid}"),
            Some(json!({ "name": "out", "pipeline_id": pid,
                         "destinations": [{ "name": "console", "type": "debug" },
                                          { "name": "tempo", "type": "otlp", "endpoint": "tempo:4317" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b2}");
    let e = h
        .create(
            "/api/v1/endpoints",
            json!({ "name": "in", "pipeline_id": pid, "protocol": "otlp_http", "port": 4318 }),
        )
        .await;
    let (_, g4) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    assert_eq!(
        (
            b2["rollouts"][0]["config_revision"].clone(),
            b2["rollouts"][0]["group_name"].clone()
        ),
        (json!(3), json!("eu"))
    );
    assert_eq!(
        e["rollouts"],
        json!([{ "group_id": gid, "group_name": "eu", "config_revision": 4,
                 "config_hash": g4["config_hash"] }])
    );

    // When a pipeline in no group is created and changed: no group is reached
    let other = h.create("/api/v1/pipelines", pipeline_json("unused")).await;
    let oid = other["id"].as_str().unwrap();
    let (status, other2) = h
        .call(
            "PUT",
            &format!("/api/v1/pipelines/{oid}"),
            Some(json!({ "name": "unused", "signals": ["logs"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{other2}");
    assert_eq!(
        (other["rollouts"].clone(), other2["rollouts"].clone()),
        (json!([]), json!([]))
    );
    // And a write that leaves the group's YAML as it was reaches no group either
    let (status, same) = h
        .call(
            "PUT",
            &format!("/api/v1/pipelines/{pid}"),
            Some(
                json!({ "name": "checkout", "description": "only words",  "signals": ["logs"],
                         "receivers": { "otlp": { "protocols": { "http": {} } } },
                         "processors": [{ "id": "batch" }] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["rollouts"], json!([]));

    // And reads carry no rollouts
    for path in [
        format!("/api/v1/pipelines/{pid}"),
        format!("/api/v1/exporter-bindings/{bid}"),
        format!("/api/v1/endpoints/{}", e["id"].as_str().unwrap()),
    ] {
        let (status, v) = h.call("GET", &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v.get("rollouts"), None, "{path}: {v}");
    }
    let (_, list) = h.call("GET", "/api/v1/pipelines", None).await;
    assert_eq!(list["items"][0].get("rollouts"), None, "{list}");
}

/// Every key of every DTO (with all optional fields set) is described in openapi.json, and
/// every route is there.
#[tokio::test]
async fn openapi_matches_the_types() {
    let h = Harness::new().await;
    let (status, doc) = h.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/pipelines",
        "/pipelines/{id}",
        "/endpoints",
        "/endpoints/{id}",
        "/exporter-bindings",
        "/exporter-bindings/{id}",
        "/agent-groups",
        "/agent-groups/{id}",
        "/agent-groups/{id}/config",
        "/agent-groups/{id}/revisions",
        "/agent-groups/{id}/revisions/{rev}",
        "/agent-groups/{id}/revisions/{from}/diff/{to}",
        "/agent-groups/{id}/status",
        "/agent-groups/{id}/rollout/pause",
        "/agent-groups/{id}/rollout/resume",
        "/agent-groups/{id}/rollout/rollback",
        "/insights",
        "/agents",
        "/agents/{id}",
        "/tokens",
        "/tokens/{id}",
        "/component-check",
        "/config-preview",
        "/discovered-pipelines",
        "/discovered-pipelines/{id}",
        "/discovered-pipelines/{id}/adopt",
        "/audit",
        "/audit/export",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    let check = |name: &str, v: Value| {
        let props = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} missing"));
        for k in v.as_object().unwrap().keys() {
            assert!(props.contains_key(k), "{name}.{k} not in openapi.json");
        }
        for req in schemas[name]["required"].as_array().unwrap() {
            assert!(
                v.get(req.as_str().unwrap()).is_some(),
                "{name} requires {req} the type lacks"
            );
        }
    };
    let now = chrono::Utc::now();
    check(
        "GroupStatus",
        serde_json::to_value(GroupStatus {
            group_id: AgentGroupId::new(),
            revision: 2,
            config_hash: "h".into(),
            last_good_revision: Some(1),
            last_good_config_hash: Some("g".into()),
            state: RolloutState::Paused,
            strategy: RolloutStrategy::Canary,
            matched: 1,
            applied: 1,
            applying: 0,
            failed: 0,
            pending: 0,
            healthy: 1,
            unhealthy: 0,
            drifted: 0,
            failures: vec![AgentFailure {
                agent_id: "a".into(),
                message: "m".into(),
            }],
            current_step: Some(0),
            steps: vec![RolloutStepStatus {
                index: 0,
                agents: 1,
                last: false,
                started_at: now,
                healthy_at: Some(now),
            }],
            message: "paused".into(),
            updated_at: now,
            driver: Some("replica-a".into()),
        })
        .unwrap(),
    );
    check(
        "ConfigPreviewResult",
        serde_json::to_value(ConfigPreviewResult {
            yaml: String::new(),
            groups: vec![PreviewGroup {
                group_id: AgentGroupId::new(),
                group_name: "g".into(),
                agents: 1,
                changes: true,
                pinned_revision: Some(1),
            }],
        })
        .unwrap(),
    );
    check(
        "ConfigPreview",
        serde_json::to_value(ConfigPreview {
            pipeline: Some(PipelineCheck {
                id: None,
                spec: serde_json::from_value(pipeline_json("p")).unwrap(),
            }),
            endpoint: None,
            exporter_binding: None,
        })
        .unwrap(),
    );
    check(
        "AuditEntry",
        serde_json::to_value(AuditEntry {
            id: AuditId::new(),
            at: now,
            interface: AuditInterface::Rest,
            token_id: Some("t".into()),
            token_description: Some("d".into()),
            token_fingerprint: Some("f".into()),
            source: Some("127.0.0.1".into()),
            method: "PUT".into(),
            path: "/api/v1/pipelines/x".into(),
            object_kind: Some("pipelines".into()),
            object_id: Some("x".into()),
            status: 200,
            error_code: Some("conflict".into()),
            result: AuditResult::Success,
            revision_before: Some(1),
            revision_after: Some(2),
            dry_run: true,
        })
        .unwrap(),
    );
    {
        use otaas_api::discovery::*;
        check(
            "DiscoveredPipeline",
            serde_json::to_value(DiscoveredPipeline {
                id: "a".repeat(64),
                suggested_name: "app".into(),
                signals: vec![otaas_api::Signal::Logs],
                pipelines: vec![],
                connectors: [("count".to_string(), serde_json::json!({}))].into(),
                agents: 1,
                unmanaged_agents: 1,
                common_labels: Default::default(),
                managed: vec![],
                unrepresentable: vec![],
                adoptable: true,
                health: Default::default(),
                throughput: Default::default(),
                anomalies: vec![],
                sample_agents: vec![],
            })
            .unwrap(),
        );
        check(
            "AdoptRequest",
            serde_json::to_value(AdoptRequest {
                dry_run: true,
                name: Some("app".into()),
                secrets: [("s".to_string(), "v".to_string())].into(),
                group: Some(AdoptGroup {
                    name: "g".into(),
                    selector: None,
                    pipeline_ids: vec![],
                    rollout: Default::default(),
                }),
                accept_changes: true,
            })
            .unwrap(),
        );
        check(
            "Adoption",
            serde_json::to_value(Adoption {
                dry_run: false,
                discovered_pipeline_id: "a".into(),
                pipeline: serde_json::from_value(pipeline_json("p")).unwrap(),
                endpoints: vec![],
                exporter_bindings: vec![],
                group: Some(serde_json::from_value(group_json("g", &[])).unwrap()),
                secrets_required: vec![],
                equivalent: true,
                differences: vec![],
                agents: vec![],
                rendered_yaml: String::new(),
                diff: String::new(),
                created: Some(AdoptedObjects {
                    pipeline_id: otaas_api::PipelineId::new(),
                    endpoint_ids: vec![],
                    exporter_binding_ids: vec![],
                    group_id: None,
                }),
            })
            .unwrap(),
        );
    }
    check(
        "FleetInsights",
        serde_json::to_value(otaas_api::insights::FleetInsights {
            generated_at: now,
            agents: vec![],
            pipelines: vec![],
            anomalies: vec![],
            anomaly_counts: Default::default(),
            security: otaas_api::insights::SecurityInsights {
                auth_failures: vec![],
                unmanaged_agents: vec![],
                exposed_endpoints: vec![],
            },
        })
        .unwrap(),
    );
    let proc_ = ProcessorSpec {
        id: "batch".into(),
        config: json!({}),
    };
    let pspec = PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: "p".into(),
        description: "d".into(),
        signals: vec![Signal::Logs],
        receivers: [("filelog".to_string(), json!({}))].into(),
        processors: vec![proc_.clone()],
    };
    check("PipelineSpec", serde_json::to_value(&pspec).unwrap());
    check("ProcessorSpec", serde_json::to_value(&proc_).unwrap());
    let pid = PipelineId::new();
    check(
        "Pipeline",
        serde_json::to_value(Pipeline {
            secret_digests: Default::default(),
            id: pid,
            name: "p".into(),
            description: "d".into(),
            signals: vec![],
            receivers: Default::default(),
            processors: vec![],
            revision: 1,
            created_at: now,
            updated_at: now,
            rollouts: Some(vec![GroupRollout {
                group_id: AgentGroupId::new(),
                group_name: "g".into(),
                config_revision: 2,
                config_hash: "h".into(),
            }]),
        })
        .unwrap(),
    );
    let tls = ServerTls {
        cert_file: "c".into(),
        key_file: "k".into(),
        client_ca_file: Some("ca".into()),
    };
    check("ServerTls", serde_json::to_value(&tls).unwrap());
    check(
        "EndpointSpec",
        serde_json::to_value(endpoint_spec("e", pid, 1)).unwrap(),
    );
    check(
        "Endpoint",
        serde_json::to_value(Endpoint {
            id: EndpointId::new(),
            name: "e".into(),
            pipeline_id: pid,
            protocol: Protocol::OtlpGrpc,
            port: 1,
            tls: Some(tls),
            auth: EndpointAuth::Bearer,
            token_version: 1,
            token_grace_seconds: 600,
            token: Some("t".into()),
            revision: 1,
            created_at: now,
            updated_at: now,
            rollouts: Some(vec![GroupRollout {
                group_id: AgentGroupId::new(),
                group_name: "g".into(),
                config_revision: 2,
                config_hash: "h".into(),
            }]),
        })
        .unwrap(),
    );
    let ctls = ClientTls {
        insecure: true,
        insecure_skip_verify: true,
        ca_file: Some("a".into()),
        cert_file: Some("c".into()),
        key_file: Some("k".into()),
    };
    check("ClientTls", serde_json::to_value(&ctls).unwrap());
    let mut b = binding_spec("b", pid);
    b.signals = Some(vec![Signal::Logs]);
    b.destinations[0].tls = Some(ctls.clone());
    check(
        "DestinationSpec",
        serde_json::to_value(&b.destinations[0]).unwrap(),
    );
    check("ExporterBindingSpec", serde_json::to_value(&b).unwrap());
    let d = Destination {
        name: "d".into(),
        kind: "otlp".into(),
        endpoint: Some("e".into()),
        header_digests: Default::default(),
        tls: Some(ctls),
        config: json!({}),
    };
    check("Destination", serde_json::to_value(&d).unwrap());
    check(
        "ExporterBinding",
        serde_json::to_value(ExporterBinding {
            secret_digests: Default::default(),
            id: ExporterBindingId::new(),
            name: "b".into(),
            pipeline_id: pid,
            signals: Some(vec![]),
            destinations: vec![d],
            revision: 1,
            created_at: now,
            updated_at: now,
            rollouts: Some(vec![GroupRollout {
                group_id: AgentGroupId::new(),
                group_name: "g".into(),
                config_revision: 2,
                config_hash: "h".into(),
            }]),
        })
        .unwrap(),
    );
    check(
        "GroupRollout",
        serde_json::to_value(GroupRollout {
            group_id: AgentGroupId::new(),
            group_name: "g".into(),
            config_revision: 2,
            config_hash: "h".into(),
        })
        .unwrap(),
    );
    let rollout = RolloutSpec {
        strategy: RolloutStrategy::Batched,
        batch_sizes: vec![1],
        canary_percent: Some(5),
        bake_seconds: 1,
        max_failures: 1,
        auto_rollback: true,
    };
    check("RolloutSpec", serde_json::to_value(&rollout).unwrap());
    let mut gs = group_spec("g", vec![pid]);
    gs.rollout = rollout.clone();
    gs.pinned_revision = Some(1);
    check("AgentGroupSpec", serde_json::to_value(&gs).unwrap());
    check(
        "AgentGroup",
        serde_json::to_value(AgentGroup {
            id: AgentGroupId::new(),
            name: "g".into(),
            selector: Default::default(),
            pipeline_ids: vec![],
            rollout,
            pinned_revision: Some(1),
            revision: 1,
            config_revision: 1,
            config_hash: "h".into(),
            created_at: now,
            updated_at: now,
        })
        .unwrap(),
    );
    check(
        "GroupConfig",
        serde_json::to_value(GroupConfig {
            group_id: AgentGroupId::new(),
            revision: 1,
            sha256: "s".into(),
            file_name: "f".into(),
            content_type: "c".into(),
            yaml: "y".into(),
            created_at: now,
            cause: RevisionCause {
                token_id: Some(TokenId::new()),
                token_description: Some("d".into()),
                cause_kind: Some("pipeline".into()),
                cause_id: Some("i".into()),
                cause_name: Some("n".into()),
                cause_revision: Some(2),
            },
        })
        .unwrap(),
    );
    check(
        "GroupRevisionSummary",
        serde_json::to_value(GroupRevisionSummary {
            revision: 1,
            sha256: "s".into(),
            created_at: now,
            cause: RevisionCause {
                token_id: Some(TokenId::new()),
                token_description: Some("d".into()),
                cause_kind: Some("pipeline".into()),
                cause_id: Some("i".into()),
                cause_name: Some("n".into()),
                cause_revision: Some(2),
            },
        })
        .unwrap(),
    );
    check(
        "RevisionDiff",
        serde_json::to_value(RevisionDiff {
            from: 1,
            to: 2,
            diff: "d".into(),
        })
        .unwrap(),
    );
    check(
        "TokenCreate",
        serde_json::to_value(TokenCreate {
            description: "d".into(),
            scope: TokenScope::Agent,
            expires_in: Some(60),
            expires_at: Some(now),
        })
        .unwrap(),
    );
    check(
        "TokenCreated",
        serde_json::to_value(TokenCreated {
            id: TokenId::new(),
            scope: TokenScope::Agent,
            description: "d".into(),
            token: "t".into(),
            created_at: now,
            expires_at: Some(now),
        })
        .unwrap(),
    );
    check(
        "TokenInfo",
        serde_json::to_value(TokenInfo {
            id: TokenId::new(),
            scope: TokenScope::ReadOnly,
            description: "d".into(),
            created_at: now,
            expires_at: Some(now),
            revoked_at: Some(now),
        })
        .unwrap(),
    );
    check(
        "ErrorBody",
        serde_json::to_value(ErrorBody::new(ErrorCode::NotFound, "m", None)).unwrap(),
    );
    let health = ComponentHealth {
        healthy: true,
        status: "StatusOK".into(),
        last_error: "e".into(),
        start_time_unix_nano: 1,
        components: std::collections::BTreeMap::from([(
            "receiver:otlp".to_owned(),
            ComponentHealth::default(),
        )]),
    };
    check("ComponentHealth", serde_json::to_value(&health).unwrap());
    check(
        "Agent",
        serde_json::to_value(Agent {
            id: "0123456789abcdef0123456789abcdef".into(),
            labels: std::collections::BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
            capabilities: vec!["ReportsStatus".into()],
            connected: true,
            transport: Some(AgentTransport::Ws),
            last_seen: Some(now),
            healthy: Some(true),
            health: Some(health),
            status: AgentStatus::Applied,
            remote_config_status: RemoteConfigState::Applied,
            remote_config_error: Some("e".into()),
            remote_config_hash: Some("h".into()),
            config_hash: Some("h".into()),
            effective_config_hash: Some("h".into()),
            effective_config: Some("receivers: {}".into()),
            group_id: Some(AgentGroupId::new()),
            agent_version: Some("1.0".into()),
            replica_id: Some("replica-a".into()),
            available_components: Some(std::collections::BTreeMap::from([(
                "receivers".to_owned(),
                vec!["filelog".to_owned()],
            )])),
            component_signals: Some(std::collections::BTreeMap::from([(
                "receivers".to_owned(),
                std::collections::BTreeMap::from([("filelog".to_owned(), vec!["logs".to_owned()])]),
            )])),
        })
        .unwrap(),
    );
    check(
        "ComponentCheckResult",
        serde_json::to_value(ComponentCheckResult {
            groups: vec!["g".into()],
            agents: 1,
        })
        .unwrap(),
    );
    check(
        "ComponentCheck",
        serde_json::to_value(ComponentCheck {
            pipeline: Some(PipelineCheck {
                id: Some(PipelineId::new()),
                spec: pspec.clone(),
            }),
            agent_group: Some(AgentGroupCheck {
                id: Some(AgentGroupId::new()),
                spec: gs.clone(),
            }),
            exporter_binding: Some(ExporterBindingCheck {
                id: Some(ExporterBindingId::new()),
                spec: b.clone(),
            }),
        })
        .unwrap(),
    );
}

#[tokio::test]
async fn single_objects_carry_their_revision_as_etag() {
    let h = Harness::new().await;
    let p = h.create("/api/v1/pipelines", pipeline_json("tagged")).await;
    let path = format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap());
    let etag = |resp: &axum::response::Response| {
        resp.headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let get = || {
        Request::get(path.as_str())
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .unwrap()
    };
    let resp = h.app().oneshot(get()).await.unwrap();
    assert_eq!(etag(&resp).as_deref(), Some("\"1\""));
    // Sending the ETag back as If-Match updates; the new ETag is the new revision
    let put = Request::put(path.as_str())
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .header("if-match", "\"1\"")
        .body(Body::from(pipeline_json("tagged").to_string()))
        .unwrap();
    let resp = h.app().oneshot(put).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp).as_deref(), Some("\"2\""));
    // Lists carry none (each item has its own revision)
    let list = Request::get("/api/v1/pipelines")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(etag(&h.app().oneshot(list).await.unwrap()), None);
}

/// Given components that support none of the signals they would run for (a filelog receiver
/// in a metrics pipeline, tail_sampling in a logs pipeline, a prometheus exporter for logs),
/// when they are written, then each is a 422 naming the field, and nothing is stored.
#[tokio::test]
async fn components_supporting_none_of_their_signals_are_refused() {
    let h = Harness::new().await;
    let got = h
        .call(
            "POST",
            "/api/v1/pipelines",
            Some(json!({"name": "m", "signals": ["metrics"], "receivers": {"filelog": {}}})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("receivers.filelog"),
    );
    assert_eq!(
        got.1["error"]["message"],
        json!(
            "receiver \"filelog\" supports logs but none of the pipeline's signals it would run for (metrics); use another receiver that supports them or change the signals"
        )
    );
    assert_error(
        &h.call(
            "POST",
            "/api/v1/pipelines",
            Some(json!({"name": "l", "signals": ["logs"], "processors": [{"id": "batch"}, {"id": "tail_sampling/slow"}]})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("processors[1].id"),
    );
    assert_eq!(
        h.call("GET", "/api/v1/pipelines", None).await.1["items"],
        json!([])
    );

    // A logs+metrics pipeline takes filelog (it supports one of them).
    let (status, p) = h
        .call(
            "POST",
            "/api/v1/pipelines",
            Some(json!({"name": "node", "signals": ["logs", "metrics"], "receivers": {"filelog": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let dest = |ty: &str| json!({"name": ty, "type": ty, "endpoint": "x:1"});
    // The binding's own signals.
    assert_error(
        &h.call(
            "POST",
            "/api/v1/exporter-bindings",
            Some(json!({"name": "b", "pipeline_id": p["id"], "signals": ["logs"], "destinations": [dest("otlp"), dest("prometheus")]})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("destinations[1].type"),
    );
    // No signals of its own: the pipeline's (logs, metrics) — prometheus takes metrics.
    let (status, b) = h
        .call(
            "POST",
            "/api/v1/exporter-bindings",
            Some(
                json!({"name": "b", "pipeline_id": p["id"], "destinations": [dest("prometheus")]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    // A logs-only pipeline: zipkin (traces) carries nothing of it.
    let (_, logs) = h
        .call(
            "POST",
            "/api/v1/pipelines",
            Some(json!({"name": "logs", "signals": ["logs"], "receivers": {"filelog": {}}})),
        )
        .await;
    assert_error(
        &h.call(
            "POST",
            "/api/v1/exporter-bindings",
            Some(json!({"name": "z", "pipeline_id": logs["id"], "destinations": [dest("zipkin")]})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("destinations[0].type"),
    );
}

// ---- the completeness rule: no group config with a pipeline left out -----------------------

/// What every `incomplete_config` message ends with: the rule and the Terraform advice.
const INCOMPLETE_ADVICE: &str = "An agent group only gets configs in which each of its \
     pipelines has a receiver (an endpoint or a pipeline receiver) and an exporter (an exporter \
     binding) for one of its signals; with Terraform, give the otaas_agent_group a depends_on on \
     the pipeline's otaas_endpoint and otaas_exporter_binding resources so they exist first";

/// A logs pipeline named `name`, with a filelog receiver when `with_receiver`.
async fn logs_pipeline(h: &Harness, name: &str, with_receiver: bool) -> String {
    let mut body = json!({ "name": name, "signals": ["logs"] });
    if with_receiver {
        body["receivers"] = json!({ "filelog": { "include": ["/var/log/app.log"] } });
    }
    let p = h.create("/api/v1/pipelines", body).await;
    p["id"].as_str().unwrap().to_string()
}

async fn debug_binding(h: &Harness, name: &str, pid: &str) -> String {
    let b = h
        .create(
            "/api/v1/exporter-bindings",
            json!({ "name": name, "pipeline_id": pid,
                    "destinations": [{ "name": "console", "type": "debug" }] }),
        )
        .await;
    b["id"].as_str().unwrap().to_string()
}

fn group_json(name: &str, pids: &[&str]) -> Value {
    json!({ "name": name, "selector": { "env": "x" }, "pipeline_ids": pids })
}

/// The group's current config: (revision, YAML).
async fn group_config(h: &Harness, gid: &str) -> (Value, String) {
    let (status, c) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/config"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    (
        c["revision"].clone(),
        c["yaml"].as_str().unwrap().to_string(),
    )
}

/// The group's (config_revision, config_hash).
async fn group_config_state(h: &Harness, gid: &str) -> (Value, Value) {
    let (status, g) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    (g["config_revision"].clone(), g["config_hash"].clone())
}

async fn group_count(h: &Harness) -> usize {
    let (_, list) = h.call("GET", "/api/v1/agent-groups", None).await;
    list["items"].as_array().unwrap().len()
}

/// Given a pipeline with a receiver but no exporter binding, when a group using it is
/// created, then it is refused with 422 incomplete_config at `pipeline_ids`, naming the group
/// and the pipeline and saying what to add, and no group exists.
#[tokio::test]
async fn a_group_whose_pipeline_has_no_binding_is_refused() {
    let h = Harness::new().await;
    let pid = logs_pipeline(&h, "app", true).await;
    let got = h
        .call(
            "POST",
            "/api/v1/agent-groups",
            Some(group_json("g", &[&pid])),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("pipeline_ids"),
    );
    assert_eq!(
        got.1["error"]["message"],
        json!(format!(
            "agent group \"g\" would have an incomplete collector config: pipeline \"app\" has \
             no exporter for any of its signals (logs): add an exporter binding with a \
             destination to it. {INCOMPLETE_ADVICE}"
        ))
    );
    assert_eq!(group_count(&h).await, 0);
}

/// Given a pipeline with a binding but no receiver, a group using it is refused the same way,
/// the message saying to add an endpoint or a receiver.
#[tokio::test]
async fn a_group_whose_pipeline_has_no_receiver_is_refused() {
    let h = Harness::new().await;
    let pid = logs_pipeline(&h, "app", false).await;
    debug_binding(&h, "out", &pid).await;
    let got = h
        .call(
            "POST",
            "/api/v1/agent-groups",
            Some(group_json("g", &[&pid])),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("pipeline_ids"),
    );
    assert_eq!(
        got.1["error"]["message"],
        json!(format!(
            "agent group \"g\" would have an incomplete collector config: pipeline \"app\" has \
             no receiver for any of its signals (logs): add an endpoint or a receiver to it. \
             {INCOMPLETE_ADVICE}"
        ))
    );
    assert_eq!(group_count(&h).await, 0);
}

/// Given a complete group, when it is created with no pipeline, or updated to list none,
/// then both are refused at `pipeline_ids` and the group keeps its spec and config revision.
#[tokio::test]
async fn a_group_with_no_pipeline_is_refused() {
    let h = Harness::new().await;
    let got = h
        .call(
            "POST",
            "/api/v1/agent-groups",
            Some(group_json("empty", &[])),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("pipeline_ids"),
    );
    assert_eq!(
        got.1["error"]["message"],
        json!(format!(
            "agent group \"empty\" would have an incomplete collector config: it lists no \
             pipeline (pipeline_ids is empty). {INCOMPLETE_ADVICE}"
        ))
    );
    assert_eq!(group_count(&h).await, 0);

    let pid = logs_pipeline(&h, "app", true).await;
    debug_binding(&h, "out", &pid).await;
    let g = h
        .create("/api/v1/agent-groups", group_json("g", &[&pid]))
        .await;
    let gid = g["id"].as_str().unwrap();
    let before = group_config_state(&h, gid).await;
    assert_eq!(before.0, json!(1));
    let got = h
        .call(
            "PUT",
            &format!("/api/v1/agent-groups/{gid}"),
            Some(group_json("g", &[])),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("pipeline_ids"),
    );
    let (_, after) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    assert_eq!(after["pipeline_ids"], json!([pid]));
    assert_eq!(after["revision"], json!(1));
    assert_eq!(group_config_state(&h, gid).await, before);
}

/// Given a complete group, when its pipeline is updated to drop its only receiver, or its
/// binding is moved to another pipeline, then each write is refused (field `receivers`,
/// `pipeline_id`), the object keeps its revision and the group its config revision.
#[tokio::test]
async fn updates_that_would_leave_a_pipeline_out_are_refused() {
    let h = Harness::new().await;
    let pid = logs_pipeline(&h, "app", true).await;
    let other = logs_pipeline(&h, "other", true).await;
    let bid = debug_binding(&h, "out", &pid).await;
    let g = h
        .create("/api/v1/agent-groups", group_json("g", &[&pid]))
        .await;
    let gid = g["id"].as_str().unwrap();
    let before = group_config_state(&h, gid).await;

    let got = h
        .call(
            "PUT",
            &format!("/api/v1/pipelines/{pid}"),
            Some(json!({ "name": "app", "signals": ["logs"] })),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("receivers"),
    );
    let (_, p) = h
        .call("GET", &format!("/api/v1/pipelines/{pid}"), None)
        .await;
    assert_eq!(p["revision"], json!(1));
    assert_eq!(
        p["receivers"],
        json!({ "filelog": { "include": ["/var/log/app.log"] } })
    );

    let got = h
        .call(
            "PUT",
            &format!("/api/v1/exporter-bindings/{bid}"),
            Some(json!({ "name": "out", "pipeline_id": other,
                         "destinations": [{ "name": "console", "type": "debug" }] })),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("pipeline_id"),
    );
    let (_, b) = h
        .call("GET", &format!("/api/v1/exporter-bindings/{bid}"), None)
        .await;
    assert_eq!(
        (b["revision"].clone(), b["pipeline_id"].clone()),
        (json!(1), json!(pid))
    );
    assert_eq!(group_config_state(&h, gid).await, before);
}

/// Given a group of two complete pipelines, when one pipeline's binding is deleted, then the
/// delete succeeds and the group's next revision leaves that pipeline out; when the other's
/// binding is deleted too, the delete succeeds with no new revision (the agents keep the last
/// config); a write that keeps the pipeline incomplete is refused at the binding's place; a
/// new binding makes the group complete again and rolls out; and the group deletes fine.
#[tokio::test]
async fn deletes_are_never_refused_and_leave_incomplete_pipelines_out() {
    let h = Harness::new().await;
    let a = logs_pipeline(&h, "a", true).await;
    let b = logs_pipeline(&h, "b", true).await;
    let ba = debug_binding(&h, "out-a", &a).await;
    let bb = debug_binding(&h, "out-b", &b).await;
    let g = h
        .create("/api/v1/agent-groups", group_json("g", &[&a, &b]))
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let (rev1, yaml1) = group_config(&h, &gid).await;
    assert_eq!(rev1, json!(1));
    assert!(
        yaml1.contains("logs/a:") && yaml1.contains("logs/b:"),
        "{yaml1}"
    );

    let (status, body) = h
        .call("DELETE", &format!("/api/v1/exporter-bindings/{bb}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (rev2, yaml2) = group_config(&h, &gid).await;
    assert_eq!(rev2, json!(2));
    assert!(yaml2.contains("logs/a:"), "{yaml2}");
    assert!(
        !yaml2.contains("logs/b:") && !yaml2.contains("filelog/b"),
        "{yaml2}"
    );

    let (status, body) = h
        .call("DELETE", &format!("/api/v1/exporter-bindings/{ba}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(group_config(&h, &gid).await, (rev2.clone(), yaml2.clone()));

    // Pipeline `a` is still incomplete: editing it is refused, with what it lacks
    let got = h
        .call(
            "PUT",
            &format!("/api/v1/pipelines/{a}"),
            Some(json!({ "name": "a", "signals": ["logs"],
                         "receivers": { "filelog": { "include": ["/var/log/other.log"] } } })),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("signals"),
    );
    assert_eq!(group_config(&h, &gid).await, (rev2, yaml2));

    // A new binding completes it again and rolls out
    debug_binding(&h, "out-a2", &a).await;
    let (rev3, yaml3) = group_config(&h, &gid).await;
    assert_eq!(rev3, json!(3));
    assert!(
        yaml3.contains("logs/a:") && yaml3.contains("debug/out-a2.console"),
        "{yaml3}"
    );

    let (status, body) = h
        .call("DELETE", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(group_count(&h).await, 0);
}

/// Given a complete group over a logs pipeline whose only exporter is one binding, when the
/// binding is updated to carry only traces, then it is refused at `destinations`; and given the
/// group's other pipeline with an endpoint as its only receiver, when the endpoint moves to
/// another pipeline, then it is refused at `pipeline_id`. Neither write lands.
#[tokio::test]
async fn binding_and_endpoint_writes_are_blamed_at_their_own_fields() {
    let h = Harness::new().await;
    let pid = logs_pipeline(&h, "app", true).await;
    let bid = debug_binding(&h, "out", &pid).await;
    let ingest = logs_pipeline(&h, "ingest", false).await;
    let spare = logs_pipeline(&h, "spare", false).await;
    debug_binding(&h, "out-ingest", &ingest).await;
    let e = h
        .create(
            "/api/v1/endpoints",
            json!({ "name": "in", "pipeline_id": ingest, "protocol": "otlp_http", "port": 4318 }),
        )
        .await;
    let eid = e["id"].as_str().unwrap();
    let g = h
        .create("/api/v1/agent-groups", group_json("g", &[&pid, &ingest]))
        .await;
    let gid = g["id"].as_str().unwrap();
    let before = group_config_state(&h, gid).await;

    let got = h
        .call(
            "PUT",
            &format!("/api/v1/exporter-bindings/{bid}"),
            Some(
                json!({ "name": "out", "pipeline_id": pid, "signals": ["traces"],
                         "destinations": [{ "name": "console", "type": "debug" }] }),
            ),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("destinations"),
    );
    let got = h
        .call(
            "PUT",
            &format!("/api/v1/endpoints/{eid}"),
            Some(
                json!({ "name": "in", "pipeline_id": spare, "protocol": "otlp_http",
                         "port": 4318 }),
            ),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "incomplete_config",
        Some("pipeline_id"),
    );
    let (_, e_after) = h
        .call("GET", &format!("/api/v1/endpoints/{eid}"), None)
        .await;
    assert_eq!(e_after["pipeline_id"], json!(ingest));
    let (_, b_after) = h
        .call("GET", &format!("/api/v1/exporter-bindings/{bid}"), None)
        .await;
    assert_eq!(b_after["revision"], json!(1));
    assert_eq!(group_config_state(&h, gid).await, before);
}

// ---------------------------------------------------------------------------------------------
// Discovered pipelines

/// Five pipelines as hand-written collector configs; `variant` changes only the formatting,
/// the key order and the component names, never what runs.
fn hand_written(pipeline: usize, variant: usize) -> String {
    let path = format!("/var/log/app{pipeline}.log");
    let sink = format!("http://sink{pipeline}:4318");
    match variant % 3 {
        0 => format!(
            "receivers:\n  filelog:\n    include: [{path}]\n    start_at: beginning\nprocessors:\n  batch:\nexporters:\n  otlphttp:\n    endpoint: {sink}\nservice:\n  pipelines:\n    logs:\n      receivers: [filelog]\n      processors: [batch]\n      exporters: [otlphttp]\n"
        ),
        1 => format!(
            "service: {{pipelines: {{logs/app: {{exporters: [otlphttp/out], processors: [batch/b], receivers: [filelog/in]}}}}}}\nexporters: {{otlphttp/out: {{endpoint: '{sink}'}}}}\nprocessors: {{batch/b: {{}}}}\nreceivers: {{filelog/in: {{start_at: beginning, include: ['{path}']}}}}\n"
        ),
        _ => format!(
            "{{\"receivers\": {{\"filelog\": {{\"start_at\": \"beginning\", \"include\": [\"{path}\"]}}}}, \"exporters\": {{\"otlphttp/x\": {{\"endpoint\": \"{sink}\"}}}}, \"processors\": {{\"batch\": null}}, \"service\": {{\"pipelines\": {{\"logs/other\": {{\"receivers\": [\"filelog\"], \"processors\": [\"batch\"], \"exporters\": [\"otlphttp/x\"]}}}}}}}}"
        ),
    }
}

/// Plants agents in the registry as if they had reported `configs` (with `labels`).
fn plant(h: &Harness, agents: Vec<(String, BTreeMap<String, String>, bool)>) {
    let records = agents
        .into_iter()
        .enumerate()
        .map(|(i, (config, labels, connected))| {
            let hash = hex::encode(Sha256::digest(config.as_bytes()));
            serde_json::from_value(json!({
                "id": format!("{:032x}", 0xa000 + i),
                "labels": labels,
                "effective_config_hash": hash,
                "effective_config": config,
                "connected": connected,
            }))
            .unwrap()
        })
        .collect();
    h.state.agents.load(records);
}

use std::collections::BTreeMap;

/// Given 100 agents running 5 distinct pipelines written in different formats, key orders and
/// component names, when the discovered pipelines are listed (in pages of 2), then there are 5,
/// each with 20 agents, the labels they share, adoptable and unmanaged.
#[tokio::test]
async fn equal_pipelines_are_discovered_once_whatever_their_formatting() {
    let h = Harness::new().await;
    plant(
        &h,
        (0..100)
            .map(|i| {
                let labels = [
                    ("team".to_string(), format!("t{}", i % 5)),
                    ("host".to_string(), format!("h{i}")),
                ]
                .into();
                (hand_written(i % 5, i / 5), labels, false)
            })
            .collect(),
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let (status, page) = h
            .call("GET", &format!("/api/v1/discovered-pipelines{q}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:#?}");
    let mut teams: Vec<String> = Vec::new();
    for p in &seen {
        assert_eq!(p["agents"], 20, "{p}");
        assert_eq!(p["unmanaged_agents"], 20);
        assert_eq!(p["adoptable"], true);
        assert_eq!(
            p["health"],
            json!({"healthy": 0, "unhealthy": 0, "unknown": 20})
        );
        assert_eq!(p["signals"], json!(["logs"]));
        assert_eq!(p["common_labels"].as_object().unwrap().len(), 1, "{p}");
        teams.push(p["common_labels"]["team"].as_str().unwrap().to_owned());
    }
    teams.sort();
    assert_eq!(teams, ["t0", "t1", "t2", "t3", "t4"]);
    for p in &seen {
        assert_eq!(p["throughput"]["agents_reporting"], 0);
    }

    // Own metrics of two agents of team t0, whose configs name the pipeline `logs` and
    // `logs/app`, count for that discovered pipeline: 10 items/s each.
    use otaas_server::insights::detect::{Counters, Sample, Series};
    let t0 = chrono::Utc::now() - chrono::TimeDelta::seconds(20);
    for (agent, pipeline) in [(0, "logs"), (5, "logs/app")] {
        let id = format!("{:032x}", 0xa000 + agent);
        for (secs, accepted) in [(0, 0.0), (10, 100.0)] {
            let at = t0 + chrono::TimeDelta::seconds(secs);
            let series = [(
                Series::new("receiver/filelog", Some(pipeline)),
                Counters {
                    accepted,
                    refused: 0.0,
                    sent: 0.0,
                },
            )]
            .into();
            let sample = Sample {
                at,
                series,
                cpu_seconds: None,
                memory_rss: None,
            };
            h.state.insights.record(&id, sample, at);
        }
    }
    let (_, all) = h.call("GET", "/api/v1/discovered-pipelines", None).await;
    let t0_pipeline = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["common_labels"]["team"] == "t0")
        .unwrap();
    assert_eq!(
        t0_pipeline["throughput"]["agents_reporting"], 2,
        "{t0_pipeline:#}"
    );
    assert_eq!(t0_pipeline["throughput"]["accepted_per_second"], 20.0);
    let t1_pipeline = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["common_labels"]["team"] == "t1")
        .unwrap();
    assert_eq!(t1_pipeline["throughput"]["agents_reporting"], 0);

    // One of them by id; unknown and malformed ids.
    let id = seen[0]["id"].as_str().unwrap();
    let (status, one) = h
        .call("GET", &format!("/api/v1/discovered-pipelines/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], seen[0]["id"]);
    let missing = "0".repeat(64);
    let got = h
        .call(
            "GET",
            &format!("/api/v1/discovered-pipelines/{missing}"),
            None,
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    let got = h
        .call("GET", "/api/v1/discovered-pipelines/nope", None)
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_request", Some("id"));
}

/// Given agents running one pipeline, when its adoption is planned, then the plan holds a
/// pipeline (filelog receiver, batch), one exporter binding, renders equivalently and makes no
/// agent change; when adopted with a group, the objects exist, the group renders it, and the
/// discovered pipeline now says which otaas pipeline manages it.
#[tokio::test]
async fn a_discovered_pipeline_is_adopted_into_objects_that_render_the_same() {
    let h = Harness::new().await;
    let team =
        |t: &str| -> BTreeMap<String, String> { [("team".to_string(), t.to_string())].into() };
    plant(
        &h,
        vec![
            (hand_written(1, 0), team("a"), true),
            (hand_written(1, 1), team("a"), true),
        ],
    );
    let (_, list) = h.call("GET", "/api/v1/discovered-pipelines", None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/discovered-pipelines/{id}/adopt");

    let (status, plan) = h
        .call(
            "POST",
            &path,
            Some(json!({"dry_run": true, "name": "app", "group": {"name": "app"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["equivalent"], true, "{plan:#}");
    assert_eq!(
        plan["pipeline"]["receivers"]["filelog"]["start_at"],
        "beginning"
    );
    assert_eq!(plan["pipeline"]["processors"][0]["id"], "batch");
    assert_eq!(
        plan["exporter_bindings"][0]["destinations"][0]["type"],
        "otlphttp"
    );
    assert_eq!(
        plan["exporter_bindings"][0]["destinations"][0]["endpoint"],
        "http://sink1:4318"
    );
    assert_eq!(plan["group"]["selector"], json!({"team": "a"}));
    assert_eq!(plan["agents"].as_array().unwrap().len(), 2, "{plan:#}");
    assert!(
        plan["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["changes"] == false),
        "{plan:#}"
    );
    assert!(
        plan["diff"].as_str().unwrap().contains("+  filelog/app:"),
        "{}",
        plan["diff"]
    );
    assert!(plan.get("created").is_none());
    // The dry run wrote nothing.
    let (_, pipelines) = h.call("GET", "/api/v1/pipelines", None).await;
    assert_eq!(pipelines["items"].as_array().unwrap().len(), 0);

    let (status, done) = h
        .call(
            "POST",
            &path,
            Some(json!({"name": "app", "group": {"name": "app"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let pid = done["created"]["pipeline_id"].as_str().unwrap();
    let gid = done["created"]["group_id"].as_str().unwrap();
    let (status, p) = h
        .call("GET", &format!("/api/v1/pipelines/{pid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["name"], "app");
    let (status, cfg) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/config"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cfg["yaml"].as_str().unwrap().contains("filelog/app"),
        "{cfg}"
    );

    let (_, one) = h
        .call("GET", &format!("/api/v1/discovered-pipelines/{id}"), None)
        .await;
    assert_eq!(one["managed"][0]["pipeline_id"], pid, "{one:#}");
    assert_eq!(one["managed"][0]["group_name"], "app");
    assert_eq!(
        one["managed"][0]["exporter_binding_ids"][0],
        done["created"]["exporter_binding_ids"][0]
    );
    // Its agents are now in the group: adopting it again (under another name) is refused.
    let got = h.call("POST", &path, Some(json!({"name": "app2"}))).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("id"),
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("manages it"),
        "{}",
        got.1
    );
    // Adopting again under the same name is refused at the name.
    let got = h
        .call("POST", &path, Some(json!({"name": "app", "dry_run": true})))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("name"),
    );
}

/// Given a config with a connector and a component using an extension, when discovered, then
/// those parts are named and it is not adoptable; an adoption is refused at `id` and writes
/// nothing. Given a redacted header, the adoption needs its value.
#[tokio::test]
async fn unrepresentable_parts_are_named_and_not_adopted() {
    let h = Harness::new().await;
    let joined = "\
extensions: {file_storage: {directory: /var/lib/otelcol}}
receivers: {filelog: {include: [a.log], storage: file_storage}}
exporters: {debug: {}}
connectors: {count: {}}
service:
  extensions: [file_storage]
  pipelines:
    logs: {receivers: [filelog], exporters: [count]}
    metrics: {receivers: [count], exporters: [debug]}
";
    let secret = "\
receivers: {filelog: {include: [b.log]}}
exporters: {otlphttp: {endpoint: 'https://x', headers: {authorization: 'Bearer abc'}}}
service: {pipelines: {logs: {receivers: [filelog], exporters: [otlphttp]}}}
";
    // The server redacts effective configs on arrival; planted ones are redacted here alike.
    let secret = otaas_server::render::redact_secrets(secret).unwrap();
    plant(
        &h,
        vec![
            (joined.to_string(), BTreeMap::new(), true),
            (secret, BTreeMap::new(), true),
        ],
    );
    let (_, list) = h.call("GET", "/api/v1/discovered-pipelines", None).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list:#}");
    let joined = items
        .iter()
        .find(|p| p["signals"] == json!(["metrics", "logs"]))
        .unwrap();
    assert_eq!(joined["adoptable"], false);
    let parts: Vec<&str> = joined["unrepresentable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["part"].as_str().unwrap())
        .collect();
    assert_eq!(
        parts,
        ["connector count", "extension file_storage"],
        "{joined:#}"
    );
    let id = joined["id"].as_str().unwrap();
    let path = format!("/api/v1/discovered-pipelines/{id}/adopt");
    let (status, plan) = h.call("POST", &path, Some(json!({"dry_run": true}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plan["equivalent"], false);
    assert!(
        plan["differences"][0]
            .as_str()
            .unwrap()
            .contains("connector \"count\""),
        "{plan:#}"
    );
    let got = h.call("POST", &path, Some(json!({}))).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("id"),
    );
    let (_, pipelines) = h.call("GET", "/api/v1/pipelines", None).await;
    assert_eq!(pipelines["items"].as_array().unwrap().len(), 0);

    let with_header = items
        .iter()
        .find(|p| p["signals"] == json!(["logs"]))
        .unwrap();
    let path = format!(
        "/api/v1/discovered-pipelines/{}/adopt",
        with_header["id"].as_str().unwrap()
    );
    let (_, plan) = h.call("POST", &path, Some(json!({"dry_run": true}))).await;
    assert_eq!(
        plan["secrets_required"],
        json!([{"name": "headers-authorization", "object": format!("exporter_binding {}-otlphttp", plan["pipeline"]["name"].as_str().unwrap()),
            "path": "exporters.otlphttp.headers.authorization", "given": false}]),
        "{plan:#}"
    );
    assert_eq!(plan["equivalent"], true, "{plan:#}");
    // A group would render the header at once: its value is needed.
    let group = json!({"name": "hdr", "selector": {"team": "hdr"}});
    let got = h.call("POST", &path, Some(json!({"group": group}))).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("secrets"),
    );
    let (status, done) = h
        .call(
            "POST",
            &path,
            Some(json!({"name": "given", "group": group,
                "secrets": {"headers-authorization": "Bearer abc"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(!done.to_string().contains("Bearer abc"), "{done}");
    let bid = done["created"]["exporter_binding_ids"][0].as_str().unwrap();
    let (_, b) = h
        .call("GET", &format!("/api/v1/exporter-bindings/{bid}"), None)
        .await;
    assert_eq!(
        b["destinations"][0]["header_digests"]["authorization"],
        header_digest("Bearer abc")
    );

    // Without a group and without the value, the header is left for the user to set: the
    // description says so, and no group can run it until it is set.
    let (status, done) = h.call("POST", &path, Some(json!({"name": "later"}))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let pid = done["created"]["pipeline_id"].as_str().unwrap().to_owned();
    let bid = done["created"]["exporter_binding_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, p) = h
        .call("GET", &format!("/api/v1/pipelines/{pid}"), None)
        .await;
    assert!(
        p["description"]
            .as_str()
            .unwrap()
            .contains("no value for them yet: headers-authorization"),
        "{p}"
    );
    let later = json!({"name": "later", "selector": {"team": "later"}, "pipeline_ids": [pid]});
    let got = h
        .call("POST", "/api/v1/agent-groups", Some(later.clone()))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("destinations"),
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not set yet"),
        "{}",
        got.1
    );
    let (_, b) = h
        .call("GET", &format!("/api/v1/exporter-bindings/{bid}"), None)
        .await;
    let spec = json!({
        "name": b["name"], "pipeline_id": pid,
        "destinations": [{"name": "main", "type": "otlphttp", "endpoint": "https://x",
            "headers": {"authorization": "Bearer xyz"}}],
    });
    let (status, body) = h
        .raw(
            "PUT",
            &format!("/api/v1/exporter-bindings/{bid}"),
            Some(spec.to_string()),
            &[("if-match", "1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.create("/api/v1/agent-groups", later).await;
}

// ---- config history: revisions with their causes, one revision, diffs, retention ------------

/// A logs pipeline with a binding whose header is a secret, and a group running it (revision
/// 1, written with the admin flag's token): (pipeline id, group id).
async fn history_group(h: &Harness) -> (String, String) {
    let pid = logs_pipeline(h, "hist", true).await;
    h.create(
        "/api/v1/exporter-bindings",
        json!({ "name": "hist-out", "pipeline_id": pid, "destinations": [
            { "name": "loki", "type": "otlp", "endpoint": "loki:4317",
              "headers": { "x-scope-orgid": "history-secret-org" } }] }),
    )
    .await;
    let g = h
        .create("/api/v1/agent-groups", group_json("hist-g", &[&pid]))
        .await;
    (pid, g["id"].as_str().unwrap().to_string())
}

/// The logs pipeline of [`history_group`] with a batch processor of `timeout` (a new YAML).
fn hist_pipeline(timeout: &str) -> Value {
    json!({ "name": "hist", "signals": ["logs"],
            "receivers": { "filelog": { "include": ["/var/log/app.log"] } },
            "processors": [{ "id": "batch", "config": { "timeout": timeout } }] })
}

/// Given a group created with the `--admin-token` and then changed by a pipeline update made
/// with a stored token, when its revisions are listed, read one by one and diffed, then each
/// revision names its token (id and description, never the token) and the object written with
/// its revision, every YAML is redacted, `?revision=` gives the same document as
/// `/revisions/{n}`, and the diff shows the changed lines.
#[tokio::test]
async fn revisions_are_listed_read_and_diffed_with_their_causes() {
    let h = Harness::new().await;
    let token = h
        .create(
            "/api/v1/tokens",
            json!({ "description": "ci pipeline", "scope": "admin" }),
        )
        .await;
    let secret_token = token["token"].as_str().unwrap().to_string();
    let (pid, gid) = history_group(&h).await;
    let req = Request::put(format!("/api/v1/pipelines/{pid}"))
        .header("authorization", format!("Bearer {secret_token}"))
        .header("content-type", "application/json")
        .body(Body::from(hist_pipeline("7s").to_string()))
        .unwrap();
    let (status, updated) = h.send(req).await;
    assert_eq!(status, StatusCode::OK, "{updated}");

    let (status, list) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[0]["revision"], 1);
    assert_eq!(items[0]["token_id"], Value::Null);
    assert_eq!(items[0]["token_description"], "admin token (--admin-token)");
    assert_eq!(items[0]["cause_kind"], "agent_group");
    assert_eq!(items[0]["cause_id"], json!(gid));
    assert_eq!(items[0]["cause_name"], "hist-g");
    assert_eq!(items[0]["cause_revision"], 1);
    assert_eq!(items[1]["revision"], 2);
    assert_eq!(items[1]["token_id"], token["id"]);
    assert_eq!(items[1]["token_description"], "ci pipeline");
    assert_eq!(items[1]["cause_kind"], "pipeline");
    assert_eq!(items[1]["cause_id"], json!(pid));
    assert_eq!(items[1]["cause_name"], "hist");
    assert_eq!(items[1]["cause_revision"], updated["revision"]);
    assert!(!list.to_string().contains(&secret_token));

    let (status, one) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions/1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["revision"], 1);
    assert_eq!(one["sha256"], items[0]["sha256"]);
    assert_eq!(one["token_description"], "admin token (--admin-token)");
    let yaml = one["yaml"].as_str().unwrap();
    assert!(yaml.contains("x-scope-orgid: <redacted>"), "{yaml}");
    assert!(!one.to_string().contains("history-secret-org"));
    let (status, at) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/config?revision=1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{at}");
    assert_eq!(at, one);
    let (_, current) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/config"), None)
        .await;
    assert_eq!(current["revision"], 2);
    assert_eq!(current["token_description"], "ci pipeline");

    let (status, diff) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions/1/diff/2"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (json!(1), json!(2))
    );
    let text = diff["diff"].as_str().unwrap();
    assert!(
        text.contains("--- revision 1") && text.contains("+++ revision 2"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && l.contains("timeout: 7s")),
        "{text}"
    );
    assert!(!text.contains("history-secret-org"), "{text}");
    let (_, same) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions/2/diff/2"),
            None,
        )
        .await;
    assert_eq!(same["diff"], "");
}

/// Given a group with revisions 1 and 2, when an unknown revision, a malformed one or an
/// unknown group is asked for, then each is a 404 with the JSON error body, and a `?revision=`
/// that is not a number is a 400 naming `revision`.
#[tokio::test]
async fn unknown_revisions_are_404_and_bad_revision_queries_400() {
    let h = Harness::new().await;
    let (pid, gid) = history_group(&h).await;
    h.call(
        "PUT",
        &format!("/api/v1/pipelines/{pid}"),
        Some(hist_pipeline("3s")),
    )
    .await;
    let other = AgentGroupId::new();
    for path in [
        format!("/api/v1/agent-groups/{gid}/config?revision=9"),
        format!("/api/v1/agent-groups/{gid}/revisions/9"),
        format!("/api/v1/agent-groups/{gid}/revisions/x"),
        format!("/api/v1/agent-groups/{gid}/revisions/0"),
        format!("/api/v1/agent-groups/{gid}/revisions/1/diff/9"),
        format!("/api/v1/agent-groups/{gid}/revisions/9/diff/1"),
        format!("/api/v1/agent-groups/{other}/revisions/1"),
        format!("/api/v1/agent-groups/{other}/config?revision=1"),
        format!("/api/v1/agent-groups/{other}/revisions"),
    ] {
        let got = h.call("GET", &path, None).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    }
    for bad in ["x", "0", "1.5"] {
        let got = h
            .call(
                "GET",
                &format!("/api/v1/agent-groups/{gid}/config?revision={bad}"),
                None,
            )
            .await;
        assert_error(
            &got,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("revision"),
        );
    }
    let got = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/config?rev=1"),
            None,
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_request", Some("rev"));
}

/// Given a group with six revisions, an agent reporting revision 2's hash and a retention of
/// two, when retention runs, then revisions 2 (what the agent runs), 5 and 6 (the newest) are
/// kept, and revision 2 can still be read; once no agent runs it, the next pass deletes it
/// and reading it is a 404.
#[tokio::test]
async fn retention_keeps_what_agents_run() {
    let h = Harness::new().await;
    let (pid, gid) = history_group(&h).await;
    for t in ["2s", "3s", "4s", "5s", "6s"] {
        let (status, v) = h
            .call(
                "PUT",
                &format!("/api/v1/pipelines/{pid}"),
                Some(hist_pipeline(t)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let revs = |h: &Harness| {
        let gid = gid.clone();
        let h = h.state.clone();
        async move {
            let id: AgentGroupId = gid.parse().unwrap();
            h.store
                .group_revisions(id)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.revision, r.hash))
                .collect::<Vec<_>>()
        }
    };
    let all = revs(&h).await;
    assert_eq!(all.len(), 6);
    let agent: otaas_server::fleet::AgentRecord = serde_json::from_value(json!({
        "id": "0123456789abcdef0123456789abcdef",
        "remote_config_hash": all[1].1,
        "connected": true,
    }))
    .unwrap();
    h.state.agents.load(vec![agent.clone()]);
    use axum::extract::FromRef;
    let mut retention = otaas_server::retention::Retention::from_ref(&h.state);
    retention.policy = otaas_server::retention::Policy { count: 2, days: 0 };
    let now = chrono::Utc::now();
    otaas_server::retention::prune(&retention, now)
        .await
        .unwrap();
    let kept: Vec<i64> = revs(&h).await.into_iter().map(|r| r.0).collect();
    // Revision 1 stays too when the rollout engine holds it as the last good one; whatever it
    // holds, 2 (the agent's) and the two newest must be there and 3, 4 gone.
    assert!(
        kept.contains(&2) && kept.contains(&5) && kept.contains(&6),
        "{kept:?}"
    );
    assert!(!kept.contains(&3) && !kept.contains(&4), "{kept:?}");
    let (status, _) = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions/2"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let moved: otaas_server::fleet::AgentRecord = serde_json::from_value(json!({
        "id": "0123456789abcdef0123456789abcdef",
        "remote_config_hash": all[5].1,
        "connected": true,
    }))
    .unwrap();
    h.state.agents.load(vec![moved]);
    otaas_server::retention::prune(&retention, now)
        .await
        .unwrap();
    let kept: Vec<i64> = revs(&h).await.into_iter().map(|r| r.0).collect();
    assert!(!kept.contains(&2), "{kept:?}");
    let got = h
        .call(
            "GET",
            &format!("/api/v1/agent-groups/{gid}/revisions/2"),
            None,
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);

    // A pinned revision stays however many newer ones come.
    let (_, g) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    let spec = json!({"name": g["name"], "selector": g["selector"],
        "pipeline_ids": g["pipeline_ids"], "pinned_revision": 5});
    let (status, v) = h
        .raw(
            "PUT",
            &format!("/api/v1/agent-groups/{gid}"),
            Some(spec.to_string()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for t in ["7s", "8s", "9s"] {
        let (status, v) = h
            .call(
                "PUT",
                &format!("/api/v1/pipelines/{pid}"),
                Some(hist_pipeline(t)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    otaas_server::retention::prune(&retention, now)
        .await
        .unwrap();
    let kept: Vec<i64> = revs(&h).await.into_iter().map(|r| r.0).collect();
    assert!(kept.contains(&5) && !kept.contains(&7), "{kept:?}");
}

// ---------------------------------------------------------------------------------------------
// Config preview

/// Given a pipeline in a group with two agents, when a processor change is previewed, then the
/// answer is the pipeline's receivers and processors as the renderer writes them (scoped ids,
/// secrets redacted) and the group, its two agents and that its config changes; previewing the
/// pipeline as stored changes nothing; a new binding is previewed by its exporters.
#[tokio::test]
async fn a_preview_shows_the_rendered_part_and_the_groups_it_reaches() {
    let h = Harness::new().await;
    let p = h
        .create(
            "/api/v1/pipelines",
            json!({"name": "app", "signals": ["logs"],
                "receivers": {"filelog": {"include": ["/a.log"]}},
                "processors": [{"id": "batch", "config": {"timeout": "1s"}}],
                "secrets": {"pw": "hunter22"}}),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    h.create(
        "/api/v1/exporter-bindings",
        json!({"name": "out", "pipeline_id": pid,
            "destinations": [{"name": "d", "type": "debug"}]}),
    )
    .await;
    let g = h
        .create(
            "/api/v1/agent-groups",
            json!({"name": "g", "selector": {"team": "a"}, "pipeline_ids": [pid]}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let records = (0..2)
        .map(|i| {
            serde_json::from_value(json!({
                "id": format!("{:032x}", 0xb000 + i),
                "labels": {"team": "a"},
                "group_id": gid,
            }))
            .unwrap()
        })
        .collect();
    h.state.agents.load(records);

    let spec = |timeout: &str| {
        json!({"name": "app", "signals": ["logs"],
            "receivers": {"filelog": {"include": ["/a.log"], "password": {"$secret": "pw"}}},
            "processors": [{"id": "batch", "config": {"timeout": timeout}}],
            "secrets": {"pw": "hunter22"}})
    };
    let (status, got) = h
        .call(
            "POST",
            "/api/v1/config-preview",
            Some(json!({"pipeline": {"id": pid, "spec": spec("5s")}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        got["yaml"],
        "receivers:\n  filelog/app:\n    include:\n    - /a.log\n    password: <redacted>\nprocessors:\n  batch/app:\n    timeout: 5s\n"
    );
    assert!(!got.to_string().contains("hunter22"));
    assert_eq!(
        got["groups"],
        json!([{"group_id": gid, "group_name": "g", "agents": 2, "changes": true}])
    );

    // As stored (no password reference, 1s): nothing changes.
    let stored = json!({"name": "app", "signals": ["logs"],
        "receivers": {"filelog": {"include": ["/a.log"]}},
        "processors": [{"id": "batch", "config": {"timeout": "1s"}}],
        "secrets": {"pw": "hunter22"}});
    let (_, got) = h
        .call(
            "POST",
            "/api/v1/config-preview",
            Some(json!({"pipeline": {"id": pid, "spec": stored}})),
        )
        .await;
    assert_eq!(got["groups"][0]["changes"], false, "{got}");

    let (status, got) = h
        .call(
            "POST",
            "/api/v1/config-preview",
            Some(
                json!({"exporter_binding": {"spec": {"name": "more", "pipeline_id": pid,
                "destinations": [{"name": "x", "type": "otlphttp", "endpoint": "http://x:4318",
                    "headers": {"authorization": "Bearer sekrit"}}]}}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        got["yaml"],
        "exporters:\n  otlphttp/more.x:\n    endpoint: http://x:4318\n    headers:\n      authorization: <redacted>\n"
    );
    assert_eq!(got["groups"][0]["changes"], true);

    // Exactly one object.
    let got = h
        .call("POST", "/api/v1/config-preview", Some(json!({})))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("pipeline"),
    );
}

/// Given a new group, when it is created with `pinned_revision` set, then it is refused with
/// 422 at `pinned_revision` and no group exists.
#[tokio::test]
async fn a_new_group_cannot_be_pinned() {
    let h = Harness::new().await;
    let pid = logs_pipeline(&h, "app", true).await;
    debug_binding(&h, "out", &pid).await;
    let mut body = group_json("g", &[&pid]);
    body["pinned_revision"] = json!(1);
    let got = h.call("POST", "/api/v1/agent-groups", Some(body)).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("pinned_revision"),
    );
    assert_eq!(group_count(&h).await, 0);
}

/// Given a group with config revisions 1 and 2, when it is pinned to revision 3, 0 or -1
/// (none of them its own), then each update is refused with 422 at `pinned_revision` and the
/// group keeps its revision; when it is pinned to revision 1, then the update is accepted,
/// the group shows the pin, its status targets revision 1's hash while its latest config stays
/// revision 2, and a pipeline write (revision 3) reports no rollout for it; when the pin is
/// removed, the status targets the latest revision, 3.
#[tokio::test]
async fn a_pin_must_name_one_of_the_groups_revisions_and_becomes_the_status_target() {
    let h = Harness::new().await;
    let pid = logs_pipeline(&h, "app", true).await;
    debug_binding(&h, "out", &pid).await;
    let g = h
        .create("/api/v1/agent-groups", group_json("g", &[&pid]))
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let (_, rev1) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    let hash1 = rev1["config_hash"].clone();
    let p = json!({ "name": "app", "signals": ["logs"],
        "receivers": { "filelog": { "include": ["/var/log/app.log"] } },
        "processors": [{ "id": "batch" }] });
    let (status, body) = h
        .call("PUT", &format!("/api/v1/pipelines/{pid}"), Some(p.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (latest_rev, latest_hash) = group_config_state(&h, &gid).await;
    assert_eq!(latest_rev, json!(2));
    assert_ne!(latest_hash, hash1);

    for bad in [3, 0, -1] {
        let mut body = group_json("g", &[&pid]);
        body["pinned_revision"] = json!(bad);
        let got = h
            .call("PUT", &format!("/api/v1/agent-groups/{gid}"), Some(body))
            .await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("pinned_revision"),
        );
    }
    let (_, unchanged) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}"), None)
        .await;
    assert_eq!(unchanged["revision"], json!(1));
    assert_eq!(unchanged.get("pinned_revision"), None);

    let mut body = group_json("g", &[&pid]);
    body["pinned_revision"] = json!(1);
    let (status, pinned) = h
        .call("PUT", &format!("/api/v1/agent-groups/{gid}"), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{pinned}");
    assert_eq!(pinned["pinned_revision"], json!(1));
    assert_eq!(pinned["config_revision"], json!(2));
    let (status, st) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/status"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{st}");
    assert_eq!(st["revision"], json!(1), "{st}");
    assert_eq!(st["config_hash"], hash1, "{st}");

    // A pipeline write while pinned makes revision 3 but reports no rollout for the group
    let (status, written) = h
        .call(
            "PUT",
            &format!("/api/v1/pipelines/{pid}"),
            Some(json!({ "name": "app", "signals": ["logs"],
                "receivers": { "filelog": { "include": ["/var/log/app.log"] } } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{written}");
    assert_eq!(written["rollouts"], json!([]), "{written}");
    let (latest_rev, latest_hash) = group_config_state(&h, &gid).await;
    assert_eq!(latest_rev, json!(3));

    let (status, unpinned) = h
        .call(
            "PUT",
            &format!("/api/v1/agent-groups/{gid}"),
            Some(group_json("g", &[&pid])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{unpinned}");
    assert_eq!(unpinned.get("pinned_revision"), None);
    let (_, st) = h
        .call("GET", &format!("/api/v1/agent-groups/{gid}/status"), None)
        .await;
    assert_eq!(st["revision"], json!(3), "{st}");
    assert_eq!(st["config_hash"], latest_hash, "{st}");
}

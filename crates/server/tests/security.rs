//! Security tests through the real router (`oneshot`, no socket) on a fresh SQLite store:
//! token scopes, expiry, revocation, the per-token rate limit, and endpoint token rotation.
//! Every refusal asserts the status and our error body.

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use otaas_api::*;
use otaas_server::config::{Secret, ServeConfig};
use otaas_server::state::AppState;
use otaas_server::store::sqlite::SqliteStore;
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "security-admin-token";

struct Harness {
    state: AppState,
    _dir: tempfile::TempDir,
}

/// Status, `Retry-After` (if any) and JSON body of a response.
type Reply = (StatusCode, Option<String>, Value);

impl Harness {
    async fn new(tune: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        let mut config = ServeConfig::for_data_dir(dir.path());
        config.admin_token = Some(Secret::new(ADMIN));
        tune(&mut config);
        Self {
            state: AppState::new(store, config),
            _dir: dir,
        }
    }

    async fn send(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let resp = otaas_server::api::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
        };
        (status, retry, v)
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(ADMIN, method, path, body).await
    }

    /// Mints a token through the API; returns (id, token).
    async fn mint(&self, body: Value) -> (String, String) {
        let (status, _, v) = self.admin("POST", "/api/v1/tokens", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    }
}

/// Asserts an error reply: status, code, and that the message contains `message_part`.
#[track_caller]
fn assert_refused(got: &Reply, status: StatusCode, code: &str, message_part: &str) {
    assert_eq!(got.0, status, "body: {}", got.2);
    assert_eq!(got.2["error"]["code"], json!(code), "body: {}", got.2);
    let msg = got.2["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(message_part),
        "message {msg:?} lacks {message_part:?}"
    );
}

#[tokio::test]
async fn wrong_expired_revoked_and_wrong_scope_tokens_are_refused() {
    let h = Harness::new(|_| {}).await;
    let list = "/api/v1/pipelines";

    // Given: no token, a wrong one
    let missing = {
        let req = Request::get(list).body(Body::empty()).unwrap();
        let resp = otaas_server::api::router(h.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, None, serde_json::from_slice(&bytes).unwrap())
    };
    assert_refused(
        &missing,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing bearer token",
    );
    assert_refused(
        &h.send("otaas_admin_not-a-real-token", "GET", list, None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "invalid bearer token",
    );

    // An expired admin token (minted directly in the store: the API only accepts future expiry)
    let expired = otaas_server::auth::generate_token(TokenScope::Admin);
    h.state
        .store
        .create_token_expiring(
            TokenScope::Admin,
            "old",
            &otaas_server::auth::hash_token(&expired),
            chrono::Utc::now() - chrono::Duration::seconds(65),
            Some(chrono::Utc::now() - chrono::Duration::seconds(5)),
        )
        .await
        .unwrap();
    assert_refused(
        &h.send(&expired, "GET", list, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "bearer token expired at ",
    );

    // A revoked admin token: works, then is revoked, then is refused
    let (id, revoked) = h.mint(json!({"scope": "admin", "description": "ci"})).await;
    assert_eq!(h.send(&revoked, "GET", list, None).await.0, StatusCode::OK);
    let (status, _, body) = h
        .admin("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_refused(
        &h.send(&revoked, "GET", list, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "revoked",
    );

    // Read-only: reads pass, writes and token management are 403
    let (_, ro) = h.mint(json!({"scope": "read_only"})).await;
    assert!(ro.starts_with("otaas_read_only_"), "{ro}");
    assert_eq!(
        h.send(&ro, "GET", list, None).await,
        (StatusCode::OK, None, json!({"items": []}))
    );
    assert_refused(
        &h.send(&ro, "POST", list, Some(json!({"name": "p"}))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "read-only token",
    );
    let (_, _, p) = h
        .admin(
            "POST",
            list,
            Some(json!({"name": "p", "signals": ["logs"], "receivers": {"otlp": {}}})),
        )
        .await;
    let pid = p["id"].as_str().unwrap();
    for method in ["PUT", "DELETE"] {
        assert_refused(
            &h.send(&ro, method, &format!("{list}/{pid}"), None).await,
            StatusCode::FORBIDDEN,
            "forbidden",
            "read-only token",
        );
    }
    assert_refused(
        &h.send(&ro, "GET", "/api/v1/tokens", None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "read-only tokens cannot list or manage tokens",
    );
    assert_refused(
        &h.send(
            &ro,
            "POST",
            "/api/v1/tokens",
            Some(json!({"scope": "admin"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "read-only tokens cannot",
    );
    // The pipeline survived the refused DELETE
    assert_eq!(
        h.send(&ro, "GET", &format!("{list}/{pid}"), None).await.0,
        StatusCode::OK
    );

    // Agent enrollment tokens are for OpAMP only
    let (_, agent) = h.mint(json!({"scope": "agent"})).await;
    assert_refused(
        &h.send(&agent, "GET", list, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "agent enrollment tokens",
    );
    let store = h.state.store.as_ref();
    use otaas_server::auth::verify_agent_token;
    assert!(verify_agent_token(store, None, &agent).await.unwrap());
    assert!(!verify_agent_token(store, None, &ro).await.unwrap());
    assert!(!verify_agent_token(store, None, &revoked).await.unwrap());
    assert!(!verify_agent_token(store, None, &expired).await.unwrap());

    // Every refusal above was counted (2 + expired + revoked + 5 read-only + agent)
    let (_, metrics) = {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let resp = otaas_server::api::router(h.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        ((), String::from_utf8(b.to_vec()).unwrap())
    };
    assert!(
        metrics.contains("otaas_api_auth_failures_total 10\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_revocation_is_idempotent() {
    let h = Harness::new(|_| {}).await;
    let (id, token) = h
        .mint(json!({"scope": "read_only", "description": "grafana", "expires_in": 3600}))
        .await;

    let (status, _, list) = h.admin("GET", "/api/v1/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(
        (
            item["id"].as_str(),
            item["scope"].as_str(),
            item["description"].as_str(),
            item["revoked_at"].clone()
        ),
        (
            Some(id.as_str()),
            Some("read_only"),
            Some("grafana"),
            Value::Null
        )
    );
    let created: chrono::DateTime<chrono::Utc> =
        item["created_at"].as_str().unwrap().parse().unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        item["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((expires - created).num_seconds(), 3600);
    // Neither the token nor its hash is in the listing
    let text = list.to_string();
    assert!(!text.contains(&token));
    assert!(!text.contains(&otaas_server::auth::hash_token(&token)));
    let mut keys: Vec<_> = item.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "expires_at",
            "id",
            "revoked_at",
            "scope"
        ]
    );

    // Revoke twice: both 204, the first revocation time is kept
    let path = format!("/api/v1/tokens/{id}");
    assert_eq!(
        h.admin("DELETE", &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, _, l1) = h.admin("GET", "/api/v1/tokens", None).await;
    assert_eq!(
        h.admin("DELETE", &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, _, l2) = h.admin("GET", "/api/v1/tokens", None).await;
    assert!(l1["items"][0]["revoked_at"].is_string(), "{l1}");
    assert_eq!(l1["items"][0]["revoked_at"], l2["items"][0]["revoked_at"]);

    // Unknown and malformed ids are 404
    assert_refused(
        &h.admin(
            "DELETE",
            &format!("/api/v1/tokens/{}", TokenId::new()),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "token",
    );
    assert_refused(
        &h.admin("DELETE", "/api/v1/tokens/nope", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "token",
    );
}

#[tokio::test]
async fn token_expiry_is_validated() {
    let h = Harness::new(|_| {}).await;
    let bad = [
        (json!({"expires_in": 0}), "expires_in"),
        (json!({"expires_in": 400_000_000u64}), "expires_in"),
        (
            json!({"expires_in": 60, "expires_at": "2999-01-01T00:00:00Z"}),
            "expires_in",
        ),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
    ];
    for (body, field) in bad {
        let got = h.admin("POST", "/api/v1/tokens", Some(body.clone())).await;
        assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", got.2);
        assert_eq!(got.2["error"]["field"], json!(field), "{body}: {}", got.2);
    }
    let (status, _, t) = h
        .admin(
            "POST",
            "/api/v1/tokens",
            Some(json!({"scope": "admin", "expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (status, t["expires_at"].as_str()),
        (StatusCode::CREATED, Some("2999-01-01T00:00:00Z"))
    );
    // A token with a future expiry works
    let token = t["token"].as_str().unwrap();
    assert_eq!(
        h.send(token, "GET", "/api/v1/pipelines", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limit_per_token_answers_429_with_retry_after() {
    // One request per 100 s sustained (so refills never race the test), burst of 3
    let h = Harness::new(|c| {
        c.api_rate_limit = 0.01;
        c.api_rate_burst = 3;
    })
    .await;
    let (_, other) = h.mint(json!({"scope": "read_only"})).await; // uses 1 of ADMIN's 3
    for _ in 0..2 {
        assert_eq!(
            h.admin("GET", "/api/v1/pipelines", None).await.0,
            StatusCode::OK
        );
    }
    let limited = h.admin("GET", "/api/v1/pipelines", None).await;
    assert_refused(
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests for this token",
    );
    let retry: u64 = limited.1.as_deref().unwrap().parse().unwrap();
    assert!((1..=100).contains(&retry), "Retry-After {retry}");
    // Writes are limited the same way, and nothing is written
    let w = h
        .admin(
            "POST",
            "/api/v1/pipelines",
            Some(json!({"name": "never", "signals": ["logs"], "receivers": {"otlp": {}}})),
        )
        .await;
    assert_eq!(w.0, StatusCode::TOO_MANY_REQUESTS);
    // Another token has its own bucket
    assert_eq!(
        h.send(&other, "GET", "/api/v1/pipelines", None).await,
        (StatusCode::OK, None, json!({"items": []}))
    );
    // Unauthenticated probes are not rate limited
    for _ in 0..5 {
        let req = Request::get("/healthz").body(Body::empty()).unwrap();
        let resp = otaas_server::api::router(h.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn rotating_an_endpoint_token_stops_rendering_the_old_one() {
    let h = Harness::new(|_| {}).await;
    let (_, _, p) = h
        .admin(
            "POST",
            "/api/v1/pipelines",
            Some(serde_json::to_value(pipeline_spec("checkout")).unwrap()),
        )
        .await;
    let pid: PipelineId = p["id"].as_str().unwrap().parse().unwrap();
    let mut espec = endpoint_spec("checkout-otlp", pid, 4318);
    espec.auth = EndpointAuth::Bearer;
    let (status, _, e) = h
        .admin(
            "POST",
            "/api/v1/endpoints",
            Some(serde_json::to_value(&espec).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let old = e["token"].as_str().unwrap().to_string();
    let eid = e["id"].as_str().unwrap();
    // A pipeline is rendered once it has somewhere to send data
    let (status, _, b) = h
        .admin(
            "POST",
            "/api/v1/exporter-bindings",
            Some(serde_json::to_value(binding_spec("out", pid)).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let (status, _, g) = h
        .admin(
            "POST",
            "/api/v1/agent-groups",
            Some(serde_json::to_value(group_spec("eu", vec![pid])).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let gid: AgentGroupId = g["id"].as_str().unwrap().parse().unwrap();
    let rendered = h.state.store.group_revision(gid, None).await.unwrap();
    assert!(rendered.yaml.contains(&old), "{}", rendered.yaml);

    // When token_version is bumped with no grace (a grace keeps the old token for a while:
    // tests/api.rs, rotated_endpoint_token_*)
    espec.token_version = 2;
    espec.token_grace_seconds = 0;
    let (status, _, e2) = h
        .admin(
            "PUT",
            &format!("/api/v1/endpoints/{eid}"),
            Some(serde_json::to_value(&espec).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e2}");
    let new = e2["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);

    // Then the group's new revision carries the new token and not the old one
    let latest = h.state.store.group_revision(gid, None).await.unwrap();
    assert_eq!(latest.revision, rendered.revision + 1);
    assert!(latest.yaml.contains(&new), "{}", latest.yaml);
    assert!(!latest.yaml.contains(&old), "{}", latest.yaml);
    // and neither token is readable afterwards
    for path in [
        format!("/api/v1/endpoints/{eid}"),
        format!("/api/v1/agent-groups/{gid}/config"),
    ] {
        let (_, _, body) = h.admin("GET", &path, None).await;
        let text = body.to_string();
        assert!(
            !text.contains(&old) && !text.contains(&new),
            "{path}: {text}"
        );
    }
}

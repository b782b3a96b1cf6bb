//! Web console tests through the whole HTTP application (`serve::app`, no socket) on a fresh
//! SQLite store: sign-in and its cookie, where the token never appears, sessions ending with
//! their token, CSRF and role checks on actions, server-side paging of the fleet, and the group
//! page's revision diff. The browser tests (`tests/acceptance/console.rs`) drive the same pages
//! in Chromium.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use otaas_api::AuditInterface;
use otaas_server::config::{Secret, ServeConfig};
use otaas_server::state::AppState;
use otaas_server::store::sqlite::SqliteStore;
use serde_json::json;
use tower::ServiceExt;

static RECEIVERS: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(
    || json!({ "otlp": { "protocols": { "http": { "endpoint": "0.0.0.0:4318" } } } }),
);

const ADMIN: &str = "console-test-admin-token-0123456789";

struct Harness {
    state: AppState,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers and the body as text.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Harness {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        let mut config = ServeConfig::for_data_dir(dir.path());
        config.admin_token = Some(Secret::new(ADMIN));
        adjust(&mut config);
        Self {
            state: AppState::new(store, config),
            _dir: dir,
        }
    }

    fn app(&self) -> Router {
        otaas_server::serve::app(self.state.clone())
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "console.test");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    /// Signs in with `token`; returns the `name=value` cookie to send back.
    async fn sign_in(&self, token: &str) -> String {
        let a = self
            .post_form("/sign-in", None, &format!("token={token}"), &[])
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.location(), "/fleet");
        let set = a.headers["set-cookie"].to_str().unwrap().to_owned();
        set.split(';').next().unwrap().to_owned()
    }

    /// A REST call with the admin token.
    async fn api(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let a = self.send(req).await;
        assert!(
            a.status.is_success(),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null)
    }

    /// A stored token of `scope`; returns the token.
    async fn token(&self, scope: &str) -> (String, String) {
        let t = self
            .api(
                "POST",
                "/api/v1/tokens",
                json!({ "scope": scope, "description": format!("{scope} console test") }),
            )
            .await;
        (
            t["token"].as_str().unwrap().to_owned(),
            t["id"].as_str().unwrap().to_owned(),
        )
    }

    /// A pipeline, a debug binding and a group selecting `env=console`; returns the group id.
    async fn group(&self) -> String {
        let p = self
            .api(
                "POST",
                "/api/v1/pipelines",
                json!({ "name": "web", "signals": ["logs"], "receivers": RECEIVERS.clone(), "processors": [{ "id": "batch", "config": { "timeout": "1s" } }] }),
            )
            .await;
        self.api(
            "POST",
            "/api/v1/exporter-bindings",
            json!({ "name": "out", "pipeline_id": p["id"], "destinations": [{ "name": "console", "type": "debug" }] }),
        )
        .await;
        let g = self
            .api(
                "POST",
                "/api/v1/agent-groups",
                json!({ "name": "edge", "selector": { "env": "console" }, "pipeline_ids": [p["id"]] }),
            )
            .await;
        // A second revision, so the page has a diff to show.
        self.api(
            "PUT",
            &format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()),
            json!({ "name": "web", "signals": ["logs"], "receivers": RECEIVERS.clone(), "processors": [{ "id": "batch", "config": { "timeout": "5s" } }] }),
        )
        .await;
        g["id"].as_str().unwrap().to_owned()
    }

    /// Plants `n` connected agents labelled `env=console` (ids 0x…b000 upwards).
    fn plant(&self, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|i| format!("{:032x}", 0xb000 + i)).collect();
        let records = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                serde_json::from_value(json!({
                    "id": id,
                    "labels": { "env": "console", "shard": (i % 2).to_string() },
                    "connected": true,
                }))
                .unwrap()
            })
            .collect();
        self.state.agents.load(records);
        ids
    }

    /// The CSRF token the page's forms carry.
    fn csrf(page: &str) -> String {
        let at = page
            .find("name=\"_csrf\" value=\"")
            .expect("a form with a CSRF field")
            + 20;
        page[at..].split('"').next().unwrap().to_owned()
    }
}

/// Given the admin token, when signed in, then the cookie is HttpOnly, SameSite=Strict and
/// scoped to the whole console (not Secure without TLS), and neither the answers, the cookie nor
/// the pages contain the token.
#[tokio::test]
async fn sign_in_sets_a_strict_httponly_cookie_and_the_token_appears_nowhere() {
    let h = Harness::new().await;
    let page = h.get("/sign-in", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("type=\"password\""), "{}", page.body);

    let a = h
        .post_form("/sign-in", None, &format!("token={ADMIN}"), &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let set = a.headers["set-cookie"].to_str().unwrap();
    for attr in ["otaas_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(ADMIN) && !a.body.contains(ADMIN));
    assert!(!a.location().contains(ADMIN));

    let cookie = set.split(';').next().unwrap();
    for path in ["/fleet", "/pipelines", "/insights"] {
        let p = h.get(path, Some(cookie)).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert!(!p.body.contains(ADMIN), "{path} shows the token");
        assert!(p.body.contains("data-role=\"admin\""), "{path}");
        assert_eq!(p.headers["cache-control"], "no-store");
        let csp = p.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    }
}

/// Given a server whose listener speaks TLS, when signed in and out, then both cookies are
/// `Secure` (browsers then never send the session over plain HTTP).
#[tokio::test]
async fn under_tls_the_session_cookie_is_secure() {
    let h = Harness::with(|c| c.tls_self_signed = true).await;
    let a = h
        .post_form("/sign-in", None, &format!("token={ADMIN}"), &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let set = a.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let fleet = h.get("/fleet", Some(&cookie)).await;
    let out = h
        .post_form(
            "/sign-out",
            Some(&cookie),
            &format!("_csrf={}", Harness::csrf(&fleet.body)),
            &[],
        )
        .await;
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

/// Given no session or a tampered one, when a page is asked for, then the browser is sent to
/// sign in; a form post without a session is refused with 401; a wrong token gets the sign-in
/// page again with 401 and is recorded in the audit trail as a console refusal.
#[tokio::test]
async fn pages_need_a_genuine_session() {
    let h = Harness::new().await;
    let none = h.get("/fleet", None).await;
    assert_eq!(none.status, StatusCode::SEE_OTHER);
    assert_eq!(none.location(), "/sign-in");

    let cookie = h.sign_in(ADMIN).await;
    let mut tampered = cookie.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        h.get("/fleet", Some(&tampered)).await.status,
        StatusCode::SEE_OTHER
    );
    // Another token's hash under the same signature is not a session either.
    let forged = cookie.replacen(&cookie[14..20], "000000", 1);
    assert_eq!(
        h.get("/fleet", Some(&forged)).await.status,
        StatusCode::SEE_OTHER
    );

    let post = h.post_form("/sign-out", None, "_csrf=x", &[]).await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);

    let wrong = h
        .post_form("/sign-in", None, "token=not-a-token-at-all", &[])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not accepted"), "{}", wrong.body);
    assert!(!wrong.body.contains("not-a-token-at-all"));
    assert!(wrong.headers.get("set-cookie").is_none());
    h.state.audit.flush(std::time::Duration::from_secs(5)).await;
    let trail = h.state.store.list_audit(&Default::default()).await.unwrap();
    let refused = trail
        .iter()
        .find(|e| e.interface == AuditInterface::Console.as_str() && e.status == 401)
        .expect("the refused sign-in is in the trail");
    assert_eq!(refused.path, "/sign-in");
    assert!(refused.token_fingerprint.is_some());
    assert!(
        trail
            .iter()
            .all(|e| !format!("{e:?}").contains("not-a-token-at-all"))
    );
}

/// Given a session of a stored token, when the token is revoked, then the session ends at the
/// next request; signing out clears the cookie; an agent token cannot sign in.
#[tokio::test]
async fn sessions_end_with_their_token_and_on_sign_out() {
    let h = Harness::new().await;
    let (token, id) = h.token("admin").await;
    let cookie = h.sign_in(&token).await;
    let fleet = h.get("/fleet", Some(&cookie)).await;
    assert_eq!(fleet.status, StatusCode::OK);

    let out = h
        .post_form(
            "/sign-out",
            Some(&cookie),
            &format!("_csrf={}", Harness::csrf(&fleet.body)),
            &[],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    h.api("DELETE", &format!("/api/v1/tokens/{id}"), json!({}))
        .await;
    assert_eq!(
        h.get("/fleet", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );

    let (agent, _) = h.token("agent").await;
    let a = h
        .post_form("/sign-in", None, &format!("token={agent}"), &[])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.headers.get("set-cookie").is_none());
}

/// Given an admin session and a group, when a rollout action is posted without the session's
/// CSRF token, with another value, or from another origin, then it is refused with 403 and
/// nothing reaches the rollout engine; with the token it reaches the engine (which answers 409:
/// there is no paused rollout to resume). Each attempt is in the audit trail.
#[tokio::test]
async fn forged_actions_are_refused_and_genuine_ones_reach_the_engine() {
    let h = Harness::new().await;
    let gid = h.group().await;
    let cookie = h.sign_in(ADMIN).await;
    let page = h.get(&format!("/groups/{gid}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = Harness::csrf(&page.body);
    let path = format!("/groups/{gid}/rollout/resume");

    let no_token = h.post_form(&path, Some(&cookie), "", &[]).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(no_token.body.contains("CSRF"), "{}", no_token.body);
    let wrong = h
        .post_form(
            &path,
            Some(&cookie),
            "_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &[],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let foreign = h
        .post_form(
            &path,
            Some(&cookie),
            &format!("_csrf={csrf}"),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);

    let genuine = h
        .post_form(
            &path,
            Some(&cookie),
            &format!("_csrf={csrf}"),
            &[("origin", "http://console.test")],
        )
        .await;
    assert_eq!(genuine.status, StatusCode::CONFLICT, "{}", genuine.body);

    h.state.audit.flush(std::time::Duration::from_secs(5)).await;
    let trail = h.state.store.list_audit(&Default::default()).await.unwrap();
    let statuses: Vec<u16> = trail
        .iter()
        .filter(|e| e.interface == "console" && e.path == path)
        .map(|e| e.status)
        .collect();
    assert_eq!(
        {
            let mut s = statuses.clone();
            s.sort();
            s
        },
        vec![403, 403, 403, 409],
        "{trail:?}"
    );
}

/// Given a read-only session, when the group page is shown, then it has no rollout controls,
/// and a posted action with the session's own CSRF token is refused with 403.
#[tokio::test]
async fn read_only_sessions_get_no_controls_and_cannot_act() {
    let h = Harness::new().await;
    let gid = h.group().await;
    let (ro, _) = h.token("read_only").await;
    let cookie = h.sign_in(&ro).await;
    let page = h.get(&format!("/groups/{gid}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("data-role=\"read-only\""));
    assert!(
        !page.body.contains("/rollout/"),
        "controls shown to read-only"
    );
    let csrf = Harness::csrf(&page.body);
    let a = h
        .post_form(
            &format!("/groups/{gid}/rollout/pause"),
            Some(&cookie),
            &format!("_csrf={csrf}"),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("Read-only tokens cannot"), "{}", a.body);
}

/// Given 120 agents, when the fleet is paged 50 at a time, then the pages hold every agent once,
/// in id order, and the counts cover the whole fleet; a label filter narrows the list; a bad
/// filter is a 400 naming the field.
#[tokio::test]
async fn the_fleet_is_paged_on_the_server_and_filtered() {
    let h = Harness::new().await;
    let ids = h.plant(120);
    let cookie = h.sign_in(ADMIN).await;
    let mut seen = Vec::new();
    let mut path = "/fleet".to_owned();
    for _ in 0..4 {
        let p = h.get(&path, Some(&cookie)).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("data-count=\"total\">120<"), "counts");
        for piece in p.body.split("href=\"/agents/").skip(1) {
            seen.push(piece[..32].to_owned());
        }
        match p.body.split("href=\"/fleet?after=").nth(1) {
            Some(rest) => path = format!("/fleet?after={}", &rest[..32]),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every agent once, in order");

    let shard = h.get("/fleet?labels=shard%3D1", Some(&cookie)).await;
    assert!(shard.body.contains("60 agents match."), "{}", shard.body);
    let bad = h.get("/fleet?labels=shard", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Bad filter: labels"), "{}", bad.body);
}

/// Given a group whose pipeline changed, when its page is shown, then it lists both revisions
/// with their cause and shows the YAML diff of the change; an unknown group is a 404 page.
#[tokio::test]
async fn the_group_page_shows_revisions_and_their_diff() {
    let h = Harness::new().await;
    let gid = h.group().await;
    let cookie = h.sign_in(ADMIN).await;
    let p = h.get(&format!("/groups/{gid}"), Some(&cookie)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Revision 1 → 2"), "{}", p.body);
    let line = |class: &str, text: &str| {
        p.body
            .split("<span class=\"")
            .any(|s| s.starts_with(&format!("{class}\">")) && s.contains(text))
    };
    assert!(line("del", "timeout: 1s"), "{}", p.body);
    assert!(line("add", "timeout: 5s"), "{}", p.body);
    assert!(!line("add", "timeout: 1s") && !line("del", "timeout: 5s"));
    assert!(
        p.body.contains("pipeline <code>web</code>"),
        "cause: {}",
        p.body
    );
    let missing = h
        .get(
            "/groups/00000000-0000-0000-0000-000000000000",
            Some(&cookie),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

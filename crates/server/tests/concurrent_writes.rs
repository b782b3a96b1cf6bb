//! Writes never fail for contention: 8 clients × 500 mixed writes (pipelines, exporter
//! bindings and agent groups created, updated and deleted; tokens created and revoked) over
//! real HTTP against a real `otaas serve`, on SQLite and on PostgreSQL.
//!
//! Given every client working on its own objects (so no answer may legitimately be a
//! conflict), when all eight write at once, then no answer is a 5xx and every write is
//! acknowledged (2xx), and afterwards the stored state is exactly what the acknowledged writes
//! say: each kept object is listed, each deleted one is gone, each revoked token is revoked.

mod common;
use otaas_testkit::procs;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Instant;

use common::*;
use otaas_server::store::postgres::PgStore;
use procs::{ADMIN, Serve};
use serde_json::{Value, json};

const CLIENTS: usize = 8;
const WRITES_PER_CLIENT: usize = 500;
/// Writes in one round of a client's cycle (see [`client`]).
const ROUND: usize = 10;

/// What one client's acknowledged writes say must be stored afterwards.
#[derive(Default)]
struct Expect {
    pipelines: BTreeSet<String>,
    deleted_pipelines: BTreeSet<String>,
    /// Token id → revoked?
    tokens: BTreeMap<String, bool>,
    /// Names of groups and bindings created then deleted.
    deleted_groups: BTreeSet<String>,
    deleted_bindings: BTreeSet<String>,
    /// Every answer that was not the expected 2xx: (write, status, body).
    failures: Vec<(String, u16, String)>,
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// One write; `None` (recorded as a failure) unless the status is `want`.
    async fn call(
        &self,
        exp: &mut Expect,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Option<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                exp.failures.push((what.into(), 0, e.to_string()));
                return None;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != want {
            exp.failures.push((what.into(), status, text));
            return None;
        }
        Some(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id in answer").to_string()
}

/// One client: rounds of ten writes on its own objects — create pipeline, create binding,
/// create group, update pipeline (re-renders the group), create token, update group, revoke
/// token, delete group, delete binding, and then either delete the pipeline (even rounds) or
/// create a token that is kept (odd rounds).
async fn client(api: Api, c: usize) -> Expect {
    use reqwest::Method;
    let mut exp = Expect::default();
    for round in 0..WRITES_PER_CLIENT / ROUND {
        let e = &mut exp;
        let name = format!("c{c}-r{round}");
        let pipeline = json!({
            "name": name, "signals": ["traces"],
            "receivers": { "otlp": { "protocols": { "http": {} } } },
        });
        let Some(p) = api
            .call(
                e,
                "create pipeline",
                Method::POST,
                "/pipelines",
                Some(pipeline.clone()),
                201,
            )
            .await
        else {
            continue;
        };
        let pid = id_of(&p);
        let binding = json!({
            "name": name, "pipeline_id": pid,
            "destinations": [{ "name": "d", "type": "debug" }],
        });
        let b = api
            .call(
                e,
                "create binding",
                Method::POST,
                "/exporter-bindings",
                Some(binding),
                201,
            )
            .await;
        let group = json!({
            "name": name, "selector": { "client": format!("c{c}") }, "pipeline_ids": [pid],
        });
        let g = api
            .call(
                e,
                "create group",
                Method::POST,
                "/agent-groups",
                Some(group.clone()),
                201,
            )
            .await;
        let mut updated = pipeline.clone();
        updated["description"] = json!("updated");
        api.call(
            e,
            "update pipeline",
            Method::PUT,
            &format!("/pipelines/{pid}"),
            Some(updated),
            200,
        )
        .await;
        let t = api
            .call(
                e,
                "create token",
                Method::POST,
                "/tokens",
                Some(json!({ "description": name })),
                201,
            )
            .await;
        if let Some(g) = &g {
            let mut group = group.clone();
            group["selector"]["round"] = json!(round.to_string());
            api.call(
                e,
                "update group",
                Method::PUT,
                &format!("/agent-groups/{}", id_of(g)),
                Some(group),
                200,
            )
            .await;
        }
        if let Some(t) = &t {
            let tid = id_of(t);
            e.tokens.insert(tid.clone(), false);
            if api
                .call(
                    e,
                    "revoke token",
                    Method::DELETE,
                    &format!("/tokens/{tid}"),
                    None,
                    204,
                )
                .await
                .is_some()
            {
                e.tokens.insert(tid, true);
            }
        }
        let mut deleted_children = true;
        if let Some(g) = &g {
            deleted_children &= api
                .call(
                    e,
                    "delete group",
                    Method::DELETE,
                    &format!("/agent-groups/{}", id_of(g)),
                    None,
                    204,
                )
                .await
                .is_some();
            e.deleted_groups.insert(name.clone());
        }
        if let Some(b) = &b {
            deleted_children &= api
                .call(
                    e,
                    "delete binding",
                    Method::DELETE,
                    &format!("/exporter-bindings/{}", id_of(b)),
                    None,
                    204,
                )
                .await
                .is_some();
            e.deleted_bindings.insert(name.clone());
        }
        if round % 2 == 0 && deleted_children {
            if api
                .call(
                    e,
                    "delete pipeline",
                    Method::DELETE,
                    &format!("/pipelines/{pid}"),
                    None,
                    204,
                )
                .await
                .is_some()
            {
                e.deleted_pipelines.insert(name);
            } else {
                e.pipelines.insert(name);
            }
        } else {
            e.pipelines.insert(name.clone());
            if let Some(t) = api
                .call(
                    e,
                    "create kept token",
                    Method::POST,
                    "/tokens",
                    Some(json!({ "description": name })),
                    201,
                )
                .await
            {
                e.tokens.insert(id_of(&t), false);
            }
        }
    }
    exp
}

/// Every item of the list at `path`, walking its pages.
async fn list(api: &Api, path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = api
            .http
            .get(format!("{}{path}", api.base))
            .query(&[("limit", "1000")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let resp = req.bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
        let v: Value = resp.json().await.unwrap();
        all.extend(v["items"].as_array().cloned().unwrap_or_default());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Runs the 8 × 500 writes against `serve` and checks every answer and the final state.
async fn hammer(serve: &Serve, backend: &str) {
    let http = reqwest::Client::builder().build().unwrap();
    let base = format!("http://{}/api/v1", serve.api);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let api = Api {
                http: http.clone(),
                base: base.clone(),
            };
            tokio::spawn(client(api, c))
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    eprintln!(
        "{backend}: {CLIENTS} clients × {WRITES_PER_CLIENT} writes took {:?}",
        started.elapsed()
    );
    let failures: Vec<_> = all.iter().flat_map(|e| e.failures.iter()).collect();
    let server_errors = failures.iter().filter(|f| f.1 >= 500).count();
    assert!(
        failures.is_empty(),
        "{backend}: {} writes not acknowledged ({server_errors} answered 5xx), first: {:?}\nserver log tail:\n{}",
        failures.len(),
        failures.iter().take(5).collect::<Vec<_>>(),
        serve
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );

    let api = Api { http, base };
    let pipelines = names(&list(&api, "/pipelines").await);
    let bindings = names(&list(&api, "/exporter-bindings").await);
    let groups = names(&list(&api, "/agent-groups").await);
    let tokens: BTreeMap<String, bool> = list(&api, "/tokens")
        .await
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                !t["revoked_at"].is_null(),
            )
        })
        .collect();
    let mut acknowledged = 0usize;
    for e in &all {
        for p in &e.pipelines {
            assert!(pipelines.contains(p), "{backend}: pipeline {p} lost");
        }
        for p in &e.deleted_pipelines {
            assert!(
                !pipelines.contains(p),
                "{backend}: deleted pipeline {p} listed"
            );
        }
        for g in &e.deleted_groups {
            assert!(!groups.contains(g), "{backend}: deleted group {g} listed");
        }
        for b in &e.deleted_bindings {
            assert!(
                !bindings.contains(b),
                "{backend}: deleted binding {b} listed"
            );
        }
        for (id, revoked) in &e.tokens {
            assert_eq!(
                tokens.get(id),
                Some(revoked),
                "{backend}: token {id} (revoked: {revoked})"
            );
        }
        acknowledged += e.pipelines.len() + e.deleted_pipelines.len() + e.tokens.len();
    }
    assert_eq!(
        pipelines.len(),
        all.iter().map(|e| e.pipelines.len()).sum::<usize>(),
        "{backend}: pipelines nobody kept are listed"
    );
    assert!(acknowledged > 0);
}

fn serve_args() -> [&'static str; 2] {
    // The per-token request rate is not what this test is about.
    ["--api-rate-limit", "0"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_8_clients_500_writes_each_no_5xx_nothing_lost() {
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), "127.0.0.1:0", &serve_args());
    hammer(&serve, "sqlite").await;
}

async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = fresh_schema();
    drop(PgStore::open(&pg_url(), Some(&schema)).await.unwrap());
    let url = format!("{}?options[search_path]={schema}", pg_url());
    let result = tokio::spawn(body(url)).await;
    PgStore::drop_schema(&pg_url(), &schema).await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_8_clients_500_writes_each_no_5xx_nothing_lost() {
    with_schema(|url| async move {
        let data = tempfile::tempdir().unwrap();
        let mut args = serve_args().to_vec();
        args.extend(["--database", url.as_str()]);
        let serve = Serve::start(data.path(), "127.0.0.1:0", &args);
        hammer(&serve, "postgres").await;
    })
    .await;
}

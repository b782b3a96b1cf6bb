//! PostgreSQL outage under load, for real but without touching the shared PostgreSQL server: the
//! test runs a small TCP proxy on 127.0.0.1 between otaas and PostgreSQL and cuts it (every
//! open connection dropped, new ones refused), then restores it.
//!
//! Given the API serving reads and writes on PostgreSQL through the proxy, when the proxy is
//! cut, then every API request answers `503 unavailable` with `Retry-After` (no 500, no hang),
//! `/readyz` is 503 and `/healthz` 200; when it is restored, the API recovers by itself.
//!
//! And with the real `otaas serve` binary and a connected fleet: a config change refused during
//! the outage changes nothing, no agent loses its connection, and the change made once the
//! database is back reaches every agent.

mod common;
use otaas_testkit::procs;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures::FutureExt;
use otaas_server::config::{Secret, ServeConfig};
use otaas_server::limits::ConnLimiter;
use otaas_server::listener::{self, ListenerOptions};
use otaas_server::state::AppState;
use otaas_server::store::postgres::PgStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "outage-admin";

/// A TCP proxy to PostgreSQL that can be cut and restored.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every cut: connection tasks watching it drop their sockets.
    cuts: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (up2, cuts2) = (up.clone(), cuts.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused: the client sees the connection close at once
                    continue;
                }
                let mut cut = cuts2.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {} // dropping both ends cuts the session
                    }
                });
            }
        });
        Self { addr, up, cuts }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db` → (`host:port`, the same URL pointing at `proxy`).
fn via_proxy(url: &str, proxy: std::net::SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let at = if auth.is_empty() { "" } else { "@" };
    (
        hostport.to_string(),
        format!("{scheme}://{auth}{at}{proxy}/{path}"),
    )
}

/// Status, Retry-After and error code of one API call (bounded: a hang fails the test).
async fn probe(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<String>,
) -> (u16, Option<String>, Option<String>) {
    probe_as(ADMIN, http, method, url, body).await
}

/// [`probe`] with another admin token.
async fn probe_as(
    token: &str,
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<String>,
) -> (u16, Option<String>, Option<String>) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: no answer within the client timeout: {e}"));
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
    (status, retry, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_503_with_retry_after_and_recovers() {
    let schema = fresh_schema();
    let result = AssertUnwindSafe(outage_scenario(&schema))
        .catch_unwind()
        .await;
    PgStore::drop_schema(&pg_url(), &schema).await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

use std::panic::AssertUnwindSafe;

async fn outage_scenario(schema: &str) {
    // Given otaas on PostgreSQL through the proxy, serving on a real socket
    let (upstream, _) = via_proxy(&pg_url(), "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(upstream).await;
    let (_, url) = via_proxy(&pg_url(), proxy.addr);
    let store = Arc::new(PgStore::open(&url, Some(schema)).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::for_data_dir(dir.path());
    config.admin_token = Some(Secret::new(ADMIN));
    config.api_rate_limit = 0.0;
    let state = AppState::new(store, config);
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", tcp.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(listener::serve(
        tcp,
        otaas_server::api::router(state),
        ListenerOptions {
            name: "api",
            tls: None,
            conn_limit: ConnLimiter::new(0),
        },
        shutdown.clone(),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let pipelines = format!("{base}/api/v1/pipelines");
    assert_eq!(
        probe(&http, reqwest::Method::GET, &pipelines, None).await.0,
        200
    );

    // and load: two readers and two writers, recording every answer
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    // 503s the load has seen: the outage lasts until it has seen one (not a fixed time).
    let refused = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (http, pipelines, stop, seq) =
            (http.clone(), pipelines.clone(), stop.clone(), seq.clone());
        let refused = refused.clone();
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let got = if worker % 2 == 0 {
                    probe(&http, reqwest::Method::GET, &pipelines, None).await
                } else {
                    let n = seq.fetch_add(1, Ordering::SeqCst);
                    let spec = pipeline_spec(&format!("load-{n}"));
                    let body = serde_json::to_string(&spec).unwrap();
                    probe(&http, reqwest::Method::POST, &pipelines, Some(body)).await
                };
                if got.0 == 503 {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                seen.push(got);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // When PostgreSQL becomes unreachable
    proxy.cut();

    // Then requests answer 503 + Retry-After with our body (bounded wait for in-flight ones)
    let mut first = None;
    for _ in 0..20 {
        let got = probe(&http, reqwest::Method::GET, &pipelines, None).await;
        if got.0 == 503 {
            first = Some(got);
            break;
        }
    }
    assert_eq!(
        first,
        Some((503, Some("1".to_string()), Some("unavailable".to_string())))
    );
    let write = probe(
        &http,
        reqwest::Method::POST,
        &pipelines,
        Some(serde_json::to_string(&pipeline_spec("during-outage")).unwrap()),
    )
    .await;
    assert_eq!(
        write,
        (503, Some("1".to_string()), Some("unavailable".to_string()))
    );
    let ready = probe(&http, reqwest::Method::GET, &format!("{base}/readyz"), None).await;
    assert_eq!(
        ready,
        (503, Some("1".to_string()), Some("unavailable".to_string()))
    );
    let health = probe(
        &http,
        reqwest::Method::GET,
        &format!("{base}/healthz"),
        None,
    )
    .await;
    assert_eq!(health.0, 200);

    // When it comes back, the API recovers by itself (bounded wait)
    for _ in 0..600 {
        if refused.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();
    let mut recovered = None;
    for _ in 0..60 {
        let got = probe(&http, reqwest::Method::GET, &pipelines, None).await;
        if got.0 == 200 {
            recovered = Some(got.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recovered, Some(200), "the API did not recover");
    let ready = probe(&http, reqwest::Method::GET, &format!("{base}/readyz"), None).await;
    assert_eq!(ready.0, 200);
    let write = probe(
        &http,
        reqwest::Method::POST,
        &pipelines,
        Some(serde_json::to_string(&pipeline_spec("after-outage")).unwrap()),
    )
    .await;
    assert_eq!(write.0, 201);
    // The write refused during the outage left nothing behind
    let listed: serde_json::Value = http
        .get(format!("{pipelines}?name=during-outage"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], serde_json::json!([]));

    // Under load, every answer was a success or a 503 with Retry-After — never a 500
    stop.store(true, Ordering::SeqCst);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for task in load {
        for (status, retry, code) in task.await.unwrap() {
            *statuses.entry(status).or_default() += 1;
            match status {
                200 | 201 => {}
                503 => assert_eq!(
                    (retry.as_deref(), code.as_deref()),
                    (Some("1"), Some("unavailable"))
                ),
                other => panic!("unexpected status {other} ({code:?}) under load"),
            }
        }
    }
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("server drains within 30 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_with_a_fleet_ends_with_every_agent_on_the_new_revision() {
    let schema = fresh_schema();
    // Created (and migrated) here; the server uses it through search_path.
    drop(PgStore::open(&pg_url(), Some(&schema)).await.unwrap());
    let result = AssertUnwindSafe(fleet_outage_scenario(&schema))
        .catch_unwind()
        .await;
    PgStore::drop_schema(&pg_url(), &schema).await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn fleet_outage_scenario(schema: &str) {
    use otaas_api::{AgentQuery, AgentStatus, ProcessorSpec};
    use procs::{Serve, Sim, wait_for};

    // Given otaas serve on PostgreSQL through the proxy, and 20 agents in a group
    let (upstream, _) = via_proxy(&pg_url(), "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(upstream).await;
    let (_, url) = via_proxy(&pg_url(), proxy.addr);
    let url = format!("{url}?options[search_path]={schema}");
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--database", &url, "--api-rate-limit", "0"],
    );
    let client = server.client();
    let mut spec = pipeline_spec("outage");
    spec.receivers.insert(
        "otlp".into(),
        serde_json::json!({"protocols": {"http": {}}}),
    );
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec("outage", pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec("outage", vec![pipeline.id]);
    group.selector = [("fleet".to_owned(), "outage".to_owned())].into();
    let group = client.create_agent_group(&group).await.unwrap();
    let sim = Sim::start(
        &server.ws_url(),
        &[
            "--agents",
            "20",
            "--labels",
            "fleet=outage",
            "--heartbeat",
            "2",
        ],
    );
    let on = |hash: String| {
        let client = client.clone();
        async move {
            wait_for(&format!("20 agents connected on {hash}"), || {
                let client = client.clone();
                let hash = hash.clone();
                async move {
                    let list = client
                        .list_agents(&AgentQuery {
                            group_id: Some(group.id),
                            ..Default::default()
                        })
                        .await
                        .ok()?;
                    (list.len() == 20
                        && list.iter().all(|a| {
                            a.connected
                                && a.status == AgentStatus::Applied
                                && a.effective_config_hash.as_deref() == Some(hash.as_str())
                        }))
                    .then_some(())
                }
            })
            .await
        }
    };
    on(group.config_hash.clone()).await;

    // When PostgreSQL becomes unreachable
    proxy.cut();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("http://{}/api/v1", server.api);
    let pipeline_url = format!("{base}/pipelines/{}", pipeline.id);
    let mut changed = spec.clone();
    changed.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: serde_json::json!({"limit_mib": 400, "check_interval": "1s"}),
    });
    let body = serde_json::to_string(&changed).unwrap();
    // Then a config change is refused with 503 + Retry-After (bounded wait for in-flight ones)
    let mut refused = None;
    for _ in 0..20 {
        let got = probe_as(
            procs::ADMIN,
            &http,
            reqwest::Method::PUT,
            &pipeline_url,
            Some(body.clone()),
        )
        .await;
        if got.0 == 503 {
            refused = Some(got);
            break;
        }
        assert_ne!(got.0, 200, "a write succeeded while PostgreSQL was cut");
    }
    assert_eq!(
        refused,
        Some((503, Some("1".to_string()), Some("unavailable".to_string())))
    );
    // When it comes back, the API recovers by itself and the change goes through
    proxy.restore();
    let mut updated = None;
    for _ in 0..60 {
        let got = probe_as(
            procs::ADMIN,
            &http,
            reqwest::Method::PUT,
            &pipeline_url,
            Some(body.clone()),
        )
        .await;
        if got.0 == 200 {
            updated = Some(got.0);
            break;
        }
        assert_eq!(got.0, 503, "{got:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(updated, Some(200), "the API did not recover");
    let g2 = client.get_agent_group(group.id).await.unwrap();
    // One new revision: the refused attempt left nothing behind
    assert_eq!(g2.config_revision, group.config_revision + 1);

    // Then every agent ends on the new revision
    on(g2.config_hash.clone()).await;
    // and no agent lost its connection over the outage
    assert_eq!(sim.events("disconnected"), Vec::<serde_json::Value>::new());
    let summary = sim.stop();
    assert_eq!(summary["reconnects"], 0);
    assert_eq!(summary["hashes"], serde_json::json!({ g2.config_hash: 20 }));
}

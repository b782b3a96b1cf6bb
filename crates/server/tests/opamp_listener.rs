//! The OpAMP listener's protections, against the real `otaas serve` binary on 127.0.0.1: TLS
//! from the API's `--tls-self-signed` material, the per-address connection cap (`--opamp-max-conns-per-ip`, WebSocket sessions count for
//! as long as they run), the admission rate for new agents (`--opamp-admit-rate/-burst`: 503 +
//! `Retry-After`, and RetryInfo for HTTP agents), and a reconnect storm after `kill -9` that is
//! spread out and ends with every agent on the right revision.
//!
//! No assertion depends on timing: the spread is read from the delays the server handed out,
//! and every wait is bounded (passing the bound fails the test).

mod common;
use otaas_testkit::procs;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use otaas_api::*;
use otaas_opamp::proto::{
    AgentToServer, ServerErrorResponseType, ServerToAgent, server_error_response,
};
use procs::*;
use prost::Message as _;
use serde_json::{Value, json};

/// One raw HTTP/1.1 request on a fresh connection; returns the whole response as text.
fn raw(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn upgrade_request(addr: &str) -> String {
    format!(
        "GET /v1/opamp HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Status line, lower-cased headers and body of a raw response.
fn parse(resp: &str) -> (String, BTreeMap<String, String>, String) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An upgraded OpAMP WebSocket that said hello (so the server runs a session for it).
async fn ws_agent(opamp: &str) -> Ws {
    use futures::SinkExt;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{opamp}/v1/opamp"))
        .await
        .expect("websocket upgrade");
    let hello = AgentToServer {
        instance_uid: uuid::Uuid::now_v7().as_bytes().to_vec().into(),
        capabilities: 1,
        ..Default::default()
    };
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        otaas_opamp::framing::encode(&hello).into(),
    ))
    .await
    .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_per_address_are_capped_on_the_opamp_listener() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-max-conns-per-ip", "2"],
    );
    // Given two WebSocket agents from 127.0.0.1 (upgraded: hyper no longer owns the sockets)
    let a = ws_agent(&server.opamp).await;
    let _b = ws_agent(&server.opamp).await;

    // When a third connection asks for an upgrade, it gets a 429 with our JSON body, no upgrade
    let (status, headers, body) = parse(&raw(&server.opamp, &upgrade_request(&server.opamp)));
    assert_eq!(status, "HTTP/1.1 429 Too Many Requests");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": "rate_limited",
            "message": "too many open connections from your address (limit 2); close some and retry", "field": null}})
    );
    // and so does a plain-HTTP agent
    let (status, ..) = parse(&raw(
        &server.opamp,
        "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(status, "HTTP/1.1 429 Too Many Requests");

    // Then once a session ends, the address has room again (bounded wait for the server to
    // notice the close)
    drop(a);
    wait_for("a free connection slot", || {
        let opamp = server.opamp.clone();
        async move {
            let resp = tokio::task::spawn_blocking(move || raw(&opamp, &upgrade_request(&opamp)))
                .await
                .unwrap();
            resp.starts_with("HTTP/1.1 101").then_some(())
        }
    })
    .await;
    assert!(
        server
            .log()
            .contains("Too many connections from one address; refusing"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_agents_beyond_the_admission_rate_are_told_when_to_retry() {
    let data = tempfile::tempdir().unwrap();
    // One agent at once, then one per 100 s: everything after the first is refused.
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-admit-rate", "0.01", "--opamp-admit-burst", "1"],
    );
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/opamp", server.opamp);
    let poll = |uid: [u8; 16], seq: u64| {
        let msg = AgentToServer {
            instance_uid: uid.to_vec().into(),
            sequence_num: seq,
            capabilities: 1,
            ..Default::default()
        };
        http.post(&url)
            .header("content-type", "application/x-protobuf")
            .body(msg.encode_to_vec())
            .send()
    };
    let first = *uuid::Uuid::now_v7().as_bytes();
    let second = *uuid::Uuid::now_v7().as_bytes();

    // Given an HTTP agent admitted with the only token
    let resp = poll(first, 0).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // When it polls again it is a connected agent, not a new one: still served
    let resp = poll(first, 1).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // When a new HTTP agent arrives, it gets 503 + Retry-After and, in the protobuf body, the
    // same delay as RetryInfo
    let resp = poll(second, 0).await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-protobuf"
    );
    let reply = ServerToAgent::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(reply.instance_uid.as_ref(), second.as_slice());
    let err = reply.error_response.expect("an error response");
    assert_eq!(err.r#type, ServerErrorResponseType::Unavailable as i32);
    assert_eq!(
        err.error_message,
        "too many agents connecting at once; retry later"
    );
    let Some(server_error_response::Details::RetryInfo(info)) = err.details else {
        panic!("no RetryInfo");
    };
    let nanos = info.retry_after_nanoseconds;
    // The first in line waits 1 / rate = 100 s plus up to 2 s of jitter; the header is the
    // same delay rounded up to whole seconds.
    assert!(
        (100_000_000_000..102_000_000_000).contains(&nanos),
        "{nanos}"
    );
    assert_eq!(retry_after, nanos.div_ceil(1_000_000_000));

    // and a WebSocket upgrade gets 503 + Retry-After (further back in the queue) and a JSON body
    let (status, headers, body) = parse(&raw(&server.opamp, &upgrade_request(&server.opamp)));
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    let ws_retry: u64 = headers["retry-after"].parse().unwrap();
    assert!((200..=203).contains(&ws_retry), "{ws_retry}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": "unavailable",
            "message": "too many agents connecting at once; retry later", "field": null}})
    );
    let metrics = reqwest::get(format!("http://{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("otaas_opamp_refused_total{reason=\"admission\"} 2"),
        "{metrics}"
    );
    assert!(
        server
            .log()
            .contains("OpAMP admission rate exceeded; refusing new agents with a retry delay"),
        "{}",
        server.log()
    );
}

/// A pipeline with a debug exporter and a group over `fleet=storm`; returns the pipeline's
/// spec and the group.
async fn storm_group(client: &Client) -> (PipelineId, PipelineSpec, AgentGroup) {
    let mut spec = pipeline_spec("storm");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec("storm", pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec("storm", vec![pipeline.id]);
    group.selector = BTreeMap::from([("fleet".to_owned(), "storm".to_owned())]);
    let group = client.create_agent_group(&group).await.unwrap();
    (pipeline.id, spec, group)
}

/// Waits until the group's `n` agents are connected and run `hash`.
async fn all_on(client: &Client, group: AgentGroupId, n: usize, hash: &str) {
    let query = AgentQuery {
        group_id: Some(group),
        ..Default::default()
    };
    wait_for(&format!("{n} agents connected on {hash}"), || {
        let client = client.clone();
        let query = query.clone();
        async move {
            let list = client.list_agents(&query).await.ok()?;
            (list.len() == n
                && list.iter().all(|a| {
                    a.connected
                        && a.status == AgentStatus::Applied
                        && a.effective_config_hash.as_deref() == Some(hash)
                }))
            .then_some(())
        }
    })
    .await;
}

/// The retry delays (ms) a simulator's agents were given by 503 answers.
fn retry_delays(sim: &Sim) -> Vec<u64> {
    sim.events("connect_failed")
        .iter()
        .filter(|e| e["error"] == "http status 503 Service Unavailable")
        .filter_map(|e| e["retry_after_ms"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnect_storm_after_kill_9_is_spread_and_converges() {
    const WS_AGENTS: usize = 150;
    const HTTP_AGENTS: usize = 50;
    let flags = ["--opamp-admit-rate", "20", "--opamp-admit-burst", "10"];
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = Serve::start(data.path(), &addr, &flags);
    let client = server.client();
    let (pid, spec, group) = storm_group(&client).await;
    let ws = Sim::start(
        &server.ws_url(),
        &[
            "--agents",
            &WS_AGENTS.to_string(),
            "--labels",
            "fleet=storm,via=ws",
            "--heartbeat",
            "2",
            "--uid-seed",
            "7",
        ],
    );
    let http = Sim::start(
        &format!("http://{addr}"),
        &[
            "--agents",
            &HTTP_AGENTS.to_string(),
            "--labels",
            "fleet=storm,via=http",
            "--transport",
            "http",
            "--heartbeat",
            "2",
            "--uid-seed",
            "8",
        ],
    );
    let n = WS_AGENTS + HTTP_AGENTS;
    all_on(&client, group.id, n, &group.config_hash).await;
    let before = (retry_delays(&ws).len(), retry_delays(&http).len());

    // When the server is killed and comes back on the same address and data, the whole fleet
    // reconnects at once, and a new revision is made right away
    server.kill();
    let server = Serve::start(data.path(), &addr, &flags);
    let client = server.client();
    let mut spec2 = spec.clone();
    spec2.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: json!({"limit_mib": 400, "check_interval": "1s"}),
    });
    client.update_pipeline(pid, &spec2, None).await.unwrap();
    let g2 = client.get_agent_group(group.id).await.unwrap();
    assert_eq!(g2.config_revision, group.config_revision + 1);

    // Then every agent ends connected and on the new revision
    all_on(&client, group.id, n, &g2.config_hash).await;

    // and the returning agents were refused in waves with different delays, not all at once:
    // more came back than the burst admits, and the delays they were given spread over
    // seconds (WebSocket: Retry-After; HTTP: RetryInfo, exact to the nanosecond)
    let ws_delays: Vec<u64> = retry_delays(&ws).split_off(before.0);
    let http_delays: Vec<u64> = retry_delays(&http).split_off(before.1);
    let all: Vec<u64> = ws_delays.iter().chain(&http_delays).copied().collect();
    eprintln!(
        "storm: {} WebSocket and {} HTTP refusals after the restart",
        ws_delays.len(),
        http_delays.len()
    );
    assert!(
        all.len() >= 40,
        "only {} refusals for {n} returning agents",
        all.len()
    );
    let distinct_secs: BTreeSet<u64> = all.iter().map(|ms| ms.div_ceil(1000)).collect();
    assert!(distinct_secs.len() >= 2, "{distinct_secs:?}");
    let (min, max) = (all.iter().min().unwrap(), all.iter().max().unwrap());
    assert!(max - min >= 1000, "delays from {min} to {max} ms");
    // (How many HTTP agents come back while the bucket is empty depends on their poll
    // phase; the RetryInfo itself is asserted exactly in the test above.)
    if !http_delays.is_empty() {
        assert!(
            http_delays.iter().any(|ms| ms % 1000 != 0),
            "HTTP agents got no sub-second RetryInfo: {http_delays:?}"
        );
    }
    let metrics = reqwest::get(format!("http://{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("otaas_opamp_refused_total{reason=\"admission\"}"),
        "{metrics}"
    );

    let ws_summary = ws.stop();
    let http_summary = http.stop();
    assert_eq!(
        ws_summary["hashes"],
        json!({ g2.config_hash.clone(): WS_AGENTS })
    );
    assert_eq!(
        http_summary["hashes"],
        json!({ g2.config_hash.clone(): HTTP_AGENTS })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_self_signed_also_covers_opamp() {
    let data = tempfile::tempdir().unwrap();
    // Given a server with only --tls-self-signed
    let server = Serve::start(data.path(), "127.0.0.1:0", &["--tls-self-signed"]);
    let ca_path = data.path().join("tls/ca.pem");
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    let mut config = ClientConfig::new(format!("https://{}", server.api), ADMIN);
    config.ca_cert_pem = Some(ca);
    let client = Client::new(config).unwrap();
    let (_, _, group) = storm_group(&client).await;

    // When agents trusting the generated CA connect over wss:// and https://
    let ca_arg = ca_path.to_str().unwrap();
    let ws = Sim::start(
        &format!("wss://{}", server.opamp),
        &[
            "--agents",
            "2",
            "--labels",
            "fleet=storm",
            "--ca-cert",
            ca_arg,
        ],
    );
    let http = Sim::start(
        &format!("https://{}", server.opamp),
        &[
            "--agents",
            "1",
            "--labels",
            "fleet=storm",
            "--transport",
            "http",
            "--heartbeat",
            "1",
            "--ca-cert",
            ca_arg,
        ],
    );
    // Then they get their config
    all_on(&client, group.id, 3, &group.config_hash).await;
    assert_eq!(ws.stop()["status"], json!({"APPLIED": 2}));
    assert_eq!(http.stop()["status"], json!({"APPLIED": 1}));

    // and a plain ws:// agent gets nowhere
    let plain = Sim::start(&server.ws_url(), &["--labels", "fleet=plain"]);
    wait_for("a failed plain connection", || async {
        plain.events("connect_failed").pop()
    })
    .await;
    assert_eq!(plain.stop()["connects"], 0);
}

#[test]
fn a_client_ca_without_tls_is_a_start_up_error() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(otaas_testkit::bin::otaas())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--opamp-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--admin-token",
            "x",
            "--opamp-tls-client-ca",
            "/nonexistent/ca.pem",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("OTAAS_DATABASE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "otaas: opamp: --opamp-tls-client-ca needs TLS on the OpAMP listener \
             (--opamp-tls-cert/--opamp-tls-key, --tls-cert/--tls-key or --tls-self-signed)"
        ),
        "{stderr}"
    );
    // Nothing was served: the error came before any listener bound.
    assert!(!stderr.contains("listening on"), "{stderr}");
}

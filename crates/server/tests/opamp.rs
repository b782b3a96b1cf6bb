//! OpAMP end to end, over real sockets on 127.0.0.1 against the real `otaas serve` binary:
//! the third-party Python OpAMP client (`tests/peers/opamp_peer.py`, its library installed by
//! `scripts/setup-peers.sh`), `otaas fleet-sim` over WebSocket, and hand-made bad frames.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use otaas_api::*;
use otaas_opamp::framing;
use otaas_opamp::proto::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use otaas_testkit::procs::{ADMIN, Serve, Sim, TIMEOUT, collect_lines, wait_for};
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A pipeline with an OTLP receiver and a group over `sel` running it.
async fn make_group(client: &Client, name: &str, sel: &[(&str, &str)]) -> (Pipeline, AgentGroup) {
    let mut spec = pipeline_spec(name);
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    // Without an exporter the renderer leaves the pipeline out; a debug exporter completes it.
    let mut binding = binding_spec(name, pipeline.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec(name, vec![pipeline.id]);
    group.selector = selector(sel);
    let group = client.create_agent_group(&group).await.unwrap();
    (pipeline, group)
}

async fn agents(client: &Client, query: AgentQuery) -> Vec<Agent> {
    client.list_agents(&query).await.unwrap()
}

// ------------------------------------------------------------------------------------------
// The third-party Python client
// ------------------------------------------------------------------------------------------

/// Installs the peer once per test process; a failure fails the tests that need it.
fn peers() -> &'static (PathBuf, PathBuf) {
    static PEERS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PEERS.get_or_init(|| {
        let root = repo_root();
        let dir = root.join("target/opamp-peers");
        let out = Command::new("bash")
            .arg(root.join("scripts/setup-peers.sh"))
            .arg(&dir)
            .output()
            .expect("run scripts/setup-peers.sh");
        assert!(
            out.status.success(),
            "scripts/setup-peers.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, root.join("tests/peers/opamp_peer.py"))
    })
}

struct PyAgent {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
}

impl PyAgent {
    fn start(url: &str, labels: &str, out_dir: &Path, env: &[(&str, &str)]) -> Self {
        let (dir, script) = peers();
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .env("PEERS_DIR", dir)
            .env("OPAMP_URL", url)
            .env("AGENT_LABELS", labels)
            .env("AGENT_OUT", out_dir)
            .env("AGENT_SECONDS", "12")
            .env("AGENT_POLL_SECONDS", "0.5")
            .env_remove("OPAMP_TOKEN")
            .env_remove("AGENT_FAIL_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("spawn python3 tests/peers/opamp_peer.py");
        let out = collect_lines(child.stdout.take().unwrap());
        Self { child, out }
    }

    fn events(&self) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn uid(&self) -> Option<String> {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "start")
            .and_then(|e| e["instance_uid"].as_str().map(str::to_owned))
    }

    /// Waits (bounded) for the agent to finish; returns its exit code.
    fn wait(mut self) -> (i32, Vec<Value>) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code().unwrap_or(-1), self.events());
            }
            assert!(Instant::now() < deadline, "python agent did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_peer_gets_its_group_config_byte_for_byte_and_reports_applied() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given a group selecting env=py and a pipeline in it
    let (_, group) = make_group(&client, "py-ok", &[("env", "py")]).await;
    let config = client.agent_group_config(group.id).await.unwrap();

    // When the third-party client connects with matching labels
    let out = tempfile::tempdir().unwrap();
    let agent = PyAgent::start(&server.http_url(), "env=py,team=a", out.path(), &[]);
    let uid = wait_for("the python agent to start", || async { agent.uid() }).await;

    // Then its labels appear, and the server records APPLIED and the effective config
    let seen = wait_for("the python agent to report APPLIED", || {
        let client = client.clone();
        let uid = uid.clone();
        let config = config.clone();
        async move {
            let a = client.get_agent(&uid).await.ok()?;
            (a.remote_config_status == RemoteConfigState::Applied
                && a.effective_config_hash.as_deref() == Some(config.sha256.as_str()))
            .then_some(a)
        }
    })
    .await;
    assert_eq!(seen.labels.get("env").map(String::as_str), Some("py"));
    assert_eq!(seen.labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(
        seen.labels.get("service.name").map(String::as_str),
        Some("opamp-peer-python")
    );
    assert_eq!(seen.group_id, Some(group.id));
    assert_eq!(seen.config_hash.as_deref(), Some(config.sha256.as_str()));
    assert_eq!(
        seen.remote_config_hash.as_deref(),
        Some(config.sha256.as_str())
    );
    assert_eq!(seen.status, AgentStatus::Applied);
    assert_eq!(seen.transport, Some(AgentTransport::Http));
    assert!(seen.connected);
    assert_eq!(
        seen.capabilities,
        [
            "ReportsStatus",
            "AcceptsRemoteConfig",
            "ReportsEffectiveConfig",
            "ReportsRemoteConfig",
            "ReportsHeartbeat"
        ]
    );
    assert_eq!(seen.effective_config.as_deref(), Some(config.yaml.as_str()));
    let listed = agents(
        &client,
        AgentQuery {
            selector: selector(&[("team", "a")]),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [uid.as_str()]
    );

    // And the file it received is the group's config, byte for byte
    let (code, events) = agent.wait();
    assert_eq!(code, 0, "python agent events: {events:?}");
    let received = std::fs::read(out.path().join("config-001").join("collector.yaml")).unwrap();
    assert_eq!(received, config.yaml.as_bytes());
    let meta: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("config-001/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["hash"], config.sha256.as_str());
    assert_eq!(meta["files"]["collector.yaml"]["content_type"], "text/yaml");
    // Exactly one config was received: no resend loop.
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "remote_config")
            .count(),
        1
    );

    // After its AgentDisconnect it is listed as disconnected.
    let gone = agents(
        &client,
        AgentQuery {
            connected: Some(false),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(gone.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), [uid]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn python_peer_failure_is_recorded_with_its_message() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (_, group) = make_group(&client, "py-fail", &[("env", "pyfail")]).await;
    let out = tempfile::tempdir().unwrap();
    let agent = PyAgent::start(
        &server.http_url(),
        "env=pyfail",
        out.path(),
        &[("AGENT_FAIL_CONFIG", "1")],
    );
    let uid = wait_for("the python agent to start", || async { agent.uid() }).await;
    let seen = wait_for("FAILED to be recorded", || {
        let client = client.clone();
        let uid = uid.clone();
        async move {
            let a = client.get_agent(&uid).await.ok()?;
            (a.remote_config_status == RemoteConfigState::Failed).then_some(a)
        }
    })
    .await;
    assert_eq!(
        seen.remote_config_error.as_deref(),
        Some("AGENT_FAIL_CONFIG is set")
    );
    assert_eq!(seen.status, AgentStatus::Failed);
    assert_eq!(seen.group_id, Some(group.id));
    assert_eq!(seen.remote_config_hash, Some(group.config_hash.clone()));
    let (code, events) = agent.wait();
    assert_eq!(code, 0);
    // A failed config is not pushed again and again.
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "remote_config")
            .count(),
        1
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn python_peer_with_a_wrong_token_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &["--require-agent-token"]);
    let client = server.client();
    let out = tempfile::tempdir().unwrap();

    // A wrong token: every request is refused with 401, the agent gives up (exit 2).
    let agent = PyAgent::start(
        &server.http_url(),
        "env=tok",
        out.path(),
        &[("OPAMP_TOKEN", "otaas_agent_wrong"), ("AGENT_SECONDS", "3")],
    );
    let (code, events) = agent.wait();
    assert_eq!(code, 2, "events: {events:?}");
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "send_failed")
        .collect();
    assert!(!failures.is_empty());
    assert!(
        failures
            .iter()
            .all(|e| e["error"].as_str().unwrap_or_default().contains("401")),
        "{failures:?}"
    );
    assert_eq!(agents(&client, AgentQuery::default()).await, vec![]);

    // A real enrollment token is accepted.
    let token = client
        .create_token(&TokenCreate {
            description: "test agent".into(),
            scope: TokenScope::Agent,
            expires_in: None,
            expires_at: None,
        })
        .await
        .unwrap();
    let agent = PyAgent::start(
        &server.http_url(),
        "env=tok",
        out.path(),
        &[("OPAMP_TOKEN", &token.token), ("AGENT_SECONDS", "3")],
    );
    let (code, events) = agent.wait();
    assert_eq!(code, 0, "events: {events:?}");
    let listed = agents(&client, AgentQuery::default()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].labels.get("env").map(String::as_str), Some("tok"));
    // The token never shows up in the server's log.
    assert!(
        !server
            .stderr
            .lock()
            .unwrap()
            .join("\n")
            .contains(&token.token)
    );
    server.stop();
}

// ------------------------------------------------------------------------------------------
// fleet-sim over WebSocket
// ------------------------------------------------------------------------------------------

/// Waits until exactly `n` agents match `query` and all of them satisfy `ok`.
async fn wait_all(
    client: &Client,
    what: &str,
    query: AgentQuery,
    n: usize,
    ok: impl Fn(&Agent) -> bool,
) -> Vec<Agent> {
    let ok = &ok;
    wait_for(what, || {
        let client = client.clone();
        let query = query.clone();
        async move {
            let list = client.list_agents(&query).await.ok()?;
            (list.len() == n && list.iter().all(ok)).then_some(list)
        }
    })
    .await
}

fn applied(hash: &str) -> impl Fn(&Agent) -> bool + '_ {
    move |a: &Agent| {
        a.connected
            && a.status == AgentStatus::Applied
            && a.remote_config_hash.as_deref() == Some(hash)
            && a.effective_config_hash.as_deref() == Some(hash)
            && a.healthy == Some(true)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_change_reaches_100_websocket_agents_all_applied() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given a group for fleet=a and 100 simulated collectors matching it
    let (pipeline, group) = make_group(&client, "fleet-a", &[("fleet", "a")]).await;
    let sim = Sim::start(
        &format!("ws://{}", server.opamp),
        &[
            "--agents",
            "100",
            "--labels",
            "fleet=a,host=h{i}",
            "--heartbeat",
            "5",
            "--quiet",
        ],
    );
    let by_group = AgentQuery {
        group_id: Some(group.id),
        ..Default::default()
    };
    wait_all(
        &client,
        "100 agents on revision 1",
        by_group.clone(),
        100,
        applied(&group.config_hash),
    )
    .await;

    // When the pipeline changes (a new group revision)
    let mut spec = pipeline_spec("fleet-a");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    spec.processors.push(ProcessorSpec {
        id: "memory_limiter".into(),
        config: json!({"limit_mib": 400, "check_interval": "1s"}),
    });
    client
        .update_pipeline(pipeline.id, &spec, None)
        .await
        .unwrap();
    let group2 = client.get_agent_group(group.id).await.unwrap();
    assert_ne!(group2.config_hash, group.config_hash);

    // Then all 100 report APPLIED with the new hash, healthy, with it as effective config
    let list = wait_all(
        &client,
        "100 agents on revision 2",
        by_group,
        100,
        applied(&group2.config_hash),
    )
    .await;
    assert!(list.iter().all(|a| a.transport == Some(AgentTransport::Ws)));
    let summary = sim.stop();
    assert_eq!(summary["status"], json!({"APPLIED": 100}));
    assert_eq!(
        summary["hashes"],
        json!({ group2.config_hash.clone(): 100 })
    );
    assert_eq!(summary["configs_received"], 200);
    assert_eq!(summary["reconnects"], 0);
    assert_eq!(summary["connect_failures"], 0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn label_change_moves_an_agent_between_groups() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (_, eu) = make_group(&client, "region-eu", &[("region", "eu")]).await;
    let (_, us) = make_group(&client, "region-us", &[("region", "us")]).await;
    assert_ne!(eu.config_hash, us.config_hash);
    let mut sim = Sim::start(
        &format!("ws://{}", server.opamp),
        &[
            "--agents",
            "2",
            "--labels",
            "region=eu,n={i}",
            "--heartbeat",
            "5",
        ],
    );
    wait_all(
        &client,
        "both agents in eu",
        AgentQuery {
            group_id: Some(eu.id),
            ..Default::default()
        },
        2,
        applied(&eu.config_hash),
    )
    .await;

    // When agent 0's labels change to region=us
    sim.command("labels 0 region=us,n=0");

    // Then it moves to the us group and runs its config; agent 1 stays
    let moved = wait_all(
        &client,
        "agent 0 in us",
        AgentQuery {
            group_id: Some(us.id),
            ..Default::default()
        },
        1,
        applied(&us.config_hash),
    )
    .await;
    assert_eq!(moved[0].labels.get("n").map(String::as_str), Some("0"));
    assert_eq!(
        moved[0].labels.get("region").map(String::as_str),
        Some("us")
    );
    let stayed = agents(
        &client,
        AgentQuery {
            group_id: Some(eu.id),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stayed.len(), 1);
    assert_eq!(stayed[0].labels.get("n").map(String::as_str), Some("1"));
    assert_eq!(sim.events("labels_changed").len(), 1);

    // An agent whose labels match no group becomes unmanaged and keeps its last config.
    sim.command("labels 1 region=mars,n=1");
    let unmanaged = wait_all(
        &client,
        "agent 1 unmanaged",
        AgentQuery {
            selector: selector(&[("region", "mars")]),
            ..Default::default()
        },
        1,
        |a| a.group_id.is_none(),
    )
    .await;
    assert_eq!(unmanaged[0].status, AgentStatus::Unmanaged);
    assert_eq!(unmanaged[0].config_hash, None);
    let summary = sim.stop();
    assert_eq!(summary["configs_received"], 3);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn server_restart_agents_reconnect_and_report_full_state() {
    restart_scenario(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_restart_on_postgres_agents_reconnect_and_report_full_state() {
    // A fresh schema, created (and migrated) here, used by the server through search_path.
    let schema = fresh_schema();
    drop(
        otaas_server::store::postgres::PgStore::open(&pg_url(), Some(&schema))
            .await
            .unwrap(),
    );
    let url = format!("{}?options[search_path]={schema}", pg_url());
    let result = tokio::spawn(async move { restart_scenario(&["--database", &url]).await }).await;
    otaas_server::store::postgres::PgStore::drop_schema(&pg_url(), &schema)
        .await
        .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Given agents heartbeating after their last full report, when the server crashes (no final
/// flush) and starts again, then the stored last-seen times are those of the heartbeats
/// (written on their own, `Store::touch_agents`), not of the last full report.
#[tokio::test]
async fn heartbeat_times_survive_a_crash() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (_, group) = make_group(&client, "crash", &[("site", "c")]).await;
    let sim = Sim::start(
        &format!("ws://{}", server.opamp),
        &["--agents", "3", "--labels", "site=c", "--heartbeat", "1"],
    );
    let query = AgentQuery {
        group_id: Some(group.id),
        ..Default::default()
    };
    let before = wait_all(
        &client,
        "3 agents applied",
        query.clone(),
        3,
        applied(&group.config_hash),
    )
    .await;
    let latest = wait_for("heartbeats after applying", || async {
        let now = agents(&client, query.clone()).await;
        let heard = now.len() == 3
            && now.iter().zip(&before).all(|(n, b)| {
                n.last_seen.unwrap() >= b.last_seen.unwrap() + chrono::Duration::seconds(3)
            });
        heard.then_some(now)
    })
    .await;
    // Past one period of the last-seen writer, then a crash
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.kill();
    let _ = sim.stop();
    // A new OpAMP address: the agents must not report to it
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let stored = agents(&server.client(), query).await;
    assert_eq!(stored.len(), 3);
    for (s, l) in stored.iter().zip(&latest) {
        assert_eq!(s.id, l.id);
        assert!(!s.connected);
        assert!(
            s.last_seen.unwrap() >= l.last_seen.unwrap() - chrono::Duration::milliseconds(1),
            "agent {}: stored last_seen {:?}, seen before the crash {:?}",
            s.id,
            s.last_seen,
            l.last_seen
        );
    }
    server.stop();
}

/// Given 20 WebSocket agents on a group, when the server restarts on the same data and
/// address, then nothing is lost and every agent reconnects and reports its full state.
async fn restart_scenario(extra: &[&str]) {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", extra);
    let opamp = server.opamp.clone();
    let client = server.client();
    let (_, group) = make_group(&client, "restart", &[("site", "r")]).await;
    let sim = Sim::start(
        &format!("ws://{opamp}"),
        &[
            "--agents",
            "20",
            "--labels",
            "site=r,host=h{i}",
            "--heartbeat",
            "2",
        ],
    );
    let query = AgentQuery {
        group_id: Some(group.id),
        ..Default::default()
    };
    let before = wait_all(
        &client,
        "20 agents applied",
        query.clone(),
        20,
        applied(&group.config_hash),
    )
    .await;

    // When the server restarts on the same data and address
    server.stop();
    let server = Serve::start(data.path(), &opamp, extra);
    let client = server.client();
    // Then nothing was lost: the same 20 agents with their labels, status and group, from the store
    let stored = agents(&client, query.clone()).await;
    assert_eq!(
        stored
            .iter()
            .map(|a| (&a.id, &a.labels))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|a| (&a.id, &a.labels))
            .collect::<Vec<_>>()
    );
    // And every agent reconnects and, asked for it, reports its full state again
    let after = wait_all(
        &client,
        "20 agents reconnected",
        query,
        20,
        applied(&group.config_hash),
    )
    .await;
    assert_eq!(
        after.iter().map(|a| &a.id).collect::<Vec<_>>(),
        before.iter().map(|a| &a.id).collect::<Vec<_>>()
    );
    let full = wait_for("full state reports", || async {
        let n = sim.events("full_state_requested").len();
        (n >= 20).then_some(n)
    })
    .await;
    assert!(full >= 20);
    let unavailable = sim.events("server_error");
    let summary = sim.stop();
    assert_eq!(summary["status"], json!({"APPLIED": 20}));
    assert_eq!(
        summary["configs_received"], 20,
        "no config is re-sent to agents that already run it"
    );
    assert!(summary["reconnects"].as_u64().unwrap() >= 20);
    // Shutting down, the old server told every WebSocket agent Unavailable with retry info.
    assert!(
        summary["server_errors"].as_u64().unwrap() >= 20,
        "{summary}"
    );
    for e in &unavailable {
        assert_eq!(e["type"], "Unavailable");
        let retry = e["retry_after_ms"].as_u64().unwrap();
        assert!((1000..5000).contains(&retry), "retry {retry} ms");
    }
    assert_eq!(agents(&client, AgentQuery::default()).await.len(), 20);
    server.stop();
}

// ------------------------------------------------------------------------------------------
// Malformed input over real sockets
// ------------------------------------------------------------------------------------------

fn hello(uid: [u8; 16], seq: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: bytes::Bytes::copy_from_slice(&uid),
        sequence_num: seq,
        capabilities: 1,
        ..Default::default()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_binary(ws: &mut Ws) -> ServerToAgent {
    let msg = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .expect("reply in time")
        .expect("open")
        .expect("no error");
    match msg {
        Message::Binary(data) => framing::decode(&data, 1 << 20).unwrap(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

async fn expect_refusal(ws: &mut Ws, code: u16, message: &str) {
    let reply = next_binary(ws).await;
    let err = reply.error_response.expect("a ServerErrorResponse");
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(
        err.error_message.contains(message),
        "{:?} does not contain {message:?}",
        err.error_message
    );
    let close = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .expect("close in time");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), code),
        other => panic!("expected a close frame with {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_close_that_connection_and_others_keep_being_served() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-max-message-bytes", "65536"],
    );
    let url = format!("ws://{}/v1/opamp", server.opamp);
    let connect = || async {
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("ws connect")
            .0
    };

    // A well-behaved agent connects first.
    let mut good = connect().await;
    let uid = *uuid::Uuid::now_v7().as_bytes();
    good.send(Message::Binary(framing::encode(&hello(uid, 0)).into()))
        .await
        .unwrap();
    let first = next_binary(&mut good).await;
    assert_eq!(first.capabilities, 0x27);
    assert_eq!(first.instance_uid.as_ref(), &uid);

    // Non-zero varint header, truncated protobuf, an oversize message, a text frame.
    let cases: [(Message, u16, &str); 4] = [
        (
            Message::Binary(vec![0x05, 0x08, 0x01].into()),
            1002,
            "unsupported websocket message header 5",
        ),
        (
            Message::Binary(vec![0x00, 0x0a, 0x64].into()),
            1007,
            "decoding protobuf",
        ),
        (
            Message::Binary(vec![0u8; 70_000].into()),
            1009,
            "exceeds the limit of 65536 bytes",
        ),
        (Message::Text("hello".into()), 1003, "binary"),
    ];
    for (frame, code, message) in cases {
        let mut bad = connect().await;
        bad.send(frame).await.unwrap();
        expect_refusal(&mut bad, code, message).await;
    }
    // A 15-byte uid is a bad request too.
    let mut bad = connect().await;
    let mut short = hello(uid, 0);
    short.instance_uid = bytes::Bytes::from_static(&[1; 15]);
    bad.send(Message::Binary(framing::encode(&short).into()))
        .await
        .unwrap();
    let reply = next_binary(&mut bad).await;
    assert_eq!(
        reply.error_response.unwrap().error_message,
        "instance_uid must be 16 bytes, got 15"
    );

    // The good connection is still served: a sequence gap is answered with ReportFullState.
    good.send(Message::Binary(framing::encode(&hello(uid, 7)).into()))
        .await
        .unwrap();
    let reply = next_binary(&mut good).await;
    assert_eq!(reply.flags, 1);
    assert_eq!(reply.error_response, None);

    // Plain HTTP: wrong content type, undecodable body, gzip bomb.
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, ct: &'static str, gzip: bool| {
        let mut req = http
            .post(server.http_url())
            .header("content-type", ct)
            .body(body);
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        req.send()
    };
    assert_eq!(
        post(hello(uid, 8).encode_to_vec(), "application/json", false)
            .await
            .unwrap()
            .status(),
        415
    );
    let resp = post(vec![0x0a, 0x64], "application/x-protobuf", false)
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let err = ServerToAgent::decode(resp.bytes().await.unwrap())
        .unwrap()
        .error_response
        .unwrap();
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 65536);
    assert_eq!(
        post(bomb, "application/x-protobuf", true)
            .await
            .unwrap()
            .status(),
        413
    );
    // A gzip-compressed valid message is accepted; the reply is not gzipped unless asked for.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&hello(*uuid::Uuid::now_v7().as_bytes(), 0).encode_to_vec())
        .unwrap();
    let resp = http
        .post(server.http_url())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "identity")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(
        ServerToAgent::decode(resp.bytes().await.unwrap())
            .unwrap()
            .capabilities,
        0x27
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn http_agents_pick_up_a_new_revision_on_their_next_poll() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (pipeline, group) = make_group(&client, "http-fleet", &[("fleet", "h")]).await;
    let sim = Sim::start(
        &server.http_url(),
        &[
            "--agents",
            "5",
            "--labels",
            "fleet=h",
            "--transport",
            "http",
            "--heartbeat",
            "1",
            "--quiet",
        ],
    );
    let query = AgentQuery {
        group_id: Some(group.id),
        ..Default::default()
    };
    wait_all(
        &client,
        "5 HTTP agents applied",
        query.clone(),
        5,
        applied(&group.config_hash),
    )
    .await;
    let mut spec = pipeline_spec("http-fleet");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"grpc": {}}}));
    client
        .update_pipeline(pipeline.id, &spec, None)
        .await
        .unwrap();
    let group2 = client.get_agent_group(group.id).await.unwrap();
    assert_ne!(group2.config_hash, group.config_hash);
    let list = wait_all(
        &client,
        "5 HTTP agents on revision 2",
        query,
        5,
        applied(&group2.config_hash),
    )
    .await;
    assert!(
        list.iter()
            .all(|a| a.transport == Some(AgentTransport::Http))
    );
    let summary = sim.stop();
    assert_eq!(summary["status"], json!({"APPLIED": 5}));
    assert_eq!(summary["configs_received"], 10);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_component_is_reported_failed_and_secrets_never_served() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // A pipeline exporting to tempo over OTLP with a secret header.
    let mut spec = pipeline_spec("secret");
    spec.receivers
        .insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
    client
        .create_exporter_binding(&binding_spec("secret", pipeline.id))
        .await
        .unwrap();
    let mut g = group_spec("secret", vec![pipeline.id]);
    g.selector = selector(&[("tier", "s")]);
    let group = client.create_agent_group(&g).await.unwrap();
    let config = client.agent_group_config(group.id).await.unwrap();
    // The served group config is redacted; its sha256 is that of the real document agents get.
    assert!(!config.yaml.contains("secret-org"));
    assert!(config.yaml.contains("<redacted>"));
    assert_ne!(
        otaas_opamp::hash::to_hex(&otaas_opamp::hash::sha256(config.yaml.as_bytes())),
        config.sha256
    );

    // One agent has every component, two lack the otlp exporter.
    let ok = Sim::start(
        &format!("ws://{}", server.opamp),
        &["--labels", "tier=s,build=full"],
    );
    let bad = Sim::start(
        &format!("ws://{}", server.opamp),
        &[
            "--agents",
            "2",
            "--labels",
            "tier=s,build=slim",
            "--reject-components",
            "otlp",
        ],
    );
    let full = wait_all(
        &client,
        "the full build applied",
        AgentQuery {
            selector: selector(&[("build", "full")]),
            ..Default::default()
        },
        1,
        applied(&config.sha256),
    )
    .await;
    let slim = wait_all(
        &client,
        "the slim builds failed",
        AgentQuery {
            selector: selector(&[("build", "slim")]),
            ..Default::default()
        },
        2,
        |a| a.status == AgentStatus::Failed,
    )
    .await;
    for a in &slim {
        assert_eq!(
            a.remote_config_error.as_deref(),
            Some(
                "unknown receiver type \"otlp\" for \"otlp/secret\": component \"otlp\" is not available in this collector build"
            )
        );
        assert_eq!(
            a.remote_config_hash.as_deref(),
            Some(config.sha256.as_str())
        );
    }
    // The effective config is stored and served redacted; its hash is of the real config.
    let detail = client.get_agent(&full[0].id).await.unwrap();
    // The health tree: the agent, and one component per pipeline of the config it runs.
    let health = detail.health.clone().unwrap();
    assert!(health.healthy);
    assert_eq!(
        health
            .components
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["pipeline:metrics/secret", "pipeline:traces/secret"]
    );
    assert!(
        health
            .components
            .values()
            .all(|c| c.healthy && c.status == "StatusOK")
    );
    assert_eq!(detail.agent_version.as_deref(), Some("0.1.0-sim"));
    assert!(detail.capabilities.contains(&"ReportsHealth".to_owned()));
    // Filters: health and group.
    let healthy = agents(
        &client,
        AgentQuery {
            health: Some(HealthFilter::Healthy),
            group_id: Some(group.id),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(healthy.len(), 3);
    let unhealthy = agents(
        &client,
        AgentQuery {
            health: Some(HealthFilter::Unhealthy),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(unhealthy, vec![]);
    // The agent runs the real config (same hash); we serve it redacted, like the group config.
    assert_eq!(
        detail.effective_config_hash.as_deref(),
        Some(config.sha256.as_str())
    );
    assert_eq!(
        detail.effective_config.as_deref(),
        Some(config.yaml.as_str())
    );
    ok.stop();
    bad.stop();
    server.stop();
    // Nor does the secret reach the stored agent rows.
    let url = format!("sqlite://{}", data.path().join("otaas.db").display());
    let store = otaas_server::store::sqlite::SqliteStore::open(&url)
        .await
        .unwrap();
    let rows = otaas_server::store::Store::list_agents(&store)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| !r.state.contains("secret-org")));
    assert!(rows.iter().any(|r| r.state.contains("<redacted>")));
}

/// A string `KeyValue` of OpAMP messages.
fn kv(key: &str, value: &str) -> otaas_opamp::proto::KeyValue {
    use otaas_opamp::proto::{AnyValue, KeyValue, any_value};
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// A component type with its metadata (key, value).
type TypeMeta<'a> = (&'a str, &'a [(&'a str, &'a str)]);

/// `AvailableComponents` of a build: kind → (type, metadata).
fn build_components(kinds: &[(&str, &[TypeMeta])]) -> otaas_opamp::proto::AvailableComponents {
    use otaas_opamp::proto::{AvailableComponents, ComponentDetails};
    let components = kinds
        .iter()
        .map(|(kind, types)| {
            let sub = types
                .iter()
                .map(|(ty, meta)| {
                    let details = ComponentDetails {
                        metadata: meta.iter().map(|(k, v)| kv(k, v)).collect(),
                        sub_component_map: Default::default(),
                    };
                    ((*ty).to_owned(), details)
                })
                .collect();
            let details = ComponentDetails {
                metadata: Vec::new(),
                sub_component_map: sub,
            };
            ((*kind).to_owned(), details)
        })
        .collect();
    AvailableComponents {
        components,
        hash: bytes::Bytes::from_static(b"a build with a logs-only mylog"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_an_agent_reports_a_component_lacks_is_refused_with_unsupported_signal() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Given a pipeline for logs and metrics whose receiver type the repo's table does not know
    // (so the renderer puts it into both), in a group the agent below joins
    let mut spec = pipeline_spec("sig");
    spec.signals = vec![Signal::Metrics, Signal::Logs];
    spec.receivers.insert("mylog".into(), json!({}));
    assert_eq!(
        otaas_api::components::listed(otaas_api::components::Kind::Receiver, "mylog"),
        None
    );
    let p = client.create_pipeline(&spec).await.unwrap();
    let mut binding = binding_spec("sig", p.id);
    binding.destinations[0].kind = "debug".into();
    binding.destinations[0].endpoint = None;
    binding.destinations[0].headers.clear();
    client.create_exporter_binding(&binding).await.unwrap();
    let mut group = group_spec("sig", vec![p.id]);
    group.selector = selector(&[("fleet", "sig")]);
    let group = client.create_agent_group(&group).await.unwrap();
    // And a connected agent whose build reports mylog as logs-only
    let url = format!("ws://{}/v1/opamp", server.opamp);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("ws connect");
    let uid = *uuid::Uuid::now_v7().as_bytes();
    let id = uuid::Uuid::from_bytes(uid).simple().to_string();
    let mut msg = hello(uid, 0);
    msg.agent_description = Some(otaas_opamp::proto::AgentDescription {
        identifying_attributes: vec![kv("service.name", "hand-made")],
        non_identifying_attributes: vec![kv("fleet", "sig")],
    });
    let levels: &[(&str, &str)] = &[
        ("stability.logs", "Beta"),
        ("stability.metrics", "Undefined"),
        ("stability.traces", "Undefined"),
    ];
    msg.available_components = Some(build_components(&[
        ("receivers", &[("mylog", levels)]),
        ("processors", &[("batch", &[]), ("memory_limiter", &[])]),
        (
            "exporters",
            &[("debug", &[]), ("otlp", &[]), ("otlphttp", &[])],
        ),
    ]));
    ws.send(Message::Binary(framing::encode(&msg).into()))
        .await
        .unwrap();
    next_binary(&mut ws).await;
    let agent = wait_for("the agent in its group", || async {
        let a = client.get_agent(&id).await.ok()?;
        (a.connected && a.group_id == Some(group.id)).then_some(a)
    })
    .await;
    // (the agent view shows what it reported per signal, only for the type that reported it)
    assert_eq!(
        agent.component_signals,
        Some(BTreeMap::from([(
            "receivers".to_owned(),
            BTreeMap::from([("mylog".to_owned(), vec!["logs".to_owned()])])
        )]))
    );

    // When the pipeline is checked and written as it is (logs and metrics)
    spec.description = "changed".into();
    let check = |spec: &PipelineSpec| ComponentCheck {
        pipeline: Some(PipelineCheck {
            id: Some(p.id),
            spec: spec.clone(),
        }),
        agent_group: None,
        exporter_binding: None,
    };
    let dry = client.component_check(&check(&spec)).await.unwrap_err();
    let err = client.update_pipeline(p.id, &spec, None).await.unwrap_err();
    // Then both are refused with 422 unsupported_signal at `signals`, naming the agent
    for err in [dry, err] {
        assert_eq!(err.status(), Some(422), "{err}");
        assert_eq!(err.code(), Some(ErrorCode::UnsupportedSignal), "{err}");
        let ClientError::Api { error, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(error.field.as_deref(), Some("signals"));
        assert_eq!(
            error.unsupported_signals,
            [UnsupportedSignal {
                kind: "receivers".into(),
                component_type: "mylog".into(),
                signal: "metrics".into(),
                group: "sig".into(),
                agents: vec![id.clone()],
            }]
        );
        assert!(error.message.contains(&id), "{}", error.message);
    }
    // And nothing was stored
    assert_eq!(
        client.get_pipeline(p.id).await.unwrap().revision,
        p.revision
    );

    // When the pipeline carries logs only
    spec.signals = vec![Signal::Logs];
    // Then the check passes, judging the agent, and the write is accepted
    let ok = client.component_check(&check(&spec)).await.unwrap();
    assert_eq!((ok.groups, ok.agents), (vec!["sig".to_owned()], 1));
    let p2 = client.update_pipeline(p.id, &spec, None).await.unwrap();
    assert_eq!(p2.signals, [Signal::Logs]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_instance_uid_gets_a_new_uid() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    // Two simulators deriving the same uid (same seed, same index).
    let a = Sim::start(
        &format!("ws://{}", server.opamp),
        &["--uid-seed", "42", "--labels", "who=a"],
    );
    wait_all(&client, "agent a", AgentQuery::default(), 1, |x| {
        x.connected
    })
    .await;
    let b = Sim::start(
        &format!("ws://{}", server.opamp),
        &["--uid-seed", "42", "--labels", "who=b"],
    );
    let both = wait_all(
        &client,
        "two distinct agents",
        AgentQuery {
            connected: Some(true),
            ..Default::default()
        },
        2,
        |x| x.labels.contains_key("who"),
    )
    .await;
    assert_ne!(both[0].id, both[1].id);
    let renamed = wait_for("b to be told its new uid", || async {
        b.events("new_uid").pop()
    })
    .await;
    let new_uid = renamed["new_uid"].as_str().unwrap().to_owned();
    let b_agent = client.get_agent(&new_uid).await.unwrap();
    assert_eq!(b_agent.labels.get("who").map(String::as_str), Some("b"));
    assert_eq!(a.events("new_uid").len(), 0);
    a.stop();
    b.stop();
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn random_garbage_frames_each_get_an_error_and_a_close() {
    use rand::{Rng, SeedableRng};
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let url = format!("ws://{}/v1/opamp", server.opamp);
    // Seeded, so a failure is reproducible.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0_9a4b);
    for round in 0..48 {
        let len = rng.random_range(1..300);
        let mut frame: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            // Half of them get a valid header, so the protobuf decoder sees the garbage.
            frame[0] = 0;
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        ws.send(Message::Binary(frame.clone().into()))
            .await
            .unwrap();
        let reply = next_binary(&mut ws).await;
        let err = reply
            .error_response
            .unwrap_or_else(|| panic!("no error for frame {frame:02x?}"));
        assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
        match tokio::time::timeout(TIMEOUT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(close)))) => {
                assert!([1002, 1007].contains(&u16::from(close.code)), "{close:?}");
            }
            other => panic!("expected a close after {frame:02x?}, got {other:?}"),
        }
    }
    // The server still serves a well-formed agent.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let uid = *uuid::Uuid::now_v7().as_bytes();
    ws.send(Message::Binary(framing::encode(&hello(uid, 0)).into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut ws).await.capabilities, 0x27);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_agents_need_a_valid_token_when_required() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &["--require-agent-token"]);
    let client = server.client();
    let url = format!("ws://{}", server.opamp);
    // Refused before the upgrade: 401, nothing registered.
    let wrong = Sim::start(&url, &["--agents", "3", "--token", "otaas_agent_nope"]);
    wait_for("three refusals", || async {
        let n = wrong.events("connect_failed").len();
        (n >= 3).then_some(n)
    })
    .await;
    let refusals = wrong.events("connect_failed");
    assert!(
        refusals
            .iter()
            .all(|e| e["auth"] == true && e["error"] == "http status 401 Unauthorized"),
        "{refusals:?}"
    );
    let summary = wrong.stop();
    assert_eq!(summary["connects"], 0);
    assert_eq!(agents(&client, AgentQuery::default()).await, vec![]);
    // An agent enrollment token is accepted.
    let token = client
        .create_token(&TokenCreate {
            description: "sim".into(),
            scope: TokenScope::Agent,
            expires_in: None,
            expires_at: None,
        })
        .await
        .unwrap();
    let right = Sim::start(&url, &["--agents", "3", "--token", &token.token]);
    wait_all(
        &client,
        "three agents",
        AgentQuery {
            connected: Some(true),
            ..Default::default()
        },
        3,
        |a| a.transport == Some(AgentTransport::Ws),
    )
    .await;
    assert_eq!(right.stop()["auth_failures"], 0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_connection_limit_agents_are_told_to_retry_later() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-max-connections", "2"],
    );
    let client = server.client();
    let url = format!("ws://{}", server.opamp);
    let first = Sim::start(&url, &["--agents", "2", "--labels", "sim=first"]);
    wait_all(
        &client,
        "two agents",
        AgentQuery {
            connected: Some(true),
            ..Default::default()
        },
        2,
        |_| true,
    )
    .await;
    // A third agent is refused with 503 + Retry-After...
    let late = Sim::start(&url, &["--labels", "sim=late"]);
    let refused = wait_for("the late agent to be refused", || async {
        late.events("connect_failed").pop()
    })
    .await;
    assert_eq!(refused["error"], "http status 503 Service Unavailable");
    assert_eq!(refused["auth"], false);
    // ...and gets in once there is room.
    first.stop();
    wait_all(
        &client,
        "the late agent connected",
        AgentQuery {
            selector: selector(&[("sim", "late")]),
            ..Default::default()
        },
        1,
        |a| a.connected,
    )
    .await;
    let summary = late.stop();
    assert_eq!(summary["connects"], 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_api_rejects_bad_filters_and_unknown_ids() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("http://{}/api/v1{path}", server.api))
            .bearer_auth(ADMIN)
            .send()
    };
    for (path, field) in [
        ("/agents?health=meh", "health"),
        ("/agents?connected=maybe", "connected"),
        ("/agents?selector=novalue", "selector"),
        ("/agents?group_id=nope", "group_id"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{path}");
        assert_eq!(body["error"]["field"], field, "{path}");
    }
    let resp = get("/agents/0123456789abcdef0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // Without the admin token: 401.
    let resp = http
        .get(format!("http://{}/api/v1/agents", server.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_interval_is_offered_and_a_silent_agent_is_marked_disconnected() {
    let data = tempfile::tempdir().unwrap();
    // Serve::start offers a 2 s heartbeat.
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let url = format!("ws://{}/v1/opamp", server.opamp);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let uid = *uuid::Uuid::now_v7().as_bytes();
    let mut msg = hello(uid, 0);
    // ReportsStatus | ReportsHeartbeat | AcceptsOpAMPConnectionSettings
    msg.capabilities = 0x1 | 0x2000 | 0x100;
    msg.agent_description = Some(Default::default());
    ws.send(Message::Binary(framing::encode(&msg).into()))
        .await
        .unwrap();
    let reply = next_binary(&mut ws).await;
    let offer = reply.connection_settings.unwrap().opamp.unwrap();
    assert_eq!(offer.heartbeat_interval_seconds, 2);
    assert_eq!(offer.destination_endpoint, url);
    let id = otaas_opamp::hash::to_hex(&uid);
    assert!(client.get_agent(&id).await.unwrap().connected);
    // The agent stays silent for more than 3 intervals, not even answering pings (it does not
    // read its socket): the server closes the session, and the agent is disconnected.
    wait_for("the silent agent to be marked disconnected", || {
        let client = client.clone();
        let id = id.clone();
        async move { (!client.get_agent(&id).await.ok()?.connected).then_some(()) }
    })
    .await;
    loop {
        match tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("the server closes the silent session")
        {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
                break;
            }
            // Answering a queued ping can find the socket already gone: closed all the same.
            None | Some(Err(_)) => break,
            other => panic!("expected pings then a close, got {other:?}"),
        }
    }
    // A heartbeat on a new connection brings it back.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Message::Binary(framing::encode(&hello(uid, 1)).into()))
        .await
        .unwrap();
    wait_for("the agent to be connected again", || {
        let client = client.clone();
        let id = id.clone();
        async move { client.get_agent(&id).await.ok()?.connected.then_some(()) }
    })
    .await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_sim_stops_by_itself_after_its_duration() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &[]);
    let client = server.client();
    let (_, group) = make_group(&client, "timed", &[("t", "1")]).await;
    let out = Command::new(otaas_testkit::bin::otaas())
        .args(["fleet-sim", "--server", &format!("ws://{}", server.opamp)])
        .args([
            "--agents",
            "3",
            "--labels",
            "t=1",
            "--duration",
            "3",
            "--quiet",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run fleet-sim");
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // --quiet: only the start and the summary.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "started");
    assert_eq!(lines[1]["event"], "summary");
    assert_eq!(lines[1]["status"], json!({"APPLIED": 3}));
    assert_eq!(lines[1]["hashes"], json!({ group.config_hash.clone(): 3 }));
    assert_eq!(lines[1]["connected_at_stop"], 3);
    // They said goodbye.
    wait_all(
        &client,
        "3 disconnected agents",
        AgentQuery {
            connected: Some(false),
            ..Default::default()
        },
        3,
        |_| true,
    )
    .await;
    server.stop();
}

/// A private CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "otaas opamp test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["agent-1".to_string()]).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "agent-1");
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    (
        write("ca.pem", ca_cert.pem()),
        write("server.pem", server_cert.pem()),
        write("server.key", server_key.serialize_pem()),
        write("client.pem", client_cert.pem()),
        write("client.key", client_key.serialize_pem()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn python_peer_over_tls_and_mutual_tls() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key, client_cert, client_key) = tls_files(certs.path());
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let out = tempfile::tempdir().unwrap();

    // TLS: the agent trusts our CA and connects over https.
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-tls-cert", &s(&cert), "--opamp-tls-key", &s(&key)],
    );
    let url = format!("https://{}/v1/opamp", server.opamp);
    let agent = PyAgent::start(
        &url,
        "env=tls",
        out.path(),
        &[("OPAMP_CA", &s(&ca)), ("AGENT_SECONDS", "3")],
    );
    let (code, events) = agent.wait();
    assert_eq!(code, 0, "{events:?}");
    let listed = agents(&server.client(), AgentQuery::default()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].labels.get("env").map(String::as_str), Some("tls"));
    // Without our CA it refuses the server.
    let agent = PyAgent::start(&url, "env=tls", out.path(), &[("AGENT_SECONDS", "2")]);
    assert_eq!(agent.wait().0, 2);
    server.stop();

    // Mutual TLS: without a client certificate the handshake fails; with one it works.
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &[
            "--opamp-tls-cert",
            &s(&cert),
            "--opamp-tls-key",
            &s(&key),
            "--opamp-tls-client-ca",
            &s(&ca),
        ],
    );
    let url = format!("https://{}/v1/opamp", server.opamp);
    let agent = PyAgent::start(
        &url,
        "env=mtls",
        out.path(),
        &[("OPAMP_CA", &s(&ca)), ("AGENT_SECONDS", "2")],
    );
    assert_eq!(agent.wait().0, 2);
    assert_eq!(
        agents(&server.client(), AgentQuery::default()).await,
        vec![]
    );
    let agent = PyAgent::start(
        &url,
        "env=mtls",
        out.path(),
        &[
            ("OPAMP_CA", &s(&ca)),
            ("OPAMP_CLIENT_CERT", &s(&client_cert)),
            ("OPAMP_CLIENT_KEY", &s(&client_key)),
            ("AGENT_SECONDS", "3"),
        ],
    );
    let (code, events) = agent.wait();
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(
        agents(&server.client(), AgentQuery::default()).await.len(),
        1
    );
    server.stop();
}

#[test]
fn bad_tls_files_stop_the_server_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(otaas_testkit::bin::otaas())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--opamp-listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN,
        ])
        .args([
            "--opamp-tls-cert",
            "/nonexistent/cert.pem",
            "--opamp-tls-key",
            "/nonexistent/key.pem",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("OTAAS_DATABASE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("otaas: opamp: reading /nonexistent/cert.pem"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_sim_over_wss_and_https_with_a_private_ca() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key, _, _) = tls_files(certs.path());
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let server = Serve::start(
        data.path(),
        "127.0.0.1:0",
        &["--opamp-tls-cert", &s(&cert), "--opamp-tls-key", &s(&key)],
    );
    let client = server.client();
    let (_, group) = make_group(&client, "tls-fleet", &[("sec", "tls")]).await;
    let ws = Sim::start(
        &format!("wss://{}", server.opamp),
        &[
            "--agents",
            "3",
            "--labels",
            "sec=tls,via=ws",
            "--ca-cert",
            &s(&ca),
            "--heartbeat",
            "5",
        ],
    );
    let http = Sim::start(
        &format!("https://{}", server.opamp),
        &[
            "--agents",
            "2",
            "--labels",
            "sec=tls,via=http",
            "--transport",
            "http",
            "--ca-cert",
            &s(&ca),
            "--heartbeat",
            "1",
        ],
    );
    wait_all(
        &client,
        "5 agents over TLS applied",
        AgentQuery {
            group_id: Some(group.id),
            ..Default::default()
        },
        5,
        applied(&group.config_hash),
    )
    .await;
    assert_eq!(ws.stop()["status"], json!({"APPLIED": 3}));
    assert_eq!(http.stop()["status"], json!({"APPLIED": 2}));
    // Without the CA the server's certificate is refused.
    let untrusting = Sim::start(
        &format!("wss://{}", server.opamp),
        &["--labels", "sec=none"],
    );
    let failed = wait_for("a refused TLS handshake", || async {
        untrusting.events("connect_failed").pop()
    })
    .await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{failed}"
    );
    assert_eq!(untrusting.stop()["connects"], 0);
    server.stop();
}

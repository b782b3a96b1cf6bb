//! The real-collector benchmark: a real OpenTelemetry Collector under `otaas agent`, time from a
//! new revision to APPLIED on the server, against one simulated agent on the same server with
//! the same pipeline (the floor: the server's side of the push without a collector to restart).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use otaas_api::{DestinationSpec, PipelineSpec, ProcessorSpec, Signal};
use serde_json::json;
use tokio::process::Command;

use crate::error::BenchError;
use crate::fleet::{self, BenchGroup, PushResult};
use crate::plan::Plan;
use crate::procs::{self, Child, Database, Fleet, Server, Transport};
use crate::terraform::median;

/// The collector figure: median push times of the real collector and of the simulated agent.
#[derive(Clone, Debug)]
pub(crate) struct CollectorResult {
    pub(crate) pushes: usize,
    pub(crate) collector: Duration,
    pub(crate) simulated: Duration,
    pub(crate) config_bytes: usize,
}

/// `filelog` (an empty file) → `batch` → `otlphttp` to a closed local port: components every
/// collector build the setup installs has, and no data flows, so exporter errors never mix in.
fn pipeline(label: &str, log_file: &Path) -> (PipelineSpec, DestinationSpec) {
    let spec = PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: format!("bench-{label}"),
        description: "otaas bench (real collector)".to_owned(),
        signals: vec![Signal::Logs],
        receivers: BTreeMap::from([(
            "filelog".to_owned(),
            json!({"include": [log_file.to_string_lossy()], "start_at": "end"}),
        )]),
        processors: vec![ProcessorSpec {
            id: "batch".to_owned(),
            config: json!({}),
        }],
    };
    let destination = DestinationSpec {
        name: "out".to_owned(),
        kind: "otlphttp".to_owned(),
        endpoint: Some("http://127.0.0.1:9".to_owned()),
        headers: BTreeMap::new(),
        keep_headers: false,
        tls: None,
        config: json!({}),
    };
    (spec, destination)
}

/// Starts `otaas agent` with `collector` for the agents labelled `bench=<label>`.
fn start_agent(
    exe: &Path,
    server: &Server,
    collector: &Path,
    data_dir: &Path,
    label: &str,
) -> Result<Fleet, BenchError> {
    let mut cmd = Command::new(exe);
    procs::clean_env(&mut cmd);
    cmd.env("OTAAS_AGENT_TOKEN", &server.agent_token);
    cmd.arg("agent")
        .arg("--server")
        .arg(format!(
            "{}://{}/v1/opamp",
            server.opamp_scheme, server.opamp_addr
        ))
        .arg("--labels")
        .arg(format!("bench={label}"))
        .arg("--collector")
        .arg(collector)
        .arg("--data-dir")
        .arg(data_dir);
    let (child, stderr) = Child::spawn("otaas agent".to_owned(), cmd)?;
    child.drain(stderr);
    Ok(Fleet {
        children: vec![child],
    })
}

/// Pushes `reps` revisions to each group in turn (collector, then simulated agent) and returns the
/// median of each.
pub(crate) async fn run(
    plan: &Plan,
    database: &Database,
    collector: &Path,
    reps: usize,
) -> Result<CollectorResult, BenchError> {
    let exe = &plan.exe;
    let scratch = tempfile::Builder::new()
        .prefix("otaas-bench-collector-")
        .tempdir()
        .map_err(|e| BenchError::new("creating a scratch dir", e))?;
    let log_file = scratch.path().join("app.log");
    std::fs::write(&log_file, b"").map_err(|e| BenchError::new("creating the log file", e))?;
    let mut server = Server::start(exe, database, &plan.server_options(None)).await?;
    let client = server.client.clone();

    let make = |label: &'static str| {
        let (spec, dest) = pipeline(label, &log_file);
        let client = client.clone();
        async move { fleet::make_group_of(&client, label, spec, dest).await }
    };
    let mut real: BenchGroup = make("collector").await?;
    let mut sim: BenchGroup = make("simulated").await?;
    eprintln!("otaas bench: starting a real collector under otaas agent ...");
    let mut agent = start_agent(
        exe,
        &server,
        collector,
        &scratch.path().join("agent"),
        "collector",
    )?;
    let mut fleet = Fleet::start(
        exe,
        &server,
        &plan.fleet_spec("simulated", 1, Transport::Ws),
    )?;
    let result = async {
        fleet::wait_applied(&mut server, &mut agent, &real, 1).await?;
        fleet::wait_applied(&mut server, &mut fleet, &sim, 1).await?;
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        let mut config_bytes = 0;
        for _ in 0..reps.max(1) {
            agent.check_alive()?;
            let r: PushResult = fleet::push(&mut server, &mut real, 1).await?;
            config_bytes = r.config_bytes;
            ours.push(r.p100);
            fleet.check_alive()?;
            floor.push(fleet::push(&mut server, &mut sim, 1).await?.p100);
        }
        Ok(CollectorResult {
            pushes: ours.len(),
            collector: median(&mut ours),
            simulated: median(&mut floor),
            config_bytes,
        })
    }
    .await;
    agent.stop().await;
    fleet.stop().await;
    server.child.stop().await;
    result
}

//! The fleet benchmarks, on one backend: the idle WebSocket fleet (RSS per agent, CPU), the push
//! fan-out (time until the server recorded APPLIED for 50/99/100 % of the agents) and the HTTP
//! polling fleet (CPU). Each measures its baseline on the same server in the same run: the
//! server with no agent for the idle and HTTP figures, a one-agent push for the fan-out.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use otaas_api::{
    AgentGroup, AgentGroupSpec, Client, DestinationSpec, ExporterBindingSpec, GroupStatus,
    PipelineId, PipelineSpec, ProcessorSpec, RolloutSpec, Signal,
};
use serde_json::json;

use crate::error::BenchError;
use crate::plan::Plan;
use crate::procs::{self, Database, Fleet, FleetSpec, Server, ServerOptions, TlsFiles, Transport};

/// A pipeline and the all-at-once group over `bench=<label>` using it.
pub(crate) struct BenchGroup {
    pub(crate) label: String,
    pipeline: PipelineId,
    spec: PipelineSpec,
    pub(crate) group: AgentGroup,
    /// Revisions pushed so far by [`push`] (each makes the config different).
    pushes: u32,
}

/// Creates the pipeline (OTLP in, a batch processor, a debug exporter) and the group.
pub(crate) async fn make_group(client: &Client, label: &str) -> Result<BenchGroup, BenchError> {
    let spec = PipelineSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: format!("bench-{label}"),
        description: "otaas bench".to_owned(),
        signals: vec![Signal::Traces, Signal::Metrics],
        receivers: BTreeMap::from([("otlp".to_owned(), json!({"protocols": {"http": {}}}))]),
        processors: vec![ProcessorSpec {
            id: "batch".to_owned(),
            config: json!({}),
        }],
    };
    let debug = DestinationSpec {
        name: "debug".to_owned(),
        kind: "debug".to_owned(),
        endpoint: None,
        headers: BTreeMap::new(),
        keep_headers: false,
        tls: None,
        config: json!({}),
    };
    make_group_of(client, label, spec, debug).await
}

/// Creates the pipeline `spec` (whose first processor [`push`] changes), a binding to
/// `destination`, and the all-at-once group over `bench=<label>`.
pub(crate) async fn make_group_of(
    client: &Client,
    label: &str,
    spec: PipelineSpec,
    destination: DestinationSpec,
) -> Result<BenchGroup, BenchError> {
    let rest = |what: &str| format!("creating the {what} of group {label:?}");
    let pipeline = client
        .create_pipeline(&spec)
        .await
        .map_err(|e| BenchError::new(rest("pipeline"), e))?;
    let binding = ExporterBindingSpec {
        secrets: Default::default(),
        keep_secrets: false,
        name: format!("bench-{label}"),
        pipeline_id: pipeline.id,
        signals: None,
        destinations: vec![destination],
    };
    client
        .create_exporter_binding(&binding)
        .await
        .map_err(|e| BenchError::new(rest("exporter binding"), e))?;
    let group = client
        .create_agent_group(&AgentGroupSpec {
            pinned_revision: None,
            name: format!("bench-{label}"),
            selector: BTreeMap::from([("bench".to_owned(), label.to_owned())]),
            pipeline_ids: vec![pipeline.id],
            rollout: RolloutSpec::default(),
        })
        .await
        .map_err(|e| BenchError::new(rest("agent group"), e))?;
    Ok(BenchGroup {
        label: label.to_owned(),
        pipeline: pipeline.id,
        spec,
        group,
        pushes: 0,
    })
}

/// Polls the group's status until `n` agents report APPLIED for the current revision, checking
/// that the server and the fleet are still running.
pub(crate) async fn wait_applied(
    server: &mut Server,
    fleet: &mut Fleet,
    group: &BenchGroup,
    n: usize,
) -> Result<GroupStatus, BenchError> {
    // Generous: 10,000 agents connect in seconds; a hang still ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120 + n as u64 / 50);
    let mut last = None;
    loop {
        server.child.check_alive()?;
        fleet.check_alive()?;
        if let Ok(s) = server.client.group_status(group.group.id).await {
            if s.applied as usize >= n {
                return Ok(s);
            }
            last = Some(s);
        }
        if tokio::time::Instant::now() > deadline {
            let tails: Vec<String> = fleet.children.iter().map(|c| c.tail()).collect();
            return Err(BenchError::msg(format!(
                "timed out waiting for {n} agents of group {:?} to apply their config; last \
                 status: {}; fleet-sim output: {}; server output: {}",
                group.label,
                last.map(|s| format!(
                    "matched {} applied {} applying {} failed {} pending {}",
                    s.matched, s.applied, s.applying, s.failed, s.pending
                ))
                .unwrap_or_else(|| "none".to_owned()),
                tails.join(" | "),
                server.child.tail()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Time from a revision's creation until the server recorded APPLIED for a share of the group.
#[derive(Clone, Debug)]
pub(crate) struct PushResult {
    pub(crate) agents: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) p100: Duration,
    /// Size of the pushed YAML.
    pub(crate) config_bytes: usize,
}

/// How often the status is polled during a push: the resolution of the figures. Each poll
/// walks the group's agents on the server, so faster polling would cost the push itself; and 40
/// polls a second stay well under the default API rate limit (200 per second per token).
const PUSH_POLL: Duration = Duration::from_millis(25);

/// Creates a new revision of the group's config (a changed processor setting) and measures
/// until all `n` agents applied it. t0 is the revision's `created_at` (the server's clock; the
/// poller reads the same machine's clock).
pub(crate) async fn push(
    server: &mut Server,
    group: &mut BenchGroup,
    n: usize,
) -> Result<PushResult, BenchError> {
    group.pushes += 1;
    let mut spec = group.spec.clone();
    spec.processors[0].config = json!({"timeout": format!("{}ms", 200 + group.pushes)});
    let client = server.client.clone();
    client
        .update_pipeline(group.pipeline, &spec, None)
        .await
        .map_err(|e| BenchError::new("updating the pipeline", e))?;
    let updated = client
        .get_agent_group(group.group.id)
        .await
        .map_err(|e| BenchError::new("reading the group", e))?;
    let revision = updated.config_revision;
    let created = client
        .agent_group_revisions(group.group.id)
        .await
        .map_err(|e| BenchError::new("reading the group's revisions", e))?
        .into_iter()
        .find(|r| r.revision == revision)
        .map(|r| r.created_at)
        .ok_or_else(|| BenchError::msg(format!("revision {revision} is not in the history")))?;
    let config_bytes = client
        .agent_group_config(group.group.id)
        .await
        .map(|c| c.yaml.len())
        .unwrap_or(0);
    group.spec = spec;

    let targets = [n.div_ceil(2), (n * 99).div_ceil(100), n];
    let mut reached: [Option<DateTime<Utc>>; 3] = [None; 3];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while reached[2].is_none() {
        server.child.check_alive()?;
        if tokio::time::Instant::now() > deadline {
            return Err(BenchError::msg(format!(
                "timed out waiting for {n} agents to apply revision {revision}"
            )));
        }
        if let Ok(s) = client.group_status(group.group.id).await
            && s.revision == revision
        {
            let now = Utc::now();
            for (slot, target) in reached.iter_mut().zip(targets) {
                if slot.is_none() && s.applied as usize >= target {
                    *slot = Some(now);
                }
            }
        }
        tokio::time::sleep(PUSH_POLL).await;
    }
    let since = |t: Option<DateTime<Utc>>| {
        t.map(|t| (t - created).to_std().unwrap_or_default())
            .unwrap_or_default()
    };
    Ok(PushResult {
        agents: n,
        p50: since(reached[0]),
        p99: since(reached[1]),
        p100: since(reached[2]),
        config_bytes,
    })
}

/// The idle fleet's figures.
#[derive(Clone, Debug)]
pub(crate) struct IdleResult {
    pub(crate) agents: usize,
    pub(crate) rss_0: u64,
    pub(crate) rss_n: u64,
    pub(crate) cpu_0: f64,
    pub(crate) cpu_n: f64,
}

impl IdleResult {
    pub(crate) fn bytes_per_agent(&self) -> f64 {
        (self.rss_n as f64 - self.rss_0 as f64) / self.agents.max(1) as f64
    }
}

/// The HTTP fleet's figures.
#[derive(Clone, Debug)]
pub(crate) struct HttpResult {
    pub(crate) agents: usize,
    pub(crate) cpu_0: f64,
    pub(crate) cpu_n: f64,
}

/// All fleet figures of one backend.
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetResults {
    pub(crate) idle: Option<IdleResult>,
    /// The idle fleet over `wss://` (RSS only; CPU is not measured).
    pub(crate) tls_idle: Option<IdleResult>,
    /// One-agent push: the floor the fan-out is compared with.
    pub(crate) push_one: Option<PushResult>,
    pub(crate) pushes: Vec<PushResult>,
    pub(crate) http: Option<HttpResult>,
}

/// Runs the WebSocket figures (idle, push) on one server of `database`.
pub(crate) async fn run_ws(
    plan: &Plan,
    database: &Database,
    results: &mut FleetResults,
) -> Result<(), BenchError> {
    let exe = &plan.exe;
    let mut server = Server::start(exe, database, &plan.server_options(None)).await?;
    let client = server.client.clone();
    let n = plan.agents;
    let mut fleet_group = make_group(&client, "fleet").await?;
    // Let start-up allocations and the first store writes settle before the baseline.
    tokio::time::sleep(plan.settle).await;
    let pid = server.pid();
    let (rss_0, cpu_0) = if plan.idle {
        let cpu = procs::cpu_percent(pid, plan.window).await?;
        (procs::rss_bytes(pid)?, cpu)
    } else {
        (0, 0.0)
    };

    eprintln!("otaas bench: {n} WebSocket agents connecting ...");
    let mut fleet = Fleet::start(exe, &server, &plan.fleet_spec("fleet", n, Transport::Ws))?;
    wait_applied(&mut server, &mut fleet, &fleet_group, n).await?;
    if plan.idle {
        tokio::time::sleep(plan.settle).await;
        eprintln!(
            "otaas bench: measuring the idle fleet for {:?} ...",
            plan.window
        );
        let cpu_n = procs::cpu_percent(pid, plan.window).await?;
        let rss_n = procs::rss_bytes(pid)?;
        results.idle = Some(IdleResult {
            agents: n,
            rss_0,
            rss_n,
            cpu_0,
            cpu_n,
        });
    }
    if plan.push {
        eprintln!("otaas bench: pushing a revision to {n} agents ...");
        let r = push(&mut server, &mut fleet_group, n).await?;
        results.pushes.push(r);
    }
    fleet.stop().await;

    if plan.push {
        // The baseline: one agent, same server, same path.
        let mut one = make_group(&client, "one").await?;
        let mut fleet = Fleet::start(exe, &server, &plan.fleet_spec("one", 1, Transport::Ws))?;
        wait_applied(&mut server, &mut fleet, &one, 1).await?;
        results.push_one = Some(push(&mut server, &mut one, 1).await?);
        fleet.stop().await;
        for &size in plan.push_sizes.iter().filter(|&&s| s != n) {
            eprintln!("otaas bench: pushing a revision to {size} agents ...");
            let label = format!("push{size}");
            let mut group = make_group(&client, &label).await?;
            let mut fleet =
                Fleet::start(exe, &server, &plan.fleet_spec(&label, size, Transport::Ws))?;
            wait_applied(&mut server, &mut fleet, &group, size).await?;
            results
                .pushes
                .push(push(&mut server, &mut group, size).await?);
            fleet.stop().await;
        }
        results.pushes.sort_by_key(|p| p.agents);
    }
    server.child.stop().await;
    Ok(())
}

/// Runs the HTTP polling figure on a fresh server of `database`.
pub(crate) async fn run_http(
    plan: &Plan,
    database: &Database,
    results: &mut FleetResults,
) -> Result<(), BenchError> {
    let exe = &plan.exe;
    let mut server = Server::start(exe, database, &plan.server_options(None)).await?;
    let group = make_group(&server.client, "http").await?;
    tokio::time::sleep(plan.settle).await;
    let pid = server.pid();
    let cpu_0 = procs::cpu_percent(pid, plan.window).await?;
    let n = plan.agents;
    eprintln!(
        "otaas bench: {n} HTTP agents polling every {} s ...",
        plan.heartbeat_seconds
    );
    let mut fleet = Fleet::start(exe, &server, &plan.fleet_spec("http", n, Transport::Http))?;
    wait_applied(&mut server, &mut fleet, &group, n).await?;
    tokio::time::sleep(plan.settle).await;
    let cpu_n = procs::cpu_percent(pid, plan.window).await?;
    results.http = Some(HttpResult {
        agents: n,
        cpu_0,
        cpu_n,
    });
    fleet.stop().await;
    server.child.stop().await;
    Ok(())
}

/// Server RSS per idle agent when OpAMP is served over TLS (`wss://`): each session then also
/// holds a TLS connection's state. Baseline: the same TLS server with no agent.
pub(crate) async fn run_tls_idle(
    plan: &Plan,
    database: &Database,
    results: &mut FleetResults,
) -> Result<(), BenchError> {
    let exe = &plan.exe;
    let certs = tempfile::Builder::new()
        .prefix("otaas-bench-tls-")
        .tempdir()
        .map_err(|e| BenchError::new("creating a certificate dir", e))?;
    let tls = TlsFiles::generate(certs.path())?;
    let mut server = Server::start(exe, database, &plan.server_options(Some(tls.clone()))).await?;
    let group = make_group(&server.client, "tls").await?;
    tokio::time::sleep(plan.settle).await;
    let pid = server.pid();
    let rss_0 = procs::rss_bytes(pid)?;
    let n = plan.agents;
    eprintln!("otaas bench: {n} WebSocket agents over TLS connecting ...");
    let mut spec = plan.fleet_spec("tls", n, Transport::Ws);
    spec.ca_cert = Some(tls.cert.clone());
    let mut fleet = Fleet::start(exe, &server, &spec)?;
    wait_applied(&mut server, &mut fleet, &group, n).await?;
    // As for the plain fleet: past the connect burst, one heartbeat period at rest.
    tokio::time::sleep(plan.settle + plan.window).await;
    let rss_n = procs::rss_bytes(pid)?;
    results.tls_idle = Some(IdleResult {
        agents: n,
        rss_0,
        rss_n,
        cpu_0: 0.0,
        cpu_n: 0.0,
    });
    fleet.stop().await;
    server.child.stop().await;
    Ok(())
}

impl Plan {
    pub(crate) fn fleet_spec<'a>(
        &self,
        label: &'a str,
        agents: usize,
        transport: Transport,
    ) -> FleetSpec<'a> {
        FleetSpec {
            label,
            agents,
            transport,
            heartbeat_seconds: self.heartbeat_seconds,
            per_process: self.agents_per_process,
            ca_cert: None,
            extra_labels: "",
        }
    }

    pub(crate) fn server_options(&self, tls: Option<TlsFiles>) -> ServerOptions {
        ServerOptions {
            heartbeat_seconds: self.heartbeat_seconds,
            tls,
        }
    }
}

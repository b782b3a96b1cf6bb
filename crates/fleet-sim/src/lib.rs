//! `otaas fleet-sim`: N simulated OpenTelemetry collectors speaking real OpAMP (WebSocket or
//! plain HTTP) to a server, for demos, acceptance tests and benchmarks.
//!
//! Files: `agent.rs` (one agent's protocol state machine), `transport.rs` (WebSocket session
//! and HTTP polling loops), `labels.rs` (`--labels` templates), `control.rs` (`--control-stdin`),
//! `local.rs` (`--effective-config`: hand-written configs agents run before the server sends
//! one), `events.rs` (JSON-lines output). Each received config is checked as a collector would at
//! start-up (`otaas_collector::check`, with the built-in component table or `--components FILE`, a
//! collector's `components` output) and reported FAILED with its message; `--lenient` skips that.
//!
//! Output (stdout, one JSON object per line, key `event`): `started`, per-agent `connected`,
//! `disconnected`, `connect_failed`, `config` (`hash`, `status` APPLIED|FAILED, `error`),
//! `full_state_requested`, `new_uid`, `server_error`, `labels_changed` (suppressed by
//! `--quiet`), and a final `summary`.

mod agent;
mod control;
mod events;
mod labels;
mod local;
mod own_metrics;
mod transport;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otaas_opamp::InstanceUid;
use otaas_opamp::proto::RemoteConfigStatuses;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use labels::{LabelError, LabelTemplate};
pub use local::LocalConfigError;

use otaas_collector::components::ComponentTable;
pub use otaas_opamp::client::Transport;
use otaas_opamp::client::{ClientError, Target, endpoint, tls_client, wait_for_signal};

use agent::{Shared, SimAgent};
use events::Events;

/// `otaas fleet-sim` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetSimArgs {
    /// OpAMP server URL (`ws://`, `http://`); a URL without a path gets `/v1/opamp`.
    #[arg(
        long,
        env = "OTAAS_OPAMP_URL",
        default_value = "http://127.0.0.1:4320/v1/opamp"
    )]
    pub server: String,
    /// Number of simulated agents.
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    /// Agent labels `k=v,...` (reported as non-identifying attributes); `{i}` is replaced by
    /// the agent's index and `{i%N}` by the index modulo N.
    #[arg(long, default_value = "")]
    pub labels: String,
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
    /// Component types this simulated collector build lacks (`kafka,file`): a config that uses
    /// one is reported FAILED with the component named.
    #[arg(long, value_delimiter = ',')]
    pub reject_components: Vec<String>,
    /// A collector's `components` output (YAML): the simulated agents have exactly the
    /// component types and signals it lists, like that build. Default: the built-in table of
    /// core and contrib components (types it does not list are assumed to support every signal).
    #[arg(long, conflicts_with = "lenient")]
    pub components: Option<std::path::PathBuf>,
    /// Accept every config whose component types are available, without checking it the way a
    /// collector does at start-up (unknown types, signals, pipelines, references, ids).
    #[arg(long)]
    pub lenient: bool,
    /// PEM CA to trust for `wss://` and `https://` servers (default: the system roots).
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Enrollment token, sent as `Authorization: Bearer`.
    #[arg(long, env = "OTAAS_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Heartbeat (and HTTP polling) interval in seconds until the server offers one; 0 = none.
    #[arg(long, default_value_t = 30)]
    pub heartbeat: u64,
    /// Stop after this many seconds (0 = run until Ctrl-C, SIGTERM or `stop` on the control).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
    /// Read commands from stdin: `labels <index|*> k=v,...`, `throughput N`, `refused N`,
    /// `drift on|off`, `unhealthy on|off`, `flap on|off`, `stop`; EOF stops the simulation.
    #[arg(long)]
    pub control_stdin: bool,
    /// Only print the `started` and `summary` lines.
    #[arg(long)]
    pub quiet: bool,
    /// Agent version reported as `service.version`.
    #[arg(long, default_value = "0.1.0-sim")]
    pub agent_version: String,
    /// Derive instance uids from this seed and the agent index, so a restarted simulator comes
    /// back as the same agents (default: fresh UUIDv7s).
    #[arg(long)]
    pub uid_seed: Option<u64>,
    /// Items per second each agent reports as received (and sent) in its own metrics; change
    /// it at run time with `throughput N` on the control.
    #[arg(long, default_value_t = 100)]
    pub throughput: u64,
    /// Own-metrics export interval, once the server offers a destination; 0 = never export
    /// (an idle fleet for benchmarks: heartbeats only).
    #[arg(long, default_value_t = 10)]
    pub own_metrics_seconds: u64,
    /// Start at most this many agents per second (0 = all at once).
    #[arg(long, default_value_t = 0)]
    pub connect_rate: u32,
    /// A collector config written by hand (repeatable): agent `i` reports file `i % n` (its
    /// exact bytes) as its effective config until the server sends it a config, like a
    /// collector that ran before otaas managed it. Each file must be a YAML map.
    #[arg(long, value_name = "FILE")]
    pub effective_config: Vec<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetSimError {
    #[error("--labels: {0}")]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    EffectiveConfig(#[from] LocalConfigError),
    #[error("--components {path}: {reason}")]
    Components {
        path: std::path::PathBuf,
        reason: String,
    },
}

fn uid_for(seed: Option<u64>, index: usize) -> InstanceUid {
    match seed {
        Some(seed) => {
            let mut input = seed.to_le_bytes().to_vec();
            input.extend_from_slice(&(index as u64).to_le_bytes());
            let digest = otaas_opamp::hash::sha256(&input);
            let mut uid = [0u8; 16];
            uid.copy_from_slice(&digest[..16]);
            InstanceUid(uid)
        }
        None => InstanceUid::new_v7(),
    }
}

/// Runs the simulation to the end and prints the `summary` line; returns it too.
pub async fn run(args: FleetSimArgs) -> Result<serde_json::Value, FleetSimError> {
    let template = LabelTemplate::parse(&args.labels)?;
    let local = local::load(&args.effective_config)?;
    let url = endpoint(&args.server, args.transport)?;
    let (ws_tls, http_ca) = tls_client(args.ca_cert.as_deref())?;
    let mut http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(usize::MAX);
    if let Some(ca) = http_ca {
        http = http.add_root_certificate(ca);
    }
    let target = Arc::new(Target {
        url: url.clone(),
        token: args.token.clone(),
        http: http.build().map_err(ClientError::from)?,
        ws_tls,
    });
    let checker = match (&args.components, args.lenient) {
        (_, true) => None,
        (None, false) => Some(ComponentTable::builtin().clone()),
        (Some(path), false) => {
            let err = |reason: String| FleetSimError::Components {
                path: path.clone(),
                reason,
            };
            let yaml = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            Some(ComponentTable::from_components_yaml(&yaml).map_err(|e| err(e.to_string()))?)
        }
    };
    let shared = Arc::new(Shared {
        checker,
        verdicts: Default::default(),
        reject: args
            .reject_components
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<HashSet<_>>(),
        version: args.agent_version.clone(),
        local,
        events: Events::new(args.quiet),
        configs: Default::default(),
        rates: Arc::new(own_metrics::Rates::new(
            args.throughput,
            Duration::from_secs(args.own_metrics_seconds),
        )),
    });
    let stop = CancellationToken::new();
    let (control_tx, new_control) = control::channel();

    shared.events.emit(json!({
        "event": "started",
        "agents": args.agents,
        "transport": match args.transport { Transport::Ws => "ws", Transport::Http => "http" },
        "url": url,
        "checks": if args.lenient { "lenient" } else if args.components.is_some() { "components" } else { "builtin" },
    }));

    // Stop conditions: duration, signals, control stdin.
    if args.duration > 0 {
        let stop = stop.clone();
        let after = Duration::from_secs(args.duration);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            stop.cancel();
        });
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            stop.cancel();
        });
    }
    let use_control = args.control_stdin;
    if use_control {
        let stop = stop.clone();
        let shared = shared.clone();
        let rates = shared.rates.clone();
        tokio::spawn(control::read_stdin(control_tx, stop, rates, move |v| {
            shared.events.emit(v)
        }));
    } else {
        drop(control_tx);
    }

    let mut tasks = JoinSet::new();
    let heartbeat = Duration::from_secs(args.heartbeat);
    let spacing = (args.connect_rate > 0).then(|| Duration::from_secs(1) / args.connect_rate);
    for index in 0..args.agents {
        if let Some(spacing) = spacing {
            tokio::select! {
                _ = tokio::time::sleep(spacing) => {}
                _ = stop.cancelled() => break,
            }
        }
        let agent = SimAgent::new(
            index,
            uid_for(args.uid_seed, index),
            template.expand(index),
            heartbeat,
            shared.clone(),
        );
        let control = if use_control {
            new_control()
        } else {
            control::Control::closed()
        };
        let (target, stop) = (target.clone(), stop.clone());
        match args.transport {
            Transport::Ws => tasks.spawn(transport::run_ws(agent, target, control, stop)),
            Transport::Http => tasks.spawn(transport::run_http(agent, target, control, stop)),
        };
    }
    drop(new_control);

    let mut connected = 0usize;
    let mut by_status: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut hashes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let Ok((agent, was_connected)) = done else {
            continue;
        };
        connected += usize::from(was_connected);
        *by_status
            .entry(events::status_name(agent.status))
            .or_default() += 1;
        if !agent.last_hash.is_empty() {
            *hashes
                .entry(otaas_opamp::hash::to_hex(&agent.last_hash))
                .or_default() += 1;
        }
        if agent.status == RemoteConfigStatuses::Failed {
            *failures.entry(agent.error().to_owned()).or_default() += 1;
        }
    }
    let c = &shared.events.counters;
    let summary = json!({
        "event": "summary",
        "agents": args.agents,
        "connected_at_stop": connected,
        "status": by_status,
        "hashes": hashes,
        "failures": failures,
        "connects": c.connects.load(Ordering::Relaxed),
        "reconnects": c.reconnects.load(Ordering::Relaxed),
        "connect_failures": c.connect_failures.load(Ordering::Relaxed),
        "auth_failures": c.auth_failures.load(Ordering::Relaxed),
        "configs_received": c.configs_received.load(Ordering::Relaxed),
        "full_state_requests": c.full_state_requests.load(Ordering::Relaxed),
        "new_uids": c.new_uids.load(Ordering::Relaxed),
        "server_errors": c.server_errors.load(Ordering::Relaxed),
    });
    shared.events.emit(summary.clone());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_uids_are_stable_and_distinct() {
        assert_eq!(uid_for(Some(1), 5), uid_for(Some(1), 5));
        assert_ne!(uid_for(Some(1), 5), uid_for(Some(1), 6));
    }
}

//! `otaas agent`: a supervisor for a real OpenTelemetry Collector. It speaks OpAMP to `otaas
//! serve` and runs the collector binary as a child process, in the spirit of the OpenTelemetry
//! project's OpAMP supervisor.
//!
//! Files: `collector.rs` (the binary: `--version`, `components`, `validate`, running it),
//! `supervisor.rs` (applying configs, last good config, crash restarts), `client.rs` (OpAMP
//! messages and the WebSocket / HTTP connection), `events.rs` (JSON lines on stdout),
//! `exporter_health.rs` (failing exporters read from the collector's own logs), `renames.rs`
//! (exporter ids of a running config in an equivalent offer).
//!
//! Two tasks: the supervisor owns the child process and publishes a `Report`; the client owns
//! the connection, forwards offers to the supervisor and sends every new report. Either runs
//! without the other: the collector keeps its last good config while the server is away.

pub mod client;
pub mod collector;
pub mod events;
pub mod exporter_health;
pub mod renames;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use otaas_opamp::InstanceUid;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use collector::{Collector, CollectorError};
use events::emit;
use supervisor::{Report, Supervisor};

/// `otaas agent` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// OpAMP server URL (`ws://`, `wss://`, `http://`, `https://`); a URL without a path gets
    /// `/v1/opamp`. WebSocket is tried first; a server that does not upgrade is polled over HTTP.
    #[arg(
        long,
        env = "OTAAS_OPAMP_URL",
        default_value = "ws://127.0.0.1:4320/v1/opamp"
    )]
    pub server: String,
    /// Enrollment token, sent as `Authorization: Bearer`.
    #[arg(long, env = "OTAAS_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The collector executable to run (an OpenTelemetry Collector distribution).
    #[arg(long, env = "OTAAS_COLLECTOR")]
    pub collector: PathBuf,
    /// Where the agent keeps its instance uid, the running and the last good config.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Labels `k=v,...`, reported as non-identifying attributes (agent groups select on them).
    #[arg(long, default_value = "")]
    pub labels: String,
    /// Poll over plain HTTP instead of trying WebSocket first.
    #[arg(long)]
    pub http: bool,
    /// PEM CA to trust for `wss://` and `https://` servers (default: the system roots).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// How long a starting collector may stay silent before it counts as running (it normally
    /// says so in well under a second).
    #[arg(long, default_value_t = 10)]
    pub startup_seconds: u64,
    /// How long an exporter whose sends failed must go without another failed send before
    /// it is reported healthy again (the collector logs failures, not successes).
    #[arg(long, default_value_t = exporter_health::QUIET.as_secs())]
    pub exporter_quiet_seconds: u64,
    /// A collector config file the collector already uses: run it and report it as the
    /// effective config until the server sends a config (a group claims the agent). A config
    /// the server sent earlier (kept in the data dir) wins over it. The file is only read.
    #[arg(long, env = "OTAAS_COLLECTOR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("--labels: {0}")]
    Labels(String),
    #[error("--collector: {0}")]
    Collector(#[from] CollectorError),
    #[error("--data-dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--config {path}: {reason}")]
    LocalConfig { path: PathBuf, reason: String },
    #[error(transparent)]
    Target(#[from] otaas_opamp::client::ClientError),
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// `k=v,k2=v2` → pairs; keys must be non-empty and unique.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, AgentError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| AgentError::Labels(format!("{part:?} is not key=value")))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(AgentError::Labels(format!("{part:?} has an empty key")));
        }
        if out.iter().any(|(have, _)| have == k) {
            return Err(AgentError::Labels(format!("key {k:?} is given twice")));
        }
        out.push((k.to_owned(), v.trim().to_owned()));
    }
    Ok(out)
}

/// The instance uid kept in the data dir (created on first start), so a restarted agent is
/// the same agent to the server.
fn load_uid(path: &std::path::Path) -> std::io::Result<InstanceUid> {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(uid) = InstanceUid::parse(text.trim())
    {
        return Ok(uid);
    }
    let uid = InstanceUid::new_v7();
    supervisor::write_atomic(path, format!("{uid}\n").as_bytes())?;
    Ok(uid)
}

/// Reads the `--config` file and has the collector validate it where it lies (the agent never
/// writes to it): a file the collector would refuse must stop the agent at start, not leave it
/// running nothing.
async fn local_config(collector: &Collector, path: &Path) -> Result<String, AgentError> {
    let err = |reason: String| AgentError::LocalConfig {
        path: path.to_path_buf(),
        reason,
    };
    let yaml = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    match collector.validate(path, &yaml).await {
        Ok(Ok(())) => Ok(yaml),
        Ok(Err(text)) => Err(err(format!("the collector refuses it: {text}"))),
        Err(e) => Err(err(e.to_string())),
    }
}

fn host_name() -> String {
    let uname = rustix::system::uname();
    uname.nodename().to_string_lossy().into_owned()
}

/// Runs the agent until SIGTERM/SIGINT; the collector is stopped on the way out.
pub async fn run(args: AgentArgs) -> Result<(), AgentError> {
    let labels = parse_labels(&args.labels)?;
    let dir_err = |source| AgentError::DataDir {
        path: args.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&args.data_dir).map_err(dir_err)?;
    let uid_file = args.data_dir.join("instance_uid");
    let uid = load_uid(&uid_file).map_err(dir_err)?;

    let collector = Collector::new(args.collector.clone());
    let build = collector.build_info().await?;
    let local = match &args.config {
        Some(path) => Some(local_config(&collector, path).await?),
        None => None,
    };

    use otaas_opamp::client::{Transport, endpoint, tls_client};
    let ws_url = endpoint(&args.server, Transport::Ws)?;
    let http_url = endpoint(&args.server, Transport::Http)?;
    let (ws_tls, http_ca) = tls_client(args.ca_cert.as_deref())?;
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = http_ca {
        http = http.add_root_certificate(ca);
    }
    let target = Arc::new(client::Target {
        ws_url: ws_url.clone(),
        http_url,
        token: args.token.clone(),
        http: http.build()?,
        ws_tls,
        http_only: args.http,
    });

    emit(
        "started",
        serde_json::json!({
            "instance_uid": uid.to_string(),
            "server": if args.http { &target.http_url } else { &ws_url },
            "collector": args.collector,
            "collector_version": build.version,
            "components": build.components.iter()
                .map(|(k, v)| (k.clone(), v.keys().cloned().collect::<Vec<_>>()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        }),
    );
    tracing::info!(instance_uid = %uid, collector = %args.collector.display(), version = %build.version, "Agent starting");

    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            otaas_opamp::client::wait_for_signal().await;
            stop.cancel();
        });
    }

    let (report_tx, report_rx) = watch::channel(Report::default());
    let (offer_tx, offer_rx) = mpsc::channel(8);
    let supervisor = Supervisor::new(
        collector,
        args.data_dir.clone(),
        Duration::from_secs(args.startup_seconds.max(1)),
        report_tx,
    )
    .with_exporter_quiet(Duration::from_secs(args.exporter_quiet_seconds.max(1)))
    .with_local_config(local);
    let forwarded = supervisor.good_hash();
    let sup_task = tokio::spawn(supervisor.run(offer_rx, stop.clone()));

    let identity = client::Identity {
        uid,
        uid_file,
        labels,
        host: host_name(),
        build,
    };
    let session = client::Session::new(identity, forwarded, offer_tx);
    client::run(session, target, report_rx, stop.clone()).await;
    stop.cancel();
    let _ = sup_task.await;
    emit("stopped", serde_json::json!({}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_name_the_problem() {
        assert_eq!(
            parse_labels("env=prod, region = eu").unwrap(),
            [
                ("env".to_owned(), "prod".to_owned()),
                ("region".to_owned(), "eu".to_owned())
            ]
        );
        assert!(parse_labels("").unwrap().is_empty());
        assert_eq!(
            parse_labels("env").unwrap_err().to_string(),
            "--labels: \"env\" is not key=value"
        );
        assert_eq!(
            parse_labels("a=1,a=2").unwrap_err().to_string(),
            "--labels: key \"a\" is given twice"
        );
    }

    /// Given a `--config` file that cannot be read, or one the collector's `validate` refuses,
    /// when the agent reads it at start, then it stops with an error naming the flag, the file
    /// and (for a refusal) the collector's own words; a file the collector accepts is used.
    #[tokio::test]
    async fn a_local_config_is_read_and_validated_at_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let refusing = dir.path().join("refusing-otelcol");
        std::fs::write(
            &refusing,
            "#!/bin/sh\ngrep -q bad \"${2#--config=file:}\" && { echo 'Error: invalid configuration: bad' >&2; exit 1; }\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&refusing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let collector = Collector::new(refusing);

        let missing = dir.path().join("missing.yaml");
        let err = local_config(&collector, &missing).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("--config {}: ", missing.display())),
            "{err}"
        );

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "receivers: {bad: {}}\n").unwrap();
        let mut refused = Err(String::new());
        // A script just written may be briefly busy (ETXTBSY) while another test forks.
        for _ in 0..50 {
            refused = local_config(&collector, &bad)
                .await
                .map_err(|e| e.to_string());
            if !refused.as_ref().is_err_and(|e| e.contains("busy")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            refused.unwrap_err(),
            format!(
                "--config {}: the collector refuses it: invalid configuration: bad",
                bad.display()
            )
        );

        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "receivers: {filelog: {}}\n").unwrap();
        assert_eq!(
            local_config(&collector, &good).await.unwrap(),
            "receivers: {filelog: {}}\n"
        );
    }

    #[test]
    fn the_uid_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance_uid");
        let first = load_uid(&path).unwrap();
        assert_eq!(load_uid(&path).unwrap(), first);
    }
}

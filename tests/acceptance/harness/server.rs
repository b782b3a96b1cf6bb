//! The real control plane and a simulated fleet as test fixtures: `otaas serve` on loopback with
//! OS-chosen ports and a temp data dir, and `otaas fleet-sim` pointed at it. Both stop on drop.
//!
//! Contract with the server (DESIGN.md and the engineers' agreement): `otaas serve` accepts
//! `--listen`, `--opamp-listen`, `--data-dir`, `--admin-token`, `--database`; once bound it prints
//! `otaas: api listening on ADDR` and `otaas: opamp listening on ADDR` on stderr; `/healthz` on the
//! API answers 200 when it serves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{Daemon, POLL};
use super::tools;

/// From spawn to a healthy API. Migrations on a fresh database are quick; this only bounds a hang.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
use otaas_testkit::procs::{API_LINE, OPAMP_LINE};

/// A running `otaas serve`.
pub(crate) struct Server {
    daemon: Daemon,
    api: SocketAddr,
    opamp: SocketAddr,
    admin_token: String,
    database: Option<String>,
    /// Extra `otaas serve` flags and environment, kept across `restart`.
    flags: Vec<String>,
    env: Vec<(String, String)>,
    /// `--tls-self-signed`: https/wss URLs, fleets trust `<data-dir>/tls/ca.pem`.
    tls: bool,
    /// An agent enrollment token made right after the first start: agents need one on a
    /// default server, and the suite runs the defaults.
    agent_token: String,
    data_dir: TempDir,
}

impl Server {
    /// Starts a server on the default store (SQLite in its temp data dir).
    pub(crate) fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server on `database` (`sqlite://...` or `postgres://...`), or the default store.
    pub(crate) fn start_with(database: Option<&str>) -> Self {
        Self::start_opts(database, &[], &[])
    }

    /// Starts a server (default store) with extra flags and environment; with
    /// `--tls-self-signed` the API and OpAMP URLs are https/wss and fleets trust the generated
    /// CA ([`Server::ca_cert_pem`]).
    pub(crate) fn start_with_flags(flags: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_opts(None, flags, env)
    }

    fn start_opts(database: Option<&str>, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("otaas-server-")
            .tempdir()
            .expect("creating the data dir");
        // Distinct per server, and distinctive, so secret-leak tests can grep for it.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_token = format!(
            "otaas-test-admin-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("socket addr");
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let tls = flags.iter().any(|f| f == "--tls-self-signed");
        let extra = Extra {
            flags: &flags,
            env: &env,
            tls,
        };
        let (daemon, api, opamp) = spawn(
            data_dir.path(),
            &admin_token,
            database,
            loopback,
            loopback,
            &extra,
        );
        let agent_token = create_agent_token(data_dir.path(), database);
        Self {
            daemon,
            api,
            opamp,
            admin_token,
            database: database.map(str::to_owned),
            flags,
            env,
            tls,
            agent_token,
            data_dir,
        }
    }

    /// The agent enrollment token the harness's agents present.
    pub(crate) fn agent_token(&self) -> &str {
        &self.agent_token
    }

    /// Stops the server and starts it again on the same data dir, database and addresses (so
    /// agents reconnect to where they were).
    pub(crate) fn restart(&mut self) {
        self.daemon.stop(STOP_GRACE);
        let extra = Extra {
            flags: &self.flags,
            env: &self.env,
            tls: self.tls,
        };
        let (daemon, api, opamp) = spawn(
            self.data_dir.path(),
            &self.admin_token,
            self.database.as_deref(),
            self.api,
            self.opamp,
            &extra,
        );
        self.daemon = daemon;
        self.api = api;
        self.opamp = opamp;
    }

    /// `http://ADDR` (`https://` with TLS) of the REST API (the provider's `endpoint`).
    pub(crate) fn api_url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.api)
    }

    /// `ws://ADDR/v1/opamp` (`wss://` with TLS), for WebSocket agents.
    pub(crate) fn opamp_ws_url(&self) -> String {
        format!(
            "{}://{}/v1/opamp",
            if self.tls { "wss" } else { "ws" },
            self.opamp
        )
    }

    /// `http://ADDR/v1/opamp` (`https://` with TLS), for HTTP-polling agents (the Python peer).
    pub(crate) fn opamp_http_url(&self) -> String {
        format!(
            "{}://{}/v1/opamp",
            if self.tls { "https" } else { "http" },
            self.opamp
        )
    }

    /// With `--tls-self-signed`: the generated CA's file, which clients trust.
    pub(crate) fn ca_cert_path(&self) -> Option<std::path::PathBuf> {
        self.tls.then(|| self.data_dir.path().join("tls/ca.pem"))
    }

    /// With `--tls-self-signed`: the generated CA (PEM), for the provider's `ca_cert_pem`.
    pub(crate) fn ca_cert_pem(&self) -> String {
        let path = self
            .ca_cert_path()
            .expect("a server started with --tls-self-signed");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    pub(crate) fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub(crate) fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Everything the server printed so far.
    pub(crate) fn log(&self) -> String {
        self.daemon.log()
    }

    /// Panics with the server's log if it has exited.
    #[track_caller]
    pub(crate) fn assert_running(&mut self) {
        self.daemon.assert_running();
    }
}

/// Extra flags and environment of a server (see [`Server::start_with_flags`]).
struct Extra<'a> {
    flags: &'a [String],
    env: &'a [(String, String)],
    tls: bool,
}

/// Spawns `otaas serve` and waits until it has printed both addresses and `/healthz` answers 200
/// (with TLS: until the API accepts connections; the harness speaks no TLS itself).
fn spawn(
    data_dir: &Path,
    admin_token: &str,
    database: Option<&str>,
    api: SocketAddr,
    opamp: SocketAddr,
    extra: &Extra<'_>,
) -> (Daemon, SocketAddr, SocketAddr) {
    let mut cmd = Command::new(tools::otaas());
    cmd.arg("serve")
        .arg("--listen")
        .arg(api.to_string())
        .arg("--opamp-listen")
        .arg(opamp.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--admin-token")
        .arg(admin_token)
        // Flags win over env, but a stray OTAAS_DATABASE would still pick the store.
        .env_remove("OTAAS_DATABASE")
        .env("NO_COLOR", "1");
    if let Some(database) = database {
        cmd.arg("--database").arg(database);
    }
    cmd.args(extra.flags);
    for (k, v) in extra.env {
        cmd.env(k, v);
    }
    let (tx, rx) = mpsc::channel();
    let mut daemon = Daemon::spawn("otaas serve", &mut cmd, move |line| {
        for (prefix, is_api) in [(API_LINE, true), (OPAMP_LINE, false)] {
            if let Some(rest) = line.find(prefix).map(|at| &line[at + prefix.len()..]) {
                let _ = tx.send((
                    is_api,
                    rest.split_whitespace().next().unwrap_or("").to_owned(),
                ));
            }
        }
    });

    let deadline = Instant::now() + START_TIMEOUT;
    let (mut api, mut opamp) = (None, None);
    while api.is_none() || opamp.is_none() {
        daemon.assert_running();
        if Instant::now() >= deadline {
            panic!(
                "otaas serve did not print both listening addresses within {START_TIMEOUT:?}\n--- log\n{}",
                daemon.log()
            );
        }
        if let Ok((is_api, addr)) = rx.recv_timeout(POLL) {
            let parsed: SocketAddr = addr.parse().unwrap_or_else(|err| {
                panic!("otaas serve printed an unparsable listening address {addr:?}: {err}")
            });
            *(if is_api { &mut api } else { &mut opamp }) = Some(parsed);
        }
    }
    let (api, opamp) = (api.expect("api addr"), opamp.expect("opamp addr"));

    let ready = |addr| {
        if extra.tls {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        } else {
            healthz(addr) == Some(200)
        }
    };
    while !ready(api) {
        daemon.assert_running();
        if Instant::now() >= deadline {
            panic!(
                "otaas serve: /healthz on {api} not 200 within {START_TIMEOUT:?}\n--- log\n{}",
                daemon.log()
            );
        }
        thread::sleep(POLL);
    }
    (daemon, api, opamp)
}

/// `otaas token create --scope agent` on the server's store, as an operator enrolls agents.
fn create_agent_token(data_dir: &Path, database: Option<&str>) -> String {
    let mut cmd = Command::new(tools::otaas());
    cmd.args([
        "token",
        "create",
        "--scope",
        "agent",
        "--description",
        "harness agents",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .env_remove("OTAAS_DATABASE")
    .env("NO_COLOR", "1");
    if let Some(database) = database {
        cmd.arg("--database").arg(database);
    }
    let out = cmd.output().expect("running otaas token create");
    assert!(
        out.status.success(),
        "otaas token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("a UTF-8 token");
    let token = token.trim();
    assert!(!token.is_empty(), "otaas token create printed no token");
    token.to_owned()
}

/// Status code of `GET /healthz`, or None when there is no HTTP answer yet. A bare HTTP/1.1 request
/// on a socket: the harness needs nothing more, and no blocking HTTP client is in the dependencies.
fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A running `otaas fleet-sim`.
pub(crate) struct FleetSim {
    daemon: Daemon,
}

/// Options of `otaas fleet-sim`, from `FleetSim::builder`.
pub(crate) struct FleetSimBuilder {
    server: String,
    agents: usize,
    labels: Vec<(String, String)>,
    reject_components: Vec<String>,
    transport: Option<&'static str>,
    token: Option<String>,
    /// `--throughput` and `--own-metrics-seconds` (the simulator's defaults when unset).
    throughput: Option<u64>,
    own_metrics_seconds: Option<u64>,
    /// The server's generated CA, for `wss://`/`https://` (`--ca-cert`).
    ca_cert: Option<std::path::PathBuf>,
    /// Hand-written configs the agents report until the server sends one (`--effective-config`).
    effective_configs: Vec<std::path::PathBuf>,
}

impl FleetSim {
    /// A fleet of one WebSocket agent without labels, connected to `server`; see the builder.
    pub(crate) fn builder(server: &Server) -> FleetSimBuilder {
        FleetSimBuilder {
            server: server.opamp_ws_url(),
            agents: 1,
            labels: Vec::new(),
            reject_components: Vec::new(),
            transport: None,
            token: Some(server.agent_token.clone()),
            throughput: None,
            own_metrics_seconds: None,
            ca_cert: server.ca_cert_path(),
            effective_configs: Vec::new(),
        }
    }

    pub(crate) fn log(&self) -> String {
        self.daemon.log()
    }

    #[track_caller]
    pub(crate) fn assert_running(&mut self) {
        self.daemon.assert_running();
    }
}

impl FleetSimBuilder {
    pub(crate) fn agents(mut self, agents: usize) -> Self {
        self.agents = agents;
        self
    }

    pub(crate) fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Agents report FAILED for configs using these component types.
    pub(crate) fn reject_components(mut self, types: &[&str]) -> Self {
        self.reject_components
            .extend(types.iter().map(|t| (*t).to_owned()));
        self
    }

    /// HTTP polling instead of WebSocket (the server URL becomes `http://.../v1/opamp`).
    pub(crate) fn http(mut self) -> Self {
        self.transport = Some("http");
        self.server = self
            .server
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        self
    }

    pub(crate) fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Agents report this hand-written collector config as their effective config until the
    /// server sends them one (repeatable: agent `i` reports file `i % n`).
    pub(crate) fn effective_config(mut self, path: &std::path::Path) -> Self {
        self.effective_configs.push(path.to_path_buf());
        self
    }

    /// Own metrics: `items` per second received per agent, reported every `every_secs`.
    pub(crate) fn own_metrics(mut self, items: u64, every_secs: u64) -> Self {
        self.throughput = Some(items);
        self.own_metrics_seconds = Some(every_secs);
        self
    }

    /// Starts the fleet. Whether agents have connected is for the test to observe (the API's agent
    /// list): fleet-sim has no readiness signal in the contract.
    pub(crate) fn start(self) -> FleetSim {
        let mut cmd = Command::new(tools::otaas());
        cmd.arg("fleet-sim")
            .arg("--server")
            .arg(&self.server)
            .arg("--agents")
            .arg(self.agents.to_string())
            .env("NO_COLOR", "1");
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            cmd.arg("--labels").arg(labels.join(","));
        }
        if !self.reject_components.is_empty() {
            cmd.arg("--reject-components")
                .arg(self.reject_components.join(","));
        }
        if let Some(transport) = self.transport {
            cmd.arg("--transport").arg(transport);
        }
        if let Some(token) = &self.token {
            cmd.arg("--token").arg(token);
        }
        if let Some(n) = self.throughput {
            cmd.arg("--throughput").arg(n.to_string());
        }
        if let Some(n) = self.own_metrics_seconds {
            cmd.arg("--own-metrics-seconds").arg(n.to_string());
        }
        if let Some(ca) = &self.ca_cert {
            cmd.arg("--ca-cert").arg(ca);
        }
        for file in &self.effective_configs {
            cmd.arg("--effective-config").arg(file);
        }
        let mut daemon = Daemon::spawn("otaas fleet-sim", &mut cmd, |_| {});
        daemon.assert_running();
        FleetSim { daemon }
    }
}

/// A running `otaas agent` supervising the real collector (`tools::collector`), with its data
/// dir in a temp dir. Dropping it stops the agent's process group (agent and collector).
pub(crate) struct RealAgent {
    daemon: Daemon,
    _data: tempfile::TempDir,
}

impl RealAgent {
    pub(crate) fn start(server: &Server, labels: &str) -> Self {
        Self::start_with(server, labels, &[])
    }

    /// An agent whose collector starts from the local config file `config` (`--config`):
    /// a collector that ran before otaas.
    pub(crate) fn start_with_config(server: &Server, labels: &str, config: &Path) -> Self {
        Self::start_with(server, labels, &["--config".as_ref(), config.as_os_str()])
    }

    fn start_with(server: &Server, labels: &str, extra: &[&std::ffi::OsStr]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(tools::otaas());
        cmd.arg("agent")
            .arg("--server")
            .arg(server.opamp_ws_url())
            .arg("--collector")
            .arg(tools::collector())
            .arg("--data-dir")
            .arg(data.path())
            .arg("--labels")
            .arg(labels)
            .args(extra)
            // The environment, not argv: the token stays out of `ps`.
            .env("OTAAS_AGENT_TOKEN", server.agent_token())
            .env("NO_COLOR", "1");
        let mut daemon = Daemon::spawn("otaas agent", &mut cmd, |_| {});
        daemon.assert_running();
        Self {
            daemon,
            _data: data,
        }
    }

    pub(crate) fn log(&self) -> String {
        self.daemon.log()
    }
}

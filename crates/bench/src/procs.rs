//! The processes a benchmark run starts (`otaas serve`, `otaas fleet-sim`), their PostgreSQL
//! databases, and what is read about them from `/proc` (RSS, CPU time).
//!
//! Every child is started with `kill_on_drop`, so an error anywhere in the run still leaves no
//! process behind; the normal way out is [`Child::stop`] (SIGTERM, then SIGKILL after a grace
//! period), which lets `otaas serve` flush and `fleet-sim` say goodbye.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otaas_api::{Client, ClientConfig, TokenCreate, TokenScope};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::error::BenchError;

/// Lines of a child's stderr kept for error messages.
const KEEP_LINES: usize = 20;
/// How long a server may take to open its store and bind.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child may take to exit after SIGTERM (a server flushes, a simulator says goodbye
/// for thousands of agents).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running child process and the tail of its stderr.
pub(crate) struct Child {
    name: String,
    child: tokio::process::Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Child {
    pub(crate) fn spawn(
        name: String,
        mut cmd: Command,
    ) -> Result<(Self, tokio::process::ChildStderr), BenchError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::new(format!("starting {name}"), e))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        Ok((
            Self {
                name,
                child,
                tail: Arc::default(),
            },
            stderr,
        ))
    }

    /// Keeps reading `stderr` into the tail (a full pipe would block the child).
    pub(crate) fn drain(&self, stderr: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
        let tail = self.tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                remember(&tail, line);
            }
        });
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// An error if the process has exited (with its last stderr lines).
    pub(crate) fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::msg(format!(
                "{} exited ({status}); its last output:\n{}",
                self.name,
                self.tail()
            ))),
            Err(e) => Err(BenchError::new(format!("watching {}", self.name), e)),
        }
    }

    pub(crate) fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then SIGKILL if it is still there after the grace period.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            if tokio::time::timeout(STOP_GRACE, self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

fn remember(tail: &Mutex<VecDeque<String>>, line: String) {
    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    if tail.len() == KEEP_LINES {
        tail.pop_front();
    }
    tail.push_back(line);
}

/// Environment of the children: nothing from the caller's `OTAAS_*` settings (a stray
/// `OTAAS_DATABASE` or token would change what is measured), warnings only in the logs.
pub(crate) fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTAAS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("OTAAS_LOG", "warn");
}

/// Which store a server runs on.
#[derive(Clone, Debug)]
pub(crate) enum Database {
    /// The default SQLite file in the server's data dir.
    Sqlite,
    Postgres(String),
}

/// What differs between the servers of a run.
#[derive(Clone, Debug)]
pub(crate) struct ServerOptions {
    /// Offered to agents; the default (30) in full runs.
    pub(crate) heartbeat_seconds: u64,
    /// Serve OpAMP over TLS with this certificate.
    pub(crate) tls: Option<TlsFiles>,
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files; the certificate is also the
/// CA the simulated agents trust.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl TlsFiles {
    pub(crate) fn generate(dir: &Path) -> Result<Self, BenchError> {
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .map_err(|e| BenchError::new("generating the OpAMP TLS certificate", e))?;
        let files = Self {
            cert: dir.join("opamp-cert.pem"),
            key: dir.join("opamp-key.pem"),
        };
        std::fs::write(&files.cert, cert.cert.pem())
            .and_then(|()| std::fs::write(&files.key, cert.signing_key.serialize_pem()))
            .map_err(|e| BenchError::new("writing the OpAMP TLS files", e))?;
        Ok(files)
    }
}

/// A running `otaas serve` on loopback, with a REST client holding its admin token.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) api_url: String,
    /// `host:port` of the OpAMP listener.
    pub(crate) opamp_addr: String,
    /// `ws` or `wss` (with [`ServerOptions::tls`]).
    pub(crate) opamp_scheme: &'static str,
    pub(crate) admin_token: String,
    /// An agent enrollment token, which every agent needs on a default server.
    pub(crate) agent_token: String,
    pub(crate) client: Client,
    _data_dir: tempfile::TempDir,
}

impl Server {
    /// Starts `otaas serve` on free loopback ports with the defaults a user gets (agents need
    /// an enrollment token: one is made here for the fleets), but one: the
    /// OpAMP per-address cap (default 1,024 connections per source address) is off, because the
    /// whole simulated fleet connects from 127.0.0.1 where real agents come from thousands of
    /// addresses. The API rate limit and the OpAMP admission rate stay at their defaults; the
    /// fleets connect at a pace below the admission rate.
    pub(crate) async fn start(
        exe: &Path,
        database: &Database,
        opts: &ServerOptions,
    ) -> Result<Self, BenchError> {
        let data_dir = tempfile::Builder::new()
            .prefix("otaas-bench-")
            .tempdir()
            .map_err(|e| BenchError::new("creating a data dir", e))?;
        let admin_token = TokenScope::Admin.mint();
        let mut cmd = Command::new(exe);
        clean_env(&mut cmd);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--opamp-listen", "127.0.0.1:0"])
            .args(["--opamp-max-conns-per-ip", "0"])
            .arg("--opamp-heartbeat-seconds")
            .arg(opts.heartbeat_seconds.to_string())
            .arg("--data-dir")
            .arg(data_dir.path())
            // In the environment, not on the command line (/proc/PID/cmdline is world-readable).
            .env("OTAAS_ADMIN_TOKEN", &admin_token);
        if let Some(tls) = &opts.tls {
            cmd.arg("--opamp-tls-cert")
                .arg(&tls.cert)
                .arg("--opamp-tls-key")
                .arg(&tls.key);
        }
        if let Database::Postgres(url) = database {
            cmd.arg("--database").arg(url);
        }
        let (child, stderr) = Child::spawn("otaas serve".to_owned(), cmd)?;
        let mut lines = BufReader::new(stderr).lines();
        let (mut api, mut opamp) = (None, None);
        let _ = tokio::time::timeout(START_TIMEOUT, async {
            while api.is_none() || opamp.is_none() {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(addr) = line.strip_prefix(otaas_testkit::procs::API_LINE) {
                            api = Some(addr.trim().to_owned());
                        } else if let Some(addr) =
                            line.strip_prefix(otaas_testkit::procs::OPAMP_LINE)
                        {
                            opamp = Some(addr.trim().to_owned());
                        }
                        remember(&child.tail, line);
                    }
                    _ => return,
                }
            }
        })
        .await;
        let (Some(api), Some(opamp)) = (api, opamp) else {
            return Err(BenchError::msg(format!(
                "otaas serve did not report its listeners; its output:\n{}",
                child.tail()
            )));
        };
        child.drain(lines.into_inner());
        let api_url = format!("http://{api}");
        let opamp_scheme = if opts.tls.is_some() { "wss" } else { "ws" };
        let client = Client::new(ClientConfig::new(api_url.clone(), admin_token.clone()))
            .map_err(|e| BenchError::new("building the REST client", e))?;
        let agent_token = client
            .create_token(&TokenCreate {
                description: "otaas bench agents".into(),
                scope: TokenScope::Agent,
                expires_in: None,
                expires_at: None,
            })
            .await
            .map_err(|e| BenchError::new("creating the agents' enrollment token", e))?
            .token;
        Ok(Self {
            child,
            api_url,
            opamp_addr: opamp,
            opamp_scheme,
            admin_token,
            agent_token,
            client,
            _data_dir: data_dir,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// New agents per second of a whole simulated fleet: under `otaas serve`'s default admission rate.
pub(crate) const FLEET_CONNECT_RATE: u32 = 450;

/// OpAMP transport of a simulated fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Ws,
    Http,
}

/// `otaas fleet-sim` processes holding one fleet: agents labelled `bench=<label>`, heartbeats
/// only (no own-metrics export), split so no process needs more open files than allowed.
pub(crate) struct Fleet {
    pub(crate) children: Vec<Child>,
}

/// What a fleet looks like.
pub(crate) struct FleetSpec<'a> {
    pub(crate) label: &'a str,
    pub(crate) agents: usize,
    pub(crate) transport: Transport,
    pub(crate) heartbeat_seconds: u64,
    /// Most agents per process (each WebSocket agent holds one socket).
    pub(crate) per_process: usize,
    /// The CA to trust when the server serves OpAMP over TLS.
    pub(crate) ca_cert: Option<PathBuf>,
    /// More labels after `bench=<label>` (`k=v,...`, with fleet-sim's `{i}` and `{i%N}`
    /// placeholders), or empty.
    pub(crate) extra_labels: &'a str,
}

impl Fleet {
    pub(crate) fn start(
        exe: &Path,
        server: &Server,
        spec: &FleetSpec<'_>,
    ) -> Result<Self, BenchError> {
        let processes = spec.agents.div_ceil(spec.per_process.max(1)).max(1);
        let mut children = Vec::with_capacity(processes);
        let mut left = spec.agents;
        for i in 0..processes {
            let here = left.div_ceil(processes - i);
            left -= here;
            let mut cmd = Command::new(exe);
            clean_env(&mut cmd);
            let tls = server.opamp_scheme == "wss";
            let (scheme, transport) = match (spec.transport, tls) {
                (Transport::Ws, false) => ("ws", "ws"),
                (Transport::Ws, true) => ("wss", "ws"),
                (Transport::Http, false) => ("http", "http"),
                (Transport::Http, true) => ("https", "http"),
            };
            // In the environment, not on the command line (/proc/PID/cmdline is world-readable).
            cmd.env("OTAAS_AGENT_TOKEN", &server.agent_token);
            cmd.arg("fleet-sim")
                .arg("--server")
                .arg(format!("{scheme}://{}/v1/opamp", server.opamp_addr))
                .args(["--transport", transport])
                .arg("--agents")
                .arg(here.to_string())
                .arg("--labels")
                .arg(if spec.extra_labels.is_empty() {
                    format!("bench={}", spec.label)
                } else {
                    format!("bench={},{}", spec.label, spec.extra_labels)
                })
                .arg("--heartbeat")
                .arg(spec.heartbeat_seconds.to_string())
                .args(["--own-metrics-seconds", "0", "--quiet"])
                // All processes together stay below the server's default admission rate (500
                // new agents per second after a burst of 2,000), so no agent is turned away.
                .arg("--connect-rate")
                .arg((FLEET_CONNECT_RATE / processes as u32).max(1).to_string());
            if let Some(ca) = &spec.ca_cert {
                cmd.arg("--ca-cert").arg(ca);
            }
            let (child, stderr) = Child::spawn(format!("otaas fleet-sim ({})", spec.label), cmd)?;
            child.drain(stderr);
            children.push(child);
        }
        Ok(Self { children })
    }

    pub(crate) fn check_alive(&mut self) -> Result<(), BenchError> {
        self.children.iter_mut().try_for_each(Child::check_alive)
    }

    pub(crate) async fn stop(self) {
        futures::future::join_all(self.children.into_iter().map(Child::stop)).await;
    }
}

/// A database of its own on the PostgreSQL server, dropped by [`PgDatabase::drop_now`].
pub(crate) struct PgDatabase {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    /// Creates `otaas_bench_<pid>_<n>` on the server of `admin_url`.
    pub(crate) async fn create(admin_url: &str, n: u32) -> Result<Self, BenchError> {
        use sqlx::Connection as _;
        let name = format!("otaas_bench_{}_{n}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin_url).await.map_err(|e| {
            BenchError::new(
                format!("connecting to PostgreSQL at {}", redact_url(admin_url)),
                e,
            )
        })?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .map_err(|e| BenchError::new(format!("creating database {name}"), e))?;
        let _ = conn.close().await;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: otaas_testkit::pg::with_database(admin_url, &name),
            name,
        })
    }

    pub(crate) async fn drop_now(self) {
        use sqlx::Connection as _;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            if let Err(err) = sqlx::query(&sql).execute(&mut conn).await {
                eprintln!("otaas bench: dropping database {}: {err}", self.name);
            }
            let _ = conn.close().await;
        }
    }
}

/// A URL with its password (if any) replaced, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Resident set size of `pid` (`VmRSS` in `/proc/PID/status`), in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Result<u64, BenchError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::new(format!("reading {}", path.display()), e))?;
    parse_vm_rss(&text)
        .ok_or_else(|| BenchError::msg(format!("{} has no VmRSS line", path.display())))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system) `pid` has used so far, in seconds (`/proc/PID/stat`).
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64, BenchError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::new(format!("reading {}", path.display()), e))?;
    let ticks = parse_cpu_ticks(&text).ok_or_else(|| {
        BenchError::msg(format!("{} is not in the expected format", path.display()))
    })?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// CPU time (user + system) of this process's children that have ended and been waited for,
/// in seconds (`cutime` + `cstime` of `/proc/self/stat`). A child's own waited-for children
/// count in it too: a Terraform command's figure includes the providers it started.
pub(crate) fn ended_children_cpu_seconds() -> Result<f64, BenchError> {
    let text = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| BenchError::new("reading /proc/self/stat", e))?;
    let ticks = parse_children_cpu_ticks(&text)
        .ok_or_else(|| BenchError::msg("/proc/self/stat is not in the expected format"))?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// cutime + cstime (fields 16 and 17) in clock ticks.
fn parse_children_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    Some(cutime + cstime)
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Share of one core `pid` uses over `window`, in percent.
pub(crate) async fn cpu_percent(pid: u32, window: Duration) -> Result<f64, BenchError> {
    let start_cpu = cpu_seconds(pid)?;
    let start = tokio::time::Instant::now();
    tokio::time::sleep(window).await;
    let used = cpu_seconds(pid)? - start_cpu;
    Ok(100.0 * used / start.elapsed().as_secs_f64())
}

/// This process's soft open-files limit, which the servers and fleets it starts inherit (the
/// `otaas` command raises it to the hard limit before any subcommand runs).
pub(crate) fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\totaas\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_count_fields_after_the_command_name() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat =
            "4242 (otaas (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        // cutime and cstime come right after utime and stime.
        assert_eq!(parse_children_cpu_ticks(stat), Some(0));
        let stat = "1 (a b) S 1 1 1 0 -1 0 0 0 0 0 250 50 700 35 20 0 3 0 1 2 3";
        assert_eq!(parse_children_cpu_ticks(stat), Some(735));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}

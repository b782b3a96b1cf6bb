//! Real processes for scenario tests: `otaas serve` on port 0 (or a given OpAMP address) and
//! `otaas fleet-sim` with its JSON lines collected.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otaas_api::{Client, ClientConfig};
use serde_json::Value;

/// What `otaas serve` prints on stderr once its REST listener is up, followed by the address.
pub const API_LINE: &str = "otaas: api listening on ";
/// The same for the OpAMP listener.
pub const OPAMP_LINE: &str = "otaas: opamp listening on ";

pub const ADMIN: &str = "scenario-admin-token";
/// Every wait is bounded by this; passing it fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Collects a child's output lines in the background.
pub fn collect_lines(read: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
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

/// A running `otaas serve` (SQLite in `data_dir`), killed when dropped.
pub struct Serve {
    pub child: Child,
    pub api: String,
    pub opamp: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// How to start an `otaas serve` (see [`Serve::builder`]).
pub struct ServeBuilder {
    data_dir: std::path::PathBuf,
    opamp_listen: String,
    admin: bool,
    lab: bool,
    heartbeat: bool,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServeBuilder {
    /// The OpAMP listen address (default `127.0.0.1:0`).
    pub fn opamp_listen(mut self, addr: &str) -> Self {
        self.opamp_listen = addr.to_owned();
        self
    }

    /// No `--admin-token`: the server generates one into its data dir, as on a first start.
    pub fn bootstrap_admin(mut self) -> Self {
        self.admin = false;
        self
    }

    /// The defaults a user gets: no `--allow-anonymous-agents`, no 2 s heartbeat.
    pub fn defaults(mut self) -> Self {
        self.lab = false;
        self.heartbeat = false;
        self
    }

    /// More flags for `otaas serve`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// An environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server and waits until both listeners are up.
    pub fn start(self) -> Serve {
        let mut cmd = Command::new(crate::bin::otaas());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--opamp-listen"])
            .arg(&self.opamp_listen);
        if self.admin {
            cmd.args(["--admin-token", ADMIN]);
        }
        if self.heartbeat {
            cmd.args(["--opamp-heartbeat-seconds", "2"]);
        }
        // A lab server lets anonymous agents in, unless the test asks for the product's default.
        if self.lab && !self.args.iter().any(|a| a == "--require-agent-token") {
            cmd.arg("--allow-anonymous-agents");
        }
        cmd.args(&self.args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("OTAAS_DATABASE")
            .env_remove("OTAAS_ADMIN_TOKEN")
            .env("OTAAS_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn otaas serve");
        let stderr = collect_lines(child.stderr.take().unwrap());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let (api, opamp) = {
                let lines = stderr.lock().unwrap();
                let find = |p: &str| {
                    lines
                        .iter()
                        .find_map(|l| l.strip_prefix(p).map(str::to_owned))
                };
                (find(API_LINE), find(OPAMP_LINE))
            };
            if let (Some(api), Some(opamp)) = (api, opamp) {
                return Serve {
                    child,
                    api,
                    opamp,
                    stderr,
                };
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!(
                    "otaas serve did not start; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Serve {
    /// A server for `data_dir`: a lab server (anonymous agents allowed, a 2 s heartbeat, the
    /// admin token [`ADMIN`]) unless told otherwise.
    pub fn builder(data_dir: &Path) -> ServeBuilder {
        ServeBuilder {
            data_dir: data_dir.to_path_buf(),
            opamp_listen: "127.0.0.1:0".to_owned(),
            admin: true,
            lab: true,
            heartbeat: true,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A lab server: anonymous agents allowed, as these scenarios are about what agents and
    /// the server do once connected. Pass `--require-agent-token` (the product's default) for
    /// a server that wants tokens; [`Serve::start_default`] adds no flag at all.
    pub fn start(data_dir: &Path, opamp_listen: &str, extra: &[&str]) -> Self {
        Self::builder(data_dir)
            .opamp_listen(opamp_listen)
            .args(extra)
            .start()
    }

    /// `otaas serve` with only the flags a test needs to find and drive it (addresses, admin
    /// token, a 2 s heartbeat) plus `extra`: otherwise the defaults a user gets.
    pub fn start_default(data_dir: &Path, opamp_listen: &str, extra: &[&str]) -> Self {
        let mut b = Self::builder(data_dir)
            .opamp_listen(opamp_listen)
            .args(extra);
        b.lab = false;
        b.start()
    }

    /// A client with another token (a generated admin token, a read-only one, ...).
    pub fn client_as(&self, token: &str) -> Client {
        Client::new(ClientConfig::new(format!("http://{}", self.api), token)).unwrap()
    }

    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(format!("http://{}", self.api), ADMIN)).unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.opamp)
    }

    /// The OpAMP endpoint for the plain HTTP transport.
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.opamp)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits (bounded by [`TIMEOUT`]) for a clean exit: the last changes are
    /// flushed to the store. Returns the server's log.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "otaas exited with {status}");
                // The last lines may still be on their way through the pipe.
                let deadline = Instant::now() + Duration::from_secs(5);
                while !self.log().contains("otaas: stopped") && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let log = self.log();
                assert!(log.contains("otaas: stopped"), "unclean stop:\n{log}");
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("otaas did not stop in time after SIGTERM");
    }

    /// The server's resident memory (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in /proc/PID/status")
            * 1024
    }

    /// SIGKILL: no goodbye, no final flush (a crash).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `otaas fleet-sim` with its control on stdin.
pub struct Sim {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
}

impl Sim {
    pub fn start(server_url: &str, args: &[&str]) -> Self {
        let mut child = Command::new(crate::bin::otaas())
            .args(["fleet-sim", "--server", server_url, "--control-stdin"])
            .args(args)
            .env("OTAAS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn otaas fleet-sim");
        let out = collect_lines(child.stdout.take().unwrap());
        Self {
            stdin: child.stdin.take(),
            child,
            out,
        }
    }

    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == kind)
            .collect()
    }

    /// Closes the control (the simulator stops) and returns its summary line.
    pub fn stop(mut self) -> Value {
        drop(self.stdin.take());
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "fleet-sim did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
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
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on 127.0.0.1 (for a server that must come back on the same address).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

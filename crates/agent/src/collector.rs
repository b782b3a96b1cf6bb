//! The collector binary as the supervisor uses it: `--version`, `components`, `validate` and
//! running it as a child process whose stderr is kept (the last lines) and watched for the
//! line that says the pipelines are running.
//!
//! Everything here is about one executable; the decisions (when to validate, restart, roll
//! back) are in `supervisor.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use crate::exporter_health::{ExportFailure, parse_failure};

/// How many stderr lines of a collector are kept for error reports.
const KEEP_LINES: usize = 40;
/// How long a collector that said it runs must stay up before it counts as running.
const SETTLE: Duration = Duration::from_secs(1);
/// The collector logs this (at info level) once every pipeline started.
const READY_MARK: &str = "Everything is ready";

/// Why a collector command could not be used at all (as opposed to a config it rejected).
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("running {path} {args}: {source}")]
    Spawn {
        path: PathBuf,
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} {args} failed: {stderr}")]
    Failed {
        path: PathBuf,
        args: String,
        stderr: String,
    },
    #[error("parsing the output of {path} {args}: {reason}")]
    Output {
        path: PathBuf,
        args: String,
        reason: String,
    },
}

/// What `<collector> --version` and `components` say about the build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The distribution's command name (`otelcontribcol`, `otelcol-contrib`, ...).
    pub command: String,
    pub version: String,
    /// Component kind (`receivers`, `processors`, `exporters`, `extensions`, `connectors`)
    /// → type → Go module (with its version) that provides it.
    pub components: BTreeMap<String, BTreeMap<String, String>>,
    /// Component kind → type → signal (as `components` names it: `logs`, `metrics`, `traces`,
    /// or for connectors `logs_to_metrics` and the like) → stability level. Only types whose
    /// entry lists a stability are here; `Undefined` means the signal is not supported.
    pub stability: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

impl BuildInfo {
    /// Every component type of one kind.
    pub fn types(&self, kind: &str) -> BTreeSet<&str> {
        self.components
            .get(kind)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// The five component sections of a collector config and of `components` output.
pub const KINDS: [&str; 5] = [
    "receivers",
    "processors",
    "exporters",
    "extensions",
    "connectors",
];

/// A collector executable.
#[derive(Clone, Debug)]
pub struct Collector {
    pub path: PathBuf,
}

/// The `--config` arguments for a config file: the file, plus sources for what the file leaves
/// to the agent. The collector's own metrics are turned off unless the file sets them: left on,
/// every collector on a host would try to serve them on 127.0.0.1:8888 and all but the first
/// would fail to start. Its logs are JSON unless the file sets an encoding, so the agent can
/// read which exporter fails (`exporter_health.rs`).
pub fn config_args(path: &Path, yaml: &str) -> Vec<String> {
    let mut args = vec![format!("--config=file:{}", path.display())];
    let doc = serde_norway::from_str::<serde_norway::Value>(yaml).ok();
    let telemetry = doc
        .as_ref()
        .and_then(|d| d.get("service")?.get("telemetry"));
    if telemetry.and_then(|t| t.get("metrics")).is_none() {
        args.push("--config=yaml:service::telemetry::metrics::level: none".to_owned());
    }
    if telemetry
        .and_then(|t| t.get("logs")?.get("encoding"))
        .is_none()
    {
        args.push("--config=yaml:service::telemetry::logs::encoding: json".to_owned());
    }
    args
}

impl Collector {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    async fn output(&self, args: &[String]) -> Result<std::process::Output, CollectorError> {
        let out = Command::new(&self.path)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        // A healthy build answers these in well under a second; a hung one must not hang us.
        match tokio::time::timeout(Duration::from_secs(60), out).await {
            Ok(r) => r.map_err(|source| CollectorError::Spawn {
                path: self.path.clone(),
                args: args.join(" "),
                source,
            }),
            Err(_) => Err(CollectorError::Failed {
                path: self.path.clone(),
                args: args.join(" "),
                stderr: "no answer within 60 s".to_owned(),
            }),
        }
    }

    /// `--version` and `components`, parsed.
    pub async fn build_info(&self) -> Result<BuildInfo, CollectorError> {
        let version_args = ["--version".to_owned()];
        let out = self.output(&version_args).await?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            return Err(CollectorError::Failed {
                path: self.path.clone(),
                args: "--version".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let (command, version) = parse_version(&text).ok_or_else(|| CollectorError::Output {
            path: self.path.clone(),
            args: "--version".into(),
            reason: format!("expected `<command> version <version>`, got {text:?}"),
        })?;
        let components_args = ["components".to_owned()];
        let out = self.output(&components_args).await?;
        if !out.status.success() {
            return Err(CollectorError::Failed {
                path: self.path.clone(),
                args: "components".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let Components { modules, stability } =
            parse_components(&out.stdout).map_err(|reason| CollectorError::Output {
                path: self.path.clone(),
                args: "components".into(),
                reason,
            })?;
        Ok(BuildInfo {
            command,
            version,
            components: modules,
            stability,
        })
    }

    /// `validate` on a config file: `Ok` when the collector accepts it, else the collector's
    /// own error text.
    pub async fn validate(
        &self,
        path: &Path,
        yaml: &str,
    ) -> Result<Result<(), String>, CollectorError> {
        let mut args = vec!["validate".to_owned()];
        args.extend(config_args(path, yaml));
        let out = self.output(&args).await?;
        if out.status.success() {
            return Ok(Ok(()));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
        Ok(Err(error_text(&lines)))
    }

    /// Starts the collector on a config file; the failed sends it logs go to `failures`, with
    /// its pid (a restarted collector's late lines must not count against the new one).
    pub fn spawn(
        &self,
        path: &Path,
        yaml: &str,
        failures: mpsc::UnboundedSender<(u32, ExportFailure)>,
    ) -> Result<Running, CollectorError> {
        let args = config_args(path, yaml);
        let mut child = Command::new(&self.path)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // The supervisor's death must not leave an unsupervised collector behind.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CollectorError::Spawn {
                path: self.path.clone(),
                args: args.join(" "),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let lines = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP_LINES)));
        let (ready_tx, ready) = watch::channel(false);
        if let Some(stderr) = child.stderr.take() {
            let keep = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if line.contains(READY_MARK) {
                        let _ = ready_tx.send(true);
                    }
                    tracing::debug!(target: "otaas::collector", "{line}");
                    if let Some(failure) = parse_failure(&line) {
                        let _ = failures.send((pid, failure));
                    }
                    let mut keep = keep.lock().unwrap_or_else(|p| p.into_inner());
                    if keep.len() == KEEP_LINES {
                        keep.pop_front();
                    }
                    keep.push_back(readable(&line));
                }
            });
        }
        Ok(Running {
            child,
            pid,
            lines,
            ready,
        })
    }
}

/// A running collector process.
pub struct Running {
    child: Child,
    pub pid: u32,
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Becomes true when the collector logs that all pipelines run.
    ready: watch::Receiver<bool>,
}

/// How a wait for a starting collector ended.
#[derive(Debug)]
pub enum Startup {
    /// It said it runs (or was still alive when the grace period ended).
    Running,
    /// It exited first.
    Exited(ExitStatus),
}

impl Running {
    /// The last stderr lines (oldest first).
    pub fn last_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Waits until the collector runs its pipelines or exits. A collector whose log level
    /// hides the ready line counts as running once it survived `grace`.
    pub async fn started(&mut self, grace: Duration) -> Startup {
        let mut ready = self.ready.clone();
        let ready_seen = async {
            while !*ready.borrow_and_update() {
                if ready.changed().await.is_err() {
                    // The stderr reader ended (the process closed it): let `wait` decide.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            status = self.child.wait() => return match status {
                Ok(status) => Startup::Exited(status),
                Err(_) => Startup::Running,
            },
            _ = ready_seen => {}
            _ = tokio::time::sleep(grace) => return Startup::Running,
        }
        // A collector that says it runs and dies right after (a component failing once data
        // flows) must not become the last good config: give it a moment to settle.
        match tokio::time::timeout(SETTLE, self.child.wait()).await {
            Ok(Ok(status)) => Startup::Exited(status),
            _ => Startup::Running,
        }
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        // Give the stderr reader a moment to take the last lines (the pipe is closed).
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(status)
    }

    /// Stops the collector: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
    }
}

/// `otelcontribcol version 0.135.0-dev` → (`otelcontribcol`, `0.135.0-dev`).
pub fn parse_version(text: &str) -> Option<(String, String)> {
    let line = text.lines().next()?.trim();
    let (command, version) = line.split_once(" version ")?;
    Some((command.trim().to_owned(), version.trim().to_owned()))
}

#[derive(serde::Deserialize)]
struct ComponentEntry {
    name: String,
    #[serde(default)]
    module: String,
    /// Signal → level (extensions have a single `extension` key); any other shape is ignored.
    #[serde(default)]
    stability: serde_norway::Value,
}

/// What `components` says, per kind and type: the providing module and, where listed, the
/// stability per signal (see [`BuildInfo`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Components {
    pub modules: BTreeMap<String, BTreeMap<String, String>>,
    pub stability: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

/// The YAML `components` prints: a list of `{name, module, stability}` per kind.
pub fn parse_components(out: &[u8]) -> Result<Components, String> {
    let doc: serde_norway::Value = serde_norway::from_slice(out).map_err(|e| e.to_string())?;
    let mut all = Components::default();
    for kind in KINDS {
        let entries: Vec<ComponentEntry> = match doc.get(kind) {
            None | Some(serde_norway::Value::Null) => Vec::new(),
            Some(v) => serde_norway::from_value(v.clone()).map_err(|e| format!("{kind}: {e}"))?,
        };
        let mut modules = BTreeMap::new();
        let mut stability = BTreeMap::new();
        for e in entries {
            // Only a signal → level map says anything per signal; anything else (an
            // extension's single level, nothing at all) leaves the type without a record.
            if let serde_norway::Value::Mapping(map) = &e.stability {
                let levels: BTreeMap<String, String> = map
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                    .collect();
                if !levels.is_empty() {
                    stability.insert(e.name.clone(), levels);
                }
            }
            modules.insert(e.name, e.module);
        }
        all.modules.insert(kind.to_owned(), modules);
        if !stability.is_empty() {
            all.stability.insert(kind.to_owned(), stability);
        }
    }
    Ok(all)
}

/// A JSON log line as a person reads it (`error <msg> <component>: <error>`), for the stderr
/// lines quoted in crash reports; other lines as they are.
pub fn readable(line: &str) -> String {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let mut out = format!("{} {}", field("level"), field("msg"));
    let component = field("otelcol.component.id");
    if !component.is_empty() {
        out.push_str(&format!(" [{component}]"));
    }
    let error = field("error");
    if !error.is_empty() {
        out.push_str(&format!(": {error}"));
    }
    out
}

/// The collector's own words for why it stopped: its `Error: ...` line when it printed one,
/// else its last few lines.
pub fn error_text(lines: &[String]) -> String {
    if let Some(err) = lines.iter().rev().find_map(|l| l.strip_prefix("Error: ")) {
        return err.trim().to_owned();
    }
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(5)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        "the collector printed nothing".to_owned()
    } else {
        tail.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line() {
        assert_eq!(
            parse_version("otelcontribcol version 0.135.0-dev\n"),
            Some(("otelcontribcol".to_owned(), "0.135.0-dev".to_owned()))
        );
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn components_output() {
        let out = b"buildinfo:\n    command: otelcontribcol\nreceivers:\n    - name: filelog\n      module: github.com/x/filelogreceiver v0.135.0\n      stability:\n        logs: Beta\nprocessors:\n    - name: batch\n      module: go.opentelemetry.io/collector/processor/batchprocessor v0.135.0\nconnectors: []\nextensions: []\n";
        let c = parse_components(out).unwrap().modules;
        assert_eq!(
            c["receivers"],
            BTreeMap::from([(
                "filelog".to_owned(),
                "github.com/x/filelogreceiver v0.135.0".to_owned()
            )])
        );
        assert_eq!(c["processors"].keys().collect::<Vec<_>>(), ["batch"]);
        assert!(c["exporters"].is_empty() && c["connectors"].is_empty());
    }

    /// The real collector's `components` output (otelcontribcol 0.135.0-dev, as printed, less
    /// two processors), plus an extension in the shape builds with extensions print.
    const REAL_COMPONENTS: &str = "buildinfo:
    command: otelcontribcol
    description: Local OpenTelemetry Collector Contrib binary, testing only.
    version: 0.135.0-dev
receivers:
    - name: filelog
      module: github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver v0.135.0
      stability:
        logs: Beta
        metrics: Undefined
        traces: Undefined
processors:
    - name: batch
      module: go.opentelemetry.io/collector/processor/batchprocessor v0.135.0
      stability:
        logs: Beta
        metrics: Beta
        traces: Beta
exporters:
    - name: otlphttp
      module: go.opentelemetry.io/collector/exporter/otlphttpexporter v0.135.0
      stability:
        logs: Stable
        metrics: Stable
        traces: Stable
connectors: []
extensions:
    - name: health_check
      module: github.com/x/healthcheckextension v0.135.0
      stability:
        extension: Beta
providers:
    - scheme: env
      module: go.opentelemetry.io/collector/confmap/provider/envprovider v1.41.0
";

    #[test]
    fn components_output_keeps_the_stability_per_signal() {
        // Given the real collector's `components` output
        // When it is parsed
        let c = parse_components(REAL_COMPONENTS.as_bytes()).unwrap();
        // Then each type has its per-signal levels, `Undefined` included
        let level = |kind: &str, ty: &str| -> Vec<(String, String)> {
            c.stability[kind][ty]
                .iter()
                .map(|(s, l)| (s.clone(), l.clone()))
                .collect()
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            level("receivers", "filelog"),
            pairs(&[
                ("logs", "Beta"),
                ("metrics", "Undefined"),
                ("traces", "Undefined")
            ])
        );
        assert_eq!(
            level("exporters", "otlphttp"),
            pairs(&[
                ("logs", "Stable"),
                ("metrics", "Stable"),
                ("traces", "Stable")
            ])
        );
        assert_eq!(
            level("extensions", "health_check"),
            pairs(&[("extension", "Beta")])
        );
        assert_eq!(
            c.modules["receivers"]["filelog"],
            "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver v0.135.0"
        );
        assert!(!c.stability.contains_key("connectors"));
    }

    #[test]
    fn error_text_prefers_the_error_line() {
        let lines = vec![
            "2026-01-01T00:00:00Z info starting".to_owned(),
            "Error: cannot start pipelines: boom".to_owned(),
            "2026/01/01 00:00:00 collector server run finished with error: boom".to_owned(),
        ];
        assert_eq!(error_text(&lines), "cannot start pipelines: boom");
        assert_eq!(error_text(&lines[..1]), lines[0]);
    }

    #[test]
    fn metrics_are_off_and_logs_are_json_unless_the_config_sets_them() {
        let p = Path::new("/d/c.yaml");
        assert_eq!(
            config_args(p, "receivers: {}\n"),
            [
                "--config=file:/d/c.yaml",
                "--config=yaml:service::telemetry::metrics::level: none",
                "--config=yaml:service::telemetry::logs::encoding: json"
            ]
        );
        assert_eq!(
            config_args(
                p,
                "service:\n  telemetry:\n    metrics:\n      level: basic\n    logs:\n      encoding: console\n"
            ),
            ["--config=file:/d/c.yaml"]
        );
    }

    #[test]
    fn json_log_lines_read_like_sentences_in_crash_reports() {
        let line = r#"{"level":"error","msg":"Exporting failed. Dropping data.","otelcol.component.id":"otlphttp/a","error":"refused","stacktrace":"x"}"#;
        assert_eq!(
            readable(line),
            "error Exporting failed. Dropping data. [otlphttp/a]: refused"
        );
        assert_eq!(readable("Error: boom"), "Error: boom");
    }
}

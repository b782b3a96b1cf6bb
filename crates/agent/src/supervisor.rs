//! The supervisor proper: owns the collector child process and the config files in the data
//! dir, applies offered configs (validate → write → restart → wait until it runs), goes back to
//! the last good config when a new one does not start, and restarts a crashed collector with
//! backoff. It knows nothing of OpAMP: offers come in on a channel, and what the server should
//! hear goes out as a [`Report`] on a `watch` channel (the latest state wins).
//!
//! Files in the data dir: `collector.yaml` (what the collector runs), `candidate.yaml` (an
//! offer being validated), `last-good.json` (the last config that ran, with its hash, read at
//! start-up so the collector runs before the server is reachable), `collector.pid`.
//!
//! A local config (`otaas agent --config`, a file the collector already used) runs when there
//! is no last good config: it is reported as the effective config but not as a remote one (the
//! server did not send it), and it is never saved as the last good config. An offer equivalent
//! to what the collector runs (`otaas_collector::shape::equivalent`: the same pipelines,
//! components and settings under other names) is taken without restarting the collector.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use otaas_collector::shape::equivalent;

use crate::collector::{Collector, Running, Startup, error_text};
use crate::events::emit;
use crate::exporter_health::{ExportFailure, ExporterWatch, Failing};

/// How long a collector gets to stop (SIGTERM) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A collector that ran this long before crashing restarts without the built-up backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Stderr lines of a crashed collector included in the health report.
const CRASH_LINES: usize = 8;

/// One config: the OpAMP hash the server gave it and the YAML body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Hex of the server's config hash; empty for the local config (`--config`).
    pub hash: String,
    pub yaml: String,
}

/// Where the last offered config stands (the OpAMP `RemoteConfigStatuses`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApplyState {
    #[default]
    Unset,
    Applying,
    Applied,
    Failed,
}

impl ApplyState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyState::Unset => "UNSET",
            ApplyState::Applying => "APPLYING",
            ApplyState::Applied => "APPLIED",
            ApplyState::Failed => "FAILED",
        }
    }
}

/// The collector's health as reported to the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub status: String,
    /// The last failure (a crash with the collector's last stderr lines, a failed start); kept
    /// after recovery so the server can still see what happened.
    pub last_error: String,
    pub start_time_unix_nano: u64,
    /// Pipelines of the running config (`logs/app`, ...).
    pub pipelines: Vec<String>,
    /// Pipeline → the exporters it lists, in the running config.
    pub exporters: BTreeMap<String, Vec<String>>,
    /// Exporters of the running collector whose sends fail (see `exporter_health.rs`).
    pub failing: BTreeMap<String, Failing>,
}

/// What the server should hear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Hex hash of the last offered config (or of the running one after a restart); empty
    /// while the local config runs and nothing was offered.
    pub remote_hash: String,
    pub remote_state: ApplyState,
    pub remote_error: String,
    /// The YAML the collector runs.
    pub effective: Option<String>,
    pub health: Health,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// Writes `body` to `path` atomically: a temp file in the same dir, fsync, rename. Readers (the
/// collector, an operator, the next start) see the old file or the new one, never half.
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Pipelines named in a config's `service.pipelines`.
pub fn pipelines_of(yaml: &str) -> Vec<String> {
    serde_norway::from_str::<serde_norway::Value>(yaml)
        .ok()
        .and_then(|doc| {
            let map = doc.get("service")?.get("pipelines")?.as_mapping()?.clone();
            Some(
                map.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// Pipeline → the exporters listed in it, from a config's `service.pipelines`.
pub fn exporters_of(yaml: &str) -> BTreeMap<String, Vec<String>> {
    let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(yaml) else {
        return BTreeMap::new();
    };
    let Some(pipelines) = doc
        .get("service")
        .and_then(|s| s.get("pipelines"))
        .and_then(|p| p.as_mapping())
    else {
        return BTreeMap::new();
    };
    pipelines
        .iter()
        .filter_map(|(name, body)| {
            let exporters = body
                .get("exporters")
                .and_then(|e| e.as_sequence())
                .map(|list| {
                    list.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Some((name.as_str()?.to_owned(), exporters))
        })
        .collect()
}

/// The supervisor's state; [`Supervisor::run`] drives it.
pub struct Supervisor {
    collector: Collector,
    dir: PathBuf,
    /// How long a starting collector may stay silent before it counts as running.
    grace: Duration,
    report: watch::Sender<Report>,
    running: Option<Running>,
    /// The config the collector runs (or is being restarted with after a crash).
    current: Option<Config>,
    /// The last config that started; where a failed new one goes back to.
    good: Option<Config>,
    /// The `--config` file's content, run when there is no last good config.
    local: Option<Config>,
    /// The YAML the running collector process was started with. After an equivalent offer
    /// `current` is the offer while the process still runs this: the next offer must be
    /// compared with what actually runs.
    running_yaml: Option<String>,
    /// Exporter ids of `running_yaml` → their ids in `current`, when an equivalent offer was
    /// taken without a restart: the collector logs failures under the ids it runs.
    renamed: BTreeMap<String, String>,
    started_at: Option<Instant>,
    restart_at: Option<Instant>,
    backoff: Duration,
    /// Failed sends the running collector logs, tagged with its pid.
    failures_tx: mpsc::UnboundedSender<(u32, ExportFailure)>,
    failures: mpsc::UnboundedReceiver<(u32, ExportFailure)>,
    exporters: ExporterWatch,
}

impl Supervisor {
    /// A supervisor for `collector` keeping its files in `dir`; loads the last good config.
    pub fn new(
        collector: Collector,
        dir: PathBuf,
        grace: Duration,
        report: watch::Sender<Report>,
    ) -> Self {
        let good = std::fs::read(dir.join("last-good.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Config>(&b).ok());
        let (failures_tx, failures) = mpsc::unbounded_channel();
        Self {
            collector,
            dir,
            grace,
            report,
            running: None,
            current: None,
            good,
            local: None,
            running_yaml: None,
            renamed: BTreeMap::new(),
            started_at: None,
            restart_at: None,
            backoff: BACKOFF_START,
            failures_tx,
            failures,
            exporters: ExporterWatch::default(),
        }
    }

    /// Sets how long a failing exporter must stay quiet to be healthy again.
    pub fn with_exporter_quiet(mut self, quiet: Duration) -> Self {
        self.exporters = ExporterWatch::new(quiet);
        self
    }

    /// Sets the local config (`--config`): run when the data dir has no last good config.
    pub fn with_local_config(mut self, yaml: Option<String>) -> Self {
        self.local = yaml.map(|yaml| Config {
            hash: String::new(),
            yaml,
        });
        self
    }

    /// The hash of the last good config (what the server is told runs at start-up).
    pub fn good_hash(&self) -> Option<String> {
        self.good.as_ref().map(|g| g.hash.clone())
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("collector.yaml")
    }

    fn set_remote(&self, hash: &str, state: ApplyState, error: &str) {
        emit(
            "config",
            serde_json::json!({ "hash": hash, "status": state.as_str(), "error": error }),
        );
        self.report.send_modify(|r| {
            r.remote_hash = hash.to_owned();
            r.remote_state = state;
            r.remote_error = error.to_owned();
        });
    }

    fn set_health(&self, f: impl FnOnce(&mut Health)) {
        self.report.send_modify(|r| f(&mut r.health));
    }

    /// Runs until `stop`: starts the last good config, then serves offers and restarts.
    pub async fn run(mut self, mut offers: mpsc::Receiver<Config>, stop: CancellationToken) {
        if let Some(good) = self.good.clone() {
            self.set_remote(&good.hash, ApplyState::Applied, "");
            if let Err(err) = self.install_and_start(&good).await {
                self.crashed_start(&good, err);
            }
        } else if let Some(local) = self.local.clone() {
            // The remote status stays unset: the server sent nothing yet.
            emit(
                "local_config",
                serde_json::json!({ "pipelines": pipelines_of(&local.yaml) }),
            );
            if let Err(err) = self.install_and_start(&local).await {
                self.crashed_start(&local, err);
            }
        } else {
            self.set_health(|h| {
                h.healthy = false;
                h.status = "waiting for a config from the server".to_owned();
            });
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                offer = offers.recv() => {
                    let Some(mut offer) = offer else { break };
                    // Only the newest offer matters.
                    while let Ok(newer) = offers.try_recv() {
                        offer = newer;
                    }
                    self.apply(offer).await;
                }
                status = wait_exit(&mut self.running) => {
                    self.on_exit(status);
                }
                Some((pid, mut failure)) = self.failures.recv() => {
                    let current = self.running.as_ref().is_some_and(|r| r.pid == pid);
                    if let Some(id) = self.renamed.get(&failure.component) {
                        failure.component = id.clone();
                    }
                    if current && self.exporters.record(failure, Instant::now()) {
                        self.publish_exporters();
                    }
                }
                _ = sleep_until(self.exporters.next_expiry().unwrap_or_else(Instant::now)), if self.exporters.next_expiry().is_some() => {
                    if self.exporters.expire(Instant::now()) {
                        self.publish_exporters();
                    }
                }
                _ = sleep_until(self.restart_at.unwrap_or_else(Instant::now)), if self.restart_at.is_some() => {
                    self.restart_at = None;
                    if let Some(cfg) = self.current.clone() {
                        emit("collector_restarting", serde_json::json!({ "hash": cfg.hash }));
                        if let Err(err) = self.start(&cfg).await {
                            self.crashed_start(&cfg, err);
                        }
                    }
                }
            }
        }
        self.stop_collector().await;
    }

    fn publish_exporters(&self) {
        let failing = self.exporters.failing().clone();
        for (id, f) in &failing {
            emit(
                "exporter_failing",
                serde_json::json!({ "component": id, "error": f.error }),
            );
        }
        self.set_health(|h| h.failing = failing);
    }

    async fn stop_collector(&mut self) {
        if let Some(running) = self.running.take() {
            let pid = running.pid;
            running.stop(STOP_GRACE).await;
            emit("collector_stopped", serde_json::json!({ "pid": pid }));
        }
        let _ = std::fs::remove_file(self.dir.join("collector.pid"));
        self.started_at = None;
        self.running_yaml = None;
        self.exporters.clear();
    }

    /// Applies one offer. Nothing running is touched until the collector validated it.
    async fn apply(&mut self, cfg: Config) {
        if self.current.as_ref() == Some(&cfg) && self.running.is_some() {
            self.set_remote(&cfg.hash, ApplyState::Applied, "");
            return;
        }
        self.set_remote(&cfg.hash, ApplyState::Applying, "");
        let candidate = self.dir.join("candidate.yaml");
        if let Err(err) = write_atomic(&candidate, cfg.yaml.as_bytes()) {
            let msg = format!("writing {}: {err}", candidate.display());
            self.set_remote(&cfg.hash, ApplyState::Failed, &msg);
            return;
        }
        // A config without pipelines is valid for the server (a group still being assembled)
        // but the collector refuses to run one: run nothing and say so.
        if pipelines_of(&cfg.yaml).is_empty() {
            self.stop_collector().await;
            self.restart_at = None;
            if let Err(err) = self.install(&cfg) {
                self.set_remote(&cfg.hash, ApplyState::Failed, &err);
                return;
            }
            self.current = Some(cfg.clone());
            self.remember_good(&cfg);
            self.report.send_modify(|r| {
                r.effective = Some(cfg.yaml.clone());
                r.health = Health {
                    healthy: true,
                    status: "idle: the config has no pipelines".to_owned(),
                    last_error: r.health.last_error.clone(),
                    ..Default::default()
                };
            });
            self.set_remote(&cfg.hash, ApplyState::Applied, "");
            return;
        }
        match self.collector.validate(&candidate, &cfg.yaml).await {
            Ok(Ok(())) => {}
            Ok(Err(text)) => {
                self.set_remote(&cfg.hash, ApplyState::Failed, &text);
                return;
            }
            Err(err) => {
                self.set_remote(&cfg.hash, ApplyState::Failed, &err.to_string());
                return;
            }
        }
        if self.running.is_some()
            && self
                .running_yaml
                .as_deref()
                .is_some_and(|running| equivalent(running, &cfg.yaml))
        {
            self.keep_running(cfg);
            return;
        }
        match self.install_and_start(&cfg).await {
            Ok(()) => self.set_remote(&cfg.hash, ApplyState::Applied, ""),
            Err(err) => self.fall_back(&cfg, err).await,
        }
    }

    /// Takes an offer equivalent to what the running collector runs without restarting it: a
    /// restart would only rename components (and drop what is in flight). The file is
    /// installed so that a crash restart runs the offer, and the offer is reported as the
    /// effective config, which is what the server compares with the config it sent.
    fn keep_running(&mut self, cfg: Config) {
        if let Err(err) = self.install(&cfg) {
            self.set_remote(&cfg.hash, ApplyState::Failed, &err);
            return;
        }
        self.current = Some(cfg.clone());
        self.remember_good(&cfg);
        // Health speaks of the offer's pipelines and exporters, as the effective config does.
        let running = self.running_yaml.as_deref().unwrap_or_default();
        let renamed = crate::renames::exporter_renames(running, &cfg.yaml);
        // Failures recorded so far are under the ids reported until now (the running ones, or
        // those of an earlier equivalent offer): move them to the new ones.
        let ids: std::collections::BTreeSet<&String> =
            self.renamed.keys().chain(renamed.keys()).collect();
        let moves: BTreeMap<String, String> = ids
            .into_iter()
            .map(|id| {
                let before = self.renamed.get(id).unwrap_or(id);
                (before.clone(), renamed.get(id).unwrap_or(id).clone())
            })
            .collect();
        self.exporters.rename(&moves);
        self.renamed = renamed;
        let (pipelines, exporters) = (pipelines_of(&cfg.yaml), exporters_of(&cfg.yaml));
        let failing = self.exporters.failing().clone();
        self.report.send_modify(|r| {
            r.effective = Some(cfg.yaml.clone());
            r.health.pipelines = pipelines;
            r.health.exporters = exporters;
            r.health.failing = failing;
        });
        emit(
            "config_equivalent",
            serde_json::json!({
                "hash": cfg.hash,
                "pid": self.running.as_ref().map(|r| r.pid),
                "reason": "no restart: same pipelines, components and settings under other names",
            }),
        );
        self.set_remote(&cfg.hash, ApplyState::Applied, "");
    }

    /// The new config passed `validate` but the collector did not start with it: go back to
    /// the last good config, and report the failure with the collector's own words.
    async fn fall_back(&mut self, failed: &Config, err: String) {
        emit(
            "collector_start_failed",
            serde_json::json!({ "hash": failed.hash, "error": err }),
        );
        let Some(good) = self.good.clone().filter(|g| g.hash != failed.hash) else {
            self.set_remote(&failed.hash, ApplyState::Failed, &err);
            self.crashed_start(failed, err);
            return;
        };
        let msg = if good.hash.is_empty() {
            format!("{err} (rolled back to the local config)")
        } else {
            format!(
                "{err} (rolled back to the last good config {})",
                &good.hash[..good.hash.len().min(12)]
            )
        };
        match self.install_and_start(&good).await {
            Ok(()) => {
                emit("rolled_back", serde_json::json!({ "hash": good.hash }));
                self.set_remote(&failed.hash, ApplyState::Failed, &msg);
            }
            Err(again) => {
                self.set_remote(&failed.hash, ApplyState::Failed, &msg);
                self.crashed_start(&good, again);
            }
        }
    }

    /// Writes `cfg` as the running config file.
    fn install(&self, cfg: &Config) -> Result<(), String> {
        let path = self.config_path();
        write_atomic(&path, cfg.yaml.as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    async fn install_and_start(&mut self, cfg: &Config) -> Result<(), String> {
        self.stop_collector().await;
        self.restart_at = None;
        self.install(cfg)?;
        self.current = Some(cfg.clone());
        self.report
            .send_modify(|r| r.effective = Some(cfg.yaml.clone()));
        self.start(cfg).await?;
        self.remember_good(cfg);
        Ok(())
    }

    fn remember_good(&mut self, cfg: &Config) {
        self.good = Some(cfg.clone());
        // The local config did not come from the server: saved, the next start would report
        // it as a remote config and prefer it to the `--config` file.
        if cfg.hash.is_empty() {
            return;
        }
        let path = self.dir.join("last-good.json");
        match serde_json::to_vec(cfg) {
            Ok(body) => {
                if let Err(err) = write_atomic(&path, &body) {
                    tracing::warn!(error = %err, path = %path.display(), "Could not save the last good config");
                }
            }
            Err(err) => tracing::warn!(error = %err, "Could not encode the last good config"),
        }
    }

    /// Starts the collector on the installed config file and waits until it runs.
    async fn start(&mut self, cfg: &Config) -> Result<(), String> {
        let path = self.config_path();
        let mut running = self
            .collector
            .spawn(&path, &cfg.yaml, self.failures_tx.clone())
            .map_err(|e| e.to_string())?;
        let pid = running.pid;
        match running.started(self.grace).await {
            Startup::Running => {
                let _ = std::fs::write(self.dir.join("collector.pid"), format!("{pid}\n"));
                emit(
                    "collector_started",
                    serde_json::json!({ "pid": pid, "hash": cfg.hash }),
                );
                self.running = Some(running);
                self.running_yaml = Some(cfg.yaml.clone());
                self.renamed.clear();
                self.started_at = Some(Instant::now());
                let pipelines = pipelines_of(&cfg.yaml);
                let exporters = exporters_of(&cfg.yaml);
                self.exporters.clear();
                self.set_health(|h| {
                    h.healthy = true;
                    h.status = format!("running (pid {pid})");
                    h.start_time_unix_nano = now_nanos();
                    h.pipelines = pipelines;
                    h.exporters = exporters;
                    h.failing.clear();
                });
                Ok(())
            }
            Startup::Exited(status) => {
                let lines = running.last_lines();
                Err(format!(
                    "collector exited ({status}): {}",
                    error_text(&lines)
                ))
            }
        }
    }

    /// The running collector exited by itself: report it down and schedule a restart.
    fn on_exit(&mut self, status: std::io::Result<std::process::ExitStatus>) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.running_yaml = None;
        let _ = std::fs::remove_file(self.dir.join("collector.pid"));
        let lines = running.last_lines();
        let status = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("unknown status: {e}"),
        };
        let tail: Vec<String> = lines
            .iter()
            .skip(lines.len().saturating_sub(CRASH_LINES))
            .cloned()
            .collect();
        emit(
            "collector_exited",
            serde_json::json!({ "pid": running.pid, "status": status, "stderr": tail }),
        );
        if self
            .started_at
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE_AFTER)
        {
            self.backoff = BACKOFF_START;
        }
        let mut error = format!("collector (pid {}) exited: {status}", running.pid);
        if !tail.is_empty() {
            error.push_str("; last stderr lines:\n");
            error.push_str(&tail.join("\n"));
        }
        self.schedule_restart(error);
    }

    fn crashed_start(&mut self, cfg: &Config, err: String) {
        self.current = Some(cfg.clone());
        self.schedule_restart(err);
    }

    fn schedule_restart(&mut self, error: String) {
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_CAP);
        self.restart_at = Some(Instant::now() + delay);
        tracing::warn!(error = %error, retry_in = ?delay, "Collector is down");
        self.exporters.clear();
        self.set_health(|h| {
            h.failing.clear();
            h.healthy = false;
            h.status = format!("collector down; restarting in {} s", delay.as_secs());
            h.last_error = error;
            h.start_time_unix_nano = 0;
        });
    }
}

async fn wait_exit(running: &mut Option<Running>) -> std::io::Result<std::process::ExitStatus> {
    match running {
        Some(r) => r.wait().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_read_from_service() {
        let yaml = "receivers: {}\nservice:\n  pipelines:\n    logs/app:\n      receivers: [filelog/app]\n    traces/x: {}\n";
        assert_eq!(pipelines_of(yaml), ["logs/app", "traces/x"]);
        assert!(pipelines_of("service:\n  pipelines: {}\n").is_empty());
        assert!(pipelines_of("not: [yaml").is_empty());
    }

    #[test]
    fn exporters_are_read_per_pipeline() {
        let yaml = "service:\n  pipelines:\n    logs/app:\n      receivers: [filelog/app]\n      exporters: [otlphttp/a, otlphttp/b]\n    traces/x: {}\n";
        assert_eq!(
            exporters_of(yaml),
            BTreeMap::from([
                (
                    "logs/app".to_owned(),
                    vec!["otlphttp/a".to_owned(), "otlphttp/b".to_owned()]
                ),
                ("traces/x".to_owned(), vec![]),
            ])
        );
        assert!(exporters_of("not: [yaml").is_empty());
    }

    /// A stand-in collector: `validate` accepts every config, and a run says it is ready (the
    /// line the supervisor waits for) and stays up until stopped; while a file `fail` exists
    /// next to it, it logs failed sends of its exporter `debug`. A config that mentions
    /// `crash` passes `validate` but does not start.
    fn fake_collector(dir: &Path) -> Collector {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-otelcol");
        std::fs::write(
            &path,
            r#"#!/bin/sh
case "$1" in validate) exit 0;; esac
grep -q crash "${1#--config=file:}" && { echo 'Error: cannot start pipelines: crash' >&2; exit 1; }
echo '{"level":"info","msg":"Everything is ready. Begin running and processing data."}' >&2
while :; do
  sleep 0.2
  [ -f "$(dirname "$0")/fail" ] && echo '{"level":"error","msg":"Exporting failed. Dropping data.","otelcol.component.kind":"exporter","otelcol.component.id":"debug","otelcol.signal":"logs","error":"refused"}' >&2
done
"#,
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A file just written may still be open in a child forked meanwhile by another test
        // (ETXTBSY on exec): wait until it runs.
        for _ in 0..50 {
            match std::process::Command::new(&path).arg("validate").status() {
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        Collector::new(path)
    }

    const LOCAL: &str = "\
receivers:
  filelog:
    include: [/var/log/app.log]
processors:
  batch:
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [debug]
";

    /// [`LOCAL`] as otaas renders it: the same pipeline under other names.
    const RENDERED: &str = "\
receivers:
  filelog/app:
    include:
    - /var/log/app.log
processors:
  batch/app: {}
exporters:
  debug/out.console: {}
service:
  pipelines:
    logs/app:
      receivers: [filelog/app]
      processors: [batch/app]
      exporters: [debug/out.console]
";

    struct Harness {
        dir: tempfile::TempDir,
        offers: mpsc::Sender<Config>,
        report: watch::Receiver<Report>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        /// A supervisor on a fake collector, with `local` as its `--config` and `prepare`
        /// run on the data dir first.
        fn start(local: Option<&str>, prepare: impl FnOnce(&Path)) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).unwrap();
            prepare(&data);
            let (tx, report) = watch::channel(Report::default());
            let sup = Supervisor::new(fake_collector(dir.path()), data, Duration::from_secs(5), tx)
                .with_local_config(local.map(str::to_owned));
            let (offers, rx) = mpsc::channel(8);
            let stop = CancellationToken::new();
            let task = tokio::spawn(sup.run(rx, stop.clone()));
            Self {
                dir,
                offers,
                report,
                stop,
                task,
            }
        }

        fn data(&self) -> PathBuf {
            self.dir.path().join("data")
        }

        /// The report once it satisfies `ok`.
        async fn until(&mut self, what: &str, ok: impl Fn(&Report) -> bool) -> Report {
            let mut rx = self.report.clone();
            let wait = rx.wait_for(|r| ok(r));
            match tokio::time::timeout(Duration::from_secs(20), wait).await {
                Ok(Ok(r)) => r.clone(),
                _ => panic!("timed out waiting for {what}: {:?}", *self.report.borrow()),
            }
        }

        /// The pid of the running collector, once one runs.
        async fn pid(&mut self) -> String {
            let r = self
                .until("a running collector", |r| r.health.healthy)
                .await;
            r.health.status
        }

        async fn offer(&self, hash: &str, yaml: &str) {
            let cfg = Config {
                hash: hash.to_owned(),
                yaml: yaml.to_owned(),
            };
            self.offers.send(cfg).await.unwrap();
        }

        async fn finish(self) {
            self.stop.cancel();
            self.task.await.unwrap();
        }
    }

    /// Given a local config and no last good config, when the supervisor starts, then the
    /// collector runs the local config, reported as effective but not as a remote config, and
    /// neither saved as last good nor written to anywhere but the data dir's collector.yaml.
    #[tokio::test]
    async fn a_local_config_runs_unreported_as_remote() {
        let mut h = Harness::start(Some(LOCAL), |_| {});
        let r = h
            .until("the local config running", |r| r.health.healthy)
            .await;
        assert_eq!(r.effective.as_deref(), Some(LOCAL));
        assert_eq!(r.remote_hash, "");
        assert_eq!(r.remote_state, ApplyState::Unset);
        assert_eq!(r.health.pipelines, ["logs"]);
        assert!(!h.data().join("last-good.json").exists());
        assert_eq!(
            std::fs::read_to_string(h.data().join("collector.yaml")).unwrap(),
            LOCAL
        );
        h.finish().await;
    }

    /// Given a last good config from the server in the data dir, when the supervisor starts
    /// with a local config too, then the server's config runs and is reported APPLIED.
    #[tokio::test]
    async fn the_last_good_remote_config_wins_over_the_local_one() {
        let good = Config {
            hash: "ab".repeat(32),
            yaml: RENDERED.to_owned(),
        };
        let mut h = Harness::start(Some(LOCAL), |data| {
            std::fs::write(
                data.join("last-good.json"),
                serde_json::to_vec(&good).unwrap(),
            )
            .unwrap();
        });
        let r = h
            .until("the remote config running", |r| r.health.healthy)
            .await;
        assert_eq!(r.effective.as_deref(), Some(RENDERED));
        assert_eq!(r.remote_hash, good.hash);
        assert_eq!(r.remote_state, ApplyState::Applied);
        h.finish().await;
    }

    /// Given the local config running, when an equivalent offer arrives, then it is APPLIED
    /// and reported as the effective config without restarting the collector, and saved as
    /// the running and last good config; a second equivalent offer (compared with what the
    /// process runs) keeps it running too; an offer that changes a setting restarts it.
    #[tokio::test]
    async fn an_equivalent_offer_keeps_the_collector_running() {
        let mut h = Harness::start(Some(LOCAL), |_| {});
        let first = h.pid().await;

        h.offer("01", RENDERED).await;
        let r = h
            .until("the equivalent offer applied", |r| {
                r.remote_hash == "01" && r.remote_state == ApplyState::Applied
            })
            .await;
        assert_eq!(r.effective.as_deref(), Some(RENDERED));
        assert_eq!(r.health.status, first, "the collector was not restarted");
        // Health names the offer's pipelines and exporters, failed sends the collector logs
        // under its own ids included.
        assert_eq!(
            r.health.exporters,
            BTreeMap::from([("logs/app".to_owned(), vec!["debug/out.console".to_owned()])])
        );
        std::fs::write(h.dir.path().join("fail"), "").unwrap();
        let r = h
            .until("a failed send reported", |r| !r.health.failing.is_empty())
            .await;
        assert_eq!(
            r.health.failing.keys().collect::<Vec<_>>(),
            ["debug/out.console"]
        );
        std::fs::remove_file(h.dir.path().join("fail")).unwrap();
        assert_eq!(
            std::fs::read_to_string(h.data().join("collector.yaml")).unwrap(),
            RENDERED
        );
        let saved: Config =
            serde_json::from_slice(&std::fs::read(h.data().join("last-good.json")).unwrap())
                .unwrap();
        assert_eq!(saved.hash, "01");

        let renamed_again = RENDERED
            .replace("filelog/app", "filelog/web")
            .replace("logs/app", "logs/web");
        h.offer("02", &renamed_again).await;
        let r = h
            .until("the second equivalent offer applied", |r| {
                r.remote_hash == "02" && r.remote_state == ApplyState::Applied
            })
            .await;
        assert_eq!(r.effective.as_deref(), Some(renamed_again.as_str()));
        assert_eq!(r.health.status, first, "the collector was not restarted");

        let changed = RENDERED.replace("batch/app: {}", "batch/app: {timeout: 1s}");
        h.offer("03", &changed).await;
        let r = h
            .until("the changed offer applied", |r| {
                r.remote_hash == "03" && r.remote_state == ApplyState::Applied
            })
            .await;
        assert_eq!(r.effective.as_deref(), Some(changed.as_str()));
        assert!(r.health.healthy);
        assert_ne!(r.health.status, first, "a changed setting restarts it");
        h.finish().await;
    }

    /// Given the local config running, when an offer that is not equivalent passes `validate`
    /// but does not start, then the agent goes back to the local config (still not saved as
    /// last good) and reports the offer FAILED, naming the local config.
    #[tokio::test]
    async fn a_failed_offer_rolls_back_to_the_local_config() {
        let mut h = Harness::start(Some(LOCAL), |_| {});
        h.pid().await;
        let crashing = RENDERED.replace(
            "debug/out.console: {}",
            "debug/out.console: {verbosity: crash}",
        );
        h.offer("0c", &crashing).await;
        let r = h
            .until("the offer failed", |r| {
                r.remote_hash == "0c" && r.remote_state == ApplyState::Failed
            })
            .await;
        assert_eq!(
            r.remote_error,
            "collector exited (exit status: 1): cannot start pipelines: crash (rolled back to the local config)"
        );
        let r = h
            .until("the local config running again", |r| r.health.healthy)
            .await;
        assert_eq!(r.effective.as_deref(), Some(LOCAL));
        assert!(!h.data().join("last-good.json").exists());
        h.finish().await;
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

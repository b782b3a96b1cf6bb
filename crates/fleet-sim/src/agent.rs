//! One simulated collector's OpAMP state machine, independent of the transport: what it
//! reports, and how it reacts to a `ServerToAgent` (apply or reject a config, switch uid, adopt
//! a heartbeat interval, resend full state, back off on `Unavailable`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otaas_opamp::proto::{
    AgentConfigMap, AgentDescription, AgentDisconnect, AgentToServer, AnyValue, ComponentHealth,
    EffectiveConfig, KeyValue, RemoteConfigStatus, RemoteConfigStatuses, ServerErrorResponseType,
    ServerToAgent, ServerToAgentFlags, any_value, server_error_response,
};
use otaas_opamp::{AgentCaps, InstanceUid, hash};

use otaas_collector::check;
use otaas_collector::components::ComponentTable;

use crate::events::{Events, Subject};
use crate::local::LocalConfig;

/// Capabilities every simulated agent declares: it behaves like a collector supervised over
/// OpAMP (remote config, effective config, health, heartbeats, OpAMP connection settings for
/// the heartbeat interval offer).
pub(crate) const SIM_CAPS: AgentCaps = AgentCaps(
    AgentCaps::REPORTS_STATUS.0
        | AgentCaps::ACCEPTS_REMOTE_CONFIG.0
        | AgentCaps::REPORTS_EFFECTIVE_CONFIG.0
        | AgentCaps::REPORTS_HEALTH.0
        | AgentCaps::REPORTS_REMOTE_CONFIG.0
        | AgentCaps::REPORTS_HEARTBEAT.0
        | AgentCaps::ACCEPTS_OPAMP_CONNECTION_SETTINGS.0
        | AgentCaps::REPORTS_OWN_METRICS.0,
);

/// Settings shared by every agent of one simulator process.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Component types this "build" lacks: a config using one is reported FAILED.
    pub(crate) reject: HashSet<String>,
    pub(crate) version: String,
    /// `--effective-config` files: agent `i` runs `local[i % n]` until a config is received.
    pub(crate) local: Vec<LocalConfig>,
    pub(crate) events: Events,
    /// Received configs by hash: every agent running one config shares one copy of it.
    pub(crate) configs: std::sync::Mutex<std::collections::HashMap<Bytes, AgentConfigMap>>,
    /// Simulated throughput for the own metrics (see `own_metrics.rs`).
    pub(crate) rates: Arc<crate::own_metrics::Rates>,
    /// The component table configs are checked against as a collector would at start-up;
    /// `None` (`--lenient`) accepts any config whose component types are not rejected.
    pub(crate) checker: Option<ComponentTable>,
    /// The checker's verdict per config hash: a fleet receiving one config checks it once.
    pub(crate) verdicts: std::sync::Mutex<std::collections::HashMap<Bytes, Result<(), String>>>,
}

impl Shared {
    /// The shared copy of the config with `hash` (this one, if it is the first).
    fn intern(&self, hash: &Bytes, config: AgentConfigMap) -> AgentConfigMap {
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        configs.entry(hash.clone()).or_insert(config).clone()
    }

    /// Checks `config` the way a collector does at start-up (remembered per hash).
    fn check(&self, hash: &Bytes, config: &AgentConfigMap) -> Result<(), String> {
        let Some(table) = &self.checker else {
            return Ok(());
        };
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        verdicts
            .entry(hash.clone())
            .or_insert_with(|| {
                config.config_map.values().try_for_each(|file| {
                    let yaml = std::str::from_utf8(&file.body)
                        .map_err(|_| "the config is not UTF-8".to_owned())?;
                    check::check(yaml, table).map_err(|e| e.message)
                })
            })
            .clone()
    }
}

/// What the transport should do after a server message was handled.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Reaction {
    /// A message to send right away.
    pub(crate) reply: Option<AgentToServer>,
    /// The server is unavailable: disconnect and come back after this long.
    pub(crate) retry_after: Option<Duration>,
    /// A new own-metrics destination was offered: start sending there.
    pub(crate) own_metrics: Option<String>,
}

pub(crate) struct SimAgent {
    pub(crate) index: usize,
    pub(crate) uid: InstanceUid,
    seq: u64,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) heartbeat: Duration,
    /// Hash of the last remote config received (applied or not).
    pub(crate) last_hash: Bytes,
    pub(crate) status: RemoteConfigStatuses,
    error: String,
    /// The running config: the last one applied, or the hand-written one it started with.
    effective: Option<AgentConfigMap>,
    /// Pipelines of the running config, reported as component health.
    pipelines: Vec<String>,
    /// The same, shared with the own-metrics task (which attributes throughput to them).
    pub(crate) running_pipelines: Arc<std::sync::Mutex<Vec<String>>>,
    pub(crate) shared: Arc<Shared>,
    /// Own-metrics destination offered by the server.
    own_metrics: Option<String>,
    /// Whether the last effective config reported was the drifted one.
    reported_drift: bool,
    /// Whether the last health reported was the `unhealthy on` one.
    reported_unhealthy: bool,
}

impl SimAgent {
    pub(crate) fn new(
        index: usize,
        uid: InstanceUid,
        labels: BTreeMap<String, String>,
        heartbeat: Duration,
        shared: Arc<Shared>,
    ) -> Self {
        let local = index
            .checked_rem(shared.local.len())
            .and_then(|i| shared.local.get(i))
            .cloned();
        let pipelines = local
            .as_ref()
            .map(|l| l.pipelines.clone())
            .unwrap_or_default();
        Self {
            index,
            uid,
            seq: 0,
            labels,
            heartbeat,
            last_hash: Bytes::new(),
            status: RemoteConfigStatuses::Unset,
            error: String::new(),
            effective: local.map(|l| l.map),
            running_pipelines: Arc::new(std::sync::Mutex::new(pipelines.clone())),
            pipelines,
            shared,
            own_metrics: None,
            reported_drift: false,
            reported_unhealthy: false,
        }
    }

    /// A message with only the fields that must always be set.
    fn base(&mut self) -> AgentToServer {
        let msg = AgentToServer {
            instance_uid: Bytes::copy_from_slice(self.uid.as_bytes()),
            sequence_num: self.seq,
            capabilities: SIM_CAPS.0,
            ..Default::default()
        };
        self.seq += 1;
        msg
    }

    /// A heartbeat / poll: uid, sequence number and capabilities, everything else compressed.
    pub(crate) fn heartbeat_msg(&mut self) -> AgentToServer {
        let mut msg = self.base();
        // `drift on|off` on the control: report the (hand-edited) effective config once.
        if self
            .shared
            .rates
            .drift
            .load(std::sync::atomic::Ordering::Relaxed)
            != self.reported_drift
        {
            msg.effective_config = Some(self.effective_report());
        }
        // `unhealthy on|off`: report the changed health once.
        if self.unhealthy() != self.reported_unhealthy {
            msg.health = Some(self.health());
        }
        msg
    }

    fn unhealthy(&self) -> bool {
        self.shared
            .rates
            .unhealthy
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The running config as reported; with `drift on`, as if edited by hand on the host
    /// (a comment appended), while the remote config status still names the received hash.
    fn effective_report(&mut self) -> EffectiveConfig {
        let drift = self
            .shared
            .rates
            .drift
            .load(std::sync::atomic::Ordering::Relaxed);
        self.reported_drift = drift;
        let mut map = self.effective.clone().unwrap_or_default();
        if drift {
            for file in map.config_map.values_mut() {
                let mut body = file.body.to_vec();
                body.extend_from_slice(b"# edited by hand\n");
                file.body = Bytes::from(body);
            }
        }
        EffectiveConfig {
            config_map: Some(map),
        }
    }

    /// Everything the agent knows about itself (first message, or on ReportFullState).
    pub(crate) fn full_state(&mut self) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_description = Some(self.description());
        msg.health = Some(self.health());
        msg.effective_config = Some(self.effective_report());
        msg.remote_config_status = Some(self.config_status());
        msg
    }

    /// The labels changed: report the new description.
    pub(crate) fn description_msg(&mut self) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_description = Some(self.description());
        msg
    }

    pub(crate) fn disconnect_msg(&mut self) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_disconnect = Some(AgentDisconnect {});
        msg
    }

    fn description(&self) -> AgentDescription {
        let kv = |k: &str, v: &str| KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.to_owned())),
            }),
        };
        let identifying = vec![
            kv("service.name", "otaas-fleet-sim"),
            kv("service.version", &self.shared.version),
            kv("service.instance.id", &self.uid.to_string()),
        ];
        let non_identifying = self.labels.iter().map(|(k, v)| kv(k, v)).collect();
        AgentDescription {
            identifying_attributes: identifying,
            non_identifying_attributes: non_identifying,
        }
    }

    /// Every pipeline of the running config as a component; with `unhealthy on`, each one
    /// failing the way a collector reports an exporter that cannot send.
    fn health(&mut self) -> ComponentHealth {
        let unhealthy = self.unhealthy();
        self.reported_unhealthy = unhealthy;
        let component = || {
            if unhealthy {
                ComponentHealth {
                    healthy: false,
                    status: "StatusRecoverableError".to_owned(),
                    last_error: "simulated: sending queue is full".to_owned(),
                    ..Default::default()
                }
            } else {
                ComponentHealth {
                    healthy: true,
                    status: "StatusOK".to_owned(),
                    ..Default::default()
                }
            }
        };
        let components = self
            .pipelines
            .iter()
            .map(|name| (format!("pipeline:{name}"), component()))
            .collect();
        ComponentHealth {
            healthy: !unhealthy,
            status: if unhealthy {
                "StatusRecoverableError"
            } else {
                "StatusOK"
            }
            .to_owned(),
            component_health_map: components,
            ..Default::default()
        }
    }

    fn config_status(&self) -> RemoteConfigStatus {
        RemoteConfigStatus {
            last_remote_config_hash: self.last_hash.clone(),
            status: self.status as i32,
            error_message: self.error.clone(),
        }
    }

    /// Reacts to one server message.
    pub(crate) fn handle(&mut self, msg: ServerToAgent) -> Reaction {
        let mut reaction = Reaction::default();
        if let Some(err) = msg.error_response {
            let retry = err
                .details
                .map(|server_error_response::Details::RetryInfo(info)| {
                    Duration::from_nanos(info.retry_after_nanoseconds)
                });
            self.shared
                .events
                .server_error(self, &err.error_message, err.r#type, retry);
            if err.r#type == ServerErrorResponseType::Unavailable as i32 {
                // Without retry info the transport falls back to its own backoff.
                reaction.retry_after = Some(retry.unwrap_or(Duration::ZERO));
            }
            return reaction;
        }
        if let Some(ident) = msg.agent_identification {
            match InstanceUid::from_bytes(&ident.new_instance_uid) {
                Ok(uid) => {
                    self.shared.events.new_uid(self, uid);
                    self.uid = uid;
                }
                Err(err) => self.shared.events.protocol_error(self, &err.to_string()),
            }
        }
        if let Some(offer) = msg
            .connection_settings
            .as_ref()
            .and_then(|c| c.opamp.as_ref())
            && offer.heartbeat_interval_seconds > 0
        {
            self.heartbeat = Duration::from_secs(offer.heartbeat_interval_seconds);
        }
        if let Some(url) = msg
            .connection_settings
            .as_ref()
            .and_then(|c| c.own_metrics.as_ref())
            .map(|m| m.destination_endpoint.clone())
            .filter(|u| !u.is_empty())
            && self.own_metrics.as_ref() != Some(&url)
        {
            self.own_metrics = Some(url.clone());
            reaction.own_metrics = Some(url);
        }
        let mut report = false;
        if let Some(remote) = msg.remote_config
            && remote.config_hash != self.last_hash
        {
            self.apply(remote.config.unwrap_or_default(), remote.config_hash);
            report = true;
        }
        let full = msg.flags & ServerToAgentFlags::ReportFullState as u64 != 0;
        if full {
            self.shared.events.full_state_requested(self);
            reaction.reply = Some(self.full_state());
        } else if report {
            let mut reply = self.base();
            reply.remote_config_status = Some(self.config_status());
            reply.effective_config = Some(self.effective_report());
            reply.health = Some(self.health());
            reaction.reply = Some(reply);
        }
        reaction
    }

    /// Validates a received config the way a collector build would: every component type it
    /// names must be compiled in (`--reject-components`), and unless `--lenient` the config
    /// must pass the collector-like checker. A rejected config leaves the running one in place.
    fn apply(&mut self, config: AgentConfigMap, hash: Bytes) {
        self.last_hash = hash.clone();
        let verdict = check_components(&config, &self.shared.reject)
            .and_then(|pipelines| self.shared.check(&hash, &config).map(|()| pipelines));
        match verdict {
            Ok(pipelines) => {
                self.status = RemoteConfigStatuses::Applied;
                self.error.clear();
                *self
                    .running_pipelines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = pipelines.clone();
                self.pipelines = pipelines;
                self.effective = Some(self.shared.intern(&hash, config));
            }
            Err(error) => {
                self.status = RemoteConfigStatuses::Failed;
                self.error = error;
            }
        }
        self.shared
            .events
            .config(self, &hash::to_hex(&hash), self.status, &self.error);
    }

    pub(crate) fn error(&self) -> &str {
        &self.error
    }
}

/// Lists the config's pipelines, or names the first component whose type is rejected.
fn check_components(
    config: &AgentConfigMap,
    reject: &HashSet<String>,
) -> Result<Vec<String>, String> {
    let mut pipelines = Vec::new();
    for (name, file) in &config.config_map {
        let doc: serde_norway::Value = serde_norway::from_slice(&file.body)
            .map_err(|err| format!("config file {name:?} is not valid YAML: {err}"))?;
        for (section, kind) in [
            ("receivers", "receiver"),
            ("processors", "processor"),
            ("exporters", "exporter"),
            ("extensions", "extension"),
            ("connectors", "connector"),
        ] {
            let Some(map) = doc.get(section).and_then(|v| v.as_mapping()) else {
                continue;
            };
            for id in map.keys().filter_map(|k| k.as_str()) {
                let ty = id.split('/').next().unwrap_or(id);
                if reject.contains(ty) {
                    return Err(format!(
                        "unknown {kind} type {ty:?} for {id:?}: component {ty:?} is not available in this collector build"
                    ));
                }
            }
        }
        if let Some(map) = doc
            .get("service")
            .and_then(|s| s.get("pipelines"))
            .and_then(|p| p.as_mapping())
        {
            pipelines.extend(map.keys().filter_map(|k| k.as_str()).map(str::to_owned));
        }
    }
    Ok(pipelines)
}

impl Subject for SimAgent {
    fn index(&self) -> usize {
        self.index
    }
    fn uid(&self) -> InstanceUid {
        self.uid
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaas_opamp::proto::{AgentConfigFile, AgentRemoteConfig};

    fn agent(reject: &[&str]) -> SimAgent {
        agent_with(reject, Some(ComponentTable::builtin().clone()))
    }

    fn agent_with(reject: &[&str], checker: Option<ComponentTable>) -> SimAgent {
        let shared = Arc::new(Shared {
            reject: reject.iter().map(|s| (*s).to_owned()).collect(),
            version: "test".to_owned(),
            local: Vec::new(),
            events: Events::silent(),
            configs: Default::default(),
            rates: Arc::new(crate::own_metrics::Rates::new(0, Duration::from_secs(1))),
            checker,
            verdicts: Default::default(),
        });
        SimAgent::new(
            0,
            InstanceUid::new_v7(),
            BTreeMap::new(),
            Duration::from_secs(30),
            shared,
        )
    }

    fn offer(yaml: &str) -> ServerToAgent {
        let body = Bytes::copy_from_slice(yaml.as_bytes());
        ServerToAgent {
            remote_config: Some(AgentRemoteConfig {
                config_hash: Bytes::copy_from_slice(&hash::sha256(&body)),
                config: Some(AgentConfigMap {
                    config_map: [(
                        "collector.yaml".to_owned(),
                        AgentConfigFile {
                            body,
                            content_type: "text/yaml".to_owned(),
                        },
                    )]
                    .into(),
                }),
            }),
            ..Default::default()
        }
    }

    const YAML: &str = "receivers:\n  otlp: {}\nexporters:\n  kafka/out: {}\nservice:\n  pipelines:\n    traces/a: {receivers: [otlp], exporters: [kafka/out]}\n";
    /// Fine for `--reject-components`, refused by a collector: filelog has no traces.
    const TRACES_FROM_FILELOG: &str = "receivers:\n  filelog: {}\nexporters:\n  otlp: {}\nservice:\n  pipelines:\n    traces: {receivers: [filelog], exporters: [otlp]}\n";

    fn status_of(a: &mut SimAgent, yaml: &str) -> (i32, String) {
        let status = a
            .handle(offer(yaml))
            .reply
            .unwrap()
            .remote_config_status
            .unwrap();
        (status.status, status.error_message)
    }

    #[test]
    fn strict_by_default_refuses_what_a_collector_refuses() {
        let mut a = agent(&[]);
        assert_eq!(
            status_of(&mut a, TRACES_FROM_FILELOG),
            (
                RemoteConfigStatuses::Failed as i32,
                "failed to build pipelines: failed to create \"filelog\" receiver for data type \"traces\": telemetry type is not supported".to_owned()
            )
        );
        assert_eq!(
            status_of(
                &mut a,
                "receivers: {}\nexporters: {}\nservice:\n  pipelines: {}\n"
            ),
            (
                RemoteConfigStatuses::Failed as i32,
                "service::pipelines: service must have at least one pipeline".to_owned()
            )
        );
    }

    #[test]
    fn lenient_accepts_any_config_with_available_types() {
        let mut a = agent_with(&[], None);
        assert_eq!(
            status_of(&mut a, TRACES_FROM_FILELOG),
            (RemoteConfigStatuses::Applied as i32, String::new())
        );
    }

    #[test]
    fn a_components_table_stands_in_for_a_collector_build() {
        let build = "receivers:\n  - name: filelog\n    stability: {logs: Beta}\nexporters:\n  - name: otlphttp\n    stability: {logs: Stable}\n";
        let table = ComponentTable::from_components_yaml(build).unwrap();
        let mut a = agent_with(&[], Some(table));
        assert_eq!(
            status_of(&mut a, YAML),
            (
                RemoteConfigStatuses::Failed as i32,
                "'receivers' unknown type: \"otlp\" for id: \"otlp\" (valid values: [filelog])"
                    .to_owned()
            )
        );
        let ok = "receivers:\n  filelog: {}\nexporters:\n  otlphttp: {}\nservice:\n  pipelines:\n    logs: {receivers: [filelog], exporters: [otlphttp]}\n";
        assert_eq!(
            status_of(&mut a, ok),
            (RemoteConfigStatuses::Applied as i32, String::new())
        );
    }

    #[test]
    fn applies_and_reports_effective_config() {
        let mut a = agent(&[]);
        let reply = a.handle(offer(YAML)).reply.unwrap();
        let status = reply.remote_config_status.unwrap();
        assert_eq!(status.status, RemoteConfigStatuses::Applied as i32);
        assert_eq!(
            status.last_remote_config_hash.as_ref(),
            hash::sha256(YAML.as_bytes())
        );
        let eff = reply.effective_config.unwrap().config_map.unwrap();
        assert_eq!(
            eff.config_map["collector.yaml"].body.as_ref(),
            YAML.as_bytes()
        );
        assert_eq!(
            reply
                .health
                .unwrap()
                .component_health_map
                .keys()
                .collect::<Vec<_>>(),
            ["pipeline:traces/a"]
        );
        // The same offer again is not re-applied and needs no reply.
        assert_eq!(a.handle(offer(YAML)), Reaction::default());
    }

    /// Given three hand-written configs, when seven agents start, then agent i reports file
    /// i % 3 byte for byte as its effective config (with its pipelines as health) and no
    /// remote config; once a config is received, it reports that one instead.
    #[test]
    fn agent_i_reports_hand_written_config_i_mod_n() {
        let files = [
            "receivers: {filelog: {include: [a]}}\nexporters: {debug: {}}\nservice: {pipelines: {logs: {receivers: [filelog], exporters: [debug]}}}\n",
            "# written by hand\nservice:\n  pipelines:\n    logs/b: {}\n",
            "service: {pipelines: {traces/c: {}}}\n",
        ];
        let local: Vec<LocalConfig> = files
            .iter()
            .map(|f| LocalConfig::parse(std::path::Path::new("f.yaml"), f.as_bytes().to_vec()))
            .collect::<Result<_, _>>()
            .unwrap();
        let shared = Arc::new(Shared {
            local,
            ..Arc::into_inner(agent(&[]).shared).unwrap()
        });
        let pipelines = [
            ["pipeline:logs"],
            ["pipeline:logs/b"],
            ["pipeline:traces/c"],
        ];
        for i in 0..7 {
            let mut a = SimAgent::new(
                i,
                InstanceUid::new_v7(),
                BTreeMap::new(),
                Duration::from_secs(30),
                shared.clone(),
            );
            let full = a.full_state();
            let eff = full.effective_config.unwrap().config_map.unwrap();
            assert_eq!(
                eff.config_map["collector.yaml"].body.as_ref(),
                files[i % 3].as_bytes(),
                "agent {i}"
            );
            let status = full.remote_config_status.unwrap();
            assert!(status.last_remote_config_hash.is_empty());
            assert_eq!(status.status, RemoteConfigStatuses::Unset as i32);
            let health = full.health.unwrap();
            assert_eq!(
                health.component_health_map.keys().collect::<Vec<_>>(),
                pipelines[i % 3]
            );
            if i == 4 {
                let reply = a.handle(offer(YAML)).reply.unwrap();
                let eff = reply.effective_config.unwrap().config_map.unwrap();
                assert_eq!(
                    eff.config_map["collector.yaml"].body.as_ref(),
                    YAML.as_bytes()
                );
            }
        }
    }

    #[test]
    fn rejects_a_missing_component_by_name() {
        let mut a = agent(&["kafka"]);
        let reply = a.handle(offer(YAML)).reply.unwrap();
        let status = reply.remote_config_status.unwrap();
        assert_eq!(status.status, RemoteConfigStatuses::Failed as i32);
        assert_eq!(
            status.error_message,
            "unknown exporter type \"kafka\" for \"kafka/out\": component \"kafka\" is not available in this collector build"
        );
        // Nothing was running before, so the effective config stays empty.
        assert_eq!(
            reply.effective_config.unwrap().config_map.unwrap(),
            AgentConfigMap::default()
        );
    }

    #[test]
    fn unavailable_means_retry_later() {
        use otaas_opamp::proto::{RetryInfo, ServerErrorResponse};
        let mut a = agent(&[]);
        let msg = ServerToAgent {
            error_response: Some(ServerErrorResponse {
                r#type: ServerErrorResponseType::Unavailable as i32,
                error_message: "shutting down".to_owned(),
                details: Some(server_error_response::Details::RetryInfo(RetryInfo {
                    retry_after_nanoseconds: 2_000_000_000,
                })),
            }),
            ..Default::default()
        };
        assert_eq!(a.handle(msg).retry_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn full_state_flag_resends_everything_with_increasing_seq() {
        let mut a = agent(&[]);
        let first = a.full_state();
        let reply = a
            .handle(ServerToAgent {
                flags: ServerToAgentFlags::ReportFullState as u64,
                ..Default::default()
            })
            .reply
            .unwrap();
        assert_eq!(reply.sequence_num, first.sequence_num + 1);
        assert!(reply.agent_description.is_some() && reply.remote_config_status.is_some());
    }
}

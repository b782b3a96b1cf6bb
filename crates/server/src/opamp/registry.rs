//! The fleet registry: every known agent's state in memory (the fast path of the OpAMP
//! server and of `GET /api/v1/agents`), the agent groups' current configs, and the protocol
//! decisions made on each `AgentToServer` (labels, membership, which config to offer, when to
//! ask for full state, duplicate uids, heartbeat offers).
//!
//! Concurrency: one `std::sync::Mutex` around everything; every critical section is a few map
//! operations with no `.await` inside, so contention stays low even with thousands of agents.
//! Persistence is write-behind: changed agents are marked dirty and a flusher (see `mod.rs`)
//! writes them to the store in batches.
//!
//! Transport code (`ws.rs`, `http.rs`) only moves bytes; it calls [`Registry::handle`] with a
//! [`ConnCtx`] describing the connection and sends back what it returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use otaas_api::AgentGroupId;
use otaas_opamp::proto::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentIdentification, AgentRemoteConfig,
    AgentToServer, AgentToServerFlags, AvailableComponents, ComponentHealth,
    ConnectionSettingsOffers, OpAmpConnectionSettings, RemoteConfigStatuses, ServerErrorResponse,
    ServerErrorResponseType, ServerToAgent, ServerToAgentFlags, TelemetryConnectionSettings,
    any_value,
};
use otaas_opamp::{AgentCaps, InstanceUid, ServerCaps, hash};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::redact;
use super::report_limits::{self, ReportLimits};
use crate::secrets::KnownSecrets;

/// Capabilities this server declares in the first reply of every connection.
pub const SERVER_CAPS: ServerCaps = ServerCaps(
    ServerCaps::ACCEPTS_STATUS.0
        | ServerCaps::OFFERS_REMOTE_CONFIG.0
        | ServerCaps::ACCEPTS_EFFECTIVE_CONFIG.0
        | ServerCaps::OFFERS_CONNECTION_SETTINGS.0,
);

/// The file name of the one config file otaas sends.
pub const CONFIG_FILE: &str = "collector.yaml";
pub const CONFIG_CONTENT_TYPE: &str = "text/yaml";

/// How an agent talks to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Ws,
    Http,
}

/// The agent's report on the last remote config it received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigStatus {
    #[default]
    Unset,
    Applied,
    Applying,
    Failed,
}

/// One node of an agent's health tree (the agent itself at the root, its components below).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthNode {
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    #[serde(default)]
    pub start_time_unix_nano: u64,
    #[serde(default)]
    pub status_time_unix_nano: u64,
    /// By name, sorted; stored and shown as a JSON object. A vector rather than a map: a
    /// B-tree node reserves room for eleven entries, about 1.4 KB for the two or three
    /// components a collector reports, per agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "component_map")]
    pub components: Vec<(String, HealthNode)>,
}

/// `HealthNode::components` as a JSON object (name → node).
mod component_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::HealthNode;

    pub(super) fn serialize<S: Serializer>(
        components: &[(String, HealthNode)],
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        ser.collect_map(components.iter().map(|(k, v)| (k, v)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Vec<(String, HealthNode)>, D::Error> {
        Ok(BTreeMap::<String, HealthNode>::deserialize(de)?
            .into_iter()
            .collect())
    }
}

impl HealthNode {
    /// Replaces the secret values the server knows in the texts of this node and below: a
    /// component's error may quote its config (an exporter's failed URL with its credentials).
    fn redact(&mut self, known: &KnownSecrets) {
        for text in [&mut self.status, &mut self.last_error] {
            if let Some(redacted) = known.redact(text) {
                *text = redacted;
            }
        }
        for (_, component) in &mut self.components {
            component.redact(known);
        }
    }

    fn from_proto(h: ComponentHealth) -> Self {
        Self {
            healthy: h.healthy,
            status: h.status,
            last_error: h.last_error,
            start_time_unix_nano: h.start_time_unix_nano,
            status_time_unix_nano: h.status_time_unix_nano,
            components: {
                let mut components: Vec<(String, HealthNode)> = h
                    .component_health_map
                    .into_iter()
                    .map(|(k, v)| (k, Self::from_proto(v)))
                    .collect();
                components.sort_by(|a, b| a.0.cmp(&b.0));
                components
            },
        }
    }
}

/// Everything the server knows about one agent; this is what is persisted (as JSON) and what
/// the REST API shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Instance uid as 32 lowercase hex digits.
    pub id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub capabilities: u64,
    #[serde(default)]
    pub agent_version: Option<String>,
    #[serde(default)]
    pub health: Option<HealthNode>,
    #[serde(default)]
    pub remote_config_status: ConfigStatus,
    #[serde(default)]
    pub remote_config_error: Option<String>,
    /// Hash (hex) of the last remote config the agent says it received.
    #[serde(default)]
    pub remote_config_hash: Option<String>,
    /// SHA-256 (hex) of the effective config as reported (before redaction).
    #[serde(default)]
    pub effective_config_hash: Option<String>,
    /// The effective config with secrets redacted (`None` if not reported or not YAML).
    /// Shared between agents running the same config (interned by hash), so 10,000 agents on
    /// one config hold one copy.
    #[serde(default, with = "shared_text")]
    pub effective_config: Option<Arc<str>>,
    #[serde(default)]
    pub group_id: Option<AgentGroupId>,
    /// Hash (hex) of the config the agent should run (its group's current config).
    #[serde(default)]
    pub desired_config_hash: Option<String>,
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub connected: bool,
    #[serde(default)]
    pub transport: Option<Transport>,
    /// The `otaas serve` replica the agent last talked to (`--replica-id`).
    #[serde(default)]
    pub replica_id: Option<String>,
    /// The component types the agent's collector build has (OpAMP `AvailableComponents`):
    /// kind (`receivers`, `processors`, `exporters`, `extensions`, `connectors`) → types.
    /// `None` when the agent does not report them. Shared between agents of one build
    /// (interned by the reported hash).
    #[serde(default, with = "shared_components")]
    pub available_components: Option<Arc<ComponentSet>>,
    /// Hex of the `AvailableComponents.hash` the agent reported.
    #[serde(default)]
    pub available_components_hash: Option<String>,
    /// Which signals the agent says its components support (`stability.<signal>` metadata
    /// of `AvailableComponents`), only for the components that said so. `None` when none did.
    /// Shared like `available_components` (interned by the same hash).
    #[serde(default, with = "shared_signals")]
    pub component_signals: Option<Arc<ComponentSignals>>,
}

/// Component kind → the types of that kind a collector build has.
pub type ComponentSet = BTreeMap<String, std::collections::BTreeSet<String>>;

/// The types an OpAMP `AvailableComponents` lists: its top-level keys are the kinds, each
/// kind's sub-components are the types (the shape the collector's OpAMP extension sends).
fn component_set(ac: &AvailableComponents) -> ComponentSet {
    ac.components
        .iter()
        .map(|(kind, details)| {
            (
                kind.clone(),
                details.sub_component_map.keys().cloned().collect(),
            )
        })
        .collect()
}

/// Component kind → type → the signals (`logs`, `metrics`, `traces`) it supports, for the
/// types whose agent reported a stability per signal.
pub type ComponentSignals = BTreeMap<String, BTreeMap<String, std::collections::BTreeSet<String>>>;

/// The per-signal support an OpAMP `AvailableComponents` reports: a component with any
/// `stability.<signal>` metadata supports the signals whose level is not `Undefined`.
fn component_signals(ac: &AvailableComponents) -> Option<ComponentSignals> {
    use otaas_api::components::{STABILITY_KEY_PREFIX, UNDEFINED_STABILITY};
    let mut out = ComponentSignals::new();
    for (kind, details) in &ac.components {
        for (ty, sub) in &details.sub_component_map {
            let mut reported = false;
            let mut supported = std::collections::BTreeSet::new();
            for kv in &sub.metadata {
                let Some(signal) = kv.key.strip_prefix(STABILITY_KEY_PREFIX) else {
                    continue;
                };
                reported = true;
                let level = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.as_str(),
                    _ => "",
                };
                if !level.is_empty() && level != UNDEFINED_STABILITY {
                    supported.insert(signal.to_owned());
                }
            }
            if reported {
                out.entry(kind.clone())
                    .or_default()
                    .insert(ty.clone(), supported);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

impl AgentRecord {
    fn new(uid: InstanceUid) -> Self {
        Self {
            id: uid.to_string(),
            labels: BTreeMap::new(),
            capabilities: 0,
            agent_version: None,
            health: None,
            remote_config_status: ConfigStatus::Unset,
            remote_config_error: None,
            remote_config_hash: None,
            effective_config_hash: None,
            effective_config: None,
            group_id: None,
            desired_config_hash: None,
            last_seen: None,
            connected: false,
            transport: None,
            replica_id: None,
            available_components: None,
            available_components_hash: None,
            component_signals: None,
        }
    }

    pub fn caps(&self) -> AgentCaps {
        AgentCaps(self.capabilities)
    }
}

/// A group's selector and current config, ready to send.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub id: AgentGroupId,
    pub selector: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub revision: i64,
    pub hash_hex: String,
    /// The prebuilt OpAMP offer; its body is a shared `Bytes`, so cloning it per agent is cheap.
    pub remote: AgentRemoteConfig,
}

impl GroupConfig {
    /// Builds the offer for a rendered YAML whose SHA-256 hex is `hash_hex`.
    pub fn new(
        id: AgentGroupId,
        selector: BTreeMap<String, String>,
        created_at: DateTime<Utc>,
        revision: i64,
        yaml: String,
        hash_hex: String,
    ) -> Self {
        let body = Bytes::from(yaml);
        // The renderer's hash is authoritative; fall back to our own digest if it is not hex.
        let raw = hash::from_hex(&hash_hex).unwrap_or_else(|| hash::sha256(&body).to_vec());
        let remote = AgentRemoteConfig {
            config: Some(AgentConfigMap {
                config_map: [(
                    CONFIG_FILE.to_owned(),
                    AgentConfigFile {
                        body,
                        content_type: CONFIG_CONTENT_TYPE.to_owned(),
                    },
                )]
                .into(),
            }),
            config_hash: Bytes::from(raw),
        };
        Self {
            id,
            selector,
            created_at,
            revision,
            hash_hex,
            remote,
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

/// The group an agent with `labels` belongs to: among the groups whose selector matches, the
/// most specific (most selector entries), then the oldest, then the smallest id.
pub fn match_group<'a>(
    groups: impl IntoIterator<Item = &'a GroupConfig>,
    labels: &BTreeMap<String, String>,
) -> Option<&'a GroupConfig> {
    groups
        .into_iter()
        .filter(|g| g.matches(labels))
        .min_by(|a, b| {
            b.selector
                .len()
                .cmp(&a.selector.len())
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        })
}

/// One transport connection (a WebSocket, or a single HTTP request).
#[derive(Debug)]
pub struct ConnCtx {
    pub id: u64,
    pub transport: Transport,
    /// The URL agents reach us at, for the OpAMP connection settings offer.
    pub endpoint: String,
    /// WebSocket only: poked when this agent has something new to receive.
    pub notify: Option<Arc<Notify>>,
    /// The uid this connection's agent currently uses (after any reassignment).
    pub uid: Option<InstanceUid>,
    /// A uid we replaced on this connection (old -> new), so repeats of the old one map over.
    alias: Option<(InstanceUid, InstanceUid)>,
    replied: bool,
}

struct LiveConn {
    id: u64,
    notify: Option<Arc<Notify>>,
}

struct Entry {
    rec: AgentRecord,
    /// Last sequence number seen; `None` until the first message since this process started.
    last_seq: Option<u64>,
    conn: Option<LiveConn>,
    /// Config hash offered on the current WebSocket connection (not resent until it changes).
    offered: Option<Bytes>,
    settings_offered: bool,
    /// Sequence number of the agent's AgentDisconnect message, if that was its last word.
    goodbye_seq: Option<u64>,
    /// When the agent (re)connected recently, oldest first, for the flapping-connection
    /// insight; kept for [`crate::insights::detect::FLAP_WINDOW`] and at most [`MAX_CONNECTS`].
    connects: std::collections::VecDeque<DateTime<Utc>>,
}

/// Connect times kept per agent: enough to judge flapping, bounded whatever an agent does.
const MAX_CONNECTS: usize = 16;

impl Entry {
    fn new(rec: AgentRecord) -> Self {
        Self {
            rec,
            last_seq: None,
            conn: None,
            offered: None,
            settings_offered: false,
            goodbye_seq: None,
            connects: Default::default(),
        }
    }

    fn connected_at(&mut self, now: DateTime<Utc>) {
        let window = crate::insights::detect::FLAP_WINDOW;
        while self
            .connects
            .front()
            .is_some_and(|t| now - *t > window || self.connects.len() >= MAX_CONNECTS)
        {
            self.connects.pop_front();
        }
        self.connects.push_back(now);
    }
}

#[derive(Default)]
struct Inner {
    agents: HashMap<InstanceUid, Entry>,
    /// Redacted effective configs by the hash of the reported body (see `effective_config`).
    texts: HashMap<String, Arc<str>>,
    /// Component sets by the `AvailableComponents.hash` (hex) agents reported with them.
    components: HashMap<String, Arc<ComponentSet>>,
    /// Per-signal support by the same hash (only for lists that report any).
    signals: HashMap<String, Arc<ComponentSignals>>,
    /// Each group's default config: what its agents get unless pinned (set by the rollout
    /// engine: the last good revision while a rollout is under way, else the latest).
    groups: HashMap<AgentGroupId, Arc<GroupConfig>>,
    /// Per-agent targets set by the rollout engine: agents already moved to a revision that is
    /// still rolling out. A pin counts only while the agent belongs to the pin's group.
    pins: HashMap<InstanceUid, Arc<GroupConfig>>,
    dirty: HashSet<InstanceUid>,
    /// Agents whose only news is a later `last_seen` (a heartbeat): written as that one
    /// column, less often than `dirty` (see `opamp::sync`).
    touched: HashSet<InstanceUid>,
    next_conn: u64,
}

/// Filters of `GET /api/v1/agents`.
#[derive(Clone, Debug, Default)]
pub struct AgentFilter {
    pub selector: BTreeMap<String, String>,
    pub group_id: Option<AgentGroupId>,
    pub healthy: Option<bool>,
    pub connected: Option<bool>,
}

impl AgentFilter {
    pub fn matches(&self, r: &AgentRecord) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| r.labels.get(k).is_some_and(|have| have == v))
            && self.group_id.is_none_or(|g| r.group_id == Some(g))
            && self
                .healthy
                .is_none_or(|want| r.health.as_ref().is_some_and(|h| h.healthy) == want)
            && self.connected.is_none_or(|want| r.connected == want)
    }
}

/// The fleet registry; lives in `AppState` for the life of the server.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Heartbeat interval offered to agents (0 = offer none).
    heartbeat: Mutex<Duration>,
    /// This process's `--replica-id`, written into the record of every agent that talks to us.
    replica_id: std::sync::OnceLock<String>,
    /// Woken when [`FLUSH_ROWS`] agents are dirty, so the flusher writes them before its
    /// next period (a reconnect storm does not pile up in memory).
    dirty_wake: Notify,
    /// Bounds on what an agent may report (see `report_limits.rs`).
    limits: Mutex<ReportLimits>,
    /// The secret values the server knows, by which reported effective configs and error
    /// messages are redacted (refreshed by `opamp::sync` whenever a group's config changes).
    known: std::sync::RwLock<Arc<KnownSecrets>>,
}

/// Dirty agents that make the flusher write at once rather than at its next period.
pub const FLUSH_ROWS: usize = 2000;

fn error_reply(uid: Bytes, kind: ServerErrorResponseType, message: String) -> ServerToAgent {
    ServerToAgent {
        instance_uid: uid,
        error_response: Some(ServerErrorResponse {
            r#type: kind as i32,
            error_message: message,
            details: None,
        }),
        capabilities: SERVER_CAPS.0,
        ..Default::default()
    }
}

/// Labels from an agent description: identifying and non-identifying attributes, values as
/// strings (non-string values in their natural text form). Also returns `service.version`.
fn labels_of(desc: &AgentDescription) -> (BTreeMap<String, String>, Option<String>) {
    let mut labels = BTreeMap::new();
    for kv in desc
        .identifying_attributes
        .iter()
        .chain(&desc.non_identifying_attributes)
    {
        let text = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::BoolValue(b)) => b.to_string(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            Some(any_value::Value::DoubleValue(d)) => d.to_string(),
            Some(any_value::Value::BytesValue(b)) => hash::to_hex(b),
            // Arrays and maps are not selector material.
            Some(_) | None => continue,
        };
        labels.insert(kv.key.clone(), text);
    }
    let version = labels.get("service.version").cloned();
    (labels, version)
}

/// Hash of a reported effective config: SHA-256 of the body when it is one file (so it
/// compares with the desired config hash), else of the name/body pairs in name order.
fn effective_hash(map: &AgentConfigMap) -> Option<String> {
    match map.config_map.len() {
        0 => None,
        1 => map
            .config_map
            .values()
            .next()
            .map(|f| hash::to_hex(&hash::sha256(&f.body))),
        _ => {
            let mut names: Vec<_> = map.config_map.keys().collect();
            names.sort();
            let mut buf = Vec::new();
            for name in names {
                buf.extend_from_slice(name.as_bytes());
                buf.push(0);
                buf.extend_from_slice(&map.config_map[name].body);
                buf.push(0);
            }
            Some(hash::to_hex(&hash::sha256(&buf)))
        }
    }
}

/// The config `uid` should run as a member of `group`: its pin if it has one for that group,
/// else the group's default.
fn target_of<'a>(
    pins: &'a HashMap<InstanceUid, Arc<GroupConfig>>,
    uid: &InstanceUid,
    group: &'a Arc<GroupConfig>,
) -> &'a Arc<GroupConfig> {
    match pins.get(uid) {
        Some(pin) if pin.id == group.id => pin,
        _ => group,
    }
}

fn redacted_body(map: &AgentConfigMap, known: &KnownSecrets) -> Option<String> {
    let file = map
        .config_map
        .get(CONFIG_FILE)
        .or_else(|| map.config_map.values().next())?;
    redact::redact_yaml(&file.body, known)
}

/// Queues `uid` for the flusher: its whole record when `changed`, else only its `last_seen`.
fn queue(
    dirty: &mut HashSet<InstanceUid>,
    touched: &mut HashSet<InstanceUid>,
    dirty_wake: &Notify,
    uid: InstanceUid,
    changed: bool,
) {
    if changed {
        dirty.insert(uid);
        if dirty.len() == FLUSH_ROWS {
            dirty_wake.notify_one();
        }
    } else {
        touched.insert(uid);
    }
}

impl Registry {
    pub fn new(heartbeat: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            heartbeat: Mutex::new(heartbeat),
            replica_id: std::sync::OnceLock::new(),
            known: Default::default(),
            dirty_wake: Notify::new(),
            limits: Mutex::default(),
        }
    }

    /// The bounds on agent reports (the defaults until set).
    pub fn report_limits(&self) -> ReportLimits {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the bounds on agent reports; set before [`Registry::load`], which applies them to
    /// the stored records too.
    pub fn set_report_limits(&self, limits: ReportLimits) {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// Resolves when many agents are waiting to be written (see [`FLUSH_ROWS`]).
    pub async fn many_dirty(&self) {
        self.dirty_wake.notified().await
    }

    /// Replaces the secret values reports are redacted by. Redacted effective configs already
    /// kept stay (they were redacted by the values of their time).
    pub fn set_known_secrets(&self, known: KnownSecrets) {
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(known);
    }

    fn known_secrets(&self) -> Arc<KnownSecrets> {
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the replica id agents are recorded as held by (once, at start-up).
    pub fn set_replica_id(&self, id: &str) {
        let _ = self.replica_id.set(id.to_owned());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug; the data is still consistent map
        // state, so keep serving rather than poisoning every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn heartbeat(&self) -> Duration {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_heartbeat(&self, interval: Duration) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = interval;
    }

    /// A context for a new connection.
    pub fn connection(
        &self,
        transport: Transport,
        endpoint: String,
        notify: Option<Arc<Notify>>,
    ) -> ConnCtx {
        let mut inner = self.lock();
        inner.next_conn += 1;
        ConnCtx {
            id: inner.next_conn,
            transport,
            endpoint,
            notify,
            uid: None,
            alias: None,
            replied: false,
        }
    }

    /// Loads persisted agents at start-up: all disconnected, sequence unknown (so the first
    /// message after a restart that is not a full report gets ReportFullState).
    pub fn load(&self, records: Vec<AgentRecord>) {
        let limits = self.report_limits();
        let mut inner = self.lock();
        for mut rec in records {
            let Ok(uid) = InstanceUid::parse(&rec.id) else {
                continue;
            };
            // Stored before the limits (or under larger ones): dropped, and written back so.
            let trimmed = report_limits::trim_record(&mut rec, &limits);
            if trimmed {
                tracing::info!(agent = %uid, "A stored agent record was over the report limits; dropped the parts over them");
            }
            // Written back: a record stored as connected (now disconnected), or trimmed.
            let rewrite = rec.connected || trimmed;
            rec.connected = false;
            if let (Some(hash), Some(text)) = (&rec.effective_config_hash, &rec.effective_config) {
                let shared = inner
                    .texts
                    .entry(hash.clone())
                    .or_insert_with(|| text.clone());
                rec.effective_config = Some(shared.clone());
            }
            if let (Some(hash), Some(set)) =
                (&rec.available_components_hash, &rec.available_components)
            {
                let shared = inner
                    .components
                    .entry(hash.clone())
                    .or_insert_with(|| set.clone());
                rec.available_components = Some(shared.clone());
                if let Some(signals) = &rec.component_signals {
                    let shared = inner
                        .signals
                        .entry(hash.clone())
                        .or_insert_with(|| signals.clone());
                    rec.component_signals = Some(shared.clone());
                }
            }
            if rewrite {
                inner.dirty.insert(uid);
            }
            inner.agents.insert(uid, Entry::new(rec));
        }
    }

    /// Handles one agent message and returns the reply.
    pub fn handle(
        &self,
        ctx: &mut ConnCtx,
        msg: AgentToServer,
        now: DateTime<Utc>,
    ) -> ServerToAgent {
        let first_reply = !ctx.replied;
        ctx.replied = true;
        let mut uid = match InstanceUid::from_bytes(&msg.instance_uid) {
            Ok(uid) => uid,
            Err(err) => {
                return error_reply(
                    msg.instance_uid,
                    ServerErrorResponseType::BadRequest,
                    err.to_string(),
                );
            }
        };
        let mut reply = ServerToAgent {
            instance_uid: msg.instance_uid.clone(),
            ..Default::default()
        };
        if first_reply || ctx.transport == Transport::Http {
            reply.capabilities = SERVER_CAPS.0;
        }
        // One agent per connection: the first uid binds it (a uid we assigned replaces the
        // binding, and the agent's repeats of its old uid map over). Another uid is refused
        // before anything is registered, so one socket cannot stand for a fleet and bypass
        // the per-address, connection and admission limits.
        if let Some(bound) = ctx.uid
            && uid != bound
            && ctx.alias.is_none_or(|(old, _)| uid != old)
        {
            tracing::info!(agent = %bound, other = %uid, "A second instance uid on one OpAMP connection; closing it");
            return error_reply(
                msg.instance_uid,
                ServerErrorResponseType::BadRequest,
                format!(
                    "this connection belongs to agent {bound}; an OpAMP connection serves one \
                     agent, so a message for agent {uid} needs a connection of its own"
                ),
            );
        }
        // Over a limit: refused as a whole, before anything of it is registered or kept.
        let limits = self.report_limits();
        if let Err(over) = limits.check(&msg) {
            tracing::info!(agent = %uid, error = %over, "Refused an agent report over a limit");
            return error_reply(
                msg.instance_uid,
                ServerErrorResponseType::BadRequest,
                over.to_string(),
            );
        }
        let heartbeat = self.heartbeat();
        let mut guard = self.lock();
        let inner = &mut *guard;

        // Identity: a uid another live WebSocket holds, or an explicit request, gets a new one
        // (once per connection: later requests are answered with the uid already assigned, so
        // a connection cannot mint agents one request at a time).
        let mut new_uid = None;
        let requested = msg.flags & AgentToServerFlags::RequestInstanceUid as u64 != 0;
        if let Some((old, new)) = ctx.alias
            && (uid == old || requested)
        {
            uid = new;
            new_uid = Some(new);
        } else {
            let duplicate = ctx.transport == Transport::Ws
                && inner.agents.get(&uid).is_some_and(|e| {
                    e.rec.connected && e.conn.as_ref().is_some_and(|c| c.id != ctx.id)
                });
            if requested || duplicate {
                let fresh = InstanceUid::new_v7();
                tracing::info!(agent = %uid, new_uid = %fresh, duplicate, "Assigning a new instance uid");
                // The uid this connection held until now (if any) is gone with the rename.
                if ctx.uid == Some(uid)
                    && let Some(entry) = inner.agents.get_mut(&uid)
                    && entry.conn.as_ref().map(|c| c.id) == Some(ctx.id)
                {
                    entry.conn = None;
                    entry.rec.connected = false;
                    inner.dirty.insert(uid);
                }
                ctx.alias = Some((uid, fresh));
                uid = fresh;
                new_uid = Some(fresh);
            }
        }
        if let Some(new) = new_uid {
            reply.agent_identification = Some(AgentIdentification {
                new_instance_uid: Bytes::copy_from_slice(new.as_bytes()),
            });
        }
        ctx.uid = Some(uid);

        let entry = inner
            .agents
            .entry(uid)
            .or_insert_with(|| Entry::new(AgentRecord::new(uid)));

        // Connection binding: a new WebSocket starts with nothing offered on it.
        match ctx.transport {
            Transport::Ws => {
                if entry.conn.as_ref().map(|c| c.id) != Some(ctx.id) {
                    entry.connected_at(now);
                    entry.conn = Some(LiveConn {
                        id: ctx.id,
                        notify: ctx.notify.clone(),
                    });
                    entry.offered = None;
                    entry.settings_offered = false;
                }
            }
            Transport::Http => entry.conn = None,
        }

        // A message built before the agent said goodbye can arrive after it (the Python client
        // does this with the same sequence number): answer it, but keep the agent disconnected.
        if msg.agent_disconnect.is_none() && entry.goodbye_seq == Some(msg.sequence_num) {
            return reply;
        }
        entry.goodbye_seq = msg.agent_disconnect.is_some().then_some(msg.sequence_num);
        // Over HTTP there is no connection: an agent that was offline and speaks again has
        // (re)connected.
        if ctx.transport == Transport::Http
            && !entry.rec.connected
            && msg.agent_disconnect.is_none()
        {
            entry.connected_at(now);
        }

        // Sequence numbers: a restarted agent starts again at 0 with its description; anything
        // else that is not last+1 means we may have missed state.
        let fresh_start = msg.sequence_num == 0 && msg.agent_description.is_some();
        let gap = match entry.last_seq {
            None => !fresh_start,
            Some(last) => msg.sequence_num != last.wrapping_add(1) && !fresh_start,
        };
        if fresh_start && ctx.transport == Transport::Http {
            entry.settings_offered = false;
        }
        entry.last_seq = Some(msg.sequence_num);
        if gap {
            reply.flags |= ServerToAgentFlags::ReportFullState as u64;
        }

        let rec = &mut entry.rec;
        // Whether this message changes the record beyond `last_seen`: only then is the whole
        // record written back; a plain heartbeat only touches `last_seen` (see `touched`).
        let mut changed = msg.agent_description.is_some()
            || msg.health.is_some()
            || msg.remote_config_status.is_some()
            || msg.effective_config.is_some()
            || msg.available_components.is_some()
            || msg.agent_disconnect.is_some()
            || rec.capabilities != msg.capabilities
            || rec.transport != Some(ctx.transport)
            || !rec.connected
            || rec.last_seen.is_none();
        rec.capabilities = msg.capabilities;
        rec.last_seen = Some(now);
        rec.transport = Some(ctx.transport);
        rec.connected = msg.agent_disconnect.is_none();
        if rec.replica_id.as_deref() != self.replica_id.get().map(String::as_str) {
            rec.replica_id = self.replica_id.get().cloned();
            changed = true;
        }
        let mut labels_changed = false;
        if let Some(desc) = &msg.agent_description {
            let (labels, version) = labels_of(desc);
            labels_changed = labels != rec.labels;
            rec.labels = labels;
            rec.agent_version = version;
        }
        if let Some(health) = msg.health {
            let mut health = HealthNode::from_proto(health);
            health.redact(&self.known_secrets());
            rec.health = Some(health);
        }
        if let Some(status) = msg.remote_config_status {
            rec.remote_config_status = match RemoteConfigStatuses::try_from(status.status) {
                Ok(RemoteConfigStatuses::Applied) => ConfigStatus::Applied,
                Ok(RemoteConfigStatuses::Applying) => ConfigStatus::Applying,
                Ok(RemoteConfigStatuses::Failed) => ConfigStatus::Failed,
                Ok(RemoteConfigStatuses::Unset) | Err(_) => ConfigStatus::Unset,
            };
            rec.remote_config_error = (!status.error_message.is_empty()).then(|| {
                let redacted = self.known_secrets().redact_text(&status.error_message);
                report_limits::cut_config_error(redacted)
            });
            rec.remote_config_hash = (!status.last_remote_config_hash.is_empty())
                .then(|| hash::to_hex(&status.last_remote_config_hash));
        }
        if let Some(effective) = msg.effective_config {
            let map = effective.config_map.unwrap_or_default();
            let digest = effective_hash(&map);
            rec.effective_config = match &digest {
                Some(d) => match inner.texts.get(d) {
                    Some(text) => Some(text.clone()),
                    None => {
                        // Redaction re-writes the YAML: its output is bounded like its input.
                        let known = self.known_secrets();
                        let text: Option<Arc<str>> = redacted_body(&map, &known)
                            .filter(|t| t.len() <= limits.effective_config_bytes)
                            .map(Arc::from);
                        if let Some(t) = &text {
                            inner.texts.insert(d.clone(), t.clone());
                        }
                        text
                    }
                },
                None => None,
            };
            rec.effective_config_hash = digest;
        }
        if let Some(ac) = &msg.available_components {
            let digest = hash::to_hex(&ac.hash);
            if !ac.components.is_empty() {
                let set = inner
                    .components
                    .entry(digest.clone())
                    .or_insert_with(|| Arc::new(component_set(ac)))
                    .clone();
                rec.component_signals = match inner.signals.get(&digest) {
                    Some(shared) => Some(shared.clone()),
                    None => component_signals(ac).map(|signals| {
                        let shared = Arc::new(signals);
                        inner.signals.insert(digest.clone(), shared.clone());
                        shared
                    }),
                };
                rec.available_components = Some(set);
                rec.available_components_hash = Some(digest);
            } else if rec.available_components_hash.as_deref() != Some(digest.as_str())
                || rec.available_components.is_none()
            {
                // Only the hash: fine if we know that list, else ask for it.
                match inner.components.get(&digest) {
                    Some(set) => {
                        rec.available_components = Some(set.clone());
                        rec.component_signals = inner.signals.get(&digest).cloned();
                        rec.available_components_hash = Some(digest);
                    }
                    None => {
                        reply.flags |= ServerToAgentFlags::ReportAvailableComponents as u64;
                    }
                }
            }
        }
        if msg.agent_disconnect.is_some() {
            entry.conn = None;
            queue(
                &mut inner.dirty,
                &mut inner.touched,
                &self.dirty_wake,
                uid,
                true,
            );
            return reply;
        }

        // Membership: recomputed on every report (cheap: a scan over the groups), so label
        // changes and group changes are both covered.
        let group = match_group(inner.groups.values().map(|g| &**g), &rec.labels)
            .and_then(|g| inner.groups.get(&g.id))
            .map(|g| target_of(&inner.pins, &uid, g).clone());
        if labels_changed {
            tracing::debug!(agent = %uid, group = ?group.as_ref().map(|g| g.id), "Agent labels changed");
        }
        let group_id = group.as_ref().map(|g| g.id);
        let desired = group.as_ref().map(|g| g.hash_hex.as_str());
        if rec.group_id != group_id || rec.desired_config_hash.as_deref() != desired {
            rec.group_id = group_id;
            rec.desired_config_hash = desired.map(str::to_owned);
            changed = true;
        }
        queue(
            &mut inner.dirty,
            &mut inner.touched,
            &self.dirty_wake,
            uid,
            changed,
        );

        // Remote config: offered while the agent's last received hash differs from the
        // desired one; over WebSocket only once per connection and hash (it is still being
        // applied), over HTTP on every poll until the agent reports it.
        if let Some(group) = &group
            && rec.caps().contains(AgentCaps::ACCEPTS_REMOTE_CONFIG)
            && rec.remote_config_hash.as_deref() != Some(group.hash_hex.as_str())
            && (ctx.transport == Transport::Http
                || gap
                || fresh_start
                || entry.offered.as_ref() != Some(&group.remote.config_hash))
        {
            reply.remote_config = Some(group.remote.clone());
            entry.offered = Some(group.remote.config_hash.clone());
        }

        // Heartbeat interval, through the OpAMP connection settings, to agents that both send
        // heartbeats and accept OpAMP connection settings (the spec gates the `opamp` offer on
        // the latter).
        // Agents that report their own metrics are offered our OTLP/HTTP ingest for them (see
        // `crate::insights`), in the same offer.
        let caps = AgentCaps(entry.rec.capabilities);
        let offer_heartbeat = !heartbeat.is_zero()
            && caps.contains(AgentCaps::REPORTS_HEARTBEAT)
            && caps.contains(AgentCaps::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
        let offer_metrics = caps.contains(AgentCaps::REPORTS_OWN_METRICS);
        if !entry.settings_offered && (offer_heartbeat || offer_metrics) {
            entry.settings_offered = true;
            let mut offer = heartbeat_offer(&ctx.endpoint, heartbeat);
            if !offer_heartbeat {
                offer.opamp = None;
            }
            if offer_metrics {
                let url = own_metrics_url(&ctx.endpoint);
                let mut digest = offer.hash.to_vec();
                digest.extend_from_slice(url.as_bytes());
                offer.hash = Bytes::copy_from_slice(&hash::sha256(&digest));
                offer.own_metrics = Some(TelemetryConnectionSettings {
                    destination_endpoint: url,
                    ..Default::default()
                });
            }
            reply.connection_settings = Some(offer);
        }
        reply
    }

    /// What a WebSocket agent should be pushed now (a newer config), if anything.
    pub fn pending_push(&self, ctx: &ConnCtx) -> Option<ServerToAgent> {
        let uid = ctx.uid?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let entry = inner.agents.get_mut(&uid)?;
        if entry.conn.as_ref().map(|c| c.id) != Some(ctx.id) {
            return None;
        }
        let group = entry.rec.group_id.and_then(|id| inner.groups.get(&id))?;
        let group = target_of(&inner.pins, &uid, group);
        if !entry.rec.caps().contains(AgentCaps::ACCEPTS_REMOTE_CONFIG)
            || entry.rec.remote_config_hash.as_deref() == Some(group.hash_hex.as_str())
            || entry.offered.as_ref() == Some(&group.remote.config_hash)
        {
            return None;
        }
        entry.offered = Some(group.remote.config_hash.clone());
        Some(ServerToAgent {
            instance_uid: Bytes::copy_from_slice(uid.as_bytes()),
            remote_config: Some(group.remote.clone()),
            ..Default::default()
        })
    }

    /// The connection ended (WebSocket closed): its agent is disconnected.
    pub fn closed(&self, ctx: &ConnCtx) {
        let Some(uid) = ctx.uid else { return };
        let mut inner = self.lock();
        if let Some(entry) = inner.agents.get_mut(&uid)
            && entry.conn.as_ref().map(|c| c.id) == Some(ctx.id)
        {
            entry.conn = None;
            entry.rec.connected = false;
            inner.dirty.insert(uid);
        }
    }

    /// Replaces the whole group cache (start-up, or after missing events); returns the
    /// connections to poke.
    pub fn set_groups(&self, groups: Vec<GroupConfig>) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        inner.groups = groups.into_iter().map(|g| (g.id, Arc::new(g))).collect();
        Self::reassign(&mut inner)
    }

    /// Adds or replaces one group; returns the connections to poke.
    pub fn upsert_group(&self, group: GroupConfig) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        inner.groups.insert(group.id, Arc::new(group));
        Self::reassign(&mut inner)
    }

    pub fn remove_group(&self, id: AgentGroupId) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        inner.groups.remove(&id);
        inner.pins.retain(|_, pin| pin.id != id);
        Self::reassign(&mut inner)
    }

    /// The rollout engine's one write: sets the group's default config and replaces the
    /// group's per-agent pins (`pinned` agents get `target`), in one critical section so no
    /// agent ever sees a half-applied decision. Returns the connections to poke.
    pub fn set_rollout(
        &self,
        default: GroupConfig,
        target: Option<Arc<GroupConfig>>,
        pinned: &[InstanceUid],
    ) -> Vec<Arc<Notify>> {
        let mut inner = self.lock();
        let id = default.id;
        inner.groups.insert(id, Arc::new(default));
        inner.pins.retain(|_, pin| pin.id != id);
        if let Some(target) = target {
            for uid in pinned {
                inner.pins.insert(*uid, target.clone());
            }
        }
        Self::reassign(&mut inner)
    }

    /// The connected agents among `agents` (this registry's, or the whole fleet across
    /// replicas) that would belong to group `id` if it had `selector` (and was created at
    /// `created_at`), with every other group as this registry knows it: what a change to that
    /// group would reach. Ordered by id.
    pub fn members_if_among(
        &self,
        agents: &[AgentRecord],
        id: AgentGroupId,
        selector: &BTreeMap<String, String>,
        created_at: DateTime<Utc>,
    ) -> Vec<AgentRecord> {
        let inner = self.lock();
        let matches = |sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
            sel.iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
        };
        // The same order as `match_group`: most specific, then oldest, then smallest id.
        let key = |sel_len: usize, created: DateTime<Utc>, gid: AgentGroupId| {
            (std::cmp::Reverse(sel_len), created, gid)
        };
        let mine = key(selector.len(), created_at, id);
        let mut out: Vec<AgentRecord> = agents
            .iter()
            .filter(|r| r.connected && matches(selector, &r.labels))
            .filter(|r| {
                !inner.groups.values().any(|g| {
                    g.id != id
                        && matches(&g.selector, &r.labels)
                        && key(g.selector.len(), g.created_at, g.id) < mine
                })
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Whether any connected agent reported its available components.
    pub fn any_reports_components(&self) -> bool {
        self.lock()
            .agents
            .values()
            .any(|e| e.rec.connected && e.rec.available_components.is_some())
    }

    pub fn group_revision(&self, id: AgentGroupId) -> Option<i64> {
        self.lock().groups.get(&id).map(|g| g.revision)
    }

    /// Recomputes every agent's group and desired hash; returns the WebSocket connections of
    /// agents whose desired config changed.
    fn reassign(inner: &mut Inner) -> Vec<Arc<Notify>> {
        let mut poke = Vec::new();
        let Inner {
            agents,
            groups,
            pins,
            dirty,
            ..
        } = inner;
        for (uid, entry) in agents.iter_mut() {
            let group = match_group(groups.values().map(|g| &**g), &entry.rec.labels)
                .and_then(|g| groups.get(&g.id))
                .map(|g| target_of(pins, uid, g));
            let group_id = group.map(|g| g.id);
            let desired = group.map(|g| g.hash_hex.clone());
            if entry.rec.group_id != group_id || entry.rec.desired_config_hash != desired {
                entry.rec.group_id = group_id;
                entry.rec.desired_config_hash = desired;
                dirty.insert(*uid);
                if let Some(notify) = entry.conn.as_ref().and_then(|c| c.notify.clone()) {
                    poke.push(notify);
                }
            }
        }
        poke
    }

    /// Marks agents silent for more than 3 heartbeat intervals as disconnected. Agents that
    /// were not offered our interval are assumed to use the protocol default of 30 s.
    pub fn sweep_silent(&self, now: DateTime<Utc>) -> usize {
        let heartbeat = self.heartbeat();
        let mut guard = self.lock();
        let inner = &mut *guard;
        // Forget interned configs no agent runs any more.
        inner.texts.retain(|_, text| Arc::strong_count(text) > 1);
        inner.components.retain(|_, set| Arc::strong_count(set) > 1);
        inner.signals.retain(|_, set| Arc::strong_count(set) > 1);
        let mut marked = 0;
        for (uid, entry) in inner.agents.iter_mut() {
            if !entry.rec.connected {
                continue;
            }
            let caps = entry.rec.caps();
            let over_ws = entry.rec.transport == Some(Transport::Ws);
            // A WebSocket agent without heartbeats is alive as long as its socket is.
            if over_ws && !caps.contains(AgentCaps::REPORTS_HEARTBEAT) {
                continue;
            }
            let interval = if entry.settings_offered && !heartbeat.is_zero() {
                heartbeat
            } else {
                Duration::from_secs(30).max(heartbeat)
            };
            let limit = chrono::Duration::from_std(interval * 3).unwrap_or(chrono::Duration::MAX);
            if entry.rec.last_seen.is_some_and(|seen| now - seen > limit) {
                entry.rec.connected = false;
                inner.dirty.insert(*uid);
                marked += 1;
            }
        }
        marked
    }

    /// The recent connect times (see `Entry::connects`) and group of the agents that
    /// connected at least `min` times lately: the only ones that can be flapping. Walked in
    /// place and cheap when none is, as in a settled fleet.
    pub fn frequent_connects(
        &self,
        min: usize,
    ) -> Vec<(String, Option<AgentGroupId>, Vec<DateTime<Utc>>)> {
        let inner = self.lock();
        inner
            .agents
            .values()
            .filter(|e| e.connects.len() >= min)
            .map(|e| {
                (
                    e.rec.id.clone(),
                    e.rec.group_id,
                    e.connects.iter().copied().collect(),
                )
            })
            .collect()
    }

    /// Marks every agent disconnected (graceful shutdown).
    pub fn disconnect_all(&self) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (uid, entry) in inner.agents.iter_mut() {
            if entry.rec.connected {
                entry.rec.connected = false;
                entry.conn = None;
                inner.dirty.insert(*uid);
            }
        }
    }

    /// Takes up to `max` of the agents changed since they were last taken, handing each
    /// record to `f` under the registry lock (the flusher serialises them right there: copying
    /// thousands of records out after a reconnect storm left the heap fragmented, see
    /// `opamp::sync`). Returns how many were taken.
    pub fn take_dirty_with(&self, max: usize, mut f: impl FnMut(&AgentRecord)) -> usize {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let taken: Vec<InstanceUid> = inner.dirty.iter().take(max).copied().collect();
        for uid in &taken {
            inner.dirty.remove(uid);
            if let Some(entry) = inner.agents.get(uid) {
                f(&entry.rec);
            }
        }
        taken.len()
    }

    /// Takes all records changed since the last call.
    #[cfg(test)]
    pub fn take_dirty(&self) -> Vec<AgentRecord> {
        let mut records = Vec::new();
        self.take_dirty_with(usize::MAX, |r| records.push(r.clone()));
        records
    }

    /// Takes the agents heard from since the last call whose record did not otherwise change,
    /// with when they were last seen (agents also dirty are left to the full write).
    pub fn take_touched(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let touched = std::mem::take(&mut inner.touched);
        touched
            .into_iter()
            .filter(|uid| !inner.dirty.contains(uid))
            .filter_map(|uid| {
                let rec = &inner.agents.get(&uid)?.rec;
                Some((rec.id.clone(), rec.last_seen?))
            })
            .collect()
    }

    /// Puts records back on the dirty list after a failed write.
    pub fn mark_dirty(&self, ids: impl IntoIterator<Item = String>) {
        let mut inner = self.lock();
        for id in ids {
            if let Ok(uid) = InstanceUid::parse(&id) {
                inner.dirty.insert(uid);
            }
        }
    }

    /// Whether `uid` is a known agent that is connected now.
    pub fn is_connected(&self, uid: InstanceUid) -> bool {
        self.lock()
            .agents
            .get(&uid)
            .is_some_and(|e| e.rec.connected)
    }

    pub fn get(&self, uid: InstanceUid) -> Option<AgentRecord> {
        self.lock().agents.get(&uid).map(|e| e.rec.clone())
    }

    /// Agents matching `filter`, ordered by id.
    pub fn list(&self, filter: &AgentFilter) -> Vec<AgentRecord> {
        let inner = self.lock();
        let mut out: Vec<AgentRecord> = inner
            .agents
            .values()
            .map(|e| &e.rec)
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Calls `f` on every agent matching `filter`, in no particular order, without copying
    /// them: for counts and summaries over the whole fleet, where [`Registry::list`] would clone
    /// 10,000 records (and hold the lock meanwhile) every time. `f` runs under the registry
    /// lock, so it must be short and must not call back into the registry.
    pub fn visit(&self, filter: &AgentFilter, mut f: impl FnMut(&AgentRecord)) {
        let inner = self.lock();
        for rec in inner.agents.values().map(|e| &e.rec) {
            if filter.matches(rec) {
                f(rec);
            }
        }
    }

    /// Connections of every live WebSocket agent (to tell them we are shutting down).
    pub fn live_connections(&self) -> usize {
        self.lock()
            .agents
            .values()
            .filter(|e| e.conn.is_some())
            .count()
    }
}

/// Serde for `Option<Arc<str>>` as an optional string (serde's `rc` feature is not enabled).
mod shared_text {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(text) => s.serialize_some(&**text),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<str>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Arc::from))
    }
}

/// Serde for `Option<Arc<ComponentSet>>` as an optional map (serde's `rc` feature is not
/// enabled).
pub(crate) mod shared_components {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ComponentSet;

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<Arc<ComponentSet>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<ComponentSet>>, D::Error> {
        Ok(Option::<ComponentSet>::deserialize(d)?.map(Arc::new))
    }
}

/// Serde for `Option<Arc<ComponentSignals>>` as an optional map.
pub(crate) mod shared_signals {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ComponentSignals;

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<Arc<ComponentSignals>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<ComponentSignals>>, D::Error> {
        Ok(Option::<ComponentSignals>::deserialize(d)?.map(Arc::new))
    }
}

/// The OTLP/HTTP metrics URL on the listener the agent reached us at (`ws://h/v1/opamp` ->
/// `http://h/v1/metrics`).
fn own_metrics_url(endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("http", endpoint));
    let scheme = match scheme {
        "wss" | "https" => "https",
        _ => "http",
    };
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}{}", crate::insights::ingest::METRICS_PATH)
}

fn heartbeat_offer(endpoint: &str, interval: Duration) -> ConnectionSettingsOffers {
    let secs = interval.as_secs().max(1);
    let digest = hash::sha256(format!("{endpoint}\n{secs}").as_bytes());
    ConnectionSettingsOffers {
        hash: Bytes::copy_from_slice(&digest),
        opamp: Some(OpAmpConnectionSettings {
            destination_endpoint: endpoint.to_owned(),
            heartbeat_interval_seconds: secs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;

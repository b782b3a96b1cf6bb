//! The fleet model: what the server knows about each agent ([`AgentRecord`], its health and
//! config status), the agent filter, and a group's config as agents receive it. No I/O and no
//! protocol handling: the OpAMP server (`opamp/`) fills these in, the registry (`registry`)
//! indexes them, the rollout engine and the REST API read them.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use otaas_api::AgentGroupId;
use otaas_opamp::proto::{AgentConfigFile, AgentConfigMap, AgentRemoteConfig};
use otaas_opamp::{AgentCaps, InstanceUid, hash};
use serde::{Deserialize, Serialize};

use crate::secrets::KnownSecrets;

pub mod report_limits;

/// An agent's identity: its OpAMP instance uid. Shown and stored as 32 lowercase hex digits,
/// which sort like the uid's bytes, so ordering by `AgentId` is ordering by the text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub InstanceUid);

impl AgentId {
    /// Reads the hex form (as stored, and as the REST API takes it).
    pub fn parse(text: &str) -> Result<Self, otaas_opamp::UidError> {
        InstanceUid::parse(text).map(Self)
    }

    pub fn uid(self) -> InstanceUid {
        self.0
    }
}

impl From<InstanceUid> for AgentId {
    fn from(uid: InstanceUid) -> Self {
        Self(uid)
    }
}

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for AgentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

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
    pub(crate) fn redact(&mut self, known: &KnownSecrets) {
        for text in [&mut self.status, &mut self.last_error] {
            if let Some(redacted) = known.redact(text) {
                *text = redacted;
            }
        }
        for (_, component) in &mut self.components {
            component.redact(known);
        }
    }
}

/// Everything the server knows about one agent; this is what is persisted (as JSON) and what
/// the REST API shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's instance uid (32 lowercase hex digits in JSON).
    pub id: AgentId,
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
    /// The last [`CONFIG_HISTORY`] changes of the reported config status, oldest first (what
    /// the console's agent page lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_history: Vec<ConfigChange>,
}

/// How many config status changes an agent record keeps.
pub const CONFIG_HISTORY: usize = 5;

/// One change of an agent's reported config status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub at: DateTime<Utc>,
    pub status: ConfigStatus,
    /// The first 12 hex digits of the config hash reported with it.
    #[serde(default)]
    pub hash: Option<String>,
    /// The error reported with a failure (at most [`HISTORY_ERROR_CHARS`] characters), kept
    /// after a rollback clears the current one: it is why the agent was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Longest error text a config history entry keeps.
pub const HISTORY_ERROR_CHARS: usize = 512;

impl AgentRecord {
    /// Notes the reported config status if it differs from the last one noted.
    pub fn note_config_status(&mut self, at: DateTime<Utc>) {
        let hash = self
            .remote_config_hash
            .as_deref()
            .map(|h| h.chars().take(12).collect::<String>());
        if self
            .config_history
            .last()
            .is_some_and(|c| c.status == self.remote_config_status && c.hash == hash)
        {
            return;
        }
        if self.config_history.len() >= CONFIG_HISTORY {
            self.config_history.remove(0);
        }
        let error = self
            .remote_config_error
            .as_deref()
            .filter(|_| self.remote_config_status == ConfigStatus::Failed)
            .map(|e| e.chars().take(HISTORY_ERROR_CHARS).collect());
        self.config_history.push(ConfigChange {
            at,
            status: self.remote_config_status,
            hash,
            error,
        });
    }
}

/// Component kind → the types of that kind a collector build has.
pub type ComponentSet = BTreeMap<String, std::collections::BTreeSet<String>>;

/// Component kind → type → the signals (`logs`, `metrics`, `traces`) it supports, for the
/// types whose agent reported a stability per signal.
pub type ComponentSignals = BTreeMap<String, BTreeMap<String, std::collections::BTreeSet<String>>>;

/// How far back an agent's (re)connections are kept and judged for flapping (see
/// `insights::detect`).
pub const FLAP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl AgentRecord {
    pub(crate) fn new(uid: InstanceUid) -> Self {
        Self {
            id: AgentId(uid),
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
            config_history: Vec::new(),
        }
    }

    pub fn caps(&self) -> AgentCaps {
        AgentCaps(self.capabilities)
    }

    /// Drift: the agent says it applied its desired config, but the effective config it reports
    /// hashes to something else. Both hashes are of the real documents — the desired hash is the
    /// SHA-256 of the YAML we sent, the effective hash is computed from the body the agent reported,
    /// before redaction (see `opamp/registry.rs`) — so secrets redacted for storage never cause
    /// a false drift.
    pub fn is_drifted(&self) -> bool {
        match (
            self.desired_config_hash.as_deref(),
            self.effective_config_hash.as_deref(),
        ) {
            (Some(desired), Some(effective)) => {
                self.remote_config_status == ConfigStatus::Applied
                    && self.remote_config_hash.as_deref() == Some(desired)
                    && effective != desired
            }
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Given reports of config status, when noted, then a repeated report adds nothing, a new
    /// status or hash adds an entry, and only the last [`CONFIG_HISTORY`] are kept.
    #[test]
    fn config_history_keeps_the_last_changes_only() {
        let mut r: AgentRecord =
            serde_json::from_value(serde_json::json!({ "id": format!("{:032x}", 7) })).unwrap();
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        r.remote_config_status = ConfigStatus::Applying;
        r.remote_config_hash = Some("ab".repeat(32));
        r.note_config_status(t(1));
        r.note_config_status(t(2));
        assert_eq!(r.config_history.len(), 1);
        assert_eq!(r.config_history[0].hash.as_deref(), Some("abababababab"));
        r.remote_config_status = ConfigStatus::Failed;
        r.remote_config_error = Some("no kafka here".into());
        r.note_config_status(t(3));
        assert_eq!(r.config_history.len(), 2);
        assert_eq!(r.config_history[1].error.as_deref(), Some("no kafka here"));
        assert_eq!(r.config_history[0].error, None);
        for i in 0..10 {
            r.remote_config_hash = Some(format!("{i}{:063}", 0));
            r.note_config_status(t(10 + i));
        }
        assert_eq!(r.config_history.len(), CONFIG_HISTORY);
        assert_eq!(r.config_history.last().unwrap().at, t(19));
        assert_eq!(r.config_history[0].at, t(15));
    }
}

//! Agents as `GET /api/v1/agents` returns them: collectors known from OpAMP (read-only).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AgentGroupId;

/// The agent's report on the last remote config it received (OpAMP `RemoteConfigStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteConfigState {
    #[default]
    Unset,
    Applied,
    Applying,
    Failed,
}

/// One summary of where an agent stands with its config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Matches no agent group; never pushed a config ("externally added").
    Unmanaged,
    /// Has not (yet) reported the desired config.
    Pending,
    Applying,
    Applied,
    Failed,
    /// Reported the desired config as applied, but runs a different effective config.
    Drifted,
}

/// How the agent talks OpAMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentTransport {
    Ws,
    Http,
}

/// A node of the agent's health tree (the agent at the root, components below).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub healthy: bool,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub last_error: String,
    /// Unix epoch nanoseconds; 0 when not running or not reported.
    #[serde(default)]
    pub start_time_unix_nano: u64,
    #[serde(default)]
    pub components: BTreeMap<String, ComponentHealth>,
}

/// An agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Instance uid, 32 lowercase hex digits.
    pub id: String,
    /// Identifying and non-identifying attributes of its agent description (string values).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Capability names (`ReportsStatus`, `AcceptsRemoteConfig`, ...).
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub connected: bool,
    pub transport: Option<AgentTransport>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Top-level health; `None` when the agent does not report health.
    pub healthy: Option<bool>,
    pub health: Option<ComponentHealth>,
    pub status: AgentStatus,
    pub remote_config_status: RemoteConfigState,
    pub remote_config_error: Option<String>,
    /// SHA-256 (hex) of the last remote config the agent reported receiving.
    pub remote_config_hash: Option<String>,
    /// SHA-256 (hex) of the config the agent should run (its group's current config).
    pub config_hash: Option<String>,
    /// SHA-256 (hex) of the effective config the agent reports.
    pub effective_config_hash: Option<String>,
    /// The reported effective config with secrets redacted; only in `GET /agents/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_config: Option<String>,
    /// The group whose selector the agent matches; `None` = unmanaged.
    pub group_id: Option<AgentGroupId>,
    /// `service.version` of its description.
    pub agent_version: Option<String>,
    /// The `otaas serve` replica the agent is connected to (or last was): its `--replica-id`.
    #[serde(default)]
    pub replica_id: Option<String>,
    /// Component types its collector build has (kind → types), when it reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_components: Option<BTreeMap<String, Vec<String>>>,
}

/// Health filter of the agent list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthFilter {
    Healthy,
    Unhealthy,
}

impl HealthFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthFilter::Healthy => "healthy",
            HealthFilter::Unhealthy => "unhealthy",
        }
    }
}

/// Query of `GET /api/v1/agents`; every filter is optional and they combine with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentQuery {
    /// Label → value, all must match (sent as `selector=k=v,k2=v2`).
    pub selector: BTreeMap<String, String>,
    pub group_id: Option<AgentGroupId>,
    pub health: Option<HealthFilter>,
    pub connected: Option<bool>,
}

impl AgentQuery {
    /// The query string pairs.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.selector.is_empty() {
            let sel: Vec<String> = self
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(("selector", sel.join(",")));
        }
        if let Some(g) = self.group_id {
            out.push(("group_id", g.to_string()));
        }
        if let Some(h) = self.health {
            out.push(("health", h.as_str().to_owned()));
        }
        if let Some(c) = self.connected {
            out.push(("connected", c.to_string()));
        }
        out
    }
}

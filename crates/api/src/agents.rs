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

/// One node of a health tree, flattened: `name` is the path of component keys from the root
/// (`pipeline:logs/app/exporter:otlphttp/out-sink`), so siblings in different pipelines stay
/// apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatComponent<'a> {
    pub name: String,
    pub health: &'a ComponentHealth,
}

impl ComponentHealth {
    /// Every component below this node, depth first, parents before their children.
    pub fn flatten(&self) -> Vec<FlatComponent<'_>> {
        fn walk<'a>(node: &'a ComponentHealth, prefix: &str, out: &mut Vec<FlatComponent<'a>>) {
            for (key, child) in &node.components {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}/{key}")
                };
                out.push(FlatComponent {
                    name: name.clone(),
                    health: child,
                });
                walk(child, &name, out);
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }

    /// One line saying why this tree is unhealthy, or `None` when it is healthy. The deepest
    /// unhealthy component wins over its parents (a pipeline is unhealthy because of its
    /// exporter, and the exporter's error is what the user can act on).
    pub fn unhealthy_reason(&self) -> Option<String> {
        if self.healthy {
            return None;
        }
        let flat = self.flatten();
        let culprit = flat
            .iter()
            .filter(|c| !c.health.healthy)
            .find(|c| !c.health.components.values().any(|child| !child.healthy));
        let (what, node) = match culprit {
            Some(c) => (c.name.as_str(), c.health),
            None => ("the agent", self),
        };
        let why = match (node.last_error.trim(), node.status.trim()) {
            ("", "") => "no reason given".to_owned(),
            ("", status) => status.to_owned(),
            (error, _) => error.to_owned(),
        };
        // One line: a crash report carries the collector's stderr lines.
        let why = why.lines().next().unwrap_or_default();
        Some(format!("{what}: {why}"))
    }
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
    /// The signals its components support, as the agent reports them (kind → type → signals),
    /// only for types it reports a stability per signal for; absent when it reports none. Only
    /// in `GET /agents/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_signals: Option<BTreeMap<String, BTreeMap<String, Vec<String>>>>,
}

impl Agent {
    /// Why the agent is not healthy, in one line; `None` when it is. An agent that reports no
    /// health at all counts as unhealthy (as the `health=unhealthy` filter does).
    pub fn unhealthy_reason(&self) -> Option<String> {
        match &self.health {
            Some(h) => h.unhealthy_reason(),
            None => Some("the agent reports no health".to_owned()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(healthy: bool, status: &str, error: &str) -> ComponentHealth {
        ComponentHealth {
            healthy,
            status: status.into(),
            last_error: error.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_deepest_unhealthy_component_is_the_reason() {
        // Given an agent whose pipeline is unhealthy because of its exporter
        let mut pipeline = node(false, "StatusRecoverableError", "");
        pipeline
            .components
            .insert("receiver:filelog/app".into(), node(true, "StatusOK", ""));
        pipeline.components.insert(
            "exporter:otlphttp/out".into(),
            node(false, "StatusRecoverableError", "connection refused\nmore"),
        );
        let mut root = node(false, "running (pid 7)", "");
        root.components.insert("pipeline:logs/app".into(), pipeline);
        // When it is flattened and explained
        let names: Vec<String> = root.flatten().into_iter().map(|c| c.name).collect();
        // Then names are paths, parents first, and the exporter's error is the reason
        assert_eq!(
            names,
            [
                "pipeline:logs/app",
                "pipeline:logs/app/exporter:otlphttp/out",
                "pipeline:logs/app/receiver:filelog/app",
            ]
        );
        assert_eq!(
            root.unhealthy_reason().as_deref(),
            Some("pipeline:logs/app/exporter:otlphttp/out: connection refused")
        );
    }

    #[test]
    fn without_an_unhealthy_component_the_root_explains_itself() {
        assert_eq!(node(true, "StatusOK", "old").unhealthy_reason(), None);
        assert_eq!(
            node(false, "collector down; restarting in 2 s", "")
                .unhealthy_reason()
                .as_deref(),
            Some("the agent: collector down; restarting in 2 s")
        );
        assert_eq!(
            node(false, "down", "collector exited: signal 9\nstderr")
                .unhealthy_reason()
                .as_deref(),
            Some("the agent: collector exited: signal 9")
        );
    }
}

//! Discovered pipelines and their adoption: `GET /api/v1/discovered-pipelines[/{id}]` lists the
//! pipelines connected collectors run (read from their effective configs, managed or not), and
//! `POST /api/v1/discovered-pipelines/{id}/adopt` turns one into otaas objects.
//!
//! A discovered pipeline is a set of service pipelines of one config tied together by the
//! receivers, exporters or connectors they share (most often a single `<signal>[/name]`
//! pipeline). Equal ones on different agents are one discovered pipeline: its `id` is a
//! SHA-256 of the content (signals, component types and settings, processor order), which
//! ignores formatting, key order and component names. Secret values are redacted as in every
//! other view (`<redacted>`); the server never stores them in clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentGroupId, EndpointId, ExporterBindingId, PipelineId};
use crate::insights::Anomaly;
use crate::types::{AgentGroupSpec, EndpointSpec, ExporterBindingSpec, PipelineSpec, Signal};

/// One component of a discovered pipeline: the id the agents' config gives it and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredComponent {
    pub id: String,
    pub config: Value,
}

/// One service pipeline (`<signal>[/name]`) of a discovered pipeline, as one of its agents
/// names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredServicePipeline {
    pub name: String,
    pub receivers: Vec<DiscoveredComponent>,
    pub processors: Vec<DiscoveredComponent>,
    pub exporters: Vec<DiscoveredComponent>,
}

/// A part otaas cannot represent with its own objects, and why. A discovered pipeline with one
/// is not offered for adoption: adopting it would drop that part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnrepresentablePart {
    /// `connector <id>`, `extension <id>`, `pipeline <name>`, ...
    pub part: String,
    pub reason: String,
}

/// An otaas pipeline whose rendered config has the same content: the discovered pipeline is
/// already managed there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedEquivalent {
    pub group_id: AgentGroupId,
    pub group_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<PipelineId>,
    pub pipeline_name: String,
    /// The endpoints and exporter bindings of that pipeline (for `import` blocks).
    #[serde(default)]
    pub endpoint_ids: Vec<EndpointId>,
    #[serde(default)]
    pub exporter_binding_ids: Vec<ExporterBindingId>,
}

/// Throughput of a discovered pipeline summed over its agents, from their own metrics
/// (`otelcol.pipeline.id` of each agent's service pipelines), items per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredThroughput {
    /// Agents that reported own metrics for one of its service pipelines.
    pub agents_reporting: u64,
    pub accepted_per_second: f64,
    pub refused_per_second: f64,
    pub sent_per_second: f64,
}

/// Health of the agents running a discovered pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredHealth {
    pub healthy: u64,
    pub unhealthy: u64,
    /// Agents that reported no health.
    pub unknown: u64,
}

/// A pipeline running on connected collectors, as `GET /api/v1/discovered-pipelines` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredPipeline {
    /// Content hash (64 lowercase hex): equal for equal pipelines on any agent.
    pub id: String,
    /// The name an adoption gives the otaas pipeline unless told otherwise: from the agents'
    /// own pipeline names, made unique among existing pipelines.
    pub suggested_name: String,
    pub signals: Vec<Signal>,
    /// Its service pipelines with their components, as the first agent running it names them.
    pub pipelines: Vec<DiscoveredServicePipeline>,
    /// Connectors it uses (id → settings); otaas cannot represent them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connectors: BTreeMap<String, Value>,
    /// Agents running it.
    pub agents: u64,
    /// Of those, agents in no agent group (otaas sends them nothing).
    pub unmanaged_agents: u64,
    /// Labels every agent running it has, with the same value: the selector an adopted group
    /// gets unless told otherwise.
    pub common_labels: BTreeMap<String, String>,
    /// otaas pipelines already rendering the same content, by group.
    pub managed: Vec<ManagedEquivalent>,
    /// Parts otaas cannot represent; non-empty means no adoption is offered.
    pub unrepresentable: Vec<UnrepresentablePart>,
    /// Whether `POST .../adopt` can make otaas objects of it (nothing unrepresentable).
    pub adoptable: bool,
    pub health: DiscoveredHealth,
    pub throughput: DiscoveredThroughput,
    /// Current anomalies of its agents (`/api/v1/insights`), at most 20.
    pub anomalies: Vec<Anomaly>,
    /// Up to 20 of the agents running it (instance uids, hex), to look them up.
    pub sample_agents: Vec<String>,
}

/// The agent group an adoption creates: it claims the agents its selector matches and renders
/// the adopted pipeline (with `pipeline_ids`, already existing pipelines those agents also
/// run) for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptGroup {
    pub name: String,
    /// Default: the discovered pipeline's `common_labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// Further existing pipelines the group runs, besides the adopted one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipeline_ids: Vec<PipelineId>,
    #[serde(default)]
    pub rollout: crate::types::RolloutSpec,
}

/// Body of `POST /api/v1/discovered-pipelines/{id}/adopt`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptRequest {
    /// Show what would be created and what would change on the agents; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Name of the otaas pipeline (default: `suggested_name`); endpoints and bindings are
    /// named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Values of the secrets the agents' config holds and the server only saw redacted, by
    /// the names `secrets_required` gives them. Never returned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Also create an agent group for the agents running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<AdoptGroup>,
    /// Adopt even though the group would change the config of some agents (listed in the dry
    /// run's `agents`). Without it such an adoption is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_changes: bool,
}

/// A secret value the adoption needs: the agents' config holds it, the server saw it redacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredSecret {
    /// The key to give its value under in [`AdoptRequest::secrets`] (and the secret's name on
    /// the object: `secrets`/`secrets_wo`, or the destination header).
    pub name: String,
    /// `pipeline` or `exporter_binding <name>`.
    pub object: String,
    /// Where it stands in the agents' config, e.g. `exporters.otlphttp.headers.authorization`.
    pub path: String,
    /// Whether the request gave it.
    pub given: bool,
}

/// What an adoption with a group does to one agent the group's selector matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentChange {
    pub agent_id: String,
    /// `false`: the config the group renders runs the same pipelines, components and settings
    /// as the agent's (only names differ), so the agent keeps its collector running.
    pub changes: bool,
    pub reason: String,
}

/// The objects an adoption created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedObjects {
    pub pipeline_id: PipelineId,
    pub endpoint_ids: Vec<EndpointId>,
    pub exporter_binding_ids: Vec<ExporterBindingId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<AgentGroupId>,
}

/// The answer to `POST .../adopt`: the plan, and with `dry_run: false` what was created.
/// In a dry run the specs' `pipeline_id` is the nil UUID (the pipeline does not exist yet).
/// Secret values never appear: `pipeline.secrets` and binding `secrets` and `headers` hold
/// `<redacted>` for each value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adoption {
    pub dry_run: bool,
    pub discovered_pipeline_id: String,
    pub pipeline: PipelineSpec,
    pub endpoints: Vec<EndpointSpec>,
    pub exporter_bindings: Vec<ExporterBindingSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<AgentGroupSpec>,
    pub secrets_required: Vec<RequiredSecret>,
    /// Whether what otaas renders for these objects runs the same pipelines, components and
    /// settings as the agents do (names aside).
    pub equivalent: bool,
    /// Why not, when `equivalent` is false.
    pub differences: Vec<String>,
    /// With a group: every agent its selector matches, and whether its config would change.
    pub agents: Vec<AgentChange>,
    /// The collector config otaas renders (the group's, or one holding only this pipeline),
    /// secrets redacted.
    pub rendered_yaml: String,
    /// Unified diff from the config an agent running the discovered pipeline reports (redacted)
    /// to `rendered_yaml`.
    pub diff: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<AdoptedObjects>,
}

//! Request bodies (`*Spec`, `deny_unknown_fields`) and the objects the server returns.
//!
//! Conventions:
//! - `revision` on every object is its own revision (starts at 1, +1 per update); send it back in
//!   `If-Match` on `PUT` so a concurrent change is a 409 instead of a lost update.
//! - JSON component configs (`receivers`, `processors[].config`, destination `config`) must be
//!   JSON objects; they are copied verbatim into the rendered collector YAML.
//! - Secrets are accepted on write and never returned: endpoint ingest tokens appear only in the
//!   response that created or rotated them; destination `headers` come back as `header_digests`
//!   (`"sha256:<hex of value>"`) so a client can detect drift without seeing the value.
//! - Pipelines and exporter bindings carry a `secrets` map (name → value), referenced from their
//!   JSON configs by a secret reference `{"$secret": "<name>"}` standing for a whole string
//!   value (see [`secret_ref`]). Values come back as `secret_digests` only; the rendered config
//!   agents receive is the only place they appear.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentGroupId, EndpointId, ExporterBindingId, PipelineId, TokenId};

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A list response: `{"items": [...], "next_cursor": "..."}`, one page of a list ordered by
/// id. `next_cursor` (absent on the last page) is passed back as `?cursor=` for the next page;
/// it is opaque. `?limit=` sets the page size (default 100, at most the server's
/// `--api-max-page-size`, default 1000; a larger limit is lowered to it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A telemetry signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rollouts a write started

/// An agent group whose rendered config a write changed, and the new config revision its
/// agents are being moved to (compare with `GET /api/v1/agent-groups/{id}/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRollout {
    pub group_id: AgentGroupId,
    pub group_name: String,
    pub config_revision: i64,
    /// SHA-256 (lowercase hex) of that revision's YAML.
    pub config_hash: String,
}

// ---------------------------------------------------------------------------------------------
// Pipelines

/// One processor of a pipeline, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSpec {
    /// Component id, `type` or `type/name` (e.g. `batch`, `attributes/redact`).
    pub id: String,
    /// The processor's configuration, a JSON object (default `{}`).
    #[serde(default = "empty_object")]
    pub config: Value,
}

/// Body of `POST /api/v1/pipelines` and `PUT /api/v1/pipelines/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Unique among pipelines, `[a-z0-9_-]{1,63}`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Non-empty subset of traces, metrics, logs.
    pub signals: Vec<Signal>,
    /// Extra receivers (besides the pipeline's endpoints): component id → JSON object config.
    #[serde(default)]
    pub receivers: BTreeMap<String, Value>,
    #[serde(default)]
    pub processors: Vec<ProcessorSpec>,
    /// Secret values (name `[a-z0-9_-]{1,63}` → value), referenced from `receivers` and
    /// `processors[].config` as `{"$secret": "<name>"}`. Never returned (see `secret_digests`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// On update: keep the secret values the server already has instead of replacing them
    /// with `secrets` (which must then be empty). Default `false`: `secrets` is the whole set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_secrets: bool,
}

/// A pipeline as the server returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub id: PipelineId,
    pub name: String,
    pub description: String,
    pub signals: Vec<Signal>,
    pub receivers: BTreeMap<String, Value>,
    pub processors: Vec<ProcessorSpec>,
    /// Secret name → `"sha256:<lowercase hex of the value>"` ([`header_digest`]).
    #[serde(default)]
    pub secret_digests: BTreeMap<String, String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to a create or update: the agent groups whose rendered config this
    /// write changed, with the config revision each now rolls out (`[]` when it reached none).
    /// Absent on reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts: Option<Vec<GroupRollout>>,
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/// Wire protocol of an ingest endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    OtlpGrpc,
    OtlpHttp,
}

/// Authentication an ingest endpoint requires from senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointAuth {
    /// `Authorization: Bearer <token>` with the endpoint's generated token.
    #[default]
    Bearer,
    None,
}

/// Server-side TLS of an ingest endpoint: paths on the agent's host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert_file: String,
    pub key_file: String,
    /// When set, senders must present a client certificate signed by this CA (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<String>,
}

fn one() -> u32 {
    1
}

/// Body of `POST /api/v1/endpoints` and `PUT /api/v1/endpoints/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub name: String,
    pub pipeline_id: PipelineId,
    pub protocol: Protocol,
    /// Port the agent listens on (1-65535).
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
    #[serde(default)]
    pub auth: EndpointAuth,
    /// Bump to rotate the ingest token. The previous token stays accepted for
    /// `token_grace_seconds` after the bump, then stops being rendered.
    #[serde(default = "one")]
    pub token_version: u32,
    /// How long the previous token stays valid after a `token_version` bump, in seconds
    /// (0 = cut off at once; at most [`MAX_TOKEN_GRACE_SECONDS`]). Default 600 (10 minutes).
    #[serde(default = "default_token_grace")]
    pub token_grace_seconds: u32,
}

/// Default of [`EndpointSpec::token_grace_seconds`]: ten minutes.
pub const DEFAULT_TOKEN_GRACE_SECONDS: u32 = 600;
/// Upper bound of [`EndpointSpec::token_grace_seconds`]: seven days.
pub const MAX_TOKEN_GRACE_SECONDS: u32 = 7 * 24 * 3600;

fn default_token_grace() -> u32 {
    DEFAULT_TOKEN_GRACE_SECONDS
}

/// An endpoint as the server returns it. `token` is present only in the response to the create
/// or update that minted it (create with `auth = bearer`, or a `token_version` bump).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub name: String,
    pub pipeline_id: PipelineId,
    pub protocol: Protocol,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
    pub auth: EndpointAuth,
    pub token_version: u32,
    #[serde(default = "default_token_grace")]
    pub token_grace_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to a create or update: the agent groups whose rendered config this
    /// write changed, with the config revision each now rolls out (`[]` when it reached none).
    /// Absent on reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts: Option<Vec<GroupRollout>>,
}

// ---------------------------------------------------------------------------------------------
// Exporter bindings

/// Client-side TLS of an exporter destination (paths on the agent's host).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Plain text (no TLS) to the destination.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// One destination of a binding, on write. `headers` are secrets: never returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// Unique within the binding, `[a-z0-9_-]{1,63}`.
    pub name: String,
    /// Exporter type: otlp, otlphttp, prometheusremotewrite, kafka, debug, file, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// On update: keep the header values the server already has for the destination of this
    /// name instead of replacing them with `headers` (which must then be empty). Lets a client
    /// that never knew the values (an imported or generated Terraform configuration) write the
    /// rest of the destination without removing its secrets. On create, or for a new
    /// destination name, there is nothing to keep. Default `false`: `headers` is the whole set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_headers: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    /// Further exporter settings, a JSON object merged under the generated ones.
    #[serde(default = "empty_object")]
    pub config: Value,
}

/// Body of `POST /api/v1/exporter-bindings` and `PUT /api/v1/exporter-bindings/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterBindingSpec {
    pub name: String,
    pub pipeline_id: PipelineId,
    /// Subset of the pipeline's signals this binding receives; absent = all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<Signal>>,
    pub destinations: Vec<DestinationSpec>,
    /// Secret values (name `[a-z0-9_-]{1,63}` → value), referenced from destination `config`
    /// objects as `{"$secret": "<name>"}`. Never returned (see `secret_digests`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// On update: keep the secret values the server already has (`secrets` must be empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_secrets: bool,
}

/// A destination as the server returns it: header values replaced by digests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Header name → `"sha256:<lowercase hex of the value>"`.
    #[serde(default)]
    pub header_digests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    pub config: Value,
}

/// An exporter binding as the server returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExporterBinding {
    pub id: ExporterBindingId,
    pub name: String,
    pub pipeline_id: PipelineId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<Signal>>,
    pub destinations: Vec<Destination>,
    /// Secret name → `"sha256:<lowercase hex of the value>"` ([`header_digest`]).
    #[serde(default)]
    pub secret_digests: BTreeMap<String, String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to a create or update: the agent groups whose rendered config this
    /// write changed, with the config revision each now rolls out (`[]` when it reached none).
    /// Absent on reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts: Option<Vec<GroupRollout>>,
}

/// The digest the server reports for a header value: `sha256:<hex>`. Exposed so clients
/// compute the same thing when checking for drift.
pub fn header_digest(value: &str) -> String {
    format!("sha256:{}", sha256_hex(value.as_bytes()))
}

/// The key of a secret reference: `{"$secret": "<name>"}` in a JSON config stands for the
/// value of the object's secret `<name>`. An object rather than a string syntax so that no
/// string a user writes (in particular the collector's own `${env:...}` syntax) can be one.
pub const SECRET_REF_KEY: &str = "$secret";

/// What a JSON value is as a secret reference: `None` when it is not one (no `$secret` key),
/// `Some(Ok(name))` for a well-formed reference, `Some(Err(why))` for an object that has the
/// key but is not exactly `{"$secret": "<string>"}`.
pub fn secret_ref(v: &Value) -> Option<Result<&str, &'static str>> {
    let m = v.as_object()?;
    let name = m.get(SECRET_REF_KEY)?;
    Some(match (name.as_str(), m.len()) {
        (Some(n), 1) => Ok(n),
        (None, _) => Err("the value of \"$secret\" must be the secret's name, a string"),
        (Some(_), _) => Err("a secret reference {\"$secret\": NAME} may have no other keys"),
    })
}

// ---------------------------------------------------------------------------------------------
// Agent groups

/// How a new group revision reaches the group's agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStrategy {
    #[default]
    AllAtOnce,
    Batched,
    Canary,
}

/// Rollout settings of a group.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// For `batched`: explicit batch sizes; empty = exponential 1, 10, 100, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_sizes: Vec<u32>,
    /// For `canary`: percentage (1-100) of the group's agents in the canary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<u8>,
    /// Seconds a step must stay healthy before the next starts.
    #[serde(default)]
    pub bake_seconds: u32,
    /// Failures tolerated before the rollout stops.
    #[serde(default)]
    pub max_failures: u32,
    /// Push the last good revision when the rollout stops on failures.
    #[serde(default)]
    pub auto_rollback: bool,
}

/// Body of `POST /api/v1/agent-groups` and `PUT /api/v1/agent-groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGroupSpec {
    pub name: String,
    /// Label → value; an agent matches when it has all of them.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub pipeline_ids: Vec<PipelineId>,
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// Holds the group's agents on this config revision (one the group has had) instead of
    /// the latest; rolled out with `rollout` like any change. `None`: follow the latest. Must
    /// be `None` on create (a new group has no revisions yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_revision: Option<i64>,
}

/// An agent group as the server returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentGroup {
    pub id: AgentGroupId,
    pub name: String,
    pub selector: BTreeMap<String, String>,
    pub pipeline_ids: Vec<PipelineId>,
    pub rollout: RolloutSpec,
    /// The config revision the group is held on, if pinned (see [`AgentGroupSpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_revision: Option<i64>,
    /// The group object's own revision (for `If-Match`).
    pub revision: i64,
    /// Revision of the group's rendered collector config (1 = first render); grows whenever
    /// the YAML changes, through this group or the pipelines/endpoints/bindings it uses.
    pub config_revision: i64,
    /// SHA-256 (lowercase hex) of the current rendered YAML.
    pub config_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/agent-groups/{id}/config`: the current rendered config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    pub group_id: AgentGroupId,
    /// Same as the group's `config_revision`.
    pub revision: i64,
    /// SHA-256 (lowercase hex) of the document agents receive (with its secrets).
    pub sha256: String,
    /// OpAMP config map file name the config is sent under.
    pub file_name: String,
    pub content_type: String,
    /// The document with secret values (tokens, header values, credentials) replaced by
    /// `<redacted>`; the API never returns them after creation.
    pub yaml: String,
    pub created_at: DateTime<Utc>,
    /// Who and what made this revision.
    #[serde(flatten)]
    pub cause: RevisionCause,
}

/// One entry of `GET /api/v1/agent-groups/{id}/revisions` (history, oldest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRevisionSummary {
    pub revision: i64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub cause: RevisionCause,
}

/// Who and what made a group revision (fields of the revision objects, never the token
/// itself). Revisions written before causes were recorded have every field null.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionCause {
    /// The API token of the request; null for the `--admin-token` and server-side causes.
    #[serde(default)]
    pub token_id: Option<TokenId>,
    /// That token's description, `"admin token (--admin-token)"`, or `"server"` (e.g. an
    /// endpoint token's grace period ended).
    #[serde(default)]
    pub token_description: Option<String>,
    /// The object written: `pipeline`, `endpoint`, `exporter_binding` or `agent_group`; null
    /// for server-side causes.
    #[serde(default)]
    pub cause_kind: Option<String>,
    #[serde(default)]
    pub cause_id: Option<String>,
    #[serde(default)]
    pub cause_name: Option<String>,
    /// The object's revision after the write; null when the write deleted it.
    #[serde(default)]
    pub cause_revision: Option<i64>,
}

/// `GET /api/v1/agent-groups/{id}/revisions/{from}/diff/{to}`: a unified diff of the two
/// revisions' redacted YAML (empty when they are the same).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionDiff {
    pub from: i64,
    pub to: i64,
    pub diff: String,
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Prefix of every token otaas mints, so leaked tokens are easy to find for secret scanners.
pub const TOKEN_PREFIX: &str = "otaas";

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Full REST API access.
    Admin,
    /// REST API reads only: `GET` passes, writes get 403 `forbidden`.
    ReadOnly,
    /// Agent enrollment: OpAMP connections when the server requires agent tokens. Refused by
    /// the REST API (403).
    #[default]
    Agent,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::ReadOnly => "read_only",
            TokenScope::Agent => "agent",
        }
    }

    /// A fresh random token of this scope, e.g. `otaas_agent_<43 base64url chars>`: the prefix
    /// makes leaked tokens easy to find for secret scanners.
    pub fn mint(self) -> String {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        format!(
            "{TOKEN_PREFIX}_{}_{}",
            self.as_str(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// The inverse of [`TokenScope::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(TokenScope::Admin),
            "read_only" => Some(TokenScope::ReadOnly),
            "agent" => Some(TokenScope::Agent),
            _ => None,
        }
    }
}

/// Body of `POST /api/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub scope: TokenScope,
    /// Lifetime in seconds from now (at most ten years). Exclusive with `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Absolute expiry (RFC 3339, in the future). Exclusive with `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Response of `POST /api/v1/tokens`: the only time the token is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub id: TokenId,
    pub scope: TokenScope,
    pub description: String,
    pub token: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token's metadata as `GET /api/v1/tokens` lists it: never the token nor its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: TokenId,
    pub scope: TokenScope,
    pub description: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/component-check`: one pipeline, agent group or exporter binding as it would be written
/// (`id` set for an update), checked against the components the agents it would reach have.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_group: Option<AgentGroupCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_binding: Option<ExporterBindingCheck>,
}

/// An exporter binding to check (its pipeline's groups are the targets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterBindingCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ExporterBindingId>,
    pub spec: ExporterBindingSpec,
}

/// A pipeline to check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<PipelineId>,
    pub spec: PipelineSpec,
}

/// An agent group to check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGroupCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<AgentGroupId>,
    pub spec: AgentGroupSpec,
}

/// An endpoint to preview.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EndpointId>,
    pub spec: EndpointSpec,
}

/// Body of `POST /api/v1/config-preview`: exactly one object as it would be written (`id` for
/// an update).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPreview {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_binding: Option<ExporterBindingCheck>,
}

/// An agent group a previewed write reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewGroup {
    pub group_id: AgentGroupId,
    pub group_name: String,
    /// Agents in the group now.
    pub agents: u64,
    /// Whether the group's rendered config would change (a new revision, rolled out unless
    /// the group is pinned).
    pub changes: bool,
    /// The revision the group is held on, if pinned: its agents stay there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_revision: Option<i64>,
}

/// The answer of `POST /api/v1/config-preview`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigPreviewResult {
    /// The collector config sections the object renders (YAML, secrets redacted): a pipeline
    /// its `receivers` and `processors`, an endpoint its receiver and auth extension, a binding
    /// its `exporters`.
    pub yaml: String,
    /// The agent groups running the object's pipeline.
    pub groups: Vec<PreviewGroup>,
}

/// The check passed: the agent groups whose rendered config was checked and how many agents
/// (connected, reporting their components) were judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentCheckResult {
    pub groups: Vec<String>,
    pub agents: usize,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

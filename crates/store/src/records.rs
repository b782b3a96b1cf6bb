//! The records the store keeps: API objects with what the server maintains beside them, group
//! revisions, tokens, and the opaque rows other areas persist (agents, rollouts).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use otaas_api::{
    AgentGroupId, AgentGroupSpec, AuditId, EndpointId, EndpointSpec, ExporterBindingId,
    ExporterBindingSpec, PipelineId, PipelineSpec, RevisionCause, TokenId, TokenScope,
};

/// A stored object: its spec (as written through the API) plus what the server maintains.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<I, S> {
    pub id: I,
    /// Starts at 1, +1 on every update; `If-Match` compares against it.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub spec: S,
}

pub type PipelineRecord = Record<PipelineId, PipelineSpec>;
pub type EndpointRecord = Record<EndpointId, EndpointSpec>;
/// Binding records keep destination header values (secrets) in clear: the renderer needs them.
pub type BindingRecord = Record<ExporterBindingId, ExporterBindingSpec>;

/// An agent group and the state of its rendered config.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRecord {
    pub record: Record<AgentGroupId, AgentGroupSpec>,
    /// Latest group revision number (see [`GroupRevision`]); 0 before the first.
    pub config_revision: i64,
    /// SHA-256 hex of the latest revision's YAML.
    pub config_hash: String,
}

/// One rendered config of a group. Revisions are numbered 1, 2, ... per group and kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRevision {
    pub group_id: AgentGroupId,
    pub revision: i64,
    pub yaml: String,
    /// SHA-256 of `yaml`, lowercase hex.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// Who and what made it (all `None` for revisions from before causes were kept).
    pub cause: RevisionCause,
}

/// Everything a group's config is rendered from, read in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInputs {
    pub group: GroupRecord,
    /// The group's pipelines, each once.
    pub pipelines: Vec<PipelineRecord>,
    /// The endpoints and bindings hanging off those pipelines.
    pub endpoints: Vec<EndpointRecord>,
    pub bindings: Vec<BindingRecord>,
    /// Endpoints whose previous token is still accepted (a rotation's grace period runs):
    /// endpoint → that token's version.
    pub grace: BTreeMap<EndpointId, u32>,
}

/// An update's result: the record as it was and as it is now.
#[derive(Clone, Debug, PartialEq)]
pub struct Replaced<R> {
    pub before: R,
    pub after: R,
}

/// A stored token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub scope: TokenScope,
    /// SHA-256 hex of the token.
    pub hash: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// One agent as persisted by the OpAMP server: the record itself is an opaque JSON document
/// owned by the OpAMP area; the other fields are for queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    /// Instance uid, 32 lowercase hex digits.
    pub id: String,
    pub group_id: Option<String>,
    pub connected: bool,
    pub last_seen: Option<DateTime<Utc>>,
    /// The agent record as JSON.
    pub state: String,
    /// The `otaas serve` replica holding the agent (`--replica-id`); `None` in rows written
    /// before replicas existed.
    pub replica_id: Option<String>,
}

/// Which agent rows [`Store::list_agent_rows`](crate::Store::list_agent_rows) returns (all
/// filters combine with AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentRowFilter {
    pub group_id: Option<String>,
    /// Leave out the rows held by this replica (the caller has them in memory).
    pub not_replica: Option<String>,
}

/// Most agent rows in one `INSERT` (7 bound values each: well under SQLite's 32,766 and
/// PostgreSQL's 65,535 parameter limits).
pub const AGENT_ROWS_PER_STATEMENT: usize = 500;

/// One group's rollout state as persisted by the rollout engine: an opaque JSON document
/// owned by that area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRow {
    pub group_id: AgentGroupId,
    pub state: String,
    /// +1 on every write; [`Store::put_rollout_if`](crate::Store::put_rollout_if) compares
    /// against it.
    pub version: i64,
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One entry of the audit trail: a write through the REST API or a refused token use. Holds
/// no secret by construction: the server fills it from the request line, the token's stored
/// metadata and the response status, never from bodies or header values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// UUIDv7: the order of the trail and its pagination key.
    pub id: AuditId,
    pub at: DateTime<Utc>,
    /// Where the token was used: `rest`, `opamp` or `ingest`.
    pub interface: String,
    /// A stored token's id, `flag-admin` for the `--admin-token` flag, `None` when no token
    /// or an unknown one was presented.
    pub token_id: Option<String>,
    pub token_description: Option<String>,
    /// For an unknown token only: a keyed, truncated fingerprint, to tell repeated attempts
    /// with the same value apart from different ones.
    pub token_fingerprint: Option<String>,
    /// The connection's peer address as the server saw it.
    pub source: Option<String>,
    pub method: String,
    pub path: String,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    pub success: bool,
    pub revision_before: Option<i64>,
    pub revision_after: Option<i64>,
    /// The request was a dry run: checked and answered, nothing changed.
    pub dry_run: bool,
}

/// Which audit entries to read: every set field must match; `after` (an id) and `limit`
/// page through them in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub token_id: Option<String>,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub success: Option<bool>,
    pub method: Option<String>,
    /// Entries after this id only.
    pub after: Option<AuditId>,
    /// At most this many (all when `None`).
    pub limit: Option<usize>,
}

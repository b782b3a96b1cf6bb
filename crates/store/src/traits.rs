//! The [`Store`] and [`ConfigTx`] traits: what every backend offers the control plane.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use otaas_api::{
    AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId, ExporterBindingSpec,
    PipelineId, PipelineSpec, RevisionCause, TokenId, TokenScope,
};

use crate::coordination::Coordination;
use crate::error::StoreError;
use crate::records::{
    AgentRow, AgentRowFilter, AuditFilter, AuditRecord, Backend, BindingRecord, EndpointRecord,
    GroupInputs, GroupRecord, GroupRevision, PipelineRecord, Replaced, RolloutRow, TokenRecord,
};
use crate::seal::ServerKey;

/// The control plane's persistence. Implemented by
/// [`SqliteStore`](crate::sqlite::SqliteStore) and [`PgStore`](crate::postgres::PgStore); the
/// contract is the test suite in `crates/server/tests/store_*.rs`.
///
/// Conventions: `get_*` return [`StoreError::NotFound`] for a missing id; `find_*` look up by
/// name and return `None`; `list_*` order by name; `update_*` with `if_match = Some(r)` fail
/// with [`StoreError::RevisionMismatch`] unless the object is at revision `r`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Cheap round trip to the database, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The server key (created at the first open, the same for every replica): endpoint
    /// ingest tokens derive from it, and secret values are sealed with it at rest.
    fn server_key(&self) -> &ServerKey;

    /// Starts a config write (see [`ConfigTx`]). Waits for the config writes before it.
    async fn begin_config(&self) -> Result<Box<dyn ConfigTx>, StoreError>;

    async fn get_pipeline(&self, id: PipelineId) -> Result<PipelineRecord, StoreError>;
    async fn find_pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError>;
    async fn list_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError>;

    async fn get_endpoint(&self, id: EndpointId) -> Result<EndpointRecord, StoreError>;
    async fn find_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, StoreError>;
    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError>;
    /// How many endpoints have a token grace period that is over at `now` (see
    /// [`ConfigTx::expire_token_grace`]); one read, no write lock.
    async fn count_expired_grace(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    async fn get_binding(&self, id: ExporterBindingId) -> Result<BindingRecord, StoreError>;
    async fn find_binding(&self, name: &str) -> Result<Option<BindingRecord>, StoreError>;
    async fn list_bindings(&self) -> Result<Vec<BindingRecord>, StoreError>;

    async fn get_group(&self, id: AgentGroupId) -> Result<GroupRecord, StoreError>;
    async fn find_group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError>;
    async fn list_groups(&self) -> Result<Vec<GroupRecord>, StoreError>;

    /// A group's revision: the latest when `revision` is `None`.
    async fn group_revision(
        &self,
        id: AgentGroupId,
        revision: Option<i64>,
    ) -> Result<GroupRevision, StoreError>;
    /// All revisions of a group, oldest first.
    async fn group_revisions(&self, id: AgentGroupId) -> Result<Vec<GroupRevision>, StoreError>;
    /// Deletes the revisions of a group numbered `up_to` or less that are not in `keep`
    /// (revisions after `up_to`, written since the caller looked, stay); how many it deleted.
    /// The group's latest revision is never deleted, whatever `keep` says.
    async fn delete_revisions_except(
        &self,
        id: AgentGroupId,
        up_to: i64,
        keep: &BTreeSet<i64>,
    ) -> Result<u64, StoreError>;

    /// Stores a token's hash (no expiry); the caller shows the token once and forgets it.
    async fn create_token(
        &self,
        scope: TokenScope,
        description: &str,
        hash: &str,
    ) -> Result<TokenRecord, StoreError> {
        self.create_token_expiring(scope, description, hash, Utc::now(), None)
            .await
    }
    /// Stores a token's hash with an optional expiry. `created_at` is the caller's clock reading
    /// that `expires_at` was computed from, so a lifetime of N seconds is exactly N seconds
    /// however long the write waited for the database.
    async fn create_token_expiring(
        &self,
        scope: TokenScope,
        description: &str,
        hash: &str,
        created_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<TokenRecord, StoreError>;
    /// Every token's metadata (revoked and expired ones too), oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Marks a token revoked (idempotent: an already revoked token keeps its first
    /// `revoked_at`); [`StoreError::NotFound`] for an unknown id.
    async fn revoke_token(&self, id: TokenId) -> Result<TokenRecord, StoreError>;
    async fn find_token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Number of active tokens of a scope (used to decide whether to mint a first admin token).
    async fn count_active_tokens(&self, scope: TokenScope) -> Result<u64, StoreError>;

    /// Inserts or replaces agent rows in one transaction, as multi-row statements of up to
    /// [`AGENT_ROWS_PER_STATEMENT`](crate::AGENT_ROWS_PER_STATEMENT) rows (the OpAMP server
    /// batches its status writes through this, so a heartbeat of 10,000 agents is a few
    /// statements, not 10,000 transactions).
    /// A later row for the same id in one batch wins. A row saying "disconnected" does not
    /// replace a connected row held by another replica (the agent moved there; the old
    /// replica's news is stale).
    async fn upsert_agents(&self, agents: &[AgentRow]) -> Result<(), StoreError>;
    /// Sets `last_seen` of the given agents (id, time) in one transaction, leaving the rest
    /// of their rows as they are: what a heartbeat changes. Unknown ids are skipped.
    async fn touch_agents(&self, seen: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;
    /// Every stored agent, ordered by id.
    async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.list_agent_rows(&AgentRowFilter::default()).await
    }
    /// The stored agents matching `filter`, ordered by id.
    async fn list_agent_rows(&self, filter: &AgentRowFilter) -> Result<Vec<AgentRow>, StoreError>;
    /// One stored agent, `None` when unknown.
    async fn get_agent_row(&self, id: &str) -> Result<Option<AgentRow>, StoreError>;

    /// Records that replica `id` (re)started now, serving `api` and `opamp`.
    async fn register_replica(&self, id: &str, api: &str, opamp: &str) -> Result<(), StoreError>;

    /// Inserts or replaces a group's rollout state (the rollout engine's JSON record),
    /// whatever version is stored.
    async fn put_rollout(&self, group_id: AgentGroupId, state: &str) -> Result<(), StoreError>;
    /// A group's stored rollout state, `None` when there is none.
    async fn get_rollout(&self, group_id: AgentGroupId) -> Result<Option<RolloutRow>, StoreError>;
    /// Compare-and-swap write of a group's rollout state: with `expected = Some(v)` only when
    /// the stored version is `v`, with `None` only when nothing is stored. Returns the new
    /// version, or `None` when the stored state is not the expected one (someone else wrote).
    async fn put_rollout_if(
        &self,
        group_id: AgentGroupId,
        state: &str,
        expected: Option<i64>,
    ) -> Result<Option<i64>, StoreError>;
    /// Every stored rollout state, ordered by group id.
    async fn list_rollouts(&self) -> Result<Vec<RolloutRow>, StoreError>;
    /// Forgets a group's rollout state (the group was deleted); absent is fine.
    async fn delete_rollout(&self, group_id: AgentGroupId) -> Result<(), StoreError>;

    /// Appends audit trail entries (the server's audit writer batches them).
    async fn append_audit(&self, entries: &[AuditRecord]) -> Result<(), StoreError>;
    /// The audit entries matching `filter`, oldest (lowest id) first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes the audit entries recorded before `before`, then all but the newest `keep`;
    /// returns how many were deleted.
    async fn prune_audit(&self, before: DateTime<Utc>, keep: u64) -> Result<u64, StoreError>;

    /// How replicas sharing this database reach each other and share locks; `None` where
    /// the database is not shared (SQLite: one process).
    fn coordination(&self) -> Option<Arc<dyn Coordination>>;
}

/// One config write in progress: a transaction holding the config write lock. The record
/// operations check and write as the REST API expects (names unique per kind, references
/// resolvable, `If-Match`, kept secrets); the writer then re-renders the groups the change
/// reaches ([`ConfigTx::groups_of_pipeline`], [`ConfigTx::group_inputs`]), records their new
/// revisions ([`ConfigTx::add_revision`]) and commits. Dropped without a commit, nothing of
/// it stays.
#[async_trait]
pub trait ConfigTx: Send {
    async fn create_pipeline(&mut self, spec: PipelineSpec) -> Result<PipelineRecord, StoreError>;
    /// Applies [`merge_pipeline`](crate::merge_pipeline) against the stored spec.
    async fn update_pipeline(
        &mut self,
        id: PipelineId,
        spec: PipelineSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<PipelineRecord>, StoreError>;
    /// Fails with [`StoreError::InUse`] while an endpoint, binding or group refers to it.
    async fn delete_pipeline(&mut self, id: PipelineId) -> Result<PipelineRecord, StoreError>;

    async fn create_endpoint(&mut self, spec: EndpointSpec) -> Result<EndpointRecord, StoreError>;
    /// Starts or ends the endpoint's token grace as [`token_grace`](crate::token_grace) says.
    async fn update_endpoint(
        &mut self,
        id: EndpointId,
        spec: EndpointSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<EndpointRecord>, StoreError>;
    /// The deleted endpoint.
    async fn delete_endpoint(&mut self, id: EndpointId) -> Result<EndpointRecord, StoreError>;
    /// Ends every endpoint token grace period that is over at `now` (the previous tokens are
    /// no longer in [`GroupInputs::grace`]); the pipelines of those endpoints, one entry per
    /// endpoint.
    async fn expire_token_grace(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<PipelineId>, StoreError>;

    /// `keep_headers` means nothing on a create: the stored body holds the headers sent.
    async fn create_binding(
        &mut self,
        spec: ExporterBindingSpec,
    ) -> Result<BindingRecord, StoreError>;
    /// Applies [`merge_binding`](crate::merge_binding) against the stored spec.
    async fn update_binding(
        &mut self,
        id: ExporterBindingId,
        spec: ExporterBindingSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<BindingRecord>, StoreError>;
    /// The deleted binding.
    async fn delete_binding(&mut self, id: ExporterBindingId) -> Result<BindingRecord, StoreError>;

    /// A new group has no revision yet (`config_revision` 0).
    async fn create_group(&mut self, spec: AgentGroupSpec) -> Result<GroupRecord, StoreError>;
    async fn update_group(
        &mut self,
        id: AgentGroupId,
        spec: AgentGroupSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<GroupRecord>, StoreError>;
    /// Deletes the group and its revision history.
    async fn delete_group(&mut self, id: AgentGroupId) -> Result<GroupRecord, StoreError>;
    async fn get_group(&mut self, id: AgentGroupId) -> Result<GroupRecord, StoreError>;

    /// The groups running a pipeline.
    async fn groups_of_pipeline(
        &mut self,
        id: PipelineId,
    ) -> Result<BTreeSet<AgentGroupId>, StoreError>;
    /// What a group's config is made of as this transaction sees it; `None` for an unknown
    /// group.
    async fn group_inputs(&mut self, id: AgentGroupId) -> Result<Option<GroupInputs>, StoreError>;
    /// Records the group's next revision, `after + 1`, and makes it the group's latest.
    /// `after` is the `config_revision` the writer rendered against; fails with
    /// [`StoreError::RevisionMismatch`] (kind agent group) when the group moved on.
    async fn add_revision(
        &mut self,
        id: AgentGroupId,
        after: i64,
        yaml: &str,
        hash: &str,
        cause: &RevisionCause,
    ) -> Result<GroupRevision, StoreError>;

    /// Makes the whole write visible at once.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

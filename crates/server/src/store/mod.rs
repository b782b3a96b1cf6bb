//! Persistence: the [`Store`] trait every backend implements, its record types and errors.
//!
//! Backends: [`sqlite::SqliteStore`] (default, WAL) and [`postgres::PgStore`], chosen by URL
//! scheme in [`open`]. Both share one SQL implementation (`sql.rs`) and run the migrations in
//! `crates/server/migrations/<backend>/` at open (listed in `migrations.rs`).
//!
//! Every write is one transaction that also re-renders the agent groups it affects and records
//! a new group revision when (and only when) a group's YAML changed; the revisions created are
//! returned in [`Written::revisions`] so the caller can announce them (see `events.rs`).
//!
//! A create or update is refused ([`StoreError::Incomplete`], nothing written) when a pipeline
//! it touches would produce no service pipeline in some agent group using it, or when a group
//! would list no pipeline. Deletes and token-grace expiry are never refused: they re-render what
//! is left, and a group left with no service pipeline at all gets no new revision.
//!
//! Extending: another area adds its own migration file (next version number) and its own
//! methods — either on this trait with a default body, or on a separate trait implemented by
//! both backends — without changing the methods below.

mod migrations;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use otaas_api::{
    AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId, ExporterBindingSpec,
    PipelineId, PipelineSpec, TokenId, TokenScope,
};

use crate::auth::TokenKey;
use crate::render::{Gap, Missing, RenderError};

/// Which gaps in a re-rendered group refuse a write: the ones of the pipelines the write
/// touches (`None`: every pipeline of the group, for a group write), blamed on a field of
/// `kind`'s request body.
#[derive(Clone, Debug)]
pub(crate) struct Require {
    kind: Kind,
    pipelines: Option<std::collections::BTreeSet<PipelineId>>,
    /// For endpoints and bindings: the pipeline the object hangs off after the write (any
    /// other touched pipeline is the one it left).
    target: Option<PipelineId>,
}

impl Require {
    pub(crate) fn group() -> Self {
        Self {
            kind: Kind::AgentGroup,
            pipelines: None,
            target: None,
        }
    }

    pub(crate) fn pipeline(id: PipelineId) -> Self {
        Self {
            kind: Kind::Pipeline,
            pipelines: Some([id].into()),
            target: Some(id),
        }
    }

    /// An endpoint or binding written to hang off `target`, before the write off `previous`.
    pub(crate) fn child(kind: Kind, previous: PipelineId, target: PipelineId) -> Self {
        Self {
            kind,
            pipelines: Some([previous, target].into()),
            target: Some(target),
        }
    }

    /// The first gap this write is to blame for, if any.
    pub(crate) fn blamed<'a>(&self, gaps: &'a [Gap]) -> Option<&'a Gap> {
        gaps.iter().find(|g| match (g, &self.pipelines) {
            (Gap::NoPipelines, _) | (Gap::Pipeline { .. }, None) => true,
            (Gap::Pipeline { id, .. }, Some(touched)) => touched.contains(id),
        })
    }

    /// The request field a user fixes to close `gap`.
    pub(crate) fn field(&self, gap: &Gap) -> &'static str {
        let (id, missing) = match gap {
            Gap::NoPipelines => return "pipeline_ids",
            Gap::Pipeline { id, missing, .. } => (*id, *missing),
        };
        let left = self.target != Some(id);
        match (self.kind, missing) {
            (Kind::Pipeline, Missing::Receiver) => "receivers",
            (Kind::Pipeline, _) => "signals",
            (Kind::ExporterBinding, _) if !left => "destinations",
            (Kind::Endpoint | Kind::ExporterBinding, _) => "pipeline_id",
            _ => "pipeline_ids",
        }
    }
}

/// Resolves `keep_headers` on a binding update: each destination that asks for it gets the
/// header values the current binding has under the same destination name (none for a new
/// name), so the stored body always holds the whole header set and the renderer sees values.
pub(crate) fn keep_headers(
    current: &ExporterBindingSpec,
    mut new: ExporterBindingSpec,
) -> ExporterBindingSpec {
    for d in &mut new.destinations {
        if d.keep_headers {
            d.headers = current
                .destinations
                .iter()
                .find(|c| c.name == d.name)
                .map(|c| c.headers.clone())
                .unwrap_or_default();
            d.keep_headers = false;
        }
    }
    new
}

/// Splits a spec's JSON into what goes into the `body` column and what into the `secrets`
/// column: the `secrets` map and every destination's `headers` (by destination name).
pub(crate) fn split_secrets(mut spec: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let mut apart = serde_json::Map::new();
    let Some(obj) = spec.as_object_mut() else {
        return (spec, serde_json::Value::Object(apart));
    };
    if let Some(s) = obj.remove("secrets") {
        apart.insert("secrets".into(), s);
    }
    if let Some(serde_json::Value::Array(dests)) = obj.get_mut("destinations") {
        let mut headers = serde_json::Map::new();
        for d in dests {
            let Some(d) = d.as_object_mut() else { continue };
            let name = d
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            if let Some(h) = d.remove("headers") {
                headers.insert(name, h);
            }
        }
        if !headers.is_empty() {
            apart.insert("headers".into(), serde_json::Value::Object(headers));
        }
    }
    (spec, serde_json::Value::Object(apart))
}

/// The inverse of [`split_secrets`]. Rows written before the `secrets` column existed keep
/// their headers in the body; those stay.
pub(crate) fn join_secrets(body: &mut serde_json::Value, apart: serde_json::Value) {
    let (Some(obj), serde_json::Value::Object(mut apart)) = (body.as_object_mut(), apart) else {
        return;
    };
    if let Some(s) = apart.remove("secrets") {
        obj.insert("secrets".into(), s);
    }
    if let (Some(serde_json::Value::Object(headers)), Some(serde_json::Value::Array(dests))) =
        (apart.remove("headers"), obj.get_mut("destinations"))
    {
        for d in dests {
            let Some(d) = d.as_object_mut() else { continue };
            let name = d.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            if let Some(h) = headers.get(name) {
                d.insert("headers".into(), h.clone());
            }
        }
    }
}

/// A pipeline update against the stored pipeline: `keep_secrets` takes the stored secrets,
/// and a config value sent back exactly as the API shows it redacted (`<redacted>`, a URL
/// with `:<redacted>@`) keeps the stored value ([`otaas_api::redact::restore_json`]), so a
/// client writing back what it read loses no credential.
pub(crate) fn merge_pipeline(current: &PipelineSpec, mut new: PipelineSpec) -> PipelineSpec {
    use otaas_api::redact::restore_json;
    if new.keep_secrets {
        new.secrets = current.secrets.clone();
        new.keep_secrets = false;
    }
    for (id, cfg) in new.receivers.iter_mut() {
        if let Some(old) = current.receivers.get(id) {
            *cfg = restore_json(cfg, old);
        }
    }
    for p in new.processors.iter_mut() {
        if let Some(old) = current.processors.iter().find(|o| o.id == p.id) {
            p.config = restore_json(&p.config, &old.config);
        }
    }
    new
}

/// [`merge_pipeline`] for bindings: `keep_secrets`, `keep_headers`, and redacted values of
/// destination configs (matched by destination name).
pub(crate) fn merge_binding(
    current: &ExporterBindingSpec,
    new: ExporterBindingSpec,
) -> ExporterBindingSpec {
    use otaas_api::redact::restore_json;
    let mut new = keep_headers(current, new);
    if new.keep_secrets {
        new.secrets = current.secrets.clone();
        new.keep_secrets = false;
    }
    for d in new.destinations.iter_mut() {
        if let Some(old) = current.destinations.iter().find(|o| o.name == d.name) {
            d.config = restore_json(&d.config, &old.config);
            if let (Some(e), Some(o)) = (&d.endpoint, &old.endpoint)
                && otaas_api::redact::redact_url_password(o).as_ref() == Some(e)
            {
                d.endpoint = Some(o.clone());
            }
        }
    }
    new
}

/// What an endpoint update does to its token grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenGrace {
    /// Leave it as it is (running or not).
    Keep,
    /// The token was rotated: keep rendering `previous_version`'s token for `seconds`.
    Start { previous_version: u32, seconds: u32 },
    /// No previous token any more (auth switched off, or a rotation without grace).
    End,
}

/// The grace an endpoint update from `current` to `new` starts or ends. A second rotation
/// during a grace replaces it: only the token just replaced stays accepted.
pub(crate) fn token_grace(current: &EndpointSpec, new: &EndpointSpec) -> TokenGrace {
    use otaas_api::EndpointAuth::Bearer;
    if new.auth != Bearer {
        return TokenGrace::End;
    }
    if current.auth != Bearer || current.token_version == new.token_version {
        return TokenGrace::Keep;
    }
    if new.token_grace_seconds == 0 {
        return TokenGrace::End;
    }
    TokenGrace::Start {
        previous_version: current.token_version,
        seconds: new.token_grace_seconds,
    }
}

/// The kinds of objects the REST API manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pipeline,
    Endpoint,
    ExporterBinding,
    AgentGroup,
    Token,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline",
            Kind::Endpoint => "endpoint",
            Kind::ExporterBinding => "exporter binding",
            Kind::AgentGroup => "agent group",
            Kind::Token => "token",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Latest group revision number (see [`GroupRevision`]).
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

/// One agent as persisted by the OpAMP server (see `opamp/registry.rs`): the record itself is
/// an opaque JSON document owned by the OpAMP area; the other fields are for queries.
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

/// Which agent rows [`Store::list_agent_rows`] returns (all filters combine with AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentRowFilter {
    pub group_id: Option<String>,
    /// Leave out the rows held by this replica (the caller has them in memory).
    pub not_replica: Option<String>,
}

/// One group's rollout state as persisted by the rollout engine (see `rollout/`): an opaque
/// JSON document owned by that area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRow {
    pub group_id: AgentGroupId,
    pub state: String,
    /// +1 on every write; [`Store::put_rollout_if`] compares against it.
    pub version: i64,
}

/// The result of a write: the object written and the group revisions the write created.
#[derive(Clone, Debug, PartialEq)]
pub struct Written<T> {
    pub value: T,
    pub revisions: Vec<GroupRevision>,
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the storage layer. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: Kind, id: String },
    #[error("a {kind} named {name:?} already exists")]
    NameTaken { kind: Kind, name: String },
    #[error("{kind} {id} is at revision {actual}, not {expected}")]
    RevisionMismatch {
        kind: Kind,
        id: String,
        expected: i64,
        actual: i64,
    },
    #[error("{field}: {kind} {id} does not exist")]
    DanglingReference {
        field: String,
        kind: Kind,
        id: String,
    },
    #[error("{kind} {name:?} is still used by {referrer_kind} {referrer_name:?} ({referrer_id})")]
    InUse {
        kind: Kind,
        name: String,
        referrer_kind: Kind,
        referrer_name: String,
        referrer_id: String,
    },
    #[error("rendering agent group {group:?}: {source}")]
    Render {
        group: String,
        #[source]
        source: RenderError,
    },
    #[error(
        "agent group {group:?} would have an incomplete collector config: {gap}. An agent group \
         only gets configs in which each of its pipelines has a receiver (an endpoint or a \
         pipeline receiver) and an exporter (an exporter binding) for one of its signals; with \
         Terraform, give the otaas_agent_group a depends_on on the pipeline's otaas_endpoint and \
         otaas_exporter_binding resources so they exist first"
    )]
    Incomplete {
        group: String,
        field: &'static str,
        gap: Gap,
    },
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The control plane's persistence. Implemented by [`sqlite::SqliteStore`] and
/// [`postgres::PgStore`]; the contract is the test suite in `tests/store_contract.rs`.
///
/// Conventions: `get_*` return [`StoreError::NotFound`] for a missing id; `find_*` look up by
/// name and return `None`; `list_*` order by name; `update_*` with `if_match = Some(r)` fail
/// with [`StoreError::RevisionMismatch`] unless the object is at revision `r`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Cheap round trip to the database, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The key endpoint ingest tokens are derived from (see `auth.rs`).
    fn token_key(&self) -> &TokenKey;

    /// The operator's config policy, which decides how user values are escaped in rendered
    /// configs (default: [`ConfigPolicy::default`]); set once at start by `otaas serve`.
    fn set_config_policy(&self, policy: crate::policy::ConfigPolicy);

    async fn create_pipeline(
        &self,
        spec: PipelineSpec,
    ) -> Result<Written<PipelineRecord>, StoreError>;
    async fn get_pipeline(&self, id: PipelineId) -> Result<PipelineRecord, StoreError>;
    async fn find_pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError>;
    async fn list_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError>;
    async fn update_pipeline(
        &self,
        id: PipelineId,
        spec: PipelineSpec,
        if_match: Option<i64>,
    ) -> Result<Written<PipelineRecord>, StoreError>;
    /// Fails with [`StoreError::InUse`] while an endpoint, binding or group refers to it.
    async fn delete_pipeline(&self, id: PipelineId) -> Result<Written<()>, StoreError>;

    async fn create_endpoint(
        &self,
        spec: EndpointSpec,
    ) -> Result<Written<EndpointRecord>, StoreError>;
    async fn get_endpoint(&self, id: EndpointId) -> Result<EndpointRecord, StoreError>;
    async fn find_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, StoreError>;
    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError>;
    async fn update_endpoint(
        &self,
        id: EndpointId,
        spec: EndpointSpec,
        if_match: Option<i64>,
    ) -> Result<Written<EndpointRecord>, StoreError>;
    async fn delete_endpoint(&self, id: EndpointId) -> Result<Written<()>, StoreError>;
    /// Ends every endpoint token grace period that is over: the previous tokens stop being
    /// rendered, and the groups running those endpoints' pipelines get a new revision. Returns
    /// how many endpoints it ended (cheap when none: one read, no write lock).
    async fn expire_token_grace(&self) -> Result<Written<usize>, StoreError>;

    async fn create_binding(
        &self,
        spec: ExporterBindingSpec,
    ) -> Result<Written<BindingRecord>, StoreError>;
    async fn get_binding(&self, id: ExporterBindingId) -> Result<BindingRecord, StoreError>;
    async fn find_binding(&self, name: &str) -> Result<Option<BindingRecord>, StoreError>;
    async fn list_bindings(&self) -> Result<Vec<BindingRecord>, StoreError>;
    async fn update_binding(
        &self,
        id: ExporterBindingId,
        spec: ExporterBindingSpec,
        if_match: Option<i64>,
    ) -> Result<Written<BindingRecord>, StoreError>;
    async fn delete_binding(&self, id: ExporterBindingId) -> Result<Written<()>, StoreError>;

    /// Creates the group and its first revision (revision 1).
    async fn create_group(&self, spec: AgentGroupSpec) -> Result<Written<GroupRecord>, StoreError>;
    async fn get_group(&self, id: AgentGroupId) -> Result<GroupRecord, StoreError>;
    async fn find_group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError>;
    async fn list_groups(&self) -> Result<Vec<GroupRecord>, StoreError>;
    async fn update_group(
        &self,
        id: AgentGroupId,
        spec: AgentGroupSpec,
        if_match: Option<i64>,
    ) -> Result<Written<GroupRecord>, StoreError>;
    /// Deletes the group and its revision history.
    async fn delete_group(&self, id: AgentGroupId) -> Result<Written<()>, StoreError>;

    /// A group's revision: the latest when `revision` is `None`.
    async fn group_revision(
        &self,
        id: AgentGroupId,
        revision: Option<i64>,
    ) -> Result<GroupRevision, StoreError>;
    /// All revisions of a group, oldest first.
    async fn group_revisions(&self, id: AgentGroupId) -> Result<Vec<GroupRevision>, StoreError>;

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
    /// [`AGENT_ROWS_PER_STATEMENT`] rows (the OpAMP server batches its status writes through
    /// this, so a heartbeat of 10,000 agents is a few statements, not 10,000 transactions).
    /// A later row for the same id in one batch wins. A row saying "disconnected" does not
    /// replace a connected row held by another replica (the agent moved there; the old
    /// replica's news is stale).
    async fn upsert_agents(&self, agents: &[AgentRow]) -> Result<(), StoreError>;
    /// Sets `last_seen` of the given agents (id, time) in one transaction, leaving the rest
    /// of their rows as they are: what a heartbeat changes. Unknown ids are skipped.
    async fn touch_agents(&self, seen: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;
    /// Every stored agent, ordered by id.
    async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError>;
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

    /// The PostgreSQL pool behind this store (for `LISTEN/NOTIFY` and advisory locks, see
    /// `cluster.rs`); `None` on SQLite.
    fn pg_pool(&self) -> Option<&sqlx::PgPool>;
}

/// Most agent rows in one `INSERT` (7 bound values each: well under SQLite's 32,766 and
/// PostgreSQL's 65,535 parameter limits).
pub const AGENT_ROWS_PER_STATEMENT: usize = 500;

/// Opens the store a `--database` URL names: `sqlite://PATH` (created if missing, WAL) or
/// `postgres://...`/`postgresql://...`. Runs the migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url, None).await?))
    } else {
        Err(StoreError::BadUrl(format!(
            "expected sqlite://PATH or postgres://..., got scheme of {:?}",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

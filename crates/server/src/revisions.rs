//! Config writes: a change to pipelines, endpoints, exporter bindings or agent groups, the
//! re-rendering of the agent groups it reaches, and their new revisions — all in one store
//! transaction ([`Store::begin_config`]), so a change is never half written.
//!
//! A group gets a new revision when (and only when) its YAML changed; the revisions created
//! are returned in [`Written::revisions`] so the caller can announce them (see `events.rs`).
//! Each revision records its cause: the [`Actor`] whose request made it and the object the
//! write was about (kind, id, name, its revision after the write).
//!
//! A create or update is refused ([`WriteError::Incomplete`], nothing written) when a pipeline
//! it touches would produce no service pipeline in some agent group using it, or when a group
//! would list no pipeline. Deletes and token-grace expiry are never refused: they re-render what
//! is left, and a group left with no service pipeline at all gets no new revision.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use otaas_api::{
    AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId, ExporterBindingSpec,
    PipelineId, PipelineSpec, RevisionCause, TokenId,
};

use crate::auth::{Principal, TokenKey};
use crate::policy::ConfigPolicy;
use crate::render::{Gap, Missing, RenderError};
use crate::store::{
    BindingRecord, ConfigTx, EndpointRecord, GroupRecord, GroupRevision, Kind, PipelineRecord,
    Store, StoreError,
};

/// Who asked for a config write, as the revisions it makes record it: a stored token's id and
/// description, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub token_id: Option<TokenId>,
    pub description: String,
}

impl Actor {
    /// What `--admin-token` is recorded as (it has no stored id).
    pub const FLAG_ADMIN: &'static str = "admin token (--admin-token)";
    /// What server-side causes (an endpoint token's grace period ending) are recorded as.
    pub const SERVER: &'static str = "server";

    /// The server itself, for writes no request asked for.
    pub fn server() -> Self {
        Self {
            token_id: None,
            description: Self::SERVER.into(),
        }
    }

    /// The holder of a verified API token.
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::FlagAdmin => Self {
                token_id: None,
                description: Self::FLAG_ADMIN.into(),
            },
            Principal::Token(t) => Self {
                token_id: Some(t.id),
                description: t.description.clone(),
            },
        }
    }

    /// The cause of revisions made by writing `object` (`None`: a server-side cause).
    fn cause(&self, object: Option<Object>) -> RevisionCause {
        let (kind, id, name, revision) = match object {
            Some(o) => (Some(o.kind), Some(o.id), Some(o.name), o.revision),
            None => (None, None, None, None),
        };
        RevisionCause {
            token_id: self.token_id,
            token_description: Some(self.description.clone()),
            cause_kind: kind.map(str::to_string),
            cause_id: id,
            cause_name: name,
            cause_revision: revision,
        }
    }
}

/// The object a write was about, as a revision's cause names it.
struct Object {
    kind: &'static str,
    id: String,
    name: String,
    /// After the write; `None` when it deleted the object.
    revision: Option<i64>,
}

impl Object {
    fn new(kind: &'static str, id: impl ToString, name: &str, revision: Option<i64>) -> Self {
        Self {
            kind,
            id: id.to_string(),
            name: name.to_string(),
            revision,
        }
    }

    fn pipeline(r: &PipelineRecord) -> Self {
        Self::new("pipeline", r.id, &r.spec.name, Some(r.revision))
    }

    fn endpoint(r: &EndpointRecord, deleted: bool) -> Self {
        Self::new(
            "endpoint",
            r.id,
            &r.spec.name,
            (!deleted).then_some(r.revision),
        )
    }

    fn binding(r: &BindingRecord, deleted: bool) -> Self {
        let revision = (!deleted).then_some(r.revision);
        Self::new("exporter_binding", r.id, &r.spec.name, revision)
    }

    fn group(r: &GroupRecord) -> Self {
        let r = &r.record;
        Self::new("agent_group", r.id, &r.spec.name, Some(r.revision))
    }
}

/// The result of a write: the object written and the group revisions the write created.
#[derive(Clone, Debug, PartialEq)]
pub struct Written<T> {
    pub value: T,
    pub revisions: Vec<GroupRevision>,
}

/// What an adoption wrote: a pipeline, its endpoints and bindings, and maybe a group.
#[derive(Clone, Debug, PartialEq)]
pub struct Adopted {
    pub pipeline: PipelineRecord,
    pub endpoints: Vec<EndpointRecord>,
    pub bindings: Vec<BindingRecord>,
    pub group: Option<GroupRecord>,
}

/// Why a config write was refused or failed. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
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
}

/// Which gaps in a re-rendered group refuse a write: the ones of the pipelines the write
/// touches (`None`: every pipeline of the group, for a group write), blamed on a field of
/// `kind`'s request body.
#[derive(Clone, Debug)]
struct Require {
    kind: Kind,
    pipelines: Option<BTreeSet<PipelineId>>,
    /// For endpoints and bindings: the pipeline the object hangs off after the write (any
    /// other touched pipeline is the one it left).
    target: Option<PipelineId>,
}

impl Require {
    fn group() -> Self {
        Self {
            kind: Kind::AgentGroup,
            pipelines: None,
            target: None,
        }
    }

    fn pipeline(id: PipelineId) -> Self {
        Self {
            kind: Kind::Pipeline,
            pipelines: Some([id].into()),
            target: Some(id),
        }
    }

    /// An endpoint or binding written to hang off `target`, before the write off `previous`.
    fn child(kind: Kind, previous: PipelineId, target: PipelineId) -> Self {
        Self {
            kind,
            pipelines: Some([previous, target].into()),
            target: Some(target),
        }
    }

    /// The first gap this write is to blame for, if any.
    fn blamed<'a>(&self, gaps: &'a [Gap]) -> Option<&'a Gap> {
        gaps.iter().find(|g| match (g, &self.pipelines) {
            (Gap::NoPipelines, _) | (Gap::Pipeline { .. }, None) => true,
            (Gap::Pipeline { id, .. }, Some(touched)) => touched.contains(id),
        })
    }

    /// The request field a user fixes to close `gap`.
    fn field(&self, gap: &Gap) -> &'static str {
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

/// Writes config objects through the store and renders the groups they reach with the
/// operator's config policy. Cheap to clone.
#[derive(Clone)]
pub struct ConfigWriter {
    store: Arc<dyn Store>,
    /// Built once from the store's server key: the renderer derives endpoint tokens from it.
    key: TokenKey,
    policy: Arc<ConfigPolicy>,
}

impl ConfigWriter {
    pub fn new(store: Arc<dyn Store>, policy: Arc<ConfigPolicy>) -> Self {
        let key = TokenKey::from(store.server_key());
        Self { store, key, policy }
    }

    /// What `group` would render as, with this writer's key and policy, written nowhere (an
    /// adoption's dry run).
    pub fn preview(
        &self,
        group: &GroupRecord,
        pipelines: &[PipelineRecord],
        endpoints: &[EndpointRecord],
        bindings: &[BindingRecord],
    ) -> Result<crate::render::RenderedConfig, RenderError> {
        crate::render::render_with_policy(
            group,
            pipelines,
            endpoints,
            bindings,
            &self.key,
            &Default::default(),
            &self.policy,
        )
    }

    /// Creates a pipeline with its endpoints and bindings (their `pipeline_id` is set to the
    /// new pipeline's) and, when given, a group running it first (then its `pipeline_ids`):
    /// all or nothing.
    pub async fn adopt(
        &self,
        actor: &Actor,
        pipeline: PipelineSpec,
        endpoints: Vec<EndpointSpec>,
        bindings: Vec<ExporterBindingSpec>,
        group: Option<AgentGroupSpec>,
    ) -> Result<Written<Adopted>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let pipeline = tx.create_pipeline(pipeline).await?;
        let pid = pipeline.id;
        let cause = actor.cause(Some(Object::pipeline(&pipeline)));
        let mut made_endpoints = Vec::new();
        for mut e in endpoints {
            e.pipeline_id = pid;
            made_endpoints.push(tx.create_endpoint(e).await?);
        }
        let mut made_bindings = Vec::new();
        for mut b in bindings {
            b.pipeline_id = pid;
            made_bindings.push(tx.create_binding(b).await?);
        }
        let (group, revisions) = match group {
            None => (None, Vec::new()),
            Some(mut g) => {
                g.pipeline_ids.retain(|p| *p != pid);
                g.pipeline_ids.insert(0, pid);
                let id = tx.create_group(g).await?.record.id;
                let revisions = self
                    .rerender(
                        tx.as_mut(),
                        BTreeSet::from([id]),
                        Some(&Require::group()),
                        &cause,
                    )
                    .await?;
                (Some(tx.get_group(id).await?), revisions)
            }
        };
        tx.commit().await?;
        Ok(Written {
            value: Adopted {
                pipeline,
                endpoints: made_endpoints,
                bindings: made_bindings,
                group,
            },
            revisions,
        })
    }

    /// The key endpoint ingest tokens are derived from (see `auth.rs`).
    pub fn token_key(&self) -> &TokenKey {
        &self.key
    }

    pub async fn create_pipeline(
        &self,
        spec: PipelineSpec,
    ) -> Result<Written<PipelineRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let value = tx.create_pipeline(spec).await?;
        tx.commit().await?;
        // A new pipeline is in no group yet.
        Ok(Written {
            value,
            revisions: Vec::new(),
        })
    }

    pub async fn update_pipeline(
        &self,
        actor: &Actor,
        id: PipelineId,
        spec: PipelineSpec,
        if_match: Option<i64>,
    ) -> Result<Written<PipelineRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let value = tx.update_pipeline(id, spec, if_match).await?.after;
        let cause = actor.cause(Some(Object::pipeline(&value)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), id, id, Some(&Require::pipeline(id)), &cause)
            .await?;
        tx.commit().await?;
        Ok(Written { value, revisions })
    }

    /// Fails with [`StoreError::InUse`] while an endpoint, binding or group refers to it.
    pub async fn delete_pipeline(&self, id: PipelineId) -> Result<Written<()>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        tx.delete_pipeline(id).await?;
        tx.commit().await?;
        Ok(Written {
            value: (),
            revisions: Vec::new(),
        })
    }

    pub async fn create_endpoint(
        &self,
        actor: &Actor,
        spec: EndpointSpec,
    ) -> Result<Written<EndpointRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let value = tx.create_endpoint(spec).await?;
        let pid = value.spec.pipeline_id;
        let require = Require::child(Kind::Endpoint, pid, pid);
        let cause = actor.cause(Some(Object::endpoint(&value, false)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), pid, pid, Some(&require), &cause)
            .await?;
        tx.commit().await?;
        Ok(Written { value, revisions })
    }

    pub async fn update_endpoint(
        &self,
        actor: &Actor,
        id: EndpointId,
        spec: EndpointSpec,
        if_match: Option<i64>,
    ) -> Result<Written<EndpointRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let r = tx.update_endpoint(id, spec, if_match).await?;
        let (from, to) = (r.before.spec.pipeline_id, r.after.spec.pipeline_id);
        let require = Require::child(Kind::Endpoint, from, to);
        let cause = actor.cause(Some(Object::endpoint(&r.after, false)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), from, to, Some(&require), &cause)
            .await?;
        tx.commit().await?;
        Ok(Written {
            value: r.after,
            revisions,
        })
    }

    pub async fn delete_endpoint(
        &self,
        actor: &Actor,
        id: EndpointId,
    ) -> Result<Written<()>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let gone = tx.delete_endpoint(id).await?;
        let pid = gone.spec.pipeline_id;
        let cause = actor.cause(Some(Object::endpoint(&gone, true)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), pid, pid, None, &cause)
            .await?;
        tx.commit().await?;
        Ok(Written {
            value: (),
            revisions,
        })
    }

    /// Ends every endpoint token grace period that is over: the previous tokens stop being
    /// rendered, and the groups running those endpoints' pipelines get a new revision. Returns
    /// how many endpoints it ended (cheap when none: one read, no write lock).
    pub async fn expire_token_grace(&self) -> Result<Written<usize>, WriteError> {
        let now = Utc::now();
        if self.store.count_expired_grace(now).await? == 0 {
            return Ok(Written {
                value: 0,
                revisions: Vec::new(),
            });
        }
        let mut tx = self.store.begin_config().await?;
        let pipelines = tx.expire_token_grace(now).await?;
        let mut groups = BTreeSet::new();
        for pid in &pipelines {
            groups.extend(tx.groups_of_pipeline(*pid).await?);
        }
        let cause = Actor::server().cause(None);
        let revisions = self.rerender(tx.as_mut(), groups, None, &cause).await?;
        tx.commit().await?;
        Ok(Written {
            value: pipelines.len(),
            revisions,
        })
    }

    pub async fn create_binding(
        &self,
        actor: &Actor,
        spec: ExporterBindingSpec,
    ) -> Result<Written<BindingRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let value = tx.create_binding(spec).await?;
        let pid = value.spec.pipeline_id;
        let require = Require::child(Kind::ExporterBinding, pid, pid);
        let cause = actor.cause(Some(Object::binding(&value, false)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), pid, pid, Some(&require), &cause)
            .await?;
        tx.commit().await?;
        Ok(Written { value, revisions })
    }

    pub async fn update_binding(
        &self,
        actor: &Actor,
        id: ExporterBindingId,
        spec: ExporterBindingSpec,
        if_match: Option<i64>,
    ) -> Result<Written<BindingRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let r = tx.update_binding(id, spec, if_match).await?;
        let (from, to) = (r.before.spec.pipeline_id, r.after.spec.pipeline_id);
        let require = Require::child(Kind::ExporterBinding, from, to);
        let cause = actor.cause(Some(Object::binding(&r.after, false)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), from, to, Some(&require), &cause)
            .await?;
        tx.commit().await?;
        Ok(Written {
            value: r.after,
            revisions,
        })
    }

    pub async fn delete_binding(
        &self,
        actor: &Actor,
        id: ExporterBindingId,
    ) -> Result<Written<()>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let gone = tx.delete_binding(id).await?;
        let pid = gone.spec.pipeline_id;
        let cause = actor.cause(Some(Object::binding(&gone, true)));
        let revisions = self
            .rerender_pipelines(tx.as_mut(), pid, pid, None, &cause)
            .await?;
        tx.commit().await?;
        Ok(Written {
            value: (),
            revisions,
        })
    }

    /// Creates the group and its first revision (revision 1).
    pub async fn create_group(
        &self,
        actor: &Actor,
        spec: AgentGroupSpec,
    ) -> Result<Written<GroupRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let created = tx.create_group(spec).await?;
        let id = created.record.id;
        let cause = actor.cause(Some(Object::group(&created)));
        let revisions = self
            .rerender(
                tx.as_mut(),
                BTreeSet::from([id]),
                Some(&Require::group()),
                &cause,
            )
            .await?;
        let value = tx.get_group(id).await?;
        tx.commit().await?;
        Ok(Written { value, revisions })
    }

    pub async fn update_group(
        &self,
        actor: &Actor,
        id: AgentGroupId,
        spec: AgentGroupSpec,
        if_match: Option<i64>,
    ) -> Result<Written<GroupRecord>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        let updated = tx.update_group(id, spec, if_match).await?.after;
        let cause = actor.cause(Some(Object::group(&updated)));
        let revisions = self
            .rerender(
                tx.as_mut(),
                BTreeSet::from([id]),
                Some(&Require::group()),
                &cause,
            )
            .await?;
        let value = tx.get_group(id).await?;
        tx.commit().await?;
        Ok(Written { value, revisions })
    }

    /// Deletes the group and its revision history.
    pub async fn delete_group(&self, id: AgentGroupId) -> Result<Written<()>, WriteError> {
        let mut tx = self.store.begin_config().await?;
        tx.delete_group(id).await?;
        tx.commit().await?;
        Ok(Written {
            value: (),
            revisions: Vec::new(),
        })
    }

    /// Re-renders the groups running pipeline `from` or `to`: the pipeline a write changed, or
    /// the one an endpoint or binding hung off before the write and the one it hangs off now
    /// (the same one unless it moved).
    async fn rerender_pipelines(
        &self,
        tx: &mut dyn ConfigTx,
        from: PipelineId,
        to: PipelineId,
        require: Option<&Require>,
        cause: &RevisionCause,
    ) -> Result<Vec<GroupRevision>, WriteError> {
        let mut groups = tx.groups_of_pipeline(from).await?;
        if to != from {
            groups.extend(tx.groups_of_pipeline(to).await?);
        }
        self.rerender(tx, groups, require, cause).await
    }

    /// Re-renders `groups` and records a new revision for each whose YAML changed.
    /// `require`: a create or update, refused when a pipeline it touches would be left out
    /// of a group's config; `None` (deletes, grace expiry) renders what is complete and
    /// leaves a group with no service pipeline at all on its last revision.
    async fn rerender(
        &self,
        tx: &mut dyn ConfigTx,
        groups: BTreeSet<AgentGroupId>,
        require: Option<&Require>,
        cause: &RevisionCause,
    ) -> Result<Vec<GroupRevision>, WriteError> {
        let mut created = Vec::new();
        for gid in groups {
            let Some(inputs) = tx.group_inputs(gid).await? else {
                continue;
            };
            let group = &inputs.group;
            let name = &group.record.spec.name;
            let rendered = crate::render::render_with_policy(
                group,
                &inputs.pipelines,
                &inputs.endpoints,
                &inputs.bindings,
                &self.key,
                &inputs.grace,
                &self.policy,
            )
            .map_err(|source| WriteError::Render {
                group: name.clone(),
                source,
            })?;
            if let Some(gap) = require.and_then(|r| r.blamed(&rendered.gaps)) {
                return Err(WriteError::Incomplete {
                    group: name.clone(),
                    field: require.map(|r| r.field(gap)).unwrap_or("pipeline_ids"),
                    gap: gap.clone(),
                });
            }
            if !rendered.gaps.is_empty() {
                // Expected after a delete (Terraform may destroy a binding before the group
                // using its pipeline): not an error, the group keeps what it can run.
                let gaps: Vec<String> = rendered.gaps.iter().map(ToString::to_string).collect();
                tracing::info!(
                    group = %name,
                    gaps = ?gaps,
                    service_pipelines = rendered.service_pipelines,
                    "Agent group config left incomplete parts out"
                );
            }
            if rendered.service_pipelines == 0 {
                tracing::info!(
                    group = %name,
                    revision = group.config_revision,
                    "Agent group has no complete pipeline left: no new revision, its agents keep their last config"
                );
                continue;
            }
            let hash = rendered.hash_hex();
            if group.config_revision > 0 && group.config_hash == hash {
                continue;
            }
            let revision = tx
                .add_revision(gid, group.config_revision, &rendered.yaml, &hash, cause)
                .await?;
            created.push(revision);
        }
        Ok(created)
    }
}

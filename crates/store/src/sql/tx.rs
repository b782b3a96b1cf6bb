//! [`SqlTx`]: a config write of either backend, the [`ConfigTx`] the writer above the store
//! drives.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use otaas_api::{
    AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId, ExporterBindingSpec,
    PipelineId, PipelineSpec, RevisionCause,
};

use super::db::Db;
use super::{bindings, endpoints, groups, pipelines, revisions};
use crate::{
    BindingRecord, ConfigTx, EndpointRecord, GroupInputs, GroupRecord, GroupRevision,
    PipelineRecord, Replaced, ServerKey, StoreError,
};

/// A transaction holding the config write lock (in-process, and on PostgreSQL the advisory
/// lock too, until it ends).
pub(crate) struct SqlTx<B: Db> {
    // Fields drop in order: the transaction ends before the next writer may start.
    tx: B::Tx,
    key: ServerKey,
    _writes: tokio::sync::OwnedMutexGuard<()>,
}

impl<B: Db> SqlTx<B> {
    pub(crate) fn new(tx: B::Tx, key: ServerKey, writes: tokio::sync::OwnedMutexGuard<()>) -> Self {
        Self {
            tx,
            key,
            _writes: writes,
        }
    }
}

#[async_trait]
impl<B: Db> ConfigTx for SqlTx<B> {
    async fn create_pipeline(&mut self, spec: PipelineSpec) -> Result<PipelineRecord, StoreError> {
        pipelines::create::<B>(&mut self.tx, &self.key, spec).await
    }

    async fn update_pipeline(
        &mut self,
        id: PipelineId,
        spec: PipelineSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<PipelineRecord>, StoreError> {
        pipelines::update::<B>(&mut self.tx, &self.key, id, spec, if_match).await
    }

    async fn delete_pipeline(&mut self, id: PipelineId) -> Result<PipelineRecord, StoreError> {
        pipelines::delete::<B>(&mut self.tx, &self.key, id).await
    }

    async fn create_endpoint(&mut self, spec: EndpointSpec) -> Result<EndpointRecord, StoreError> {
        endpoints::create::<B>(&mut self.tx, &self.key, spec).await
    }

    async fn update_endpoint(
        &mut self,
        id: EndpointId,
        spec: EndpointSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<EndpointRecord>, StoreError> {
        endpoints::update::<B>(&mut self.tx, &self.key, id, spec, if_match).await
    }

    async fn delete_endpoint(&mut self, id: EndpointId) -> Result<EndpointRecord, StoreError> {
        endpoints::delete::<B>(&mut self.tx, &self.key, id).await
    }

    async fn expire_token_grace(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<PipelineId>, StoreError> {
        endpoints::expire_grace::<B>(&mut self.tx, now.timestamp_millis()).await
    }

    async fn create_binding(
        &mut self,
        spec: ExporterBindingSpec,
    ) -> Result<BindingRecord, StoreError> {
        bindings::create::<B>(&mut self.tx, &self.key, spec).await
    }

    async fn update_binding(
        &mut self,
        id: ExporterBindingId,
        spec: ExporterBindingSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<BindingRecord>, StoreError> {
        bindings::update::<B>(&mut self.tx, &self.key, id, spec, if_match).await
    }

    async fn delete_binding(&mut self, id: ExporterBindingId) -> Result<BindingRecord, StoreError> {
        bindings::delete::<B>(&mut self.tx, &self.key, id).await
    }

    async fn create_group(&mut self, spec: AgentGroupSpec) -> Result<GroupRecord, StoreError> {
        groups::create::<B>(&mut self.tx, spec).await
    }

    async fn update_group(
        &mut self,
        id: AgentGroupId,
        spec: AgentGroupSpec,
        if_match: Option<i64>,
    ) -> Result<Replaced<GroupRecord>, StoreError> {
        groups::update::<B>(&mut self.tx, id, spec, if_match).await
    }

    async fn delete_group(&mut self, id: AgentGroupId) -> Result<GroupRecord, StoreError> {
        groups::delete::<B>(&mut self.tx, id).await
    }

    async fn get_group(&mut self, id: AgentGroupId) -> Result<GroupRecord, StoreError> {
        groups::get::<B>(&mut self.tx, id).await
    }

    async fn groups_of_pipeline(
        &mut self,
        id: PipelineId,
    ) -> Result<BTreeSet<AgentGroupId>, StoreError> {
        groups::of_pipeline::<B>(&mut self.tx, id).await
    }

    async fn group_inputs(&mut self, id: AgentGroupId) -> Result<Option<GroupInputs>, StoreError> {
        groups::inputs::<B>(&mut self.tx, &self.key, id).await
    }

    async fn add_revision(
        &mut self,
        id: AgentGroupId,
        after: i64,
        yaml: &str,
        hash: &str,
        cause: &RevisionCause,
    ) -> Result<GroupRevision, StoreError> {
        revisions::add::<B>(&mut self.tx, id, after, yaml, hash, cause).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let Self { tx, _writes, .. } = *self;
        B::commit(tx).await?;
        drop(_writes);
        Ok(())
    }
}

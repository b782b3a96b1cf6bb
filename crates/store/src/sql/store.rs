//! [`SqlStore`] and its [`Store`]: each method takes a connection (or a write transaction) and
//! calls the SQL of its record kind.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use otaas_api::{AgentGroupId, EndpointId, ExporterBindingId, PipelineId, TokenId, TokenScope};

use super::db::{Db, sql};
use super::records::{fetch_all, fetch_by_name};
use super::tx::SqlTx;
use super::{
    agents, audit, bindings, endpoints, groups, pipelines, replicas, revisions, rollouts, tokens,
};
use crate::{
    AgentRow, AgentRowFilter, AuditFilter, AuditRecord, Backend, BindingRecord, ConfigTx,
    Coordination, EndpointRecord, GroupRecord, GroupRevision, PipelineRecord, RolloutRow,
    ServerKey, Store, StoreError, TokenRecord,
};

/// A store on one database, the same code for both backends (see `sqlite.rs` and
/// `postgres.rs` for how each is opened).
pub struct SqlStore<B: Db> {
    pub(crate) pool: B::Pool,
    pub(crate) key: ServerKey,
    /// Held for the whole of every write transaction: writers queue here, in-process, rather
    /// than holding pool connections while they wait for the database's own lock.
    pub(crate) write_lock: Arc<tokio::sync::Mutex<()>>,
    pub(crate) coordination: Option<Arc<dyn Coordination>>,
}

#[async_trait]
impl<B: Db> Store for SqlStore<B> {
    fn backend(&self) -> Backend {
        B::BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        B::execute(&mut c, sql("SELECT 1")).await?;
        Ok(())
    }

    fn server_key(&self) -> &ServerKey {
        &self.key
    }

    async fn begin_config(&self) -> Result<Box<dyn ConfigTx>, StoreError> {
        let writes = self.write_lock.clone().lock_owned().await;
        let mut tx = B::begin_write(&self.pool).await?;
        B::lock_config_writes(&mut tx).await?;
        Ok(Box::new(SqlTx::<B>::new(tx, self.key.clone(), writes)))
    }

    async fn get_pipeline(&self, id: PipelineId) -> Result<PipelineRecord, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        pipelines::get::<B>(&mut c, &self.key, id).await
    }

    async fn find_pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        fetch_by_name::<B, _, _>(&mut c, &self.key, "pipelines", name).await
    }

    async fn list_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        fetch_all::<B, _, _>(&mut c, &self.key, "pipelines").await
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<EndpointRecord, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        endpoints::get::<B>(&mut c, &self.key, id).await
    }

    async fn find_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        fetch_by_name::<B, _, _>(&mut c, &self.key, endpoints::TABLE.name, name).await
    }

    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        fetch_all::<B, _, _>(&mut c, &self.key, endpoints::TABLE.name).await
    }

    async fn count_expired_grace(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        endpoints::count_expired_grace::<B>(&mut c, now.timestamp_millis()).await
    }

    async fn get_binding(&self, id: ExporterBindingId) -> Result<BindingRecord, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        bindings::get::<B>(&mut c, &self.key, id).await
    }

    async fn find_binding(&self, name: &str) -> Result<Option<BindingRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        fetch_by_name::<B, _, _>(&mut c, &self.key, bindings::TABLE.name, name).await
    }

    async fn list_bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        fetch_all::<B, _, _>(&mut c, &self.key, bindings::TABLE.name).await
    }

    async fn get_group(&self, id: AgentGroupId) -> Result<GroupRecord, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        groups::get::<B>(&mut c, id).await
    }

    async fn find_group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        groups::find::<B>(&mut c, name).await
    }

    async fn list_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        groups::list::<B>(&mut c).await
    }

    async fn group_revision(
        &self,
        id: AgentGroupId,
        revision: Option<i64>,
    ) -> Result<GroupRevision, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        revisions::get::<B>(&mut c, id, revision).await
    }

    async fn group_revisions(&self, id: AgentGroupId) -> Result<Vec<GroupRevision>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        revisions::list::<B>(&mut c, id).await
    }

    async fn delete_revisions_except(
        &self,
        id: AgentGroupId,
        up_to: i64,
        keep: &std::collections::BTreeSet<i64>,
    ) -> Result<u64, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        revisions::delete_except::<B>(&mut c, id, up_to, keep).await
    }

    async fn create_token_expiring(
        &self,
        scope: TokenScope,
        description: &str,
        hash: &str,
        created_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<TokenRecord, StoreError> {
        let _writes = self.write_lock.lock().await;
        let mut tx = B::begin_write(&self.pool).await?;
        let token =
            tokens::create::<B>(&mut tx, scope, description, hash, created_at, expires_at).await?;
        B::commit(tx).await?;
        Ok(token)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        tokens::list::<B>(&mut c).await
    }

    async fn revoke_token(&self, id: TokenId) -> Result<TokenRecord, StoreError> {
        let _writes = self.write_lock.lock().await;
        let mut tx = B::begin_write(&self.pool).await?;
        let token = tokens::revoke::<B>(&mut tx, id).await?;
        B::commit(tx).await?;
        Ok(token)
    }

    async fn find_token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        tokens::find_by_hash::<B>(&mut c, hash).await
    }

    async fn count_active_tokens(&self, scope: TokenScope) -> Result<u64, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        tokens::count_active::<B>(&mut c, scope).await
    }

    async fn upsert_agents(&self, agents: &[AgentRow]) -> Result<(), StoreError> {
        if agents.is_empty() {
            return Ok(());
        }
        // One statement may not touch a row twice (PostgreSQL refuses): the last row per id
        // wins. Sorted, so two writers lock rows in the same order.
        let mut latest: std::collections::HashMap<&str, &AgentRow> =
            std::collections::HashMap::with_capacity(agents.len());
        for agent in agents {
            latest.insert(agent.id.as_str(), agent);
        }
        let mut rows: Vec<&AgentRow> = latest.into_values().collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        // Agent rows are not config: no advisory lock, only the in-process writer queue.
        let _writes = self.write_lock.lock().await;
        let mut tx = B::begin_write(&self.pool).await?;
        agents::upsert::<B>(&mut tx, &rows).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn touch_agents(&self, seen: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<&(String, DateTime<Utc>)> = seen.iter().collect();
        // Same lock order as `upsert_agents`.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let _writes = self.write_lock.lock().await;
        let mut tx = B::begin_write(&self.pool).await?;
        agents::touch::<B>(&mut tx, &rows).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn list_agent_rows(&self, filter: &AgentRowFilter) -> Result<Vec<AgentRow>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        agents::list::<B>(&mut c, filter).await
    }

    async fn get_agent_row(&self, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        agents::get::<B>(&mut c, id).await
    }

    async fn register_replica(&self, id: &str, api: &str, opamp: &str) -> Result<(), StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        replicas::register::<B>(&mut c, id, api, opamp).await
    }

    async fn put_rollout(&self, group_id: AgentGroupId, state: &str) -> Result<(), StoreError> {
        let _writes = self.write_lock.lock().await;
        let mut c = B::acquire(&self.pool).await?;
        rollouts::put::<B>(&mut c, group_id, state).await
    }

    async fn get_rollout(&self, group_id: AgentGroupId) -> Result<Option<RolloutRow>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        rollouts::get::<B>(&mut c, group_id).await
    }

    async fn put_rollout_if(
        &self,
        group_id: AgentGroupId,
        state: &str,
        expected: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let _writes = self.write_lock.lock().await;
        let mut c = B::acquire(&self.pool).await?;
        rollouts::put_if::<B>(&mut c, group_id, state, expected).await
    }

    async fn list_rollouts(&self) -> Result<Vec<RolloutRow>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        rollouts::list::<B>(&mut c).await
    }

    async fn delete_rollout(&self, group_id: AgentGroupId) -> Result<(), StoreError> {
        let _writes = self.write_lock.lock().await;
        let mut c = B::acquire(&self.pool).await?;
        rollouts::delete::<B>(&mut c, group_id).await
    }

    async fn append_audit(&self, entries: &[AuditRecord]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Audit rows are not config: no advisory lock, only the in-process writer queue.
        let _writes = self.write_lock.lock().await;
        let mut tx = B::begin_write(&self.pool).await?;
        audit::append::<B>(&mut tx, entries).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut c = B::acquire(&self.pool).await?;
        audit::list::<B>(&mut c, filter).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>, keep: u64) -> Result<u64, StoreError> {
        let _writes = self.write_lock.lock().await;
        let mut tx = B::begin_write(&self.pool).await?;
        let n = audit::prune::<B>(&mut tx, before, keep).await?;
        B::commit(tx).await?;
        Ok(n)
    }

    fn coordination(&self) -> Option<Arc<dyn Coordination>> {
        self.coordination.clone()
    }
}

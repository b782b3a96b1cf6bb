//! The rollout engine: for each agent group, which agents run which config revision, and when.
//!
//! Files: `plan.rs` (the state machine and its persisted record, no I/O), this file (the
//! engine [`Rollouts`]: group events in, store and registry decisions out, the driver task).
//! The REST handlers are in `api/rollouts.rs`.
//!
//! Flow: a new group revision (the OpAMP sync task calls [`Rollouts::sync_group`]) starts a rollout from
//! the group's last good revision. The engine tells the registry, in one call
//! ([`Registry::set_rollout`](crate::registry::Registry::set_rollout)), the group's
//! default config (the last good one until the last step) and the agents pinned to the new
//! revision. The driver task looks at the group's agents every [`TICK`] and moves the rollout
//! on ([`plan::advance`]).
//!
//! Durability: every decision is written to the store (`rollouts` table) *before* the registry
//! is told, so a config no stored decision names is never sent; a server restarted mid-rollout
//! reloads the record and carries on from the same step (the bake clock is wall time, so a
//! bake that ran while the server was down counts). Agents that already applied the new
//! revision are not re-offered it (the registry compares hashes).
//!
//! Concurrency: one `tokio::sync::Mutex` over all groups' runs serialises events, ticks and
//! REST actions; it is held across store writes (a few ms) so no two decisions interleave.
//!
//! Replicas (PostgreSQL, see `crate::cluster`): only the replica holding a group's lock
//! *drives* it (starts rollouts, advances them); the others *follow*: they read the stored
//! record when told it changed and apply its decision to their own registry (their own
//! agents). Every write is a compare-and-swap on the record's version, so a decision made on
//! a stale record (a pause sent through a follower, a driver that lost its lock) fails and
//! the writer reloads instead of overwriting. Pause/resume/rollback work on any replica: they
//! edit the stored record the same way. On SQLite the one process drives every group.

pub mod plan;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use otaas_api::{
    AgentFailure, AgentGroupId, GroupStatus, RolloutSpec, RolloutState, RolloutStepStatus,
};
use otaas_opamp::InstanceUid;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use tokio_util::sync::CancellationToken;

use crate::cluster::{FleetView, Pending};
use crate::fleet::{AgentFilter, AgentRecord, ConfigStatus, GroupConfig};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use plan::Rollout;

/// How often in-progress rollouts look at their agents.
pub const TICK: Duration = Duration::from_millis(250);

/// Why a rollout request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("agent group {0} not found or has no config yet")]
    NotFound(AgentGroupId),
    #[error("cannot {action} a rollout that is {state}")]
    BadState { action: &'static str, state: String },
    #[error("revision {0} is the group's first: there is no earlier revision to roll back to")]
    NoLastGood(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One group's rollout with what it needs to act.
struct Run {
    rollout: Rollout,
    spec: RolloutSpec,
    /// The revision rolling out, ready to send.
    target: Arc<GroupConfig>,
    /// The last good revision, ready to send.
    good: Option<Arc<GroupConfig>>,
    /// The record changed but could not be stored yet: store (then apply) on the next tick.
    unsaved: bool,
    /// Version of the stored record this one is based on (`None`: nothing stored yet).
    version: Option<i64>,
    /// A write found a newer stored record: reload before deciding anything else.
    stale: bool,
}

/// The rollout engine: every group's run, and what it reads and tells.
pub struct Rollouts {
    runs: Mutex<HashMap<AgentGroupId, Run>>,
    store: Arc<dyn Store>,
    /// The group's agents on every replica, this replica's registry and its place among them.
    fleet: FleetView,
    metrics: Arc<Metrics>,
    /// Counts the rollout decisions stored by this replica, so that watchers (the console's
    /// live pages) look again at once instead of polling fast.
    decisions: tokio::sync::watch::Sender<u64>,
}

fn state_name(s: RolloutState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A stored record, decoded.
fn decode(row: &crate::store::RolloutRow) -> Result<Rollout, StoreError> {
    serde_json::from_str(&row.state)
        .map_err(|e| StoreError::Corrupt(format!("rollout record of group {}: {e}", row.group_id)))
}

/// The record that follows `previous` when the group's target revision is `latest` (its
/// latest, or the one it is `pinned` to), and whether it is new (to be stored).
fn next_record(
    id: AgentGroupId,
    previous: Option<Rollout>,
    latest: &crate::store::GroupRevision,
    pinned: bool,
    now: chrono::DateTime<Utc>,
) -> (Rollout, bool) {
    match previous {
        // Same revision: the record stands (selector or settings may have changed).
        Some(r) if r.revision == latest.revision => (r, false),
        // A pin may name an earlier revision: going back to it is a rollout like any other.
        Some(r) if r.revision < latest.revision || pinned => {
            tracing::info!(group = %id, from = r.revision, to = latest.revision, "Starting a rollout");
            (
                Rollout::start(&r, latest.revision, latest.hash.clone(), now),
                true,
            )
        }
        // A new group: its first revision goes to every agent.
        None if latest.revision == 1 => (
            Rollout::first(latest.revision, latest.hash.clone(), now),
            true,
        ),
        // No history (a database from before the rollout engine) or one from the future (a
        // restored backup): the latest revision is taken as good.
        _ => (
            Rollout::complete_at(latest.revision, latest.hash.clone(), now),
            true,
        ),
    }
}

impl Rollouts {
    pub fn new(store: Arc<dyn Store>, fleet: FleetView, metrics: Arc<Metrics>) -> Self {
        Self {
            runs: Mutex::default(),
            store,
            fleet,
            metrics,
            decisions: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes whenever this replica stores a rollout decision (any group).
    pub fn watch_decisions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.decisions.subscribe()
    }

    /// How many decisions this replica has stored (what [`Self::watch_decisions`] watches).
    pub fn decisions(&self) -> u64 {
        *self.decisions.borrow()
    }

    fn decided(&self) {
        self.decisions.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn config_at(
        &self,
        id: AgentGroupId,
        group: &crate::store::GroupRecord,
        revision: i64,
    ) -> Result<Arc<GroupConfig>, StoreError> {
        let rev = self.store.group_revision(id, Some(revision)).await?;
        Ok(Arc::new(GroupConfig::new(
            id,
            group.record.spec.selector.clone(),
            group.record.created_at,
            rev.revision,
            rev.yaml,
            rev.hash,
        )))
    }

    /// The revision the group's agents should end up on: the one it is pinned to, else its
    /// latest. A pin whose revision is gone (a history pruned under it) is ignored rather than
    /// leaving the group without a target.
    async fn target_revision(
        &self,
        id: AgentGroupId,
        group: &crate::store::GroupRecord,
    ) -> Result<(crate::store::GroupRevision, bool), StoreError> {
        if let Some(pin) = group.record.spec.pinned_revision {
            match self.store.group_revision(id, Some(pin)).await {
                Ok(rev) => return Ok((rev, true)),
                Err(StoreError::NotFound { .. }) => {
                    tracing::warn!(group = %id, revision = pin, "The group is pinned to a revision that is gone; following the latest");
                }
                Err(err) => return Err(err),
            }
        }
        Ok((self.store.group_revision(id, None).await?, false))
    }

    /// Brings the group's rollout up to date with the store after an event (new revision,
    /// changed selector or rollout settings, another replica's decision, taking over the group)
    /// or at start-up, and tells the registry. A follower only applies the stored decision.
    pub async fn sync_group(&self, id: AgentGroupId) -> Result<(), StoreError> {
        let group = match self.store.get_group(id).await {
            Ok(g) => g,
            Err(StoreError::NotFound { .. }) => {
                self.remove_group(id).await;
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        let (latest, pinned) = match self.target_revision(id, &group).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => {
                self.remove_group(id).await;
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        self.sync_to(id, &group, &latest, pinned).await
    }

    /// The group's deletion may commit while [`Rollouts::sync_group`] reads it: when `terraform destroy`
    /// deletes a binding and its group together, the binding's new revision reaches the engine as
    /// the group goes. A revision missing then means the group is gone, which is no error: its
    /// rollout is forgotten as the deletion event would, and its agents become unmanaged.
    async fn sync_to(
        &self,
        id: AgentGroupId,
        group: &crate::store::GroupRecord,
        latest: &crate::store::GroupRevision,
        pinned: bool,
    ) -> Result<(), StoreError> {
        match self.sync_read(id, group, latest, pinned).await {
            Err(StoreError::NotFound { .. }) if self.group_gone(id).await => {
                self.remove_group(id).await;
                Ok(())
            }
            other => other,
        }
    }

    async fn group_gone(&self, id: AgentGroupId) -> bool {
        matches!(
            self.store.get_group(id).await,
            Err(StoreError::NotFound { .. })
        )
    }

    async fn sync_read(
        &self,
        id: AgentGroupId,
        group: &crate::store::GroupRecord,
        latest: &crate::store::GroupRevision,
        pinned: bool,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut runs = self.runs.lock().await;
        let stored = self.store.get_rollout(id).await?;
        let stored_version = stored.as_ref().map(|row| row.version);
        let driving = self.fleet.cluster().drives(id);
        // A decision not stored yet (the write failed) is ours to retry, as long as nobody
        // wrote since it was made.
        let previous = match runs.get(&id) {
            Some(run) if driving && run.unsaved && !run.stale && run.version == stored_version => {
                Some(run.rollout.clone())
            }
            _ => stored.as_ref().map(decode).transpose()?,
        };
        let (rollout, is_new) = if driving {
            let (mut r, mut is_new) = next_record(id, previous, latest, pinned, now);
            // Taking over: say so in the record (and so in the status of every replica).
            if r.driver.as_deref() != Some(self.fleet.cluster().replica_id()) {
                r.driver = Some(self.fleet.cluster().replica_id().to_owned());
                is_new = true;
            }
            (r, is_new)
        } else {
            match previous {
                Some(r) => (r, false),
                // Nothing decided yet: the driver will, and tell us.
                None => {
                    runs.remove(&id);
                    return Ok(());
                }
            }
        };
        let target = self.config_at(id, group, rollout.revision).await?;
        let good = match rollout.last_good {
            Some(rev) => Some(self.config_at(id, group, rev).await?),
            None => None,
        };
        let mut run = Run {
            rollout,
            spec: group.record.spec.rollout.clone(),
            target,
            good,
            unsaved: is_new,
            version: stored_version,
            stale: false,
        };
        if driving && run.rollout.state == RolloutState::InProgress {
            let members = self.members(id, &run.rollout.hash).await?;
            if plan::advance(&mut run.rollout, &run.spec, &members, now) {
                run.unsaved = true;
            }
        }
        self.save_and_apply(id, &mut run).await;
        runs.insert(id, run);
        Ok(())
    }

    /// Another replica stored version `version` of the group's record: reload unless ours is
    /// that new already.
    pub async fn refresh(&self, id: AgentGroupId, version: i64) -> Result<(), StoreError> {
        let current = self.runs.lock().await.get(&id).and_then(|run| run.version);
        if current.is_some_and(|v| v >= version) {
            return Ok(());
        }
        self.sync_group(id).await
    }

    /// The revisions of group `id` its rollout needs: the one rolling out (which agents are
    /// being sent) and the last good one (what a rollback sends), as the stored record says
    /// (whichever replica drives it) and as this replica's run holds them. Revision retention
    /// never deletes these.
    pub async fn revisions_in_use(&self, id: AgentGroupId) -> Result<BTreeSet<i64>, StoreError> {
        let mut keep = BTreeSet::new();
        // A pinned group's agents are sent (or run) the pinned revision.
        match self.store.get_group(id).await {
            Ok(g) => keep.extend(g.record.spec.pinned_revision),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(row) = self.store.get_rollout(id).await? {
            let r = decode(&row)?;
            keep.insert(r.revision);
            keep.extend(r.last_good);
        }
        if let Some(run) = self.runs.lock().await.get(&id) {
            keep.insert(run.rollout.revision);
            keep.extend(run.rollout.last_good);
            keep.insert(run.target.revision);
            keep.extend(run.good.as_ref().map(|g| g.revision));
        }
        Ok(keep)
    }

    /// Forgets a deleted group's rollout.
    pub async fn remove_group(&self, id: AgentGroupId) {
        self.runs.lock().await.remove(&id);
        crate::registry::poke(self.fleet.registry().remove_group(id));
        if let Err(err) = self.store.delete_rollout(id).await {
            tracing::error!(group = %id, error = %err, "Deleting a rollout record failed");
        }
    }

    /// Every group again (start-up, or after missing events); groups gone are dropped.
    pub async fn reload_all(&self) {
        let groups = match self.store.list_groups().await {
            Ok(groups) => groups,
            Err(err) => {
                tracing::error!(error = %err, "Listing agent groups failed");
                return;
            }
        };
        let ids: std::collections::HashSet<AgentGroupId> =
            groups.iter().map(|g| g.record.id).collect();
        for id in &ids {
            if let Err(err) = self.sync_group(*id).await {
                tracing::error!(group = %id, error = %err, "Loading a group's rollout failed");
            }
        }
        let gone: Vec<AgentGroupId> = self
            .runs
            .lock()
            .await
            .keys()
            .filter(|id| !ids.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.remove_group(id).await;
        }
    }

    /// The group's agents on every replica, sampled against the rollout's `hash` in place (see
    /// `plan::Sampled`).
    async fn members(
        &self,
        id: AgentGroupId,
        hash: &str,
    ) -> Result<Vec<plan::Sampled>, StoreError> {
        let hash: std::sync::Arc<str> = hash.into();
        let mut sampled = Vec::new();
        self.visit_members(id, |a| sampled.push(plan::Sampled::new(a, &hash)))
            .await?;
        Ok(sampled)
    }

    /// Runs `f` on each of the group's agents on every replica. This replica's own are visited in
    /// place, under the registry lock (status is polled often, e.g. while waiting for a rollout:
    /// copying every member each time would cost more than the rollout itself on a large fleet),
    /// so `f` must be short.
    async fn visit_members(
        &self,
        id: AgentGroupId,
        f: impl FnMut(&AgentRecord),
    ) -> Result<(), StoreError> {
        let filter = AgentFilter {
            group_id: Some(id),
            ..Default::default()
        };
        self.fleet.visit_agents(&filter, f).await
    }

    /// Stores the record if it changed (compare-and-swap on its version), then (only then) tells
    /// the registry and the other replicas.
    async fn save_and_apply(&self, id: AgentGroupId, run: &mut Run) {
        if run.unsaved {
            let json = match serde_json::to_string(&run.rollout) {
                Ok(j) => j,
                Err(err) => {
                    tracing::error!(group = %id, error = %err, "Encoding a rollout record failed");
                    return;
                }
            };
            match self.store.put_rollout_if(id, &json, run.version).await {
                Ok(Some(version)) => {
                    run.version = Some(version);
                    self.fleet.cluster().announce_rollout(id, version);
                }
                Ok(None) => {
                    // Someone else (a REST action through another replica, a new driver) wrote
                    // since our record was read: ours is stale, never send it.
                    tracing::info!(group = %id, "Rollout record changed elsewhere; reloading");
                    run.stale = true;
                    return;
                }
                Err(err) => {
                    tracing::error!(group = %id, error = %err, "Storing a rollout decision failed; will retry");
                    return;
                }
            }
            run.unsaved = false;
            self.metrics.inc(
                "otaas_rollout_transitions_total",
                &[("state", &state_name(run.rollout.state))],
            );
            self.decided();
        }
        let decision = run.rollout.decision();
        let default = if decision.default_revision == run.target.revision {
            run.target.clone()
        } else {
            run.good.clone().unwrap_or_else(|| run.target.clone())
        };
        let pinned: Vec<InstanceUid> = decision
            .pinned
            .iter()
            .filter_map(|id| InstanceUid::parse(id).ok())
            .collect();
        crate::registry::poke(self.fleet.registry().set_rollout(
            (*default).clone(),
            Some(run.target.clone()),
            &pinned,
        ));
    }

    /// Moves every in-progress rollout this replica drives on once.
    pub async fn tick(&self) {
        let now = Utc::now();
        let mut stale = Vec::new();
        {
            let mut runs = self.runs.lock().await;
            for (id, run) in runs.iter_mut() {
                if !self.fleet.cluster().drives(*id) {
                    continue;
                }
                if run.stale {
                    stale.push(*id);
                    continue;
                }
                if run.rollout.state == RolloutState::InProgress {
                    let members = match self.members(*id, &run.rollout.hash).await {
                        Ok(m) => m,
                        Err(err) => {
                            tracing::warn!(group = %id, error = %err, "Reading the group's agents failed");
                            continue;
                        }
                    };
                    if plan::advance(&mut run.rollout, &run.spec, &members, now) {
                        tracing::info!(group = %id, state = ?run.rollout.state, message = %run.rollout.message, "Rollout moved on");
                        run.unsaved = true;
                    }
                }
                if run.unsaved {
                    self.save_and_apply(*id, run).await;
                    if run.stale {
                        stale.push(*id);
                    }
                }
            }
        }
        for id in stale {
            if let Err(err) = self.sync_group(id).await {
                tracing::error!(group = %id, error = %err, "Reloading a rollout failed");
            }
        }
    }

    /// Pauses, resumes or rolls back; returns the status after the change. Works the same on
    /// every replica: the stored record is edited with compare-and-swap, then the driver (told
    /// through the cluster, or this very replica) goes on from it.
    pub async fn act(&self, id: AgentGroupId, action: Action) -> Result<GroupStatus, RolloutError> {
        let group = match self.store.get_group(id).await {
            Ok(g) => g,
            Err(StoreError::NotFound { .. }) => return Err(RolloutError::NotFound(id)),
            Err(err) => return Err(err.into()),
        };
        let (latest, pinned) = match self.target_revision(id, &group).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Err(RolloutError::NotFound(id)),
            Err(err) => return Err(err.into()),
        };
        // A request right after a config change (or a pin) is about the new target, even if
        // its event has not reached the engine yet: catch up first.
        let behind = self
            .runs
            .lock()
            .await
            .get(&id)
            .is_none_or(|run| run.rollout.revision != latest.revision);
        if behind {
            self.sync_group(id).await?;
        }
        {
            let mut runs = self.runs.lock().await;
            let mut attempt = 0;
            let (record, version) = loop {
                attempt += 1;
                let now = Utc::now();
                let stored = self.store.get_rollout(id).await?;
                let stored_version = stored.as_ref().map(|row| row.version);
                let base = match runs.get(&id) {
                    // Our own decision that is not stored yet is the newest there is.
                    Some(run)
                        if self.fleet.cluster().drives(id)
                            && run.unsaved
                            && !run.stale
                            && run.version == stored_version =>
                    {
                        Some(run.rollout.clone())
                    }
                    _ => stored.as_ref().map(decode).transpose()?,
                };
                // A follower may act before the driver started the latest revision: start it
                // here, the same way the driver would (whoever writes first wins, the other
                // reloads).
                let (mut record, _) = next_record(id, base, &latest, pinned, now);
                apply_action(&mut record, action, now)?;
                let json = serde_json::to_string(&record)
                    .map_err(|e| StoreError::Corrupt(format!("encoding rollout record: {e}")))?;
                match self.store.put_rollout_if(id, &json, stored_version).await? {
                    Some(version) => break (record, version),
                    None if attempt < ACTION_ATTEMPTS => continue,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "rollout record of group {id} kept changing; try again"
                        ))
                        .into());
                    }
                }
            };
            tracing::info!(group = %id, ?action, message = %record.message, "Rollout action");
            self.fleet.cluster().announce_rollout(id, version);
            self.decided();
            self.metrics.inc(
                "otaas_rollout_transitions_total",
                &[("state", &state_name(record.state))],
            );
            // A revision gone now means the group was deleted meanwhile: a 404, not a store error.
            let gone = |err: StoreError| match err {
                StoreError::NotFound { .. } => RolloutError::NotFound(id),
                err => err.into(),
            };
            let target = self
                .config_at(id, &group, record.revision)
                .await
                .map_err(gone)?;
            let good = match record.last_good {
                Some(rev) => Some(self.config_at(id, &group, rev).await.map_err(gone)?),
                None => None,
            };
            let mut run = Run {
                rollout: record,
                spec: group.record.spec.rollout.clone(),
                target,
                good,
                unsaved: false,
                version: Some(version),
                stale: false,
            };
            self.save_and_apply(id, &mut run).await;
            runs.insert(id, run);
        }
        self.status(id).await
    }

    /// `GET /agent-groups/{id}/status`.
    pub async fn status(&self, id: AgentGroupId) -> Result<GroupStatus, RolloutError> {
        let runs = self.runs.lock().await;
        let Some(run) = runs.get(&id) else {
            drop(runs);
            return self.unsynced_status(id).await;
        };
        let r = run.rollout.clone();
        let strategy = run.spec.strategy;
        drop(runs);
        let r = &r;
        let measured = match (r.state, &r.last_good_hash) {
            (RolloutState::RolledBack, Some(good)) => good.as_str(),
            _ => r.hash.as_str(),
        };
        let mut s = GroupStatus {
            group_id: id,
            revision: r.revision,
            config_hash: r.hash.clone(),
            last_good_revision: r.last_good,
            last_good_config_hash: r.last_good_hash.clone(),
            state: r.state,
            strategy,
            matched: 0,
            applied: 0,
            applying: 0,
            failed: 0,
            pending: 0,
            healthy: 0,
            unhealthy: 0,
            drifted: 0,
            failures: r
                .failures
                .iter()
                .map(|(agent_id, message)| AgentFailure {
                    agent_id: agent_id.clone(),
                    message: message.clone(),
                })
                .collect(),
            current_step: r.steps.len().checked_sub(1).map(|i| i as u32),
            steps: r
                .steps
                .iter()
                .enumerate()
                .map(|(i, st)| RolloutStepStatus {
                    index: i as u32,
                    agents: st.agents.len() as u32,
                    last: st.last,
                    started_at: st.started_at,
                    healthy_at: st.healthy_at,
                })
                .collect(),
            message: r.message.clone(),
            updated_at: r.updated_at,
            driver: r.driver.clone(),
        };
        // The record keeps the failures seen up to the moment the rollout stopped; agents that
        // reported FAILED after that are counted too, so they are named too.
        let name_late = matches!(r.state, RolloutState::Failed | RolloutState::InProgress);
        let mut late = Vec::new();
        self.visit_members(id, |a| {
            count(&mut s, a, measured);
            // The record keys failures by the hex id: only failed agents are spelled out.
            if name_late
                && let Some(message) = plan::failure(a, &r.hash)
                && let agent_id = a.id.to_string()
                && !r.failures.contains_key(&agent_id)
            {
                late.push(AgentFailure { agent_id, message });
            }
        })
        .await?;
        if !late.is_empty() {
            s.failures.extend(late);
            s.failures.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        }
        Ok(s)
    }

    /// The status of a group the engine has not picked up yet (it was just created, or its
    /// first revision's event is still on its way): in progress, counted against its latest hash.
    async fn unsynced_status(&self, id: AgentGroupId) -> Result<GroupStatus, RolloutError> {
        let group = match self.store.get_group(id).await {
            Ok(g) => g,
            Err(StoreError::NotFound { .. }) => return Err(RolloutError::NotFound(id)),
            Err(err) => return Err(err.into()),
        };
        // Measured against what the group's agents are to run: a pin, else the latest.
        let (revision, hash) = match self.target_revision(id, &group).await {
            Ok((rev, _)) => (rev.revision, rev.hash),
            Err(_) => (group.config_revision, group.config_hash.clone()),
        };
        let mut s = GroupStatus {
            group_id: id,
            revision,
            config_hash: hash.clone(),
            last_good_revision: None,
            last_good_config_hash: None,
            state: RolloutState::InProgress,
            strategy: group.record.spec.rollout.strategy,
            matched: 0,
            applied: 0,
            applying: 0,
            failed: 0,
            pending: 0,
            healthy: 0,
            unhealthy: 0,
            drifted: 0,
            failures: Vec::new(),
            current_step: None,
            steps: Vec::new(),
            message: "waiting for the rollout engine to pick up this revision".to_owned(),
            updated_at: group.record.updated_at,
            driver: None,
        };
        let measured = hash;
        self.visit_members(id, |a| count(&mut s, a, &measured))
            .await?;
        Ok(s)
    }

    /// Starts the driver task; it stops with `shutdown`.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => self.tick().await,
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    }
}

impl crate::cluster::Driven for Rollouts {
    fn resync(&self) -> Pending<'_, ()> {
        Box::pin(self.reload_all())
    }

    fn take_over(&self, id: AgentGroupId) -> Pending<'_, Result<(), StoreError>> {
        Box::pin(self.sync_group(id))
    }
}

/// A REST action on a group's rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Rollback,
}

/// Applies a REST action to a record.
fn apply_action(
    r: &mut Rollout,
    action: Action,
    now: chrono::DateTime<Utc>,
) -> Result<(), RolloutError> {
    let current = state_name(r.state);
    let refuse = |action| RolloutError::BadState {
        action,
        state: current.clone(),
    };
    match action {
        Action::Pause => match r.state {
            RolloutState::InProgress => {
                r.state = RolloutState::Paused;
                r.message = format!("paused at step {}", r.steps.len().saturating_sub(1));
            }
            RolloutState::Paused => {}
            _ => return Err(refuse("pause")),
        },
        Action::Resume => match r.state {
            RolloutState::Paused => {
                r.state = RolloutState::InProgress;
                r.message = format!("resumed revision {}", r.revision);
            }
            RolloutState::InProgress => {}
            _ => return Err(refuse("resume")),
        },
        Action::Rollback => match r.state {
            RolloutState::InProgress | RolloutState::Paused | RolloutState::Failed => {
                if r.last_good.is_none() {
                    return Err(RolloutError::NoLastGood(r.revision));
                }
                r.roll_back("requested", now);
            }
            RolloutState::RolledBack => {}
            RolloutState::Complete => return Err(refuse("roll back")),
        },
    }
    r.updated_at = now;
    Ok(())
}

/// How often an action retries when the record changed under it (another replica wrote).
const ACTION_ATTEMPTS: usize = 10;

/// Adds one member of the group to the counts of `s`, measured against `measured`.
fn count(s: &mut GroupStatus, a: &AgentRecord, measured: &str) {
    s.matched += 1;
    if a.is_drifted() {
        s.drifted += 1;
    }
    if a.remote_config_hash.as_deref() != Some(measured) {
        s.pending += 1;
    } else {
        match a.remote_config_status {
            ConfigStatus::Applied => s.applied += 1,
            ConfigStatus::Applying => s.applying += 1,
            ConfigStatus::Failed => s.failed += 1,
            ConfigStatus::Unset => s.pending += 1,
        }
    }
    match a.health.as_ref().map(|h| h.healthy) {
        Some(true) => s.healthy += 1,
        Some(false) => s.unhealthy += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use otaas_api::{AgentGroupSpec, PipelineSpec, RolloutSpec, Signal};

    use super::*;
    use crate::cluster::Cluster;
    use crate::policy::ConfigPolicy;
    use crate::registry::Registry;
    use crate::revisions::ConfigWriter;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_group_deleted_while_it_is_being_synced_is_forgotten_without_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("otaas.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let writer = ConfigWriter::new(store.clone(), Arc::new(ConfigPolicy::default()));
        let fleet = FleetView::new(
            Arc::new(Cluster::single("r-1".into())),
            store.clone(),
            Arc::new(Registry::new(std::time::Duration::from_secs(30))),
        );
        let rollouts = Rollouts::new(store.clone(), fleet, Arc::new(Metrics::new()));
        // Given a group the engine runs
        let pipeline = writer
            .create_pipeline(PipelineSpec {
                secrets: Default::default(),
                keep_secrets: false,
                name: "p".into(),
                description: String::new(),
                signals: vec![Signal::Logs],
                receivers: [(
                    "filelog".to_owned(),
                    serde_json::json!({ "include": ["/var/log/app.log"] }),
                )]
                .into(),
                processors: Vec::new(),
            })
            .await
            .unwrap()
            .value;
        // The group needs a complete pipeline: a receiver above, an exporter here.
        writer
            .create_binding(
                &crate::revisions::Actor::server(),
                otaas_api::ExporterBindingSpec {
                    secrets: Default::default(),
                    keep_secrets: false,
                    name: "out".into(),
                    pipeline_id: pipeline.id,
                    signals: None,
                    destinations: vec![otaas_api::DestinationSpec {
                        name: "console".into(),
                        kind: "debug".into(),
                        endpoint: None,
                        headers: Default::default(),
                        keep_headers: false,
                        tls: None,
                        config: serde_json::json!({}),
                    }],
                },
            )
            .await
            .unwrap();
        let group = writer
            .create_group(
                &crate::revisions::Actor::server(),
                AgentGroupSpec {
                    pinned_revision: None,
                    name: "g".into(),
                    selector: [("env".to_owned(), "x".to_owned())].into(),
                    pipeline_ids: vec![pipeline.id],
                    rollout: RolloutSpec::default(),
                },
            )
            .await
            .unwrap()
            .value;
        let id = group.record.id;
        rollouts.sync_group(id).await.unwrap();
        assert!(rollouts.runs.lock().await.contains_key(&id));
        // When the group and its latest revision were read, and then the group is deleted
        let read = store.get_group(id).await.unwrap();
        let latest = store.group_revision(id, None).await.unwrap();
        writer.delete_group(id).await.unwrap();
        // Then syncing from those reads is no error, and the group's rollout is forgotten
        rollouts.sync_to(id, &read, &latest, false).await.unwrap();
        assert!(!rollouts.runs.lock().await.contains_key(&id));
        assert_eq!(store.get_rollout(id).await.unwrap(), None);
    }
}

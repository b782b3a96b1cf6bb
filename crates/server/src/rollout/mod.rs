//! The rollout engine: for each agent group, which agents run which config revision, and when.
//!
//! Files: `plan.rs` (the state machine and its persisted record, no I/O), this file (the
//! engine: group events in, store and registry decisions out, the driver task), `rest.rs`
//! (`GET /agent-groups/{id}/status`, `POST /agent-groups/{id}/rollout/{pause,resume,rollback}`).
//!
//! Flow: a new group revision (the OpAMP sync task calls [`sync_group`]) starts a rollout from
//! the group's last good revision. The engine tells the registry, in one call
//! ([`Registry::set_rollout`](crate::opamp::registry::Registry::set_rollout)), the group's
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
//! With several replicas on PostgreSQL each replica currently drives rollouts on its own;
//! leader election (advisory lock per group) is left for later.

pub mod plan;
pub mod rest;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use otaas_api::{
    AgentFailure, AgentGroupId, GroupStatus, RolloutSpec, RolloutState, RolloutStepStatus,
};
use otaas_opamp::InstanceUid;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::opamp::registry::{AgentFilter, AgentRecord, ConfigStatus, GroupConfig};
use crate::state::AppState;
use crate::store::StoreError;
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
}

/// The engine's state; lives in `AppState`.
#[derive(Default)]
pub struct Rollouts {
    runs: Mutex<HashMap<AgentGroupId, Run>>,
    /// Records read from the store at start-up, picked up by the first `sync_group`.
    stored: Mutex<HashMap<AgentGroupId, Rollout>>,
}

fn state_name(s: RolloutState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads the stored rollout records (before the first group sync).
pub async fn load(state: &AppState) {
    match state.store.list_rollouts().await {
        Ok(rows) => {
            let mut stored = state.rollouts.stored.lock().await;
            for row in rows {
                match serde_json::from_str::<Rollout>(&row.state) {
                    Ok(r) => {
                        stored.insert(row.group_id, r);
                    }
                    Err(err) => {
                        tracing::warn!(group = %row.group_id, error = %err, "Skipping an unreadable stored rollout")
                    }
                }
            }
            tracing::info!(rollouts = stored.len(), "Loaded stored rollouts");
        }
        Err(err) => tracing::error!(error = %err, "Loading stored rollouts failed"),
    }
}

async fn config_at(
    state: &AppState,
    id: AgentGroupId,
    group: &crate::store::GroupRecord,
    revision: i64,
) -> Result<Arc<GroupConfig>, StoreError> {
    let rev = state.store.group_revision(id, Some(revision)).await?;
    Ok(Arc::new(GroupConfig::new(
        id,
        group.record.spec.selector.clone(),
        group.record.created_at,
        rev.revision,
        rev.yaml,
        rev.hash,
    )))
}

/// Brings the group's rollout up to date with the store after an event (new revision,
/// changed selector or rollout settings) or at start-up, and tells the registry.
pub async fn sync_group(state: &AppState, id: AgentGroupId) -> Result<(), StoreError> {
    let group = match state.store.get_group(id).await {
        Ok(g) => g,
        Err(StoreError::NotFound { .. }) => {
            remove_group(state, id).await;
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let latest = match state.store.group_revision(id, None).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => {
            remove_group(state, id).await;
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let now = Utc::now();
    let mut runs = state.rollouts.runs.lock().await;
    let previous = match runs.get(&id) {
        Some(run) => Some(run.rollout.clone()),
        None => state.rollouts.stored.lock().await.remove(&id),
    };
    let (rollout, is_new) = match previous {
        // Same revision: the record stands (selector or settings may have changed).
        Some(r) if r.revision == latest.revision => (r, false),
        Some(r) if r.revision < latest.revision => {
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
    };
    let target = config_at(state, id, &group, rollout.revision).await?;
    let good = match rollout.last_good {
        Some(rev) => Some(config_at(state, id, &group, rev).await?),
        None => None,
    };
    let mut run = Run {
        rollout,
        spec: group.record.spec.rollout.clone(),
        target,
        good,
        unsaved: is_new,
    };
    if run.rollout.state == RolloutState::InProgress {
        let members = members(state, id);
        if plan::advance(&mut run.rollout, &run.spec, &members, now) {
            run.unsaved = true;
        }
    }
    save_and_apply(state, id, &mut run).await;
    runs.insert(id, run);
    Ok(())
}

/// Forgets a deleted group's rollout.
pub async fn remove_group(state: &AppState, id: AgentGroupId) {
    state.rollouts.runs.lock().await.remove(&id);
    state.rollouts.stored.lock().await.remove(&id);
    crate::opamp::poke(state.agents.remove_group(id));
    if let Err(err) = state.store.delete_rollout(id).await {
        tracing::error!(group = %id, error = %err, "Deleting a rollout record failed");
    }
}

/// Every group again (start-up, or after missing events); groups gone are dropped.
pub async fn reload_all(state: &AppState) {
    let groups = match state.store.list_groups().await {
        Ok(groups) => groups,
        Err(err) => {
            tracing::error!(error = %err, "Listing agent groups failed");
            return;
        }
    };
    let ids: std::collections::HashSet<AgentGroupId> = groups.iter().map(|g| g.record.id).collect();
    for id in &ids {
        if let Err(err) = sync_group(state, *id).await {
            tracing::error!(group = %id, error = %err, "Loading a group's rollout failed");
        }
    }
    let gone: Vec<AgentGroupId> = state
        .rollouts
        .runs
        .lock()
        .await
        .keys()
        .filter(|id| !ids.contains(id))
        .copied()
        .collect();
    for id in gone {
        remove_group(state, id).await;
    }
}

fn members(state: &AppState, id: AgentGroupId) -> Vec<AgentRecord> {
    state.agents.list(&AgentFilter {
        group_id: Some(id),
        ..Default::default()
    })
}

/// Stores the record if it changed, then (only then) tells the registry.
async fn save_and_apply(state: &AppState, id: AgentGroupId, run: &mut Run) {
    if run.unsaved {
        let json = match serde_json::to_string(&run.rollout) {
            Ok(j) => j,
            Err(err) => {
                tracing::error!(group = %id, error = %err, "Encoding a rollout record failed");
                return;
            }
        };
        if let Err(err) = state.store.put_rollout(id, &json).await {
            tracing::error!(group = %id, error = %err, "Storing a rollout decision failed; will retry");
            return;
        }
        run.unsaved = false;
        state.metrics.inc(
            "otaas_rollout_transitions_total",
            &[("state", &state_name(run.rollout.state))],
        );
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
    crate::opamp::poke(state.agents.set_rollout(
        (*default).clone(),
        Some(run.target.clone()),
        &pinned,
    ));
}

/// Moves every in-progress rollout on once.
pub async fn tick(state: &AppState) {
    let now = Utc::now();
    let mut runs = state.rollouts.runs.lock().await;
    for (id, run) in runs.iter_mut() {
        if run.rollout.state == RolloutState::InProgress {
            let members = members(state, *id);
            if plan::advance(&mut run.rollout, &run.spec, &members, now) {
                tracing::info!(group = %id, state = ?run.rollout.state, message = %run.rollout.message, "Rollout moved on");
                run.unsaved = true;
            }
        }
        if run.unsaved {
            save_and_apply(state, *id, run).await;
        }
    }
}

/// Starts the driver task; it stops with the server.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => tick(&state).await,
                _ = state.shutdown.cancelled() => return,
            }
        }
    })
}

/// A REST action on a group's rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Rollback,
}

/// Pauses, resumes or rolls back; returns the status after the change.
pub async fn act(
    state: &AppState,
    id: AgentGroupId,
    action: Action,
) -> Result<GroupStatus, RolloutError> {
    // A request right after a config change is about the new revision, even if its event
    // has not reached the engine yet: catch up first.
    let latest = match state.store.get_group(id).await {
        Ok(g) => g.config_revision,
        Err(StoreError::NotFound { .. }) => return Err(RolloutError::NotFound(id)),
        Err(err) => return Err(err.into()),
    };
    let behind = state
        .rollouts
        .runs
        .lock()
        .await
        .get(&id)
        .is_none_or(|run| run.rollout.revision < latest);
    if behind {
        sync_group(state, id).await?;
    }
    let now = Utc::now();
    {
        let mut runs = state.rollouts.runs.lock().await;
        let run = runs.get_mut(&id).ok_or(RolloutError::NotFound(id))?;
        let r = &mut run.rollout;
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
        // Stored before anything is sent; a failed write leaves `unsaved` for the driver.
        run.unsaved = true;
        let json = serde_json::to_string(&run.rollout)
            .map_err(|e| StoreError::Corrupt(format!("encoding rollout record: {e}")))?;
        state.store.put_rollout(id, &json).await?;
        run.unsaved = false;
        tracing::info!(group = %id, ?action, message = %run.rollout.message, "Rollout action");
        save_and_apply(state, id, run).await;
    }
    status(state, id).await
}

/// `GET /agent-groups/{id}/status`.
pub async fn status(state: &AppState, id: AgentGroupId) -> Result<GroupStatus, RolloutError> {
    let runs = state.rollouts.runs.lock().await;
    let Some(run) = runs.get(&id) else {
        drop(runs);
        return unsynced_status(state, id).await;
    };
    let r = &run.rollout;
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
        strategy: run.spec.strategy,
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
    };
    count(state, &mut s, measured);
    Ok(s)
}

/// The status of a group the engine has not picked up yet (it was just created, or its
/// first revision's event is still on its way): in progress, counted against its latest hash.
async fn unsynced_status(state: &AppState, id: AgentGroupId) -> Result<GroupStatus, RolloutError> {
    let group = match state.store.get_group(id).await {
        Ok(g) => g,
        Err(StoreError::NotFound { .. }) => return Err(RolloutError::NotFound(id)),
        Err(err) => return Err(err.into()),
    };
    let mut s = GroupStatus {
        group_id: id,
        revision: group.config_revision,
        config_hash: group.config_hash.clone(),
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
    };
    let measured = group.config_hash.clone();
    count(state, &mut s, &measured);
    Ok(s)
}

/// Fills the counts of `s` from the group's members, measured against `measured`.
/// Counted in place (status is polled often, e.g. while waiting for a rollout: copying every
/// member each time would cost more than the rollout itself on a large fleet).
fn count(state: &AppState, s: &mut GroupStatus, measured: &str) {
    let filter = AgentFilter {
        group_id: Some(s.group_id),
        ..Default::default()
    };
    state.agents.visit(&filter, |a| {
        s.matched += 1;
        if is_drifted(a) {
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
    });
}

/// Drift: the agent says it applied its desired config, but the effective config it reports
/// hashes to something else. Both hashes are of the real documents — the desired hash is the
/// SHA-256 of the YAML we sent, the effective hash is computed from the body the agent reported,
/// before redaction (see `opamp/registry.rs`) — so secrets redacted for storage never cause
/// a false drift.
pub fn is_drifted(a: &AgentRecord) -> bool {
    match (
        a.desired_config_hash.as_deref(),
        a.effective_config_hash.as_deref(),
    ) {
        (Some(desired), Some(effective)) => {
            a.remote_config_status == ConfigStatus::Applied
                && a.remote_config_hash.as_deref() == Some(desired)
                && effective != desired
        }
        _ => false,
    }
}

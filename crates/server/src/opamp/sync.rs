//! Background tasks of the OpAMP server:
//! - group sync: keeps the registry's group configs current from the store and the core's
//!   change events, and pokes WebSocket agents whose desired config changed;
//! - flusher: writes changed agents to the store in one transaction per second (not one per
//!   heartbeat);
//! - sweep: marks agents silent for three heartbeat intervals as disconnected.
//!
//! Lifecycle: [`spawn`] starts them; they stop when `AppState::shutdown` is cancelled, and
//! [`Background::finish`] waits for them and does the final flush.

use std::time::Duration;

use otaas_api::AgentGroupId;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::registry::{AgentRecord, GroupConfig};
use crate::events::Event;
use crate::state::AppState;
use crate::store::{AgentRow, StoreError};

/// How often changed agents are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often silent agents are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct Background {
    state: AppState,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Waits for the tasks (after shutdown was cancelled) and flushes what is left.
    pub(crate) async fn finish(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        flush(&self.state).await;
    }
}

/// Loads the persisted agents and the groups (before serving, so the first agent already
/// finds its group).
pub(crate) async fn load(state: &AppState) {
    match state.store.list_agents().await {
        Ok(rows) => {
            let records: Vec<AgentRecord> = rows
                .into_iter()
                .filter_map(|row| match serde_json::from_str(&row.state) {
                    Ok(rec) => Some(rec),
                    Err(err) => {
                        tracing::warn!(agent = %row.id, error = %err, "Skipping an unreadable stored agent");
                        None
                    }
                })
                .collect();
            tracing::info!(agents = records.len(), "Loaded stored agents");
            state.agents.load(records);
        }
        Err(err) => tracing::error!(error = %err, "Loading stored agents failed"),
    }
    reload_all(state).await;
}

pub(crate) fn spawn(state: AppState) -> Background {
    let tasks = vec![
        tokio::spawn(group_sync(state.clone())),
        tokio::spawn(flusher(state.clone())),
        tokio::spawn(sweeper(state.clone())),
    ];
    Background { state, tasks }
}

async fn load_group(state: &AppState, id: AgentGroupId) -> Result<Option<GroupConfig>, StoreError> {
    let group = match state.store.get_group(id).await {
        Ok(g) => g,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(err),
    };
    let revision = match state.store.group_revision(id, None).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(err),
    };
    Ok(Some(GroupConfig::new(
        id,
        group.record.spec.selector,
        group.record.created_at,
        revision.revision,
        revision.yaml,
        revision.hash,
    )))
}

async fn reload_all(state: &AppState) {
    let groups = match state.store.list_groups().await {
        Ok(groups) => groups,
        Err(err) => {
            tracing::error!(error = %err, "Listing agent groups failed");
            return;
        }
    };
    let mut configs = Vec::with_capacity(groups.len());
    for g in groups {
        match load_group(state, g.record.id).await {
            Ok(Some(cfg)) => configs.push(cfg),
            Ok(None) => {}
            Err(err) => {
                tracing::error!(group = %g.record.id, error = %err, "Loading a group config failed")
            }
        }
    }
    poke(state.agents.set_groups(configs));
}

fn poke(notifies: Vec<std::sync::Arc<tokio::sync::Notify>>) {
    for n in notifies {
        n.notify_one();
    }
}

async fn group_sync(state: AppState) {
    let mut rx = state.events.subscribe();
    // Anything that happened between `load` and the subscription is caught by this reload.
    reload_all(&state).await;
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = state.shutdown.cancelled() => return,
        };
        match event {
            Ok(Event::GroupRevision { group_id, .. }) | Ok(Event::GroupChanged { group_id }) => {
                match load_group(&state, group_id).await {
                    Ok(Some(cfg)) => {
                        tracing::debug!(group = %group_id, revision = cfg.revision, "Group config updated");
                        poke(state.agents.upsert_group(cfg));
                    }
                    Ok(None) => poke(state.agents.remove_group(group_id)),
                    Err(err) => {
                        tracing::error!(group = %group_id, error = %err, "Loading a group config failed");
                    }
                }
            }
            Ok(Event::GroupDeleted { group_id }) => poke(state.agents.remove_group(group_id)),
            // Events are hints: after missing some, resynchronise from the store.
            Err(RecvError::Lagged(_)) => reload_all(&state).await,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Writes the agents changed since the last flush in one transaction; on failure they stay
/// dirty and go out with the next flush.
async fn flush(state: &AppState) {
    let records = state.agents.take_dirty();
    if records.is_empty() {
        return;
    }
    let rows: Vec<AgentRow> = records
        .iter()
        .filter_map(|r| {
            Some(AgentRow {
                id: r.id.clone(),
                group_id: r.group_id.map(|g| g.to_string()),
                connected: r.connected,
                last_seen: r.last_seen,
                state: serde_json::to_string(r).ok()?,
            })
        })
        .collect();
    if let Err(err) = state.store.upsert_agents(&rows).await {
        tracing::error!(error = %err, agents = rows.len(), "Persisting agent state failed; will retry");
        state.agents.mark_dirty(rows.into_iter().map(|r| r.id));
    }
}

async fn flusher(state: AppState) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => flush(&state).await,
            _ = state.shutdown.cancelled() => return,
        }
    }
}

async fn sweeper(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let n = state.agents.sweep_silent(chrono::Utc::now());
                if n > 0 {
                    tracing::info!(agents = n, "Marked silent agents disconnected");
                }
            }
            _ = state.shutdown.cancelled() => return,
        }
    }
}

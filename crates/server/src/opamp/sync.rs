//! Background tasks of the OpAMP server:
//! - group sync: feeds the core's change events to the rollout engine (`crate::rollout`),
//!   which decides which config each agent gets and pokes the WebSockets concerned;
//! - flusher: writes changed agents to the store every 200 ms (or as soon as 2,000 are
//!   waiting), in transactions of a few hundred rows (not one transaction per heartbeat),
//!   and the `last_seen` of agents that only sent heartbeats every 5 s;
//! - sweep: marks agents silent for three heartbeat intervals as disconnected.
//!
//! Lifecycle: [`spawn`] starts them; they stop when the shutdown token is cancelled, and
//! [`Background::finish`] waits for them and does the final flush.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::OpampDeps;
use crate::events::Event;
use crate::fleet::AgentRecord;
use crate::store::AgentRow;

/// How often changed agents are written: every change of that period in one transaction of
/// multi-row statements (10,000 heartbeating agents are a few statements, not 10,000
/// transactions), soon enough that other replicas see a status within a rollout tick or two.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Agent rows per transaction. Small on purpose: after a reconnect storm a flush has
/// thousands of agents to write, and building all their rows at once made megabytes of
/// short-lived buffers that the allocator kept (about 4 KiB of RSS per agent on PostgreSQL).
const FLUSH_CHUNK: usize = 250;
/// How often the `last_seen` of agents that only sent a heartbeat is written: a heartbeat
/// changes nothing else, so rewriting each agent's whole record for it (333 agents a second
/// at 10,000 agents and 30 s) cost most of an idle server's database work. The stored time
/// lags by at most this much (heartbeats come every 30 s by default).
const TOUCH_EVERY: Duration = Duration::from_secs(5);
/// How often silent agents are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct Background {
    state: OpampDeps,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Waits for the tasks (after shutdown was cancelled) and flushes what is left.
    pub(crate) async fn finish(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        flush(&self.state).await;
        flush_touched(&self.state).await;
    }
}

/// Loads the persisted agents and the groups (before serving, so the first agent already
/// finds its group).
pub(crate) async fn load(state: &OpampDeps) {
    match state.store.list_agents().await {
        Ok(rows) => {
            let records: Vec<AgentRecord> = rows
                .into_iter()
                .filter_map(|row| match serde_json::from_str::<AgentRecord>(&row.state) {
                    Ok(mut rec) => {
                        // Heartbeats move only the column (`Store::touch_agents`).
                        rec.last_seen = rec.last_seen.max(row.last_seen);
                        Some(rec)
                    }
                    Err(err) => {
                        tracing::warn!(agent = %row.id, error = %err, "Skipping an unreadable stored agent");
                        None
                    }
                })
                .collect();
            tracing::info!(agents = records.len(), "Loaded stored agents");
            // Rows of other live replicas are loaded too (a reconnecting agent's last known
            // state saves a resend), but never written back from here (see `flush`).
            state.agents.load(records);
        }
        Err(err) => tracing::error!(error = %err, "Loading stored agents failed"),
    }
    state.rollouts.reload_all().await;
}

pub(crate) fn spawn(state: OpampDeps) -> Background {
    let tasks = vec![
        tokio::spawn(group_sync(state.clone())),
        tokio::spawn(flusher(state.clone())),
        tokio::spawn(sweeper(state.clone())),
    ];
    Background { state, tasks }
}

async fn group_sync(state: OpampDeps) {
    let mut rx = state.events.subscribe();
    // Anything that happened between `load` and the subscription is caught by this reload.
    refresh_known_secrets(&state).await;
    state.rollouts.reload_all().await;
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = state.shutdown.cancelled() => return,
        };
        match event {
            // Which revision each agent gets is the rollout engine's decision.
            Ok(Event::GroupRevision { group_id, .. }) | Ok(Event::GroupChanged { group_id }) => {
                // Before agents get the new config and report it back.
                refresh_known_secrets(&state).await;
                // Whoever hears of a change first drives it if nobody does yet.
                state.cluster.claim(group_id).await;
                if let Err(err) = state.rollouts.sync_group(group_id).await {
                    tracing::error!(group = %group_id, error = %err, "Loading a group config failed");
                }
            }
            Ok(Event::GroupDeleted { group_id }) => state.rollouts.remove_group(group_id).await,
            // Another replica stored a rollout decision: follow it (or, when we drive the
            // group, take it as the new base).
            Ok(Event::RolloutChanged { group_id, version }) => {
                if let Err(err) = state.rollouts.refresh(group_id, version).await {
                    tracing::error!(group = %group_id, error = %err, "Loading a rollout decision failed");
                }
            }
            // Sessions of revoked tokens are `opamp::tokens`' business.
            Ok(Event::TokenRevoked { .. }) => {}
            // Events are hints: after missing some, resynchronise from the store.
            Err(RecvError::Lagged(_)) => {
                refresh_known_secrets(&state).await;
                state.rollouts.reload_all().await
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Reloads the secret values agents' reports are redacted by. On failure the previous set
/// stays (key-name redaction still applies) and the next change tries again.
async fn refresh_known_secrets(state: &OpampDeps) {
    match crate::secrets::known(state.store.as_ref()).await {
        Ok(known) => state.agents.set_known_secrets(known),
        Err(err) => tracing::warn!(error = %err, "Loading the known secret values failed"),
    }
}

/// Writes the agents changed since the last flush, [`FLUSH_CHUNK`] per transaction (one
/// multi-row statement each); on failure they stay dirty and go out with the next flush.
async fn flush(state: &OpampDeps) {
    let cluster = &state.cluster;
    loop {
        let mut rows: Vec<AgentRow> = Vec::new();
        let taken = state.agents.take_dirty_with(FLUSH_CHUNK, |r| {
            // With other replicas, only the agents held here: the rest of the registry is
            // what was loaded at start-up, and those rows belong to whoever holds the agent
            // now.
            if cluster.is_shared() && r.replica_id.as_deref() != Some(cluster.replica_id()) {
                return;
            }
            if let Ok(json) = serde_json::to_string(r) {
                rows.push(AgentRow {
                    id: r.id.to_string(),
                    group_id: r.group_id.map(|g| g.to_string()),
                    connected: r.connected,
                    last_seen: r.last_seen,
                    state: json,
                    replica_id: r.replica_id.clone(),
                });
            }
        });
        if let Err(err) = state.store.upsert_agents(&rows).await {
            tracing::error!(error = %err, agents = rows.len(), "Persisting agent state failed; will retry");
            state.agents.mark_dirty(rows.into_iter().map(|r| r.id));
            return;
        }
        if taken < FLUSH_CHUNK {
            return;
        }
    }
}

/// Writes the `last_seen` of agents heard from without other news (heartbeats, HTTP polls).
async fn flush_touched(state: &OpampDeps) {
    let seen = state.agents.take_touched();
    if seen.is_empty() {
        return;
    }
    // Not retried: the agent's next heartbeat touches it again.
    if let Err(err) = state.store.touch_agents(&seen).await {
        tracing::warn!(error = %err, agents = seen.len(), "Persisting last-seen times failed");
    }
}

async fn flusher(state: OpampDeps) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut touch_tick = tokio::time::interval(TOUCH_EVERY);
    touch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => flush(&state).await,
            _ = touch_tick.tick() => flush_touched(&state).await,
            // Many changes at once (a reconnect storm): write them now.
            _ = state.agents.many_dirty() => flush(&state).await,
            _ = state.shutdown.cancelled() => return,
        }
    }
}

async fn sweeper(state: OpampDeps) {
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

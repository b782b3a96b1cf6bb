//! In-process change events, for the OpAMP server and the rollout engine.
//!
//! Lifecycle: one [`Events`] lives for the life of the server; each consumer calls
//! [`Events::subscribe`] once and loops on `recv()`. The channel is bounded: a consumer that
//! falls behind gets `RecvError::Lagged` and must resynchronise from the store (events are
//! hints; the store is the truth). Events are sent after the transaction committed.
//!
//! With several replicas on PostgreSQL, local events are also forwarded to the others through
//! `NOTIFY`, and theirs arrive here through [`Events::publish_remote`] (see `cluster.rs`).

use std::sync::{Arc, OnceLock};

use otaas_api::{AgentGroupId, TokenId};
use tokio::sync::{broadcast, mpsc};

use crate::metrics::Metrics;
use crate::revisions::Written;
use crate::store::GroupRevision;

/// Something other parts of the server react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A group's rendered config changed: a new revision exists (hash = SHA-256 hex of the YAML).
    GroupRevision {
        group_id: AgentGroupId,
        revision: i64,
        hash: String,
    },
    /// A group was created or its object changed (selector, rollout, ...), with or without a
    /// new revision. Membership of agents may have changed.
    GroupChanged { group_id: AgentGroupId },
    /// A group was deleted.
    GroupDeleted { group_id: AgentGroupId },
    /// Another replica stored a new rollout decision for the group (record `version`); only
    /// ever received from the cluster (see `cluster.rs`), never published locally.
    RolloutChanged {
        group_id: AgentGroupId,
        version: i64,
    },
    /// A token was revoked: OpAMP sessions opened with it end (see `opamp/tokens.rs`).
    TokenRevoked { token_id: TokenId },
}

/// Sender side of the event bus; clone freely.
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    /// With several replicas: where local events also go, to be sent to the other replicas
    /// (set once by `cluster.rs`; unset on SQLite).
    forward: Arc<OnceLock<mpsc::UnboundedSender<Event>>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl Events {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            forward: Arc::default(),
        }
    }

    /// Also sends every later local event to `to` (the cluster's NOTIFY forwarder).
    pub fn forward_to(&self, to: mpsc::UnboundedSender<Event>) {
        let _ = self.forward.set(to);
    }

    /// Delivers an event that came from another replica to this process's consumers only.
    pub fn publish_remote(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Sends an event (and forwards it to the other replicas, if any); having no subscriber
    /// is fine.
    pub fn publish(&self, event: Event) {
        if let Some(forward) = self.forward.get() {
            let _ = forward.send(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// Announces the revisions a write created.
    pub fn publish_revisions(&self, revisions: &[GroupRevision]) {
        for r in revisions {
            self.publish(Event::GroupRevision {
                group_id: r.group_id,
                revision: r.revision,
                hash: r.hash.clone(),
            });
        }
    }

    /// Announces what a committed write produced (its new revisions) and counts them.
    pub fn announce<T>(&self, metrics: &Metrics, written: &Written<T>) {
        for _ in &written.revisions {
            metrics.inc("otaas_group_revisions_total", &[]);
        }
        self.publish_revisions(&written.revisions);
    }
}

//! In-process change events, for the OpAMP server and the rollout engine.
//!
//! Lifecycle: one [`Events`] lives in `AppState` for the life of the server; each consumer calls
//! [`Events::subscribe`] once and loops on `recv()`. The channel is bounded: a consumer that
//! falls behind gets `RecvError::Lagged` and must resynchronise from the store (events are
//! hints; the store is the truth). Events are sent after the transaction committed.

use otaas_api::AgentGroupId;
use tokio::sync::broadcast;

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
}

/// Sender side of the event bus; clone freely.
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
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
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Sends an event; having no subscriber is fine.
    pub fn publish(&self, event: Event) {
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
}

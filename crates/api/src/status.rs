//! `GET /api/v1/agent-groups/{id}/status`: where a group's rollout stands and how its agents are
//! doing. The rollout engine may change how the state is computed; this shape stays.

use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientError};
use crate::ids::AgentGroupId;

/// Where the rollout of a group's current revision stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Some matched agents have not yet applied the current revision.
    InProgress,
    /// Every matched, connected agent applied the current revision (or none matched).
    Complete,
    /// Agents rejected the current revision.
    Failed,
    /// The rollout failed and the group went back to its last good revision.
    RolledBack,
    /// Stopped by an operator.
    Paused,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::InProgress => "in_progress",
            RolloutState::Complete => "complete",
            RolloutState::Failed => "failed",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Paused => "paused",
        }
    }
}

/// One agent that failed to apply the current revision, with its own words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFailure {
    /// Instance uid (32 hex digits).
    pub agent_id: String,
    /// The agent's error message for the config (OpAMP `RemoteConfigStatus.error_message`).
    pub message: String,
}

/// A group's rollout state and agent counts (each agent is in exactly one of applied,
/// applying, failed, pending; drifted agents are also counted as applied).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group_id: AgentGroupId,
    /// The group's current config revision (its `config_revision`).
    pub revision: i64,
    /// SHA-256 (hex) of the current revision's config.
    pub config_hash: String,
    pub state: RolloutState,
    /// Agents whose labels put them in this group (connected or not).
    pub matched: u64,
    /// Reported APPLIED for the current hash.
    pub applied: u64,
    /// Reported APPLYING for the current hash.
    pub applying: u64,
    /// Reported FAILED for the current hash.
    pub failed: u64,
    /// Not (yet) reporting on the current hash (includes disconnected agents).
    pub pending: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    /// Applied, but their effective config differs from the current config.
    pub drifted: u64,
    /// The agents that failed, and why.
    #[serde(default)]
    pub failures: Vec<AgentFailure>,
}

impl Client {
    /// `GET /api/v1/agent-groups/{id}/status`.
    pub async fn agent_group_status(&self, id: AgentGroupId) -> Result<GroupStatus, ClientError> {
        self.get(&format!("/agent-groups/{id}/status")).await
    }
}

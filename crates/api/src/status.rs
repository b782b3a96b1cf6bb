//! `GET /api/v1/agent-groups/{id}/status`: where a group's rollout stands, and the
//! `POST .../rollout/{pause,resume,rollback}` answers (the same document).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AgentGroupId;
use crate::types::RolloutStrategy;

/// Where a group's latest revision stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Steps are being pushed and gated on health.
    InProgress,
    /// Every step passed: the revision is the group's last good one.
    Complete,
    /// Stopped on more failures than `max_failures`; agents already moved keep the revision,
    /// the others stay on the last good one.
    Failed,
    /// Every agent was sent back to the last good revision (automatically or by request).
    RolledBack,
    /// Stopped by request; `resume` continues from the current step.
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

    /// True when nothing more will happen without a new revision or a request.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::RolledBack)
    }
}

/// An agent that failed the rollout, and why (its own error message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFailure {
    pub agent_id: String,
    pub message: String,
}

/// One step of a rollout, as started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStepStatus {
    /// 0-based position in the rollout.
    pub index: u32,
    /// Agents moved to the new revision in this step.
    pub agents: u32,
    /// The last step sends the revision to every remaining (and every joining) agent.
    pub last: bool,
    pub started_at: DateTime<Utc>,
    /// When every connected agent of the step had applied it healthy (bake starts then).
    #[serde(default)]
    pub healthy_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/agent-groups/{id}/status`.
///
/// Counts are over the group's current members and measured against `config_hash` — except
/// in state `rolled_back`, where they are measured against `last_good_config_hash`, the config
/// the agents were sent back to. Each agent is in exactly one of applied, applying, failed,
/// pending; drifted agents are also counted as applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group_id: AgentGroupId,
    /// The group's latest config revision (the one rolling out or rolled out).
    pub revision: i64,
    /// SHA-256 (hex) of that revision's YAML.
    pub config_hash: String,
    /// The revision agents fall back to (the last one that completed a rollout).
    pub last_good_revision: Option<i64>,
    pub last_good_config_hash: Option<String>,
    pub state: RolloutState,
    pub strategy: RolloutStrategy,
    /// Agents whose labels match the group.
    pub matched: u64,
    /// Reported APPLIED for the measured hash (drifted agents included).
    pub applied: u64,
    pub applying: u64,
    /// Reported FAILED for the measured hash.
    pub failed: u64,
    /// Not yet reported anything for the measured hash (including agents waiting for their step).
    pub pending: u64,
    pub healthy: u64,
    pub unhealthy: u64,
    /// Say they applied their desired config but run something else (effective hash differs).
    pub drifted: u64,
    /// Agents that failed this rollout (config rejected, or unhealthy after applying).
    #[serde(default)]
    pub failures: Vec<AgentFailure>,
    /// 0-based index of the current (or last) step; `None` when no step ran.
    pub current_step: Option<u32>,
    /// The steps started so far, in order.
    #[serde(default)]
    pub steps: Vec<RolloutStepStatus>,
    /// One line for humans, e.g. "rolled back to revision 3: 2 agents failed (max_failures 0)".
    pub message: String,
    pub updated_at: DateTime<Utc>,
    /// The `otaas serve` replica (`--replica-id`) that drives this rollout (last wrote it).
    #[serde(default)]
    pub driver: Option<String>,
}

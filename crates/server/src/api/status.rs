//! `GET /api/v1/agent-groups/{id}/status`: a group's rollout state and agent counts, computed
//! from the OpAMP registry against the group's current config hash. Until the rollout engine
//! (with stored rollout state) exists, the state follows from what agents report alone.

use axum::Json;
use axum::extract::{Path, State};
use otaas_api::AgentGroupId;
use otaas_api::status::{AgentFailure, GroupStatus, RolloutState};

use super::ApiError;
use crate::opamp::registry::{AgentFilter, AgentRecord, ConfigStatus};
use crate::state::AppState;

pub(super) async fn group_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GroupStatus>, ApiError> {
    let id: AgentGroupId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("agent group {id} not found")))?;
    let group = s.store.get_group(id).await?;
    // The registry learns about new revisions through events: until it has this one, agents
    // may still be matched against the previous config, so nothing can be complete yet.
    let synced = s.agents.group_revision(id) == Some(group.config_revision);
    let agents = s.agents.list(&AgentFilter {
        group_id: Some(id),
        ..AgentFilter::default()
    });
    Ok(Json(compute(
        id,
        group.config_revision,
        &group.config_hash,
        synced,
        &agents,
    )))
}

/// The status of a group whose current config hash is `hash`, given its agents.
fn compute(
    id: AgentGroupId,
    revision: i64,
    hash: &str,
    synced: bool,
    agents: &[AgentRecord],
) -> GroupStatus {
    let mut st = GroupStatus {
        group_id: id,
        revision,
        config_hash: hash.to_owned(),
        state: RolloutState::InProgress,
        matched: agents.len() as u64,
        applied: 0,
        applying: 0,
        failed: 0,
        pending: 0,
        healthy: 0,
        unhealthy: 0,
        drifted: 0,
        failures: Vec::new(),
    };
    let mut waiting_on_connected = 0;
    for a in agents {
        match a.health.as_ref().map(|h| h.healthy) {
            Some(true) => st.healthy += 1,
            Some(false) => st.unhealthy += 1,
            None => {}
        }
        let current = a.remote_config_hash.as_deref() == Some(hash);
        match (current, a.remote_config_status) {
            (true, ConfigStatus::Applied) => {
                st.applied += 1;
                if a.effective_config_hash
                    .as_deref()
                    .is_some_and(|e| e != hash)
                {
                    st.drifted += 1;
                }
            }
            (true, ConfigStatus::Applying) => {
                st.applying += 1;
                waiting_on_connected += usize::from(a.connected);
            }
            (true, ConfigStatus::Failed) => {
                st.failed += 1;
                st.failures.push(AgentFailure {
                    agent_id: a.id.clone(),
                    message: a.remote_config_error.clone().unwrap_or_default(),
                });
            }
            _ => {
                st.pending += 1;
                waiting_on_connected += usize::from(a.connected);
            }
        }
    }
    st.state = if !synced {
        RolloutState::InProgress
    } else if st.failed > 0 {
        RolloutState::Failed
    } else if waiting_on_connected == 0 {
        RolloutState::Complete
    } else {
        RolloutState::InProgress
    };
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, hash: Option<&str>, status: ConfigStatus, connected: bool) -> AgentRecord {
        let mut a: AgentRecord = serde_json::from_value(serde_json::json!({ "id": id })).unwrap();
        a.remote_config_hash = hash.map(str::to_owned);
        a.remote_config_status = status;
        a.connected = connected;
        a
    }

    #[test]
    fn states_follow_the_agents() {
        let id = AgentGroupId::new();
        // No agents: nothing to wait for.
        assert_eq!(compute(id, 1, "h", true, &[]).state, RolloutState::Complete);
        // Not yet synced: in progress whatever the agents say.
        assert_eq!(
            compute(id, 1, "h", false, &[]).state,
            RolloutState::InProgress
        );
        let applied = agent("a", Some("h"), ConfigStatus::Applied, true);
        let old = agent("b", Some("old"), ConfigStatus::Applied, true);
        let gone = agent("c", Some("old"), ConfigStatus::Applied, false);
        let mut failed = agent("d", Some("h"), ConfigStatus::Failed, true);
        failed.remote_config_error = Some("unknown component kafka".into());

        let st = compute(id, 2, "h", true, &[applied.clone(), old.clone()]);
        assert_eq!(
            (st.state, st.applied, st.pending),
            (RolloutState::InProgress, 1, 1)
        );
        // A disconnected agent does not hold the rollout up, but counts as pending.
        let st = compute(id, 2, "h", true, &[applied.clone(), gone]);
        assert_eq!(
            (st.state, st.matched, st.pending),
            (RolloutState::Complete, 2, 1)
        );
        let st = compute(id, 2, "h", true, &[applied, failed]);
        assert_eq!(st.state, RolloutState::Failed);
        assert_eq!(
            st.failures,
            vec![AgentFailure {
                agent_id: "d".into(),
                message: "unknown component kafka".into()
            }]
        );
    }
}

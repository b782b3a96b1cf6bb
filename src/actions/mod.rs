//! The otaas actions (Terraform 1.14+ `action` blocks): pause, resume and roll back an agent
//! group's rollout through `POST /api/v1/agent-groups/{id}/rollout/{pause,resume,rollback}`.
//! They change no Terraform state; an engine without actions never sees them.

use std::time::Duration;

use async_trait::async_trait;
use otaas_api::status::{GroupStatus, RolloutState};
use otaas_api::{AgentGroupId, Client, ClientError};

use crate::framework::*;
use crate::resources::common::{boolean, client_or_diag, parse_duration, string};

/// How often a waiting rollback asks how far the agents got.
const POLL: Duration = Duration::from_millis(500);
/// How long a rollback waits for the agents by default.
const DEFAULT_TIMEOUT: &str = "10m";

/// Adds every otaas action to the registry.
pub fn register(registry: Registry) -> Registry {
    registry
        .action(RolloutAction::Pause)
        .action(RolloutAction::Resume)
        .action(RolloutAction::Rollback)
}

/// One of the three rollout actions; they share the `group_id` config and differ in the call
/// (and the rollback's wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutAction {
    Pause,
    Resume,
    Rollback,
}

fn group_id_attr() -> Attribute {
    Attribute::required("group_id", Type::String)
        .description("Id of the agent group (`otaas_agent_group.x.id`).")
}

fn state_name(s: RolloutState) -> &'static str {
    match s {
        RolloutState::InProgress => "in_progress",
        RolloutState::Complete => "complete",
        RolloutState::Failed => "failed",
        RolloutState::RolledBack => "rolled_back",
        RolloutState::Paused => "paused",
    }
}

fn summary(st: &GroupStatus) -> String {
    format!(
        "revision {} is {} ({} matched, {} applied, {} applying, {} failed, {} pending)",
        st.revision,
        state_name(st.state),
        st.matched,
        st.applied,
        st.applying,
        st.failed,
        st.pending
    )
}

impl RolloutAction {
    fn verb(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Rollback => "roll back",
        }
    }

    async fn call(self, client: &Client, id: AgentGroupId) -> Result<GroupStatus, ClientError> {
        match self {
            RolloutAction::Pause => client.pause_rollout(id).await,
            RolloutAction::Resume => client.resume_rollout(id).await,
            RolloutAction::Rollback => client.rollback(id).await,
        }
    }

    /// Why the server refused, and what to do instead.
    fn refused(self, id: AgentGroupId, err: &ClientError) -> Diagnostic {
        let hint = match self {
            _ if err.is_not_found() => " Check group_id: no agent group has it.",
            RolloutAction::Rollback if err.is_conflict() => {
                " Only a rollout that is in progress, paused or failed can be rolled back. To \
                 send a group whose rollout completed back to an earlier config revision, set \
                 the otaas_agent_group's pinned_revision."
            }
            RolloutAction::Pause if err.is_conflict() => {
                " Only a rollout in progress can be paused."
            }
            RolloutAction::Resume if err.is_conflict() => " Only a paused rollout can be resumed.",
            _ => "",
        };
        Diagnostic::error(
            format!("Cannot {} the rollout", self.verb()),
            format!(
                "The server refused to {} the rollout of agent group {id}: {err}.{hint}",
                self.verb()
            ),
        )
        .at(AttributePath::attr("group_id"))
    }

    /// Polls the group until every agent runs the revision it was rolled back to.
    async fn wait_back(
        &self,
        ctx: &Context,
        client: &Client,
        id: AgentGroupId,
        timeout: Duration,
        progress: &Progress,
        diags: &mut Diagnostics,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_report = String::new();
        loop {
            match client.group_status(id).await {
                Ok(st) if st.state != RolloutState::RolledBack => {
                    // Someone started a new revision meanwhile: that rollout decides now.
                    diags.push(Diagnostic::warning(
                        "Rollback overtaken",
                        format!(
                            "While waiting for the rollback of agent group {id}, its rollout \
                             moved on: {}.",
                            summary(&st)
                        ),
                    ));
                    return;
                }
                Ok(st) => {
                    let back = st.applied;
                    let good = st
                        .last_good_revision
                        .map_or_else(|| "?".to_owned(), |r| r.to_string());
                    let report = format!("{back} of {} agents back on revision {good}", st.matched);
                    if report != last_report {
                        progress.report(report.clone());
                        last_report = report;
                    }
                    if st.pending == 0 && st.applying == 0 {
                        if st.failed > 0 {
                            diags.push(Diagnostic::error(
                                "Rollback failed on some agents",
                                format!(
                                    "Agent group {id} was rolled back to revision {good}, but \
                                     {} agents failed to apply it: {}.",
                                    st.failed,
                                    st.failures
                                        .iter()
                                        .map(|f| format!("{}: {}", f.agent_id, f.message))
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                ),
                            ));
                        }
                        return;
                    }
                }
                Err(e) if e.is_not_found() => {
                    diags.push(Diagnostic::error(
                        "Agent group disappeared",
                        format!("Agent group {id} was deleted while the rollback waited."),
                    ));
                    return;
                }
                Err(e) => tracing::warn!(error = %e, group = %id, "Reading rollout status failed"),
            }
            let cancelled = ctx.cancel_token().clone();
            tokio::select! {
                _ = cancelled.cancelled() => {
                    diags.push(Diagnostic::error(
                        "Rollback wait cancelled",
                        format!("Terraform stopped the provider while it waited for agent group {id}; the rollback goes on on the server."),
                    ));
                    return;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    diags.push(Diagnostic::error(
                        "Rollback timed out",
                        format!(
                            "Agent group {id} was rolled back, but after {} not every agent \
                             runs the last good revision yet ({last_report}). The rollback goes \
                             on on the server; GET /api/v1/agent-groups/{id}/status shows it.",
                            crate::resources::rollout::humantime(timeout)
                        ),
                    ));
                    return;
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

fn group_id(config: &Value, diags: &mut Diagnostics) -> Option<AgentGroupId> {
    let raw = string(config, "group_id")?;
    match raw.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            diags.error_at(
                AttributePath::attr("group_id"),
                "Invalid agent group id",
                format!("{raw:?} is not an agent group id (a UUID); use otaas_agent_group.x.id."),
            );
            None
        }
    }
}

#[async_trait]
impl Action for RolloutAction {
    fn type_name(&self) -> &'static str {
        match self {
            RolloutAction::Pause => "otaas_rollout_pause",
            RolloutAction::Resume => "otaas_rollout_resume",
            RolloutAction::Rollback => "otaas_rollout_rollback",
        }
    }

    fn schema(&self) -> Schema {
        match self {
            RolloutAction::Pause => Schema::new(
                "Pauses the rollout of an agent group: no further step starts, and agents keep \
                 the revision they run. Only a rollout in progress can be paused (pausing a \
                 paused one does nothing). Run it with `terraform apply \
                 -invoke=action.otaas_rollout_pause.<name>` (Terraform 1.14 or later).",
                vec![group_id_attr()],
            ),
            RolloutAction::Resume => Schema::new(
                "Resumes a paused rollout of an agent group from the step it stopped at \
                 (resuming one in progress does nothing). Run it with `terraform apply \
                 -invoke=action.otaas_rollout_resume.<name>` (Terraform 1.14 or later).",
                vec![group_id_attr()],
            ),
            RolloutAction::Rollback => Schema::new(
                "Rolls back the rollout of an agent group: every agent is sent the group's last \
                 good config revision (the last one whose rollout completed). Only a rollout \
                 in progress, paused or failed can be rolled back; a group whose rollout \
                 completed goes back to an earlier revision through `otaas_agent_group`'s \
                 `pinned_revision`. The group stays rolled back until its config changes again. \
                 Run it with `terraform apply -invoke=action.otaas_rollout_rollback.<name>` \
                 (Terraform 1.14 or later); with `wait` it reports how many agents are back \
                 as they apply the revision.",
                vec![
                    group_id_attr(),
                    Attribute::optional("wait", Type::Bool).description(
                        "Wait until every agent of the group runs the last good revision \
                         again (default `true`); the action fails when some reject it or \
                         `timeout` passes.",
                    ),
                    Attribute::optional("timeout", Type::String).description(
                        "How long to wait, as a duration such as `90s` or `10m` (default \
                         `10m`).",
                    ),
                ],
            ),
        }
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        group_id(config, diags);
        if *self == RolloutAction::Rollback
            && let Some(Value::String(t)) = config.get("timeout")
            && parse_duration(t).is_none()
        {
            diags.error_at(
                AttributePath::attr("timeout"),
                "Invalid duration",
                format!("timeout must be a duration such as \"90s\" or \"10m\"; got {t:?}."),
            );
        }
    }

    async fn plan(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) {
        // With a known group, say at plan time when it does not exist.
        let Some(id) = group_id(config, diags) else {
            return;
        };
        let Some(client) = client_or_diag(ctx, diags) else {
            return;
        };
        if let Err(e) = client.group_status(id).await
            && e.is_not_found()
        {
            diags.push(self.refused(id, &e));
        }
    }

    async fn invoke(
        &self,
        ctx: &Context,
        config: &Value,
        progress: &Progress,
        diags: &mut Diagnostics,
    ) {
        let Some(id) = group_id(config, diags) else {
            return;
        };
        let Some(client) = client_or_diag(ctx, diags) else {
            return;
        };
        let st = match self.call(&client, id).await {
            Ok(st) => st,
            Err(e) => {
                diags.push(self.refused(id, &e));
                return;
            }
        };
        progress.report(format!("agent group {id}: {}", summary(&st)));
        if *self != RolloutAction::Rollback || !boolean(config, "wait").unwrap_or(true) {
            return;
        }
        let timeout = string(config, "timeout")
            .and_then(|t| parse_duration(&t))
            .or_else(|| parse_duration(DEFAULT_TIMEOUT))
            .unwrap_or(Duration::from_secs(600));
        self.wait_back(ctx, &client, id, timeout, progress, diags)
            .await;
    }
}

//! Waiting for the rollouts a write started, for every resource whose change reaches agents:
//! the `wait_for_rollout` / `rollout_timeout` settings (per resource, else the provider block,
//! else built-in defaults), polling each changed group's status concurrently, and the
//! diagnostics that name the group, its failing agents and their errors.

use std::time::Duration;

use otaas_api::status::{GroupStatus, RolloutState};
use otaas_api::{AgentGroup, AgentGroupId, Client, GroupRollout};

use super::common::{LOCAL_ATTRS, boolean, parse_duration, string};
use crate::framework::*;

/// The built-in `rollout_timeout`, when neither the resource nor the provider block sets one.
pub(crate) const DEFAULT_TIMEOUT: &str = "10m";
/// How often apply asks the server how the rollout is going.
const POLL: Duration = Duration::from_millis(500);
/// After the first failure, how long apply waits for the other agents' reports before it fails.
const FAILURE_SETTLE: Duration = Duration::from_secs(5);
/// At most this many failing agents are named in a diagnostic (the count says the rest).
const MAX_NAMED_FAILURES: usize = 10;

/// One group revision to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub group_id: AgentGroupId,
    pub group_name: String,
    pub config_revision: i64,
    pub config_hash: String,
    /// The group is pinned to `config_revision`, which may be older than the status's: only
    /// its hash ends the wait.
    pub pinned: bool,
}

impl From<&GroupRollout> for Target {
    fn from(r: &GroupRollout) -> Self {
        Target {
            group_id: r.group_id,
            group_name: r.group_name.clone(),
            config_revision: r.config_revision,
            config_hash: r.config_hash.clone(),
            pinned: false,
        }
    }
}

impl From<&AgentGroup> for Target {
    fn from(g: &AgentGroup) -> Self {
        Target {
            group_id: g.id,
            group_name: g.name.clone(),
            config_revision: g.config_revision,
            config_hash: g.config_hash.clone(),
            pinned: false,
        }
    }
}

/// Whether and how long apply waits, once resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitSettings {
    pub wait: bool,
    pub timeout: Duration,
}

/// The provider block's defaults (built-in ones where it sets none).
pub(crate) fn provider_defaults(ctx: &Context) -> WaitSettings {
    let config = ctx.provider_config().ok();
    WaitSettings {
        wait: config.and_then(|c| c.wait_for_rollout).unwrap_or(true),
        timeout: config
            .and_then(|c| c.rollout_timeout)
            .or_else(|| parse_duration(DEFAULT_TIMEOUT))
            .unwrap_or(Duration::from_secs(600)),
    }
}

/// The settings for one apply: the resource's own values where set, else the provider's.
pub(crate) fn settings(ctx: &Context, planned: &Value) -> WaitSettings {
    let defaults = provider_defaults(ctx);
    WaitSettings {
        wait: boolean(planned, "wait_for_rollout").unwrap_or(defaults.wait),
        timeout: string(planned, "rollout_timeout")
            .and_then(|t| parse_duration(&t))
            .unwrap_or(defaults.timeout),
    }
}

/// A duration as `rollout_timeout` takes it (`90s`, `10m`).
pub(crate) fn humantime(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The two settings as attributes of a resource whose writes re-render groups (pipelines,
/// endpoints, exporter bindings). Optional without a computed default: unset means "the
/// provider block decides", so neither an import nor a change of the provider's defaults
/// shows up as a difference.
pub(crate) fn wait_attributes(what: &str) -> [Attribute; 2] {
    [
        Attribute::optional("wait_for_rollout", Type::Bool).description(&format!(
            "Whether apply waits until every agent group whose rendered config changed with \
             this {what} applied its new config revision. Unset: the provider's \
             `wait_for_rollout` (default `true`). The apply fails when agents reject the config, \
             the rollout is rolled back, or `rollout_timeout` passes, naming the group, the \
             failing agents and their error messages. A change that alters no group's config \
             does not wait. Not sent to the server."
        )),
        Attribute::optional("rollout_timeout", Type::String).description(
            "How long apply waits for those rollouts, as a duration such as `90s`, `10m`, \
             `1h30m`. Unset: the provider's `rollout_timeout` (default `10m`). Not sent to the \
             server.",
        ),
    ]
}

/// `schema` with the two settings added (see [`wait_attributes`]).
pub(crate) fn with_wait_attributes(mut schema: Schema, what: &str) -> Schema {
    schema.attributes.extend(wait_attributes(what));
    schema
}

/// `rollout_timeout` must parse; reported at the attribute.
pub(crate) fn validate_settings(config: &Value, diags: &mut Diagnostics) {
    if let Some(Value::String(t)) = config.get("rollout_timeout")
        && parse_duration(t).is_none()
    {
        diags.error_at(
            AttributePath::attr("rollout_timeout"),
            "Invalid duration",
            format!(
                "rollout_timeout must be a duration such as \"90s\", \"10m\" or \"1h30m\"; got {t:?}."
            ),
        );
    }
}

/// `state` gets the local settings `from` holds (the plan on writes, the prior state on reads).
pub(crate) fn keep_local(from: &Value, state: &mut Value) {
    for name in LOCAL_ATTRS {
        let v = from.get(name).cloned().unwrap_or(Value::Null);
        state.set(name, v);
    }
}

/// Whether an update changes only the local settings (then nothing is sent to the server).
pub(crate) fn only_local_changed(prior: &Value, planned: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        for name in LOCAL_ATTRS {
            v.set(name, Value::Null);
        }
        v
    };
    strip(prior) == strip(planned)
}

/// The end of a create or update that the server answered: the new `state` with the local
/// wait settings kept from `planned`, returned once the rollouts the write started have ended
/// (a failed or timed-out one is a diagnostic in `diags`; the object exists either way).
pub(crate) async fn settle_write(
    ctx: &Context,
    client: &Client,
    mut state: Value,
    rollouts: Option<&[GroupRollout]>,
    planned: &Value,
    cause: String,
    diags: &mut Diagnostics,
) -> Option<Value> {
    keep_local(planned, &mut state);
    wait_for_write(ctx, client, rollouts, planned, &cause, diags).await;
    Some(state)
}

/// After a write that answered with `rollouts`: waits (when configured to) for each of them at
/// once; every failing group adds its own diagnostic. `cause` says which change it was
/// (`pipeline "edge"`). An older server that sends no `rollouts` is not waited for.
pub(crate) async fn wait_for_write(
    ctx: &Context,
    client: &Client,
    rollouts: Option<&[GroupRollout]>,
    planned: &Value,
    cause: &str,
    diags: &mut Diagnostics,
) {
    let settings = settings(ctx, planned);
    let targets: Vec<Target> = rollouts
        .unwrap_or_default()
        .iter()
        .map(Target::from)
        .collect();
    if !settings.wait || targets.is_empty() {
        return;
    }
    let waits = targets
        .iter()
        .map(|t| wait_for(ctx, client, t, settings.timeout, Some(cause)));
    for result in futures::future::join_all(waits).await {
        if let Err(d) = result {
            diags.push(d);
        }
    }
}

/// The failing agents of a status, one per line, for a diagnostic.
fn failure_lines(st: &GroupStatus) -> String {
    let mut lines: Vec<String> = st
        .failures
        .iter()
        .take(MAX_NAMED_FAILURES)
        .map(|f| format!("  - agent {}: {}", f.agent_id, f.message))
        .collect();
    if st.failures.len() > MAX_NAMED_FAILURES {
        lines.push(format!(
            "  - and {} more",
            st.failures.len() - MAX_NAMED_FAILURES
        ));
    }
    lines.join("\n")
}

fn counts(st: &GroupStatus) -> String {
    format!(
        "{} matched, {} applied, {} applying, {} failed, {} pending",
        st.matched, st.applied, st.applying, st.failed, st.pending
    )
}

/// Polls the group's status until its rollout of the target revision ended; the final status,
/// or the diagnostic when it failed, was rolled back, timed out or was cancelled. `cause` names
/// the change to another resource that started it (`None`: a change to the group itself).
pub(crate) async fn wait_for(
    ctx: &Context,
    client: &Client,
    target: &Target,
    timeout: Duration,
    cause: Option<&str>,
) -> Result<GroupStatus, Diagnostic> {
    let deadline = tokio::time::Instant::now() + timeout;
    let name = &target.group_name;
    let mut last: Option<GroupStatus> = None;
    let mut failed_since: Option<tokio::time::Instant> = None;
    loop {
        match client.group_status(target.group_id).await {
            // A later write in the same apply may already have moved the group past the target
            // revision; its rollout then decides for this one too.
            Ok(st)
                if st.config_hash == target.config_hash
                    || (!target.pinned && st.revision >= target.config_revision) =>
            {
                match st.state {
                    RolloutState::Complete => return Ok(st),
                    RolloutState::Failed | RolloutState::RolledBack
                        // The first failure ends the rollout, but the diagnostic should name
                        // every agent that rejects the config: give the others that are
                        // still working on it a moment to report.
                        if (st.applying == 0 && st.pending == 0)
                            || failed_since
                                .get_or_insert_with(tokio::time::Instant::now)
                                .elapsed()
                                >= FAILURE_SETTLE =>
                    {
                        let what = if st.state == RolloutState::RolledBack {
                            "failed and was rolled back to the last good revision"
                        } else {
                            "failed"
                        };
                        let opening = match cause {
                            Some(cause) => format!(
                                "The {cause} changed the config of agent group {name:?}; its \
                                 rollout (config revision {})",
                                st.revision
                            ),
                            None => format!(
                                "The rollout of agent group {name:?} (config revision {})",
                                st.revision
                            ),
                        };
                        return Err(Diagnostic::error(
                            "Rollout failed",
                            format!(
                                "{opening} {what}: {}. Failing agents:\n{}\nFix the \
                                 configuration (or the agents) and apply again; set \
                                 wait_for_rollout = false to not wait.",
                                counts(&st),
                                failure_lines(&st)
                            ),
                        ));
                    }
                    _ => last = Some(st),
                }
            }
            // An older revision's status: the server has not caught up yet.
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(Diagnostic::error(
                    "Agent group disappeared",
                    format!("Agent group {name:?} was deleted while apply waited for its rollout."),
                ));
            }
            // Transient API errors are retried until the deadline.
            Err(e) => tracing::warn!(error = %e, group = %name, "Reading rollout status failed"),
        }
        let cancelled = ctx.cancel_token().clone();
        tokio::select! {
            _ = cancelled.cancelled() => {
                return Err(Diagnostic::error(
                    "Rollout wait cancelled",
                    format!("Terraform stopped the provider while it waited for the rollout of agent group {name:?}; the rollout continues on the server."),
                ));
            }
            _ = tokio::time::sleep_until(deadline) => {
                let detail = match &last {
                    Some(st) if !st.failures.is_empty() => format!("{}. Failing agents:\n{}", counts(st), failure_lines(st)),
                    Some(st) => format!("{}.", counts(st)),
                    None => "No status was available.".to_string(),
                };
                let started_by = cause
                    .map(|c| format!(" (config revision {}, started by the {c})", target.config_revision))
                    .unwrap_or_default();
                return Err(Diagnostic::error(
                    "Rollout timed out",
                    format!(
                        "The rollout of agent group {name:?}{started_by} did not complete \
                         within {}: {detail} The rollout continues on the server. Agents still \
                         pending may be disconnected or slow, or a canary may still be baking; \
                         raise rollout_timeout or set wait_for_rollout = false.",
                        humantime(timeout)
                    ),
                ).at(AttributePath::attr("rollout_timeout")));
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wait_settings_changing_is_local() {
        let prior = Value::object([
            ("name", Value::string("edge")),
            ("wait_for_rollout", Value::Null),
            ("rollout_timeout", Value::Null),
        ]);
        let mut planned = prior.clone();
        planned.set("wait_for_rollout", Value::Bool(false));
        planned.set("rollout_timeout", Value::string("1m"));
        assert!(only_local_changed(&prior, &planned));
        planned.set("name", Value::string("edge-2"));
        assert!(!only_local_changed(&prior, &planned));
    }

    #[test]
    fn resource_settings_override_the_provider_defaults() {
        let config = ProviderConfig {
            endpoint: "http://127.0.0.1:1".into(),
            token: None,
            ca_cert_pem: None,
            wait_for_rollout: Some(false),
            rollout_timeout: Some(Duration::from_secs(30)),
        };
        let ctx = Context::new(
            Some(std::sync::Arc::new(config)),
            tokio_util::sync::CancellationToken::new(),
        );
        let unset = Value::object([("wait_for_rollout", Value::Null)]);
        assert_eq!(
            settings(&ctx, &unset),
            WaitSettings {
                wait: false,
                timeout: Duration::from_secs(30)
            }
        );
        let set = Value::object([
            ("wait_for_rollout", Value::Bool(true)),
            ("rollout_timeout", Value::string("2m")),
        ]);
        assert_eq!(
            settings(&ctx, &set),
            WaitSettings {
                wait: true,
                timeout: Duration::from_secs(120)
            }
        );
        let unconfigured = Context::new(None, tokio_util::sync::CancellationToken::new());
        assert_eq!(
            settings(&unconfigured, &unset),
            WaitSettings {
                wait: true,
                timeout: Duration::from_secs(600)
            }
        );
    }
}

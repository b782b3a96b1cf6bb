//! `otaas_agent_group`: a label selector over agents, the pipelines they run and how changes
//! roll out; apply waits for the rollout (`wait_for_rollout`) and names failing agents. Also its
//! list resource.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use otaas_api::{AgentGroup, AgentGroupId, AgentGroupSpec, Client, RolloutSpec, RolloutStrategy};

use super::common::*;
use super::endpoint::id_identity;
use super::pipeline::{
    Managing, discovered_filter, import_key, list_config_schema, list_error, list_events,
    validate_list_config,
};
use super::rollout;
use crate::framework::*;

pub struct AgentGroupResource;

fn schema() -> Schema {
    Schema::new(
        "A group of agents chosen by labels, the pipelines they run, and how a change rolls out \
         to them. Every agent whose labels match `selector` (the most specific selector wins; \
         ties go to the oldest group) receives the group's rendered collector config. With \
         `wait_for_rollout` (the default), apply returns only when the group's agents applied \
         the new config, and fails naming the agents and their errors when they did not.",
        vec![
            Attribute::computed("id", Type::String)
                .use_state_for_unknown()
                .description("Server-assigned id (a UUID)."),
            Attribute::required("name", Type::String)
                .description("Unique group name, `[a-z0-9_-]{1,63}`."),
            Attribute::optional_computed("selector", Type::map(Type::String)).description(
                "Label → value; an agent belongs to the group when it has all of them. Labels \
                 come from the agent's description attributes. Defaults to `{}` (every agent \
                 not claimed by a more specific group).",
            ),
            Attribute::optional_computed("pipeline_ids", Type::list(Type::String)).description(
                "Ids of the `otaas_pipeline`s the group's agents run; at least one (an empty or \
                 unset list fails the plan). Each pipeline needs a receiver (an \
                 `otaas_endpoint` or a pipeline receiver) and an exporter (an \
                 `otaas_exporter_binding`) for one of its signals, or the server refuses the \
                 group (422 `incomplete_config`) rather than push a config a collector refuses: \
                 give the group a `depends_on` on the pipelines' endpoints and bindings so they \
                 exist first. Deleting an endpoint or binding is never refused: the pipeline it \
                 leaves incomplete is left out of the group's config, and a group left with no \
                 complete pipeline gets no new config (its agents keep running the last one) \
                 until a change completes it.",
            ),
            Attribute::nested(
                "rollout",
                Nesting::Single,
                Mode::OptionalComputed,
                vec![
                    Attribute::optional_computed("strategy", Type::String)
                        .description("`all_at_once` (the default), `batched` or `canary`."),
                    Attribute::optional_computed("batch_sizes", Type::list(Type::Number))
                        .description(
                            "For `batched`: agents per step, each at least 1. Empty (the \
                             default) means exponential steps 1, 10, 100, ...",
                        ),
                    Attribute::optional("canary_percent", Type::Number).description(
                        "For `canary` (required there): percentage of the group's agents, \
                         1-100, in the canary step. There is no canary step while the group has \
                         no last good revision (see `rollout`): its first config goes to every \
                         agent at once.",
                    ),
                    Attribute::optional_computed("bake_seconds", Type::Number).description(
                        "Seconds a step must stay healthy before the next starts. Default 0.",
                    ),
                    Attribute::optional_computed("max_failures", Type::Number).description(
                        "Failed agents tolerated before the rollout stops. Default 0.",
                    ),
                    Attribute::optional_computed("auto_rollback", Type::Bool).description(
                        "When the rollout stops on failures, go back to the last good revision. \
                         Default `false`.",
                    ),
                ],
            )
            .description(
                "How a new revision reaches the group's agents. Defaults to all at once. The \
                 strategy applies only once the group has a last good revision (one whose \
                 rollout completed): the group's first config revision, and every later one \
                 while none has completed yet, is sent to all matching agents at once in a \
                 single step, with no canary, batches or bake, because there is no earlier \
                 config to fall back to. Agents without a config therefore get the first one \
                 immediately; a canary protects changes from the second successful rollout on.",
            ),
            Attribute::optional_computed("wait_for_rollout", Type::Bool).description(
                "Whether apply waits until the group's agents applied the new config (default: \
                 the provider's `wait_for_rollout`, itself `true` by default). The apply fails \
                 when agents reject the config, the rollout is rolled back, or \
                 `rollout_timeout` passes, naming the failing agents and their error messages. \
                 Changes to pipelines, endpoints and exporter bindings wait for the groups they \
                 reach through those resources' own `wait_for_rollout`. When no connected agent \
                 matches `selector`, apply warns (the rollout is complete without any agent). \
                 Not sent to the server.",
            ),
            Attribute::optional_computed("rollout_timeout", Type::String).description(
                "How long apply waits for the rollout, as a duration such as `90s`, `10m`, \
                 `1h30m`. Default: the provider's `rollout_timeout`, itself `10m` by default. \
                 Not sent to the server.",
            ),
            Attribute::optional("pinned_revision", Type::Number).description(
                "Holds the group's agents on this earlier config revision (a `config_revision` \
                 the group has had) instead of the latest. Setting it rolls the pinned revision \
                 out with the group's `rollout` strategy like any change (canary, batches, \
                 health gates, auto-rollback), and apply waits for that revision's hash. While \
                 pinned, changes to the group's pipelines, endpoints and bindings still create \
                 new config revisions, but agents stay on the pinned one (and those changes do \
                 not wait for this group). Removing it rolls the agents forward to the latest. \
                 Unset on create: a new group has no revisions to pin.",
            ),
            Attribute::computed("revision", Type::Number).description(
                "The group object's revision on the server: 1 at creation, +1 per update.",
            ),
            Attribute::computed("config_revision", Type::Number).description(
                "Revision of the group's rendered collector config; it also grows when a \
                 pipeline, endpoint or exporter binding the group uses changes.",
            ),
            Attribute::computed("config_hash", Type::String).description(
                "SHA-256 (hex) of the group's current rendered collector config: what agents \
                 report once they applied it.",
            ),
        ],
    )
}

fn strategy_str(s: RolloutStrategy) -> &'static str {
    match s {
        RolloutStrategy::AllAtOnce => "all_at_once",
        RolloutStrategy::Batched => "batched",
        RolloutStrategy::Canary => "canary",
    }
}

fn rollout_state(r: &RolloutSpec) -> Value {
    Value::object([
        ("strategy", Value::string(strategy_str(r.strategy))),
        (
            "batch_sizes",
            Value::List(
                r.batch_sizes
                    .iter()
                    .map(|b| Value::int(i64::from(*b)))
                    .collect(),
            ),
        ),
        (
            "canary_percent",
            r.canary_percent
                .map_or(Value::Null, |p| Value::int(i64::from(p))),
        ),
        ("bake_seconds", Value::int(i64::from(r.bake_seconds))),
        ("max_failures", Value::int(i64::from(r.max_failures))),
        ("auto_rollback", Value::Bool(r.auto_rollback)),
    ])
}

/// State from the server's group; the provider-only settings come from `prior`, else from
/// the provider block's defaults (so an imported group plans clean).
fn state(g: &AgentGroup, prior: &Value, defaults: rollout::WaitSettings) -> Value {
    let wait = match prior.get("wait_for_rollout") {
        Some(v @ Value::Bool(_)) => v.clone(),
        _ => Value::Bool(defaults.wait),
    };
    let timeout = match prior.get("rollout_timeout") {
        Some(v @ Value::String(_)) => v.clone(),
        _ => Value::string(rollout::humantime(defaults.timeout)),
    };
    Value::object([
        ("id", Value::string(g.id.to_string())),
        ("name", Value::string(&g.name)),
        ("selector", map_value(&g.selector)),
        (
            "pipeline_ids",
            string_list(g.pipeline_ids.iter().map(ToString::to_string)),
        ),
        ("rollout", rollout_state(&g.rollout)),
        (
            "pinned_revision",
            g.pinned_revision.map_or(Value::Null, Value::int),
        ),
        ("wait_for_rollout", wait),
        ("rollout_timeout", timeout),
        ("revision", Value::int(g.revision)),
        ("config_revision", Value::int(g.config_revision)),
        ("config_hash", Value::string(&g.config_hash)),
    ])
}

fn spec(v: &Value, diags: &mut Diagnostics) -> Option<AgentGroupSpec> {
    let mut pipeline_ids = Vec::new();
    for (i, s) in strings(v, "pipeline_ids").iter().enumerate() {
        match s.parse() {
            Ok(id) => pipeline_ids.push(id),
            Err(_) => diags.error_at(
                AttributePath::attr("pipeline_ids").push_index(i as i64),
                "Invalid pipeline id",
                format!("{s:?} is not a pipeline id (a UUID); use otaas_pipeline.x.id."),
            ),
        }
    }
    let r = v.get("rollout").cloned().unwrap_or(Value::Null);
    let u32_of = |name: &str| u32::try_from(int(&r, name).unwrap_or(0)).unwrap_or(0);
    let rollout = RolloutSpec {
        strategy: match string(&r, "strategy").as_deref() {
            Some("batched") => RolloutStrategy::Batched,
            Some("canary") => RolloutStrategy::Canary,
            _ => RolloutStrategy::AllAtOnce,
        },
        batch_sizes: match r.get("batch_sizes") {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|b| b.typed::<i64>().ok()?.into_known())
                .map(|b| u32::try_from(b).unwrap_or(0))
                .collect(),
            _ => Vec::new(),
        },
        canary_percent: int(&r, "canary_percent").map(|p| u8::try_from(p).unwrap_or(0)),
        bake_seconds: u32_of("bake_seconds"),
        max_failures: u32_of("max_failures"),
        auto_rollback: boolean(&r, "auto_rollback").unwrap_or(false),
    };
    if diags.has_errors() {
        return None;
    }
    Some(AgentGroupSpec {
        pinned_revision: int(v, "pinned_revision"),
        name: string(v, "name").unwrap_or_default(),
        selector: string_map(v, "selector"),
        pipeline_ids,
        rollout,
    })
}

async fn lookup(client: &Client, key: &str) -> Result<Option<AgentGroup>, String> {
    if let Ok(id) = key.parse::<AgentGroupId>() {
        match client.get_agent_group(id).await {
            Ok(g) => Ok(Some(g)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    } else {
        client
            .find_agent_group(key)
            .await
            .map_err(|e| e.to_string())
    }
}

fn id_of(state: &Value, diags: &mut Diagnostics) -> Option<AgentGroupId> {
    let parsed = string(state, "id").and_then(|s| s.parse().ok());
    if parsed.is_none() {
        diags.error_at(
            AttributePath::attr("id"),
            "Invalid agent group id",
            "The state holds no valid id; remove the resource from state and import it again.",
        );
    }
    parsed
}

/// After a create or update that the server saw: waits when configured to (the diagnostic goes
/// to `diags`), and warns when no connected agent is in the group, since a rollout to nobody
/// completes at once and would otherwise say nothing.
async fn after_write(
    ctx: &Context,
    client: &Client,
    group: &AgentGroup,
    planned: &Value,
    diags: &mut Diagnostics,
) {
    let settings = rollout::settings(ctx, planned);
    if settings.wait {
        let target = match pinned_target(client, group).await {
            Ok(t) => t,
            Err(d) => {
                diags.push(d);
                return;
            }
        };
        let waited = rollout::wait_for(ctx, client, &target, settings.timeout, None).await;
        if let Err(d) = waited {
            diags.push(d);
            return;
        }
    }
    let connected = otaas_api::AgentQuery {
        group_id: Some(group.id),
        connected: Some(true),
        ..Default::default()
    };
    // Only a definite "none" warns: a failed look-up is no reason to fail or warn.
    if let Ok(agents) = client.list_agents(&connected).await
        && agents.is_empty()
    {
        diags.push(no_agents_warning(group));
    }
}

/// What the group's agents are to run: its pinned revision (with that revision's hash, from its
/// history) when pinned, else its latest.
async fn pinned_target(client: &Client, group: &AgentGroup) -> Result<rollout::Target, Diagnostic> {
    let mut target = rollout::Target::from(group);
    let Some(pin) = group.pinned_revision else {
        return Ok(target);
    };
    let history = client.agent_group_revisions(group.id).await.map_err(|e| {
        Diagnostic::error(
            "Cannot wait for the pinned revision",
            format!(
                "Reading the config revisions of agent group {:?} failed: {e}",
                group.name
            ),
        )
    })?;
    let Some(rev) = history.iter().find(|r| r.revision == pin) else {
        return Err(Diagnostic::error(
            "Pinned revision not found",
            format!(
                "Agent group {:?} has no config revision {pin} any more; pin one it has.",
                group.name
            ),
        )
        .at(AttributePath::attr("pinned_revision")));
    };
    target.config_revision = pin;
    target.config_hash = rev.sha256.clone();
    target.pinned = true;
    Ok(target)
}

fn no_agents_warning(group: &AgentGroup) -> Diagnostic {
    let pairs: Vec<String> = group
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let selector = if pairs.is_empty() {
        "{}, every agent no more specific group claims".to_string()
    } else {
        pairs.join(", ")
    };
    Diagnostic::warning(
        "Selector matches no agent",
        format!(
            "No connected agent matches the selector of agent group {name:?} ({selector}), so \
             the rollout of config revision {revision} is complete without any agent having \
             applied it. Agents that connect later with matching labels get the config then. \
             If agents should be running it now, compare their labels with the selector: data \
             \"otaas_agents\" lists every agent's labels and group, and GET \
             /api/v1/agents?selector={query} lists the agents it matches.",
            name = group.name,
            revision = group.config_revision,
            query = pairs.join(","),
        ),
    )
    .at(AttributePath::attr("selector"))
}

#[async_trait]
impl Resource for AgentGroupResource {
    fn type_name(&self) -> &'static str {
        "otaas_agent_group"
    }
    fn schema(&self) -> Schema {
        schema()
    }
    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(id_identity("agent group"))
    }
    fn identity(&self, state: &Value) -> Option<Value> {
        Some(Value::object([("id", state.get("id")?.clone())]))
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        check_name(config.get("name"), AttributePath::attr("name"), diags);
        if let Some(Value::Map(m)) = config.get("selector") {
            for k in m.keys() {
                if k.trim().is_empty() {
                    diags.error_at(
                        AttributePath::attr("selector"),
                        "Invalid selector",
                        "Selector labels must not be empty.",
                    );
                }
            }
        }
        // Unset defaults to `[]`; either way the server would refuse a group with nothing to
        // run, so say it at plan time, at the attribute.
        if matches!(config.get("pipeline_ids"), None | Some(Value::Null))
            || matches!(config.get("pipeline_ids"), Some(Value::List(ids)) if ids.is_empty())
        {
            diags.error_at(
                AttributePath::attr("pipeline_ids"),
                "No pipeline",
                "An agent group needs at least one pipeline in pipeline_ids: a collector config \
                 without any pipeline is refused by the collector, so the server refuses the \
                 group (incomplete_config). List the otaas_pipeline ids its agents run.",
            );
        }
        if let Some(Value::List(ids)) = config.get("pipeline_ids") {
            let mut seen = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let path = AttributePath::attr("pipeline_ids").push_index(i as i64);
                if let Value::String(s) = id {
                    if s.parse::<otaas_api::PipelineId>().is_err() {
                        diags.error_at(
                            path.clone(),
                            "Invalid pipeline id",
                            format!(
                                "{s:?} is not a pipeline id (a UUID); use otaas_pipeline.x.id."
                            ),
                        );
                    }
                    if seen.contains(s) {
                        diags.error_at(
                            path,
                            "Duplicate pipeline",
                            format!("Pipeline {s} is listed twice."),
                        );
                    }
                    seen.push(s.clone());
                }
            }
        }
        if let Some(r @ Value::Object(_)) = config.get("rollout") {
            let base = AttributePath::attr("rollout");
            check_enum(
                r.get("strategy"),
                &["all_at_once", "batched", "canary"],
                base.push_attr("strategy"),
                diags,
            );
            check_range(
                r.get("canary_percent"),
                1,
                100,
                base.push_attr("canary_percent"),
                diags,
            );
            check_range(
                r.get("bake_seconds"),
                0,
                i64::from(u32::MAX),
                base.push_attr("bake_seconds"),
                diags,
            );
            check_range(
                r.get("max_failures"),
                0,
                i64::from(u32::MAX),
                base.push_attr("max_failures"),
                diags,
            );
            if let Some(Value::List(sizes)) = r.get("batch_sizes") {
                for (i, b) in sizes.iter().enumerate() {
                    check_range(
                        Some(b),
                        1,
                        i64::from(u32::MAX),
                        base.push_attr("batch_sizes").push_index(i as i64),
                        diags,
                    );
                }
            }
            if r.get("strategy") == Some(&Value::string("canary"))
                && r.get("canary_percent").is_some_and(Value::is_null)
            {
                diags.error_at(
                    base.push_attr("canary_percent"),
                    "Missing canary_percent",
                    "The canary strategy needs canary_percent (1-100).",
                );
            }
        }
        check_range(
            config.get("pinned_revision"),
            1,
            i64::MAX,
            AttributePath::attr("pinned_revision"),
            diags,
        );
        rollout::validate_settings(config, diags);
    }
    async fn modify_plan(&self, ctx: &Context, change: &mut PlanChange, diags: &mut Diagnostics) {
        let config = change.config.clone();
        if change.is_create() && config.get("pinned_revision").is_some_and(|v| !v.is_null()) {
            diags.error_at(
                AttributePath::attr("pinned_revision"),
                "Cannot pin a new agent group",
                "A new agent group has no config revisions to be pinned to. Create it without \
                 pinned_revision, then set it to one of the config_revision values it gets.",
            );
        }
        let planned = &mut change.planned;
        default_if_unset(planned, &config, "selector", Value::Map(BTreeMap::new()));
        default_if_unset(planned, &config, "pipeline_ids", Value::List(Vec::new()));
        let defaults = rollout::provider_defaults(ctx);
        default_if_unset(
            planned,
            &config,
            "wait_for_rollout",
            Value::Bool(defaults.wait),
        );
        default_if_unset(
            planned,
            &config,
            "rollout_timeout",
            Value::string(rollout::humantime(defaults.timeout)),
        );
        default_if_unset(
            planned,
            &config,
            "rollout",
            rollout_state(&RolloutSpec::default()),
        );
        if let (Some(r @ Value::Object(_)), Some(cfg_r @ Value::Object(_))) =
            (planned.get_mut("rollout"), config.get("rollout"))
        {
            default_if_unset(r, cfg_r, "strategy", Value::string("all_at_once"));
            default_if_unset(r, cfg_r, "batch_sizes", Value::List(Vec::new()));
            default_if_unset(r, cfg_r, "bake_seconds", Value::int(0));
            default_if_unset(r, cfg_r, "max_failures", Value::int(0));
            default_if_unset(r, cfg_r, "auto_rollback", Value::Bool(false));
        }
        // With the selector and the pipelines known, check the group's rendered config against
        // the agents it would reach, so a missing component fails the plan, not the rollout.
        if change
            .planned
            .is_wholly_known_at(&["name", "selector", "pipeline_ids"])
        {
            let mut quiet = Diagnostics::new();
            if let Some(group_spec) = spec(&change.planned, &mut quiet) {
                let check = otaas_api::ComponentCheck {
                    pipeline: None,
                    agent_group: Some(otaas_api::AgentGroupCheck {
                        id: string(&change.prior, "id").and_then(|s| s.parse().ok()),
                        spec: group_spec,
                    }),
                    exporter_binding: None,
                };
                plan_component_check(ctx, &check, change, diags).await;
            }
        }
        // Only a change the server sees makes a new revision (the wait settings are local,
        // and computed_follow_change leaves them out).
        computed_follow_change(change, &["revision", "config_revision", "config_hash"]);
    }
    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        _config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let spec = spec(planned, diags)?;
        match client.create_agent_group(&spec).await {
            Ok(g) => {
                after_write(ctx, &client, &g, planned, diags).await;
                // Created even when the rollout failed: Terraform keeps it (tainted).
                Some(state(&g, planned, rollout::provider_defaults(ctx)))
            }
            Err(e) => {
                diags.push(create_error(
                    "otaas_agent_group",
                    &format!("creating agent group {:?}", spec.name),
                    &spec.name,
                    &e,
                    planned,
                ));
                None
            }
        }
    }
    async fn read(&self, ctx: &Context, prior: &Value, diags: &mut Diagnostics) -> Value {
        let Some(client) = client_or_diag(ctx, diags) else {
            return prior.clone();
        };
        let Some(id) = id_of(prior, diags) else {
            return prior.clone();
        };
        match client.read_agent_group(id).await {
            Ok(g) => state(&g, prior, rollout::provider_defaults(ctx)),
            Err(e) if e.is_not_found() => Value::Null,
            Err(e) => {
                diags.push(api_error(&format!("reading agent group {id}"), &e, prior));
                prior.clone()
            }
        }
    }
    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        _config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let id = id_of(prior, diags)?;
        let spec = spec(planned, diags)?;
        // Only the local wait settings changed: nothing to send.
        let server_changed = [
            "name",
            "selector",
            "pipeline_ids",
            "rollout",
            "pinned_revision",
        ]
        .iter()
        .any(|a| prior.get(a) != planned.get(a));
        let result = if server_changed {
            client
                .update_agent_group(id, &spec, int(prior, "revision"))
                .await
        } else {
            client.get_agent_group(id).await
        };
        match result {
            Ok(g) => {
                if server_changed {
                    after_write(ctx, &client, &g, planned, diags).await;
                }
                Some(state(&g, planned, rollout::provider_defaults(ctx)))
            }
            Err(e) => {
                diags.push(api_error(
                    &format!("updating agent group {:?}", spec.name),
                    &e,
                    planned,
                ));
                None
            }
        }
    }
    async fn delete(&self, ctx: &Context, prior: &Value, diags: &mut Diagnostics) {
        let Some(client) = client_or_diag(ctx, diags) else {
            return;
        };
        let Some(id) = id_of(prior, diags) else {
            return;
        };
        match client.delete_agent_group(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => diags.push(api_error(&format!("deleting agent group {id}"), &e, prior)),
        }
    }
    async fn import(
        &self,
        ctx: &Context,
        request: ImportRequest,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let key = import_key(request, diags)?;
        match lookup(&client, &key).await {
            Ok(Some(g)) => Some(state(&g, &Value::Null, rollout::provider_defaults(ctx))),
            Ok(None) => {
                diags.error(
                    "Cannot import agent group",
                    format!("No agent group has the id or name {key:?}."),
                );
                None
            }
            Err(e) => {
                diags.error("Cannot import agent group", e);
                None
            }
        }
    }
}

/// `list "otaas_agent_group" "..." {}`.
pub struct AgentGroupList;

#[async_trait]
impl ListResource for AgentGroupList {
    fn type_name(&self) -> &'static str {
        "otaas_agent_group"
    }
    fn config_schema(&self) -> Schema {
        list_config_schema("agent groups")
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_list_config(config, diags);
    }
    async fn list(&self, ctx: &Context, request: ListRequest) -> BoxStream<'static, ListEvent> {
        let client = match client(ctx) {
            Ok(c) => c,
            Err(d) => return list_error(d),
        };
        let only = match discovered_filter(&client, &request.config, Managing::AgentGroups).await {
            Ok(only) => only,
            Err(d) => return list_error(d),
        };
        let result = client.list_agent_groups().await;
        let defaults = rollout::provider_defaults(ctx);
        list_events(
            result,
            "agent groups",
            &request,
            only.as_ref(),
            |g: &AgentGroup| (g.name.clone(), state(g, &Value::Null, defaults)),
        )
    }
}

//! `otaas_agents` (filtered list) and `otaas_agent` (one by id): collectors known from OpAMP,
//! read-only.

use async_trait::async_trait;
use otaas_api::{Agent, AgentQuery, AgentStatus, HealthFilter, RemoteConfigState};

use crate::framework::*;
use crate::resources::common::*;

/// The attributes of one agent, shared by both data sources.
fn agent_attributes(id_mode: Mode) -> Vec<Attribute> {
    let id = match id_mode {
        Mode::Required => Attribute::required("id", Type::String),
        _ => Attribute::computed("id", Type::String),
    };
    vec![
        id.description("Instance uid (32 lowercase hex digits)."),
        Attribute::computed("labels", Type::map(Type::String))
            .description("Labels from the agent's description attributes."),
        Attribute::computed("connected", Type::Bool)
            .description("Whether the agent is connected now."),
        Attribute::computed("healthy", Type::Bool)
            .description("The agent's own health report; `false` also when it reports no health."),
        Attribute::computed("status", Type::String).description(
            "Where the agent stands with its config: `unmanaged` (no group), `pending`, \
             `applying`, `applied`, `failed`, or `drifted` (applied, but running a different \
             effective config).",
        ),
        Attribute::computed("remote_config_status", Type::String).description(
            "The agent's last remote config report: `unset`, `applying`, `applied` or `failed`.",
        ),
        Attribute::computed("remote_config_error", Type::String)
            .description("The agent's error message for a failed config (empty otherwise)."),
        Attribute::computed("config_hash", Type::String).description(
            "SHA-256 (hex) of the config the agent should run (its group's current config); \
             empty when unmanaged.",
        ),
        Attribute::computed("effective_config_hash", Type::String)
            .description("SHA-256 (hex) of the effective config the agent reports; may be empty."),
        Attribute::computed("last_seen", Type::String)
            .description("When the agent last sent a message (RFC 3339); empty if never."),
        Attribute::computed("group_id", Type::String)
            .description("The agent group it belongs to; empty when unmanaged."),
        Attribute::computed("agent_version", Type::String)
            .description("The collector's `service.version`; may be empty."),
        Attribute::computed("health_status", Type::String).description(
            "The agent's own status text (for `otaas agent`: `running (pid N)`, or why the \
             collector is down); empty when it reports no health.",
        ),
        Attribute::computed("last_error", Type::String).description(
            "The last error the agent reported at the top of its health (a crash, a failed \
             start, a failing exporter); may stay set after it recovered.",
        ),
        Attribute::computed("unhealthy_reason", Type::String).description(
            "Why `healthy` is `false`, in one line: the deepest unhealthy component and its \
             error (`pipeline:logs/app/exporter:otlphttp/out-sink: ...`), else the agent's own \
             status. Empty when healthy.",
        ),
        Attribute::nested(
            "components",
            Nesting::List,
            Mode::Computed,
            vec![
                Attribute::computed("name", Type::String).description(
                    "The component's path in the agent's health tree, keys joined by `/` \
                     (`pipeline:logs/app`, `pipeline:logs/app/exporter:otlphttp/out-sink`).",
                ),
                Attribute::computed("healthy", Type::Bool)
                    .description("Whether the agent reports this component healthy."),
                Attribute::computed("status", Type::String).description(
                    "The component's status (`StatusOK`, `StatusRecoverableError`, ...).",
                ),
                Attribute::computed("last_error", Type::String)
                    .description("The component's last error; empty when none."),
            ],
        )
        .description(
            "Per-component health as the agent reports it, parents before their children, \
             ordered by name within a parent; empty when it reports no health.",
        ),
    ]
}

fn status_str(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Unmanaged => "unmanaged",
        AgentStatus::Pending => "pending",
        AgentStatus::Applying => "applying",
        AgentStatus::Applied => "applied",
        AgentStatus::Failed => "failed",
        AgentStatus::Drifted => "drifted",
    }
}

fn remote_str(s: RemoteConfigState) -> &'static str {
    match s {
        RemoteConfigState::Unset => "unset",
        RemoteConfigState::Applying => "applying",
        RemoteConfigState::Applied => "applied",
        RemoteConfigState::Failed => "failed",
    }
}

fn agent_value(a: &Agent) -> Value {
    let s = |o: Option<&str>| Value::string(o.unwrap_or_default());
    Value::object([
        ("id", Value::string(&a.id)),
        ("labels", map_value(&a.labels)),
        ("connected", Value::Bool(a.connected)),
        ("healthy", Value::Bool(a.healthy.unwrap_or(false))),
        ("status", Value::string(status_str(a.status))),
        (
            "remote_config_status",
            Value::string(remote_str(a.remote_config_status)),
        ),
        ("remote_config_error", s(a.remote_config_error.as_deref())),
        ("config_hash", s(a.config_hash.as_deref())),
        (
            "effective_config_hash",
            s(a.effective_config_hash.as_deref()),
        ),
        (
            "last_seen",
            Value::string(a.last_seen.map(|t| t.to_rfc3339()).unwrap_or_default()),
        ),
        (
            "group_id",
            Value::string(a.group_id.map(|g| g.to_string()).unwrap_or_default()),
        ),
        ("agent_version", s(a.agent_version.as_deref())),
        (
            "health_status",
            s(a.health.as_ref().map(|h| h.status.as_str())),
        ),
        (
            "last_error",
            s(a.health.as_ref().map(|h| h.last_error.as_str())),
        ),
        (
            "unhealthy_reason",
            Value::string(a.unhealthy_reason().unwrap_or_default()),
        ),
        (
            "components",
            Value::List(
                a.health
                    .iter()
                    .flat_map(|h| h.flatten())
                    .map(|c| {
                        Value::object([
                            ("name", Value::string(&c.name)),
                            ("healthy", Value::Bool(c.health.healthy)),
                            ("status", Value::string(&c.health.status)),
                            ("last_error", Value::string(&c.health.last_error)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

pub struct AgentsDataSource;

#[async_trait]
impl DataSource for AgentsDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_agents"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            "Lists the agents (collectors) known to the control plane, optionally filtered. \
             Filters combine with AND.",
            vec![
                Attribute::optional("selector", Type::map(Type::String))
                    .description("Only agents that have all of these labels."),
                Attribute::optional("group_id", Type::String)
                    .description("Only agents in this agent group."),
                Attribute::optional("health", Type::String)
                    .description("Only `healthy` or only `unhealthy` agents."),
                Attribute::optional("connected", Type::Bool)
                    .description("Only connected (`true`) or disconnected (`false`) agents."),
                Attribute::nested(
                    "agents",
                    Nesting::List,
                    Mode::Computed,
                    agent_attributes(Mode::Computed),
                )
                .description("The matching agents, ordered by id."),
            ],
        )
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        check_enum(
            config.get("health"),
            &["healthy", "unhealthy"],
            AttributePath::attr("health"),
            diags,
        );
        let _ = group_id_arg(config, diags);
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        // Validated at plan time, but a value unknown then arrives only now: an invalid one
        // must not quietly become "every group".
        let group_id = group_id_arg(config, diags).ok()?;
        let query = AgentQuery {
            selector: string_map(config, "selector"),
            group_id,
            health: match string(config, "health").as_deref() {
                Some("healthy") => Some(HealthFilter::Healthy),
                Some("unhealthy") => Some(HealthFilter::Unhealthy),
                _ => None,
            },
            connected: boolean(config, "connected"),
        };
        match client.list_agents(&query).await {
            Ok(agents) => {
                let mut out = config.clone();
                out.set(
                    "agents",
                    Value::List(agents.iter().map(agent_value).collect()),
                );
                Some(out)
            }
            Err(e) => {
                diags.push(api_error("listing agents", &e, config));
                None
            }
        }
    }
}

pub struct AgentDataSource;

#[async_trait]
impl DataSource for AgentDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_agent"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            "One agent (collector) by its instance uid.",
            agent_attributes(Mode::Required),
        )
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let id = string(config, "id")?;
        match client.get_agent(&id).await {
            Ok(a) => Some(agent_value(&a)),
            Err(e) if e.is_not_found() => {
                diags.error_at(
                    AttributePath::attr("id"),
                    "Agent not found",
                    format!("No agent has the instance uid {id:?}."),
                );
                None
            }
            Err(e) => {
                diags.push(api_error(&format!("reading agent {id}"), &e, config));
                None
            }
        }
    }
}

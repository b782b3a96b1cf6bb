//! `otaas_fleet_insights`: the fleet's load, anomalies and security events
//! (`GET /api/v1/insights`), read-only. Optionally narrowed to one agent group.

use async_trait::async_trait;
use otaas_api::AgentGroupId;
use otaas_api::insights::{FleetInsights, PipelineThroughput};

use crate::framework::*;
use crate::resources::common::*;

pub struct FleetInsightsDataSource;

fn number(v: f64) -> Value {
    Value::Number(Number::Float(v))
}

fn optional_number(v: Option<f64>) -> Value {
    v.map(number).unwrap_or(Value::Null)
}

fn count(v: u64) -> Value {
    Value::int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn group_string(g: Option<AgentGroupId>) -> Value {
    Value::string(g.map(|g| g.to_string()).unwrap_or_default())
}

/// The three rates every throughput object has.
fn rate_attributes() -> Vec<Attribute> {
    vec![
        Attribute::computed("accepted_per_second", Type::Number)
            .description("Items (spans, metric points, log records) accepted by receivers."),
        Attribute::computed("refused_per_second", Type::Number)
            .description("Items refused by receivers."),
        Attribute::computed("sent_per_second", Type::Number)
            .description("Items sent by exporters."),
    ]
}

fn pipeline_attributes(with_agents: bool) -> Vec<Attribute> {
    let mut attrs = vec![Attribute::computed("pipeline", Type::String).description(
        "Collector pipeline id, `<signal>/<otaas pipeline name>` (e.g. `traces/checkout`).",
    )];
    if with_agents {
        attrs.push(
            Attribute::computed("agents", Type::Number)
                .description("Agents reporting this pipeline."),
        );
    }
    attrs.extend(rate_attributes());
    attrs
}

fn pipeline_value(p: &PipelineThroughput, with_agents: bool) -> Value {
    let mut fields = vec![("pipeline", Value::string(&p.pipeline))];
    if with_agents {
        fields.push(("agents", count(p.agents)));
    }
    fields.extend([
        ("accepted_per_second", number(p.accepted_per_second)),
        ("refused_per_second", number(p.refused_per_second)),
        ("sent_per_second", number(p.sent_per_second)),
    ]);
    Value::object(fields)
}

/// The report as the schema's object, keeping only what concerns `group` when set.
fn insights_value(i: &FleetInsights, group: Option<AgentGroupId>) -> Value {
    let in_group = |g: Option<AgentGroupId>| group.is_none() || g == group;
    let agents: Vec<_> = i.agents.iter().filter(|a| in_group(a.group_id)).collect();
    // The fleet list is summed over all agents by the server; narrowed to a group it is summed
    // again here over that group's agents.
    let pipelines: Vec<Value> = if group.is_none() {
        i.pipelines
            .iter()
            .map(|p| pipeline_value(p, true))
            .collect()
    } else {
        otaas_api::insights::sum_pipelines(agents.iter().copied())
            .iter()
            .map(|p| pipeline_value(p, true))
            .collect()
    };
    let anomalies: Vec<_> = i
        .anomalies
        .iter()
        .filter(|a| in_group(a.group_id))
        .collect();
    let mut anomaly_counts = std::collections::BTreeMap::new();
    for a in &anomalies {
        let kind = serde_json::to_value(a.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *anomaly_counts.entry(kind).or_insert(0i64) += 1;
    }
    Value::object([
        (
            "group_id",
            group
                .map(|g| Value::string(g.to_string()))
                .unwrap_or(Value::Null),
        ),
        ("generated_at", Value::string(i.generated_at.to_rfc3339())),
        (
            "agents",
            Value::List(
                agents
                    .iter()
                    .map(|a| {
                        Value::object([
                            ("agent_id", Value::string(&a.agent_id)),
                            ("group_id", group_string(a.group_id)),
                            ("accepted_per_second", number(a.accepted_per_second)),
                            ("refused_per_second", number(a.refused_per_second)),
                            ("sent_per_second", number(a.sent_per_second)),
                            (
                                "baseline_accepted_per_second",
                                optional_number(a.baseline_accepted_per_second),
                            ),
                            ("cpu_seconds_total", optional_number(a.cpu_seconds_total)),
                            ("memory_rss_bytes", optional_number(a.memory_rss_bytes)),
                            (
                                "pipelines",
                                Value::List(
                                    a.pipelines
                                        .iter()
                                        .map(|p| pipeline_value(p, false))
                                        .collect(),
                                ),
                            ),
                            (
                                "last_report_at",
                                Value::string(a.last_report_at.to_rfc3339()),
                            ),
                            ("reports", count(a.reports)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("pipelines", Value::List(pipelines)),
        (
            "anomalies",
            Value::List(
                anomalies
                    .iter()
                    .map(|a| {
                        Value::object([
                            (
                                "kind",
                                Value::string(
                                    serde_json::to_value(a.kind)
                                        .ok()
                                        .and_then(|v| v.as_str().map(str::to_owned))
                                        .unwrap_or_default(),
                                ),
                            ),
                            ("agent_id", Value::string(&a.agent_id)),
                            ("group_id", group_string(a.group_id)),
                            ("message", Value::string(&a.message)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "anomaly_counts",
            Value::Map(
                anomaly_counts
                    .into_iter()
                    .map(|(k, n)| (k, Value::int(n)))
                    .collect(),
            ),
        ),
        (
            "auth_failures",
            Value::List(
                i.security
                    .auth_failures
                    .iter()
                    .map(|f| {
                        Value::object([
                            ("source", Value::string(&f.source)),
                            ("count", count(f.count)),
                            ("last_at", Value::string(f.last_at.to_rfc3339())),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "unmanaged_agents",
            Value::List(
                i.security
                    .unmanaged_agents
                    .iter()
                    .map(Value::string)
                    .collect(),
            ),
        ),
        (
            "exposed_endpoints",
            Value::List(
                i.security
                    .exposed_endpoints
                    .iter()
                    .map(|e| {
                        Value::object([
                            ("endpoint_id", Value::string(e.endpoint_id.to_string())),
                            ("name", Value::string(&e.name)),
                            ("tls", Value::Bool(e.tls)),
                            ("auth", Value::Bool(e.auth)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

#[async_trait]
impl DataSource for FleetInsightsDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_fleet_insights"
    }
    fn schema(&self) -> Schema {
        let mut agent = vec![
            Attribute::computed("agent_id", Type::String)
                .description("Instance uid (32 lowercase hex digits)."),
            Attribute::computed("group_id", Type::String)
                .description("The agent group it belongs to; empty when unmanaged."),
        ];
        agent.extend(rate_attributes());
        agent.extend([
            Attribute::computed("baseline_accepted_per_second", Type::Number).description(
                "The rolling baseline throughput drops and spikes are judged against; null \
                 until the agent reported a few normal intervals.",
            ),
            Attribute::computed("cpu_seconds_total", Type::Number)
                .description("CPU seconds the collector used, as it reports them; may be null."),
            Attribute::computed("memory_rss_bytes", Type::Number)
                .description("The collector's resident memory, as it reports it; may be null."),
            Attribute::nested(
                "pipelines",
                Nesting::List,
                Mode::Computed,
                pipeline_attributes(false),
            )
            .description(
                "Throughput per collector pipeline, when the agent's own metrics name \
                 pipelines (`otelcol.pipeline.id`).",
            ),
            Attribute::computed("last_report_at", Type::String)
                .description("When the last own-metrics report was taken (RFC 3339)."),
            Attribute::computed("reports", Type::Number)
                .description("Own-metrics reports received since the server started."),
        ]);
        Schema::new(
            "Fleet insights: per agent and per pipeline load from the agents' own metrics, \
             anomalies (throughput drop or spike against a rolling baseline, refused spike, \
             heartbeat loss, flapping connection, unhealthy component, drift) and security \
             events (failed agent authentications, unmanaged agents, endpoints without TLS or \
             auth). Values are the server's view at read time; rates are per second over each \
             agent's last report interval.",
            vec![
                Attribute::optional("group_id", Type::String).description(
                    "Only agents, pipelines and anomalies of this agent group. The security \
                     lists are fleet-wide either way.",
                ),
                Attribute::computed("generated_at", Type::String)
                    .description("When the server computed the report (RFC 3339)."),
                Attribute::nested("agents", Nesting::List, Mode::Computed, agent)
                    .description("Agents that sent own metrics, ordered by id, with their load."),
                Attribute::nested(
                    "pipelines",
                    Nesting::List,
                    Mode::Computed,
                    pipeline_attributes(true),
                )
                .description("Throughput per collector pipeline, summed over the agents."),
                Attribute::nested(
                    "anomalies",
                    Nesting::List,
                    Mode::Computed,
                    vec![
                        Attribute::computed("kind", Type::String).description(
                            "`throughput_drop`, `throughput_spike`, `refused_spike`, \
                             `heartbeat_loss`, `unhealthy_component`, `drift` or \
                             `flapping_connection`.",
                        ),
                        Attribute::computed("agent_id", Type::String)
                            .description("The agent concerned."),
                        Attribute::computed("group_id", Type::String)
                            .description("Its agent group; empty when unmanaged."),
                        Attribute::computed("message", Type::String)
                            .description("What was seen, with the numbers."),
                    ],
                )
                .description("What looks wrong now."),
                Attribute::computed("anomaly_counts", Type::map(Type::Number))
                    .description("Anomalies by kind (kinds without any are left out)."),
                Attribute::nested(
                    "auth_failures",
                    Nesting::List,
                    Mode::Computed,
                    vec![
                        Attribute::computed("source", Type::String)
                            .description("The source address."),
                        Attribute::computed("count", Type::Number)
                            .description("Refused authentications from it."),
                        Attribute::computed("last_at", Type::String)
                            .description("The latest one (RFC 3339)."),
                    ],
                )
                .description(
                    "Agent connections and metric exports refused for a missing or wrong \
                     token, by source address.",
                ),
                Attribute::computed("unmanaged_agents", Type::list(Type::String))
                    .description("Agents matching no agent group (instance uids)."),
                Attribute::nested(
                    "exposed_endpoints",
                    Nesting::List,
                    Mode::Computed,
                    vec![
                        Attribute::computed("endpoint_id", Type::String)
                            .description("Id of the `otaas_endpoint`."),
                        Attribute::computed("name", Type::String).description("Its name."),
                        Attribute::computed("tls", Type::Bool)
                            .description("Whether it serves TLS."),
                        Attribute::computed("auth", Type::Bool)
                            .description("Whether it requires authentication."),
                    ],
                )
                .description("Ingest endpoints served without TLS or without authentication."),
            ],
        )
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let _ = group_id_arg(config, diags);
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        // Validated at plan time, but a value unknown then arrives only now.
        let group = group_id_arg(config, diags).ok()?;
        match client.insights().await {
            Ok(i) => Some(insights_value(&i, group)),
            Err(e) => {
                diags.push(api_error("reading the fleet insights", &e, config));
                None
            }
        }
    }
}

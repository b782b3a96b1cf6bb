//! `otaas_discovered_pipelines`: the pipelines connected collectors run, read from their
//! effective configs (`GET /api/v1/discovered-pipelines`), with whether they can be adopted and
//! which otaas objects already manage them. Read-only; adoption itself goes through the API or
//! `otaas adopt`.

use async_trait::async_trait;
use otaas_api::discovery::{DiscoveredPipeline, ManagedEquivalent};

use crate::framework::*;
use crate::resources::common::*;

pub struct DiscoveredPipelinesDataSource;

/// The filters of the data source's config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Filter {
    /// `Some(b)`: only pipelines whose `adoptable` is `b`.
    adoptable: Option<bool>,
    /// Only pipelines some agent in no agent group runs.
    unmanaged_only: bool,
}

impl Filter {
    fn from_config(config: &Value) -> Self {
        Filter {
            adoptable: boolean(config, "adoptable"),
            unmanaged_only: boolean(config, "unmanaged_only").unwrap_or(false),
        }
    }

    fn keeps(&self, p: &DiscoveredPipeline) -> bool {
        self.adoptable.is_none_or(|a| p.adoptable == a)
            && (!self.unmanaged_only || p.unmanaged_agents > 0)
    }
}

fn count(v: u64) -> Value {
    Value::int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn number(v: f64) -> Value {
    Value::Number(Number::Float(v))
}

fn managed_value(m: &ManagedEquivalent) -> Value {
    Value::object([
        ("group_id", Value::string(m.group_id.to_string())),
        ("group_name", Value::string(&m.group_name)),
        (
            "pipeline_id",
            Value::string(m.pipeline_id.map(|p| p.to_string()).unwrap_or_default()),
        ),
        ("pipeline_name", Value::string(&m.pipeline_name)),
        (
            "endpoint_ids",
            string_list(m.endpoint_ids.iter().map(ToString::to_string)),
        ),
        (
            "exporter_binding_ids",
            string_list(m.exporter_binding_ids.iter().map(ToString::to_string)),
        ),
    ])
}

fn pipeline_value(p: &DiscoveredPipeline) -> Value {
    Value::object([
        ("id", Value::string(&p.id)),
        ("suggested_name", Value::string(&p.suggested_name)),
        (
            "signals",
            string_list(p.signals.iter().map(|s| s.as_str().to_string())),
        ),
        ("agents", count(p.agents)),
        ("unmanaged_agents", count(p.unmanaged_agents)),
        ("common_labels", map_value(&p.common_labels)),
        ("adoptable", Value::Bool(p.adoptable)),
        (
            "unrepresentable",
            string_list(
                p.unrepresentable
                    .iter()
                    .map(|u| format!("{}: {}", u.part, u.reason)),
            ),
        ),
        (
            "managed",
            Value::List(p.managed.iter().map(managed_value).collect()),
        ),
        (
            "throughput",
            Value::object([
                ("agents_reporting", count(p.throughput.agents_reporting)),
                (
                    "accepted_per_second",
                    number(p.throughput.accepted_per_second),
                ),
                (
                    "refused_per_second",
                    number(p.throughput.refused_per_second),
                ),
                ("sent_per_second", number(p.throughput.sent_per_second)),
            ]),
        ),
        (
            "health",
            Value::object([
                ("healthy", count(p.health.healthy)),
                ("unhealthy", count(p.health.unhealthy)),
                ("unknown", count(p.health.unknown)),
            ]),
        ),
    ])
}

#[async_trait]
impl DataSource for DiscoveredPipelinesDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_discovered_pipelines"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            "Lists the pipelines the connected collectors run, read from the effective configs \
             they report, managed by otaas or not. Equal pipelines on different agents are one \
             entry. Use it to find what to adopt (`otaas adopt <id>` or \
             `POST /api/v1/discovered-pipelines/<id>/adopt`), and, where `terraform query` is \
             not available, to write `import` blocks for the otaas objects that manage a \
             discovered pipeline. Filters combine with AND.",
            vec![
                Attribute::optional("adoptable", Type::Bool).description(
                    "Only pipelines that can be adopted (`true`) or only those that cannot \
                     (`false`). Default: both.",
                ),
                Attribute::optional("unmanaged_only", Type::Bool).description(
                    "Only pipelines that at least one agent in no agent group runs. Default: \
                     `false`.",
                ),
                Attribute::nested(
                    "pipelines",
                    Nesting::List,
                    Mode::Computed,
                    vec![
                        Attribute::computed("id", Type::String).description(
                            "Content hash (64 lowercase hex): equal for equal pipelines on any \
                             agent, whatever the names and formatting of their configs.",
                        ),
                        Attribute::computed("suggested_name", Type::String).description(
                            "The name an adoption gives the otaas pipeline unless told \
                             otherwise.",
                        ),
                        Attribute::computed("signals", Type::list(Type::String))
                            .description("`traces`, `metrics` and/or `logs`."),
                        Attribute::computed("agents", Type::Number)
                            .description("Agents running it."),
                        Attribute::computed("unmanaged_agents", Type::Number)
                            .description("Of those, agents in no agent group."),
                        Attribute::computed("common_labels", Type::map(Type::String)).description(
                            "Labels every agent running it has, with the same value: the \
                             selector an adopted group gets unless told otherwise.",
                        ),
                        Attribute::computed("adoptable", Type::Bool).description(
                            "Whether an adoption can make otaas objects of it (nothing \
                             unrepresentable).",
                        ),
                        Attribute::computed("unrepresentable", Type::list(Type::String))
                            .description(
                                "The parts otaas cannot represent, as `part: reason` \
                                 (e.g. `connector forward: connectors are not supported`).",
                            ),
                        Attribute::nested(
                            "managed",
                            Nesting::List,
                            Mode::Computed,
                            vec![
                                Attribute::computed("group_id", Type::String)
                                    .description("The agent group rendering it."),
                                Attribute::computed("group_name", Type::String)
                                    .description("That group's name."),
                                Attribute::computed("pipeline_id", Type::String).description(
                                    "Id of the `otaas_pipeline` with the same content; empty \
                                     when the content comes from several.",
                                ),
                                Attribute::computed("pipeline_name", Type::String)
                                    .description("That pipeline's name."),
                                Attribute::computed("endpoint_ids", Type::list(Type::String))
                                    .description("Ids of that pipeline's `otaas_endpoint`s."),
                                Attribute::computed(
                                    "exporter_binding_ids",
                                    Type::list(Type::String),
                                )
                                .description("Ids of that pipeline's `otaas_exporter_binding`s."),
                            ],
                        )
                        .description(
                            "The otaas pipelines already rendering the same content, one entry \
                             per agent group; empty when otaas does not manage it.",
                        ),
                        Attribute::nested(
                            "throughput",
                            Nesting::Single,
                            Mode::Computed,
                            vec![
                                Attribute::computed("agents_reporting", Type::Number).description(
                                    "Agents whose own metrics name one of its pipelines.",
                                ),
                                Attribute::computed("accepted_per_second", Type::Number)
                                    .description("Items accepted by its receivers."),
                                Attribute::computed("refused_per_second", Type::Number)
                                    .description("Items refused by its receivers."),
                                Attribute::computed("sent_per_second", Type::Number)
                                    .description("Items sent by its exporters."),
                            ],
                        )
                        .description(
                            "Its load summed over its agents, from their own metrics, items per \
                             second.",
                        ),
                        Attribute::nested(
                            "health",
                            Nesting::Single,
                            Mode::Computed,
                            vec![
                                Attribute::computed("healthy", Type::Number)
                                    .description("Agents reporting themselves healthy."),
                                Attribute::computed("unhealthy", Type::Number)
                                    .description("Agents reporting themselves unhealthy."),
                                Attribute::computed("unknown", Type::Number)
                                    .description("Agents that reported no health."),
                            ],
                        )
                        .description("Health of the agents running it."),
                    ],
                )
                .description("The matching discovered pipelines, in the server's order."),
            ],
        )
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let filter = Filter::from_config(config);
        match client.list_discovered_pipelines().await {
            Ok(found) => {
                let mut out = config.clone();
                out.set(
                    "pipelines",
                    Value::List(
                        found
                            .iter()
                            .filter(|p| filter.keeps(p))
                            .map(pipeline_value)
                            .collect(),
                    ),
                );
                Some(out)
            }
            Err(e) => {
                diags.push(api_error("listing discovered pipelines", &e, config));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaas_api::discovery::{DiscoveredHealth, DiscoveredThroughput, UnrepresentablePart};

    fn discovered(adoptable: bool, unmanaged_agents: u64) -> DiscoveredPipeline {
        DiscoveredPipeline {
            id: "ab".repeat(32),
            suggested_name: "logs-app".into(),
            signals: vec![otaas_api::Signal::Logs],
            pipelines: vec![],
            connectors: Default::default(),
            agents: 3,
            unmanaged_agents,
            common_labels: [("env".to_string(), "prod".to_string())].into(),
            managed: vec![],
            unrepresentable: if adoptable {
                vec![]
            } else {
                vec![UnrepresentablePart {
                    part: "connector forward".into(),
                    reason: "connectors are not supported".into(),
                }]
            },
            adoptable,
            health: DiscoveredHealth {
                healthy: 2,
                unhealthy: 0,
                unknown: 1,
            },
            throughput: DiscoveredThroughput::default(),
            anomalies: vec![],
            sample_agents: vec![],
        }
    }

    /// Given an adoptable pipeline without unmanaged agents and an unadoptable one with some,
    /// when each filter is applied, then it keeps exactly the pipelines its description names.
    #[test]
    fn filters_keep_what_they_name() {
        let a = discovered(true, 0);
        let b = discovered(false, 2);
        let keeps = |f: Filter| (f.keeps(&a), f.keeps(&b));
        assert_eq!(keeps(Filter::default()), (true, true));
        let only = |adoptable| Filter {
            adoptable: Some(adoptable),
            unmanaged_only: false,
        };
        assert_eq!(keeps(only(true)), (true, false));
        assert_eq!(keeps(only(false)), (false, true));
        let unmanaged = Filter {
            adoptable: None,
            unmanaged_only: true,
        };
        assert_eq!(keeps(unmanaged), (false, true));
        let both = Filter {
            adoptable: Some(true),
            unmanaged_only: true,
        };
        assert_eq!(keeps(both), (false, false));
    }

    /// Given a config with `unmanaged_only = false` and `adoptable` unset, when read as a
    /// filter, then it filters nothing (false is not "only managed").
    #[test]
    fn unset_and_false_filters_keep_everything() {
        let config = Value::object([
            ("adoptable", Value::Null),
            ("unmanaged_only", Value::Bool(false)),
        ]);
        assert_eq!(Filter::from_config(&config), Filter::default());
    }

    /// Given an unadoptable pipeline managed by one group, when turned into the schema's
    /// object, then its parts read as `part: reason` and the managed ids are strings, with an
    /// empty pipeline id where the server gave none.
    #[test]
    fn value_carries_reasons_and_managed_ids() {
        let mut p = discovered(false, 1);
        let group = otaas_api::AgentGroupId::new();
        p.managed = vec![ManagedEquivalent {
            group_id: group,
            group_name: "edge".into(),
            pipeline_id: None,
            pipeline_name: "logs-app".into(),
            endpoint_ids: vec![],
            exporter_binding_ids: vec![],
        }];
        let v = pipeline_value(&p);
        assert_eq!(
            v.get("unrepresentable"),
            Some(&string_list([
                "connector forward: connectors are not supported".to_string()
            ]))
        );
        let Some(Value::List(managed)) = v.get("managed") else {
            panic!("managed is a list: {v:?}");
        };
        assert_eq!(
            managed[0].get("group_id"),
            Some(&Value::string(group.to_string()))
        );
        assert_eq!(managed[0].get("pipeline_id"), Some(&Value::string("")));
        assert_eq!(
            v.get("health").and_then(|h| h.get("unknown")),
            Some(&Value::int(1))
        );
    }
}

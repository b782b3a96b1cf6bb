//! `otaas_agent_group_status`: the rollout state and fleet counts of one agent group.

use async_trait::async_trait;

use crate::framework::*;
use crate::resources::common::*;

pub struct GroupStatusDataSource;

const COUNTS: [(&str, &str); 8] = [
    (
        "matched",
        "Agents whose labels put them in the group (connected or not).",
    ),
    ("applied", "Agents that applied the current config."),
    ("applying", "Agents applying the current config now."),
    ("failed", "Agents that rejected the current config."),
    (
        "pending",
        "Agents not (yet) reporting on the current config, including disconnected ones.",
    ),
    ("healthy", "Agents reporting themselves healthy."),
    ("unhealthy", "Agents reporting themselves unhealthy."),
    (
        "drifted",
        "Agents that applied the config but run a different effective config.",
    ),
];

#[async_trait]
impl DataSource for GroupStatusDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_agent_group_status"
    }
    fn schema(&self) -> Schema {
        let mut attrs = vec![
            Attribute::required("group_id", Type::String)
                .description("Id of the `otaas_agent_group`."),
            Attribute::computed("revision", Type::Number)
                .description("The group's current config revision."),
            Attribute::computed("config_hash", Type::String)
                .description("SHA-256 (hex) of the group's current config."),
            Attribute::computed("state", Type::String).description(
                "Rollout state: `in_progress`, `complete`, `failed`, `rolled_back` or `paused`.",
            ),
        ];
        attrs.extend(
            COUNTS
                .iter()
                .map(|(n, d)| Attribute::computed(n, Type::Number).description(d)),
        );
        attrs.push(
            Attribute::nested(
                "failures",
                Nesting::List,
                Mode::Computed,
                vec![
                    Attribute::computed("agent_id", Type::String)
                        .description("Instance uid of the failing agent."),
                    Attribute::computed("message", Type::String)
                        .description("The agent's error message."),
                ],
            )
            .description("The agents that rejected the current config, with their messages."),
        );
        Schema::new(
            "The rollout state of an agent group's current config and the health of its agents.",
            attrs,
        )
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let _ = group_id_arg(config, diags);
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        // Validated at plan time, but a value unknown then arrives only now.
        let id = group_id_arg(config, diags).ok()??;
        match client.group_status(id).await {
            Ok(st) => {
                let n = |v: u64| Value::int(i64::try_from(v).unwrap_or(i64::MAX));
                Some(Value::object([
                    ("group_id", Value::string(id.to_string())),
                    ("revision", Value::int(st.revision)),
                    ("config_hash", Value::string(&st.config_hash)),
                    ("state", Value::string(st.state.as_str())),
                    ("matched", n(st.matched)),
                    ("applied", n(st.applied)),
                    ("applying", n(st.applying)),
                    ("failed", n(st.failed)),
                    ("pending", n(st.pending)),
                    ("healthy", n(st.healthy)),
                    ("unhealthy", n(st.unhealthy)),
                    ("drifted", n(st.drifted)),
                    (
                        "failures",
                        Value::List(
                            st.failures
                                .iter()
                                .map(|f| {
                                    Value::object([
                                        ("agent_id", Value::string(&f.agent_id)),
                                        ("message", Value::string(&f.message)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ]))
            }
            Err(e) => {
                diags.push(api_error(
                    &format!("reading the status of agent group {id}"),
                    &e,
                    config,
                ));
                None
            }
        }
    }
}

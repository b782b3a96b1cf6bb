//! `otaas_agent_group_config`: the collector YAML of one agent group (secrets redacted) at its
//! current revision or a given one, with who and what caused that revision.

use async_trait::async_trait;

use crate::framework::*;
use crate::resources::common::*;

pub struct GroupConfigDataSource;

#[async_trait]
impl DataSource for GroupConfigDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_agent_group_config"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            "The rendered OpenTelemetry Collector config of an agent group, as its agents receive \
             it but with secret values (tokens, header values, credentials) replaced by \
             `<redacted>`: the current revision, or an earlier one the server still keeps \
             (`otaas serve --revision-retention-count`/`--revision-retention-days`).",
            vec![
                Attribute::required("group_id", Type::String)
                    .description("Id of the `otaas_agent_group`."),
                Attribute::optional_computed("revision", Type::Number).description(
                    "The config revision to read (1, 2, ...); default the group's current one. \
                     A revision the group does not have (or no longer keeps) is an error.",
                ),
                Attribute::computed("sha256", Type::String).description(
                    "SHA-256 (hex) of the config agents receive (with its secrets): what \
                     agents report and the group's `config_hash` at this revision.",
                ),
                Attribute::computed("yaml", Type::String)
                    .description("The collector YAML with secret values redacted."),
                Attribute::computed("created_at", Type::String)
                    .description("When the revision was made (RFC 3339)."),
                Attribute::computed("token_id", Type::String).description(
                    "Id of the API token whose write made the revision; null for the \
                     server's `--admin-token` and for server-side causes.",
                ),
                Attribute::computed("token_description", Type::String).description(
                    "That token's description, `admin token (--admin-token)`, or `server` \
                     (e.g. an endpoint token's grace period ended). Never the token.",
                ),
                Attribute::computed("cause_kind", Type::String).description(
                    "The object whose write made the revision: `pipeline`, `endpoint`, \
                     `exporter_binding` or `agent_group`; null for server-side causes.",
                ),
                Attribute::computed("cause_id", Type::String).description("That object's id."),
                Attribute::computed("cause_name", Type::String).description("That object's name."),
                Attribute::computed("cause_revision", Type::Number).description(
                    "That object's revision after the write; null when the write deleted it.",
                ),
            ],
        )
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let _ = group_id_arg(config, diags);
        if let Some(r) = int(config, "revision")
            && r < 1
        {
            diags.error_at(
                AttributePath::attr("revision"),
                "Invalid revision",
                format!("revision must be a revision number from 1; got {r}."),
            );
        }
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        // Validated at plan time, but a value unknown then arrives only now.
        let id = group_id_arg(config, diags).ok()??;
        let revision = int(config, "revision");
        match client.agent_group_config_at(id, revision).await {
            Ok(c) => {
                let cause = &c.cause;
                Some(Value::object([
                    ("group_id", Value::string(id.to_string())),
                    ("revision", Value::int(c.revision)),
                    ("sha256", Value::string(&c.sha256)),
                    ("yaml", Value::string(&c.yaml)),
                    ("created_at", Value::string(rfc3339(&c.created_at))),
                    (
                        "token_id",
                        opt_string(cause.token_id.map(|t| t.to_string()).as_deref()),
                    ),
                    (
                        "token_description",
                        opt_string(cause.token_description.as_deref()),
                    ),
                    ("cause_kind", opt_string(cause.cause_kind.as_deref())),
                    ("cause_id", opt_string(cause.cause_id.as_deref())),
                    ("cause_name", opt_string(cause.cause_name.as_deref())),
                    (
                        "cause_revision",
                        cause.cause_revision.map_or(Value::Null, Value::int),
                    ),
                ]))
            }
            Err(e) => {
                let what = match revision {
                    Some(r) => format!("reading revision {r} of agent group {id}'s config"),
                    None => format!("reading agent group {id}'s config"),
                };
                diags.push(api_error(&what, &e, config));
                None
            }
        }
    }
}

/// A timestamp as the API writes it (RFC 3339, UTC).
fn rfc3339<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

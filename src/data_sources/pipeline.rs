//! `otaas_pipeline` data source: a pipeline by id or name, with the resource's attributes.

use async_trait::async_trait;

use crate::framework::*;
use crate::resources::common::*;

pub struct PipelineDataSource;

/// The resource's attributes a data source has no use for.
const WRITE_SIDE: [&str; 3] = ["secrets", "secrets_wo", "secrets_wo_version"];

#[async_trait]
impl DataSource for PipelineDataSource {
    fn type_name(&self) -> &'static str {
        "otaas_pipeline"
    }
    fn schema(&self) -> Schema {
        let mut schema = crate::resources::pipeline::schema();
        schema.description =
            "Reads a pipeline by `id` or by `name` (give exactly one), e.g. one managed in \
             another configuration."
                .into();
        // Secret values are written, never read: the data source shows their digests.
        schema
            .attributes
            .retain(|a| !WRITE_SIDE.contains(&a.name.as_str()));
        for a in &mut schema.attributes {
            a.modifiers.clear();
            a.mode = match a.name.as_str() {
                "id" | "name" => Mode::OptionalComputed,
                _ => Mode::Computed,
            };
            if let AttrType::Nested(_, inner) = &mut a.ty {
                for i in inner {
                    i.mode = Mode::Computed;
                    i.modifiers.clear();
                }
            }
        }
        schema
    }
    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let id = config.get("id").is_some_and(|v| !v.is_null());
        let name = config.get("name").is_some_and(|v| !v.is_null());
        if id == name {
            diags.error_at(
                AttributePath::attr(if id { "name" } else { "id" }),
                "Give id or name",
                "Set exactly one of id and name.",
            );
        }
    }
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let client = client_or_diag(ctx, diags)?;
        let (key, attr) = match (string(config, "id"), string(config, "name")) {
            (Some(id), _) => (id, "id"),
            (None, Some(name)) => (name, "name"),
            _ => return None,
        };
        match crate::resources::pipeline::lookup(&client, &key).await {
            Ok(Some(p)) => {
                let mut st = crate::resources::pipeline::state(&p, &Value::Null);
                if let Value::Object(m) = &mut st {
                    m.retain(|k, _| !WRITE_SIDE.contains(&k.as_str()));
                }
                Some(st)
            }
            Ok(None) => {
                diags.error_at(
                    AttributePath::attr(attr),
                    "Pipeline not found",
                    format!("No pipeline has the {attr} {key:?}."),
                );
                None
            }
            Err(e) => {
                diags.error("Error reading pipeline", e);
                None
            }
        }
    }
}

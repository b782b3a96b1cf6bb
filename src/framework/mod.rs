//! The provider framework: domain types resources use (`Value`, `Schema`, `Diagnostics`,
//! `Context`), the traits they implement (`Resource`, `DataSource`, `ListResource`, `Action`),
//! the planning rules, and the registry that maps type names to implementations. No wire types here: `codec` and `server` convert at the edges.
//!
//! A resource in brief (the framework plans computed values, identity and replacement):
//!
//! ```
//! use async_trait::async_trait;
//! use terraform_provider_otaas::framework::*;
//!
//! struct Thing;
//!
//! #[async_trait]
//! impl Resource for Thing {
//!     fn type_name(&self) -> &'static str { "otaas_thing" }
//!     fn schema(&self) -> Schema {
//!         Schema::new("A thing.", vec![
//!             Attribute::computed("id", Type::String).use_state_for_unknown().description("Server id."),
//!             Attribute::required("name", Type::String).requires_replace().description("Unique name."),
//!             Attribute::optional("config", Type::String).json_semantic().description("JSON body."),
//!         ])
//!     }
//!     fn identity_schema(&self) -> Option<IdentitySchema> {
//!         Some(IdentitySchema { version: 0, attributes: vec![IdentityAttribute {
//!             name: "id".into(), ty: Type::String, required_for_import: true, description: "Id.".into() }] })
//!     }
//!     fn identity(&self, state: &Value) -> Option<Value> {
//!         Some(Value::object([("id", state.get("id")?.clone())]))
//!     }
//!     async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
//!         // Unknown values (Val::Unknown) are skipped: they are checked again at apply.
//!         if let Ok(Val::Known(name)) = config.attr::<String>("name") && name.is_empty() {
//!             diags.error_at(AttributePath::attr("name"), "Invalid name", "name must not be empty");
//!         }
//!     }
//!     async fn create(&self, ctx: &Context, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<Value> {
//!         let _api = match ctx.provider_config() { Ok(c) => c, Err(d) => { diags.push(d); return None } };
//!         let mut state = planned.clone();
//!         state.set("id", Value::string("t-1")); // from the API's answer
//!         Some(state)
//!     }
//!     async fn read(&self, _ctx: &Context, state: &Value, _diags: &mut Diagnostics) -> Value {
//!         state.clone() // or Value::Null when the object is gone
//!     }
//!     async fn update(&self, _ctx: &Context, _prior: &Value, planned: &Value, _config: &Value,
//!                     _diags: &mut Diagnostics) -> Option<Value> {
//!         Some(planned.clone())
//!     }
//!     async fn delete(&self, _ctx: &Context, _prior: &Value, _diags: &mut Diagnostics) {}
//!     async fn import(&self, _ctx: &Context, request: ImportRequest, _diags: &mut Diagnostics) -> Option<Value> {
//!         let id = match request {
//!             ImportRequest::Id(id_or_name) => id_or_name,
//!             ImportRequest::Identity(identity) => identity.attr::<String>("id").ok()?.into_known()?,
//!         };
//!         Some(Value::object([("id", Value::string(id))])) // Terraform reads the rest next
//!     }
//! }
//!
//! let registry = Registry::new(terraform_provider_otaas::provider::schema()).resource(Thing);
//! assert!(registry.resources.contains_key("otaas_thing"));
//! ```

pub mod action;
pub mod context;
pub mod diag;
pub mod plan;
pub mod registry;
pub mod resource;
pub mod schema;
pub mod semantic;
pub mod value;

pub use action::{Action, Progress};
pub use context::{Context, ProviderConfig, Secret};
pub use diag::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use registry::Registry;
pub use resource::{
    DataSource, ImportRequest, ListEvent, ListItem, ListRequest, ListResource, PlanChange, Resource,
};
pub use schema::{
    AttrType, Attribute, IdentityAttribute, IdentitySchema, Mode, Nesting, PlanModifier, Schema,
};
pub use value::{FromValue, IntoValue, Number, Refinements, Type, Val, Value, ValueError};

//! The traits resource authors implement: `Resource` (managed objects), `DataSource` (reads) and
//! `ListResource` (`terraform query`). The framework does the protocol, the planning rules and
//! the identity bookkeeping; implementations only talk to the API and shape values.

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::context::Context;
use super::diag::{AttributePath, Diagnostic, Diagnostics};
use super::schema::{IdentitySchema, Schema};
use super::value::Value;

/// The plan for one resource instance, after the framework applied the schema's rules (computed
/// values unknown, `use_state_for_unknown`, `requires_replace`). `Resource::modify_plan` may
/// change `planned` and `requires_replace`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanChange {
    /// Null on create.
    pub prior: Value,
    pub config: Value,
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
}

impl PlanChange {
    pub fn is_create(&self) -> bool {
        self.prior.is_null()
    }
}

/// How `terraform import` / an `import {}` block names the object.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportRequest {
    /// `terraform import ADDR ID` or `import { id = ... }`: by id or by name.
    Id(String),
    /// `import { identity = { ... } }`, decoded with the identity schema.
    Identity(Value),
}

#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// Full type name, e.g. `otaas_pipeline`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Resource identity (id, name), needed for identity import and list resources.
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }
    /// The identity of the object described by `state` (an object of the identity schema).
    fn identity(&self, _state: &Value) -> Option<Value> {
        None
    }
    /// Config-only checks; values may be unknown here.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Adjust the framework's plan (both create and update; not destroy).
    async fn modify_plan(
        &self,
        _ctx: &Context,
        _change: &mut PlanChange,
        _diags: &mut Diagnostics,
    ) {
    }
    /// Creates the object; returns the new state (wholly known), or `None` with an error.
    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value>;
    /// Reads the object; returns `Value::Null` when it no longer exists (Terraform plans a create).
    async fn read(&self, ctx: &Context, state: &Value, diags: &mut Diagnostics) -> Value;
    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        config: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value>;
    async fn delete(&self, ctx: &Context, prior: &Value, diags: &mut Diagnostics);
    /// Finds an existing object; the returned state may be partial (Terraform reads it next).
    async fn import(
        &self,
        ctx: &Context,
        request: ImportRequest,
        diags: &mut Diagnostics,
    ) -> Option<Value>;
    /// Converts state stored at an older schema version (JSON) to the current schema.
    async fn upgrade_state(
        &self,
        version: i64,
        _raw: &serde_json::Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        diags.push(Diagnostic::error(
            "Unsupported state version",
            format!(
                "{} has no upgrade from schema version {version}",
                self.type_name()
            ),
        ));
        None
    }
}

#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Reads the data; the result must be a wholly known, non-null object.
    async fn read(&self, ctx: &Context, config: &Value, diags: &mut Diagnostics) -> Option<Value>;
}

/// One `ListResource` request from `terraform query`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub config: Value,
    /// Whether each result should carry the full resource object.
    pub include_resource: bool,
    /// Terraform stops reading after this many results (default 100).
    pub limit: i64,
}

/// One result of a list operation.
#[derive(Debug, Clone, PartialEq)]
pub struct ListItem {
    /// An object of the resource's identity schema.
    pub identity: Value,
    pub display_name: String,
    /// The full resource state, when requested.
    pub resource: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ListEvent {
    Item(ListItem),
    /// An error ends the query; warnings are shown.
    Diagnostic(Diagnostic),
}

#[async_trait]
pub trait ListResource: Send + Sync + 'static {
    /// Must equal the managed resource type it lists (which must have an identity schema).
    fn type_name(&self) -> &'static str;
    /// Schema of the `config {}` block of a `list` block.
    fn config_schema(&self) -> Schema;
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    async fn list(&self, ctx: &Context, request: ListRequest) -> BoxStream<'static, ListEvent>;
}

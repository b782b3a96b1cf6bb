//! The provider framework: domain types resources use (`Value`, `Schema`, `Diagnostics`,
//! `Context`), the traits they implement, the planning rules, and the registry that maps type
//! names to implementations. No wire types here: `codec` and `server` convert at the edges.

pub mod context;
pub mod diag;
pub mod plan;
pub mod registry;
pub mod resource;
pub mod schema;
pub mod semantic;
pub mod value;

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

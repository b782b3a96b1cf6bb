//! terraform-provider-otaas: a Terraform/OpenTofu provider for otaas, spoken directly on tfplugin6.
//!
//! Module map:
//! - [`proto`]: generated tfplugin6 and go-plugin wire types (build.rs, protox + tonic-prost-build).
//! - [`codec`]: msgpack `DynamicValue`s, the JSON type encoding and JSON state, to/from [`framework::Value`].
//! - [`framework`]: what resource authors use: `Value`/`Val<T>`, `Schema`, `Diagnostics`, `Context`,
//!   the `Resource`/`DataSource`/`ListResource`/`Action` traits, planning rules, the `Registry`.
//! - [`server`]: the tonic `Provider` service dispatching RPCs to the registry, the go-plugin
//!   services, the handshake and AutoMTLS.
//! - [`provider`]: the otaas provider block (schema, validation, `ProviderConfig`).
//! - [`resources`], [`data_sources`], [`actions`]: the concrete otaas types.
//! - [`docs`]: registry-layout docs and the schema snapshot, generated from the schemas.

pub mod actions;
pub mod codec;
pub mod data_sources;
pub mod docs;
pub mod framework;
pub mod proto;
pub mod provider;
pub mod resources;
pub mod server;

/// The registry of everything this provider serves.
pub fn registry() -> framework::Registry {
    let mut r = framework::Registry::new(provider::schema());
    r = resources::register(r);
    r = data_sources::register(r);
    r = actions::register(r);
    r
}

//! What otaas knows of the OpenTelemetry Collector, shared by the control plane (which renders
//! and validates configs) and the fleet simulator (which refuses what a collector refuses).
//!
//! - [`components`]: the component table (types per kind, signals each supports).
//! - [`check`]: the checks a collector applies to a config at start-up, with collector-like
//!   messages.
//! - [`shape`]: what a config's pipelines do, without the names it gives them (discovery,
//!   adoption, and the agent's "same config, no restart" rule).

pub mod check;
pub mod components;
pub mod shape;

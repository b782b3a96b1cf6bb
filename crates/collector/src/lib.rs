//! What otaas knows of the OpenTelemetry Collector, shared by the control plane (which renders
//! and validates configs) and the fleet simulator (which refuses what a collector refuses).
//!
//! - [`components`]: the component table (types per kind, signals each supports).
//! - [`check`]: the checks a collector applies to a config at start-up, with collector-like
//!   messages.

pub mod check;
pub mod components;

//! otaas control plane: REST API, OpAMP server, rollout engine and fleet simulator.

pub mod fleet_sim;

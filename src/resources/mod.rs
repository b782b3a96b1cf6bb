//! The otaas managed resource types (and their list resources), one file per type; `common`
//! holds the API client, error mapping and plan-time checks they share, `rollout` the wait for
//! the rollouts their writes start.

use crate::framework::Registry;

pub mod agent_group;
pub mod common;
pub mod endpoint;
pub mod exporter_binding;
pub mod pipeline;
pub mod rollout;
pub mod secrets;

/// Adds every otaas resource and list resource to the registry.
pub fn register(registry: Registry) -> Registry {
    registry
        .resource(pipeline::PipelineResource)
        .list_resource(pipeline::PipelineList)
        .resource(endpoint::EndpointResource)
        .list_resource(endpoint::EndpointList)
        .resource(exporter_binding::ExporterBindingResource)
        .list_resource(exporter_binding::ExporterBindingList)
        .resource(agent_group::AgentGroupResource)
        .list_resource(agent_group::AgentGroupList)
}

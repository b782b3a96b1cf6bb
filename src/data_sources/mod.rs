//! The otaas data source types, one file per type (`agents.rs` holds `otaas_agents` and
//! `otaas_agent`, which share the agent shape).

use crate::framework::Registry;

pub mod agent_group_config;
pub mod agents;
pub mod discovered_pipelines;
pub mod fleet_insights;
pub mod group_status;
pub mod pipeline;

/// Adds every otaas data source to the registry.
pub fn register(registry: Registry) -> Registry {
    registry
        .data_source(agent_group_config::GroupConfigDataSource)
        .data_source(agents::AgentsDataSource)
        .data_source(agents::AgentDataSource)
        .data_source(discovered_pipelines::DiscoveredPipelinesDataSource)
        .data_source(fleet_insights::FleetInsightsDataSource)
        .data_source(group_status::GroupStatusDataSource)
        .data_source(pipeline::PipelineDataSource)
}

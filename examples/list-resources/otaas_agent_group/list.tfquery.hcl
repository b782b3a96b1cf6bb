# Up to 500 agent groups, with their selectors, pipelines and rollout settings.
list "otaas_agent_group" "all" {
  provider = otaas
  limit    = 500
}

data "otaas_agents" "all" {}

# One agent, by its instance uid.
data "otaas_agent" "first" {
  count = length(data.otaas_agents.all.agents) > 0 ? 1 : 0
  id    = data.otaas_agents.all.agents[0].id
}

output "first_agent_status" {
  value = one(data.otaas_agent.first[*].remote_config_status)
}

# Why it is unhealthy (empty when healthy), and which components it reports unhealthy.
output "first_agent_health" {
  value = one([for a in data.otaas_agent.first : {
    healthy   = a.healthy
    reason    = a.unhealthy_reason
    unhealthy = [for c in a.components : c.name if !c.healthy]
  }])
}

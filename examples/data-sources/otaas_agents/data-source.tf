# All agents in the EU region, with their health and config status.
data "otaas_agents" "eu" {
  selector = { region = "eu" }
}

# Each unhealthy agent with the one-line reason (the failing component and its error).
output "unhealthy_agents" {
  value = [for a in data.otaas_agents.eu.agents : "${a.id}: ${a.unhealthy_reason}" if !a.healthy]
}

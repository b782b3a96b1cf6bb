# All agents in the EU region, with their health and config status.
data "otaas_agents" "eu" {
  selector = { region = "eu" }
}

output "unhealthy_agents" {
  value = [for a in data.otaas_agents.eu.agents : a.id if !a.healthy]
}

resource "otaas_pipeline" "status_demo" {
  name    = "status-demo"
  signals = ["metrics"]
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

resource "otaas_agent_group" "status_demo" {
  name             = "status-demo"
  selector         = { env = "example", team = "status" }
  pipeline_ids     = [otaas_pipeline.status_demo.id]
  wait_for_rollout = true
}

# Rollout state and fleet health counts of a group.
data "otaas_agent_group_status" "demo" {
  group_id = otaas_agent_group.status_demo.id
}

output "group_health" {
  value = {
    state     = data.otaas_agent_group_status.demo.state
    matched   = data.otaas_agent_group_status.demo.matched
    applied   = data.otaas_agent_group_status.demo.applied
    failed    = data.otaas_agent_group_status.demo.failed
    unhealthy = data.otaas_agent_group_status.demo.unhealthy
  }
}

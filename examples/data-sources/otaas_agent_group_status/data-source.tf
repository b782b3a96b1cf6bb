resource "otaas_pipeline" "status_demo" {
  name    = "status-demo"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/status-demo/*.log"] })
  }
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

resource "otaas_exporter_binding" "status_demo" {
  name        = "status-demo"
  pipeline_id = otaas_pipeline.status_demo.id
  destinations = [
    { name = "gateway", type = "otlphttp", endpoint = "http://otel-gateway.internal:4318" },
  ]
}

resource "otaas_agent_group" "status_demo" {
  name             = "status-demo"
  selector         = { env = "example", team = "status" }
  pipeline_ids     = [otaas_pipeline.status_demo.id]
  wait_for_rollout = true
  depends_on       = [otaas_exporter_binding.status_demo]
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

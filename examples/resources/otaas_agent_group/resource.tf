resource "otaas_pipeline" "edge" {
  name    = "edge"
  signals = ["logs"]
  receivers = {
    "otlp" = jsonencode({ protocols = { http = { endpoint = "127.0.0.1:4318" } } })
  }
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

resource "otaas_exporter_binding" "edge_debug" {
  name        = "edge-debug"
  pipeline_id = otaas_pipeline.edge.id
  destinations = [
    { name = "console", type = "debug", config = jsonencode({ verbosity = "basic" }) },
  ]
}

# Every agent whose labels match the selector runs the group's pipelines. A change
# rolls out with the chosen strategy; apply waits until the fleet converged and
# fails, naming the failing agents, when it did not.
resource "otaas_agent_group" "edge_eu" {
  name         = "edge-eu"
  selector     = { env = "example", region = "eu" }
  pipeline_ids = [otaas_pipeline.edge.id]

  rollout = {
    strategy       = "canary"
    canary_percent = 10
    bake_seconds   = 0
    max_failures   = 0
    auto_rollback  = true
  }

  wait_for_rollout = true
  rollout_timeout  = "5m"

  depends_on = [otaas_exporter_binding.edge_debug]
}

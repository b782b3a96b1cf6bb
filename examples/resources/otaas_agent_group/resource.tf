# Two signals, one receiver that supports only logs: the rendered config has a
# logs/edge pipeline and no metrics/edge one (a collector refuses filelog in a
# metrics pipeline). A metrics receiver added later fills metrics/edge.
resource "otaas_pipeline" "edge" {
  name    = "edge"
  signals = ["logs", "metrics"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/edge/*.log"] })
  }
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

resource "otaas_exporter_binding" "edge_out" {
  name        = "edge-out"
  pipeline_id = otaas_pipeline.edge.id
  destinations = [
    { name = "gateway", type = "otlphttp", endpoint = "http://otel-gateway.internal:4318" },
  ]
}

# Every agent whose labels match the selector runs the group's pipelines. A change
# rolls out with the chosen strategy; apply waits until the fleet converged and
# fails, naming the failing agents, when it did not. `depends_on` the binding: the
# group's config needs a receiver and an exporter in each pipeline.
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

  depends_on = [otaas_exporter_binding.edge_out]
}

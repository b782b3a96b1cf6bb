# An agent group whose changes go to a canary half of its agents first, which then bakes for
# an hour before the rest get them: time enough to look, and to act.
resource "otaas_pipeline" "pause" {
  name    = "pause-demo"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/pause-demo/*.log"] })
  }
}

resource "otaas_exporter_binding" "pause" {
  name        = "pause-demo"
  pipeline_id = otaas_pipeline.pause.id
  destinations = [
    { name = "gateway", type = "otlphttp", endpoint = "http://otel-gateway.internal:4318" },
  ]
}

resource "otaas_agent_group" "pause" {
  name         = "pause-demo"
  selector     = { env = "example" }
  pipeline_ids = [otaas_pipeline.pause.id]
  rollout = {
    strategy       = "canary"
    canary_percent = 50
    bake_seconds   = 3600
  }
  depends_on = [otaas_exporter_binding.pause]
}

# Stops the group's rollout where it stands (no further step starts; agents keep what they
# run). Invoke it with:
#   terraform apply -invoke=action.otaas_rollout_pause.pause
action "otaas_rollout_pause" "pause" {
  config {
    group_id = otaas_agent_group.pause.id
  }
}

# An agent group whose changes go to a canary half of its agents first, which then bakes for
# an hour before the rest get them: time enough to look, and to act.
resource "otaas_pipeline" "rollback" {
  name    = "rollback-demo"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/rollback-demo/*.log"] })
  }
}

resource "otaas_exporter_binding" "rollback" {
  name        = "rollback-demo"
  pipeline_id = otaas_pipeline.rollback.id
  destinations = [
    { name = "gateway", type = "otlphttp", endpoint = "http://otel-gateway.internal:4318" },
  ]
}

resource "otaas_agent_group" "rollback" {
  name         = "rollback-demo"
  selector     = { env = "example" }
  pipeline_ids = [otaas_pipeline.rollback.id]
  rollout = {
    strategy       = "canary"
    canary_percent = 50
    bake_seconds   = 3600
  }
  depends_on = [otaas_exporter_binding.rollback]
}

# Sends every agent of the group back to its last good config revision, and waits (reporting
# progress) until they all run it again. Invoke it with:
#   terraform apply -invoke=action.otaas_rollout_rollback.rollback
action "otaas_rollout_rollback" "rollback" {
  config {
    group_id = otaas_agent_group.rollback.id
    wait     = true
    timeout  = "5m"
  }
}

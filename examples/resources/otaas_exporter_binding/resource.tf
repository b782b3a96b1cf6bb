variable "org" {
  type    = string
  default = "tenant-1"
}

resource "otaas_pipeline" "orders" {
  name    = "orders"
  signals = ["traces", "logs"]
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

# Sends the pipeline's processed data to two destinations. Header values are
# sensitive: they are rendered into collector configs but never read back.
resource "otaas_exporter_binding" "orders_out" {
  name        = "orders-out"
  pipeline_id = otaas_pipeline.orders.id
  signals     = ["traces"]
  destinations = [
    {
      name     = "tempo"
      type     = "otlp"
      endpoint = "tempo.internal:4317"
      headers  = { "x-scope-orgid" = var.org }
    },
    {
      name   = "audit"
      type   = "file"
      config = jsonencode({ path = "/var/log/otel/audit.json" })
    },
  ]
}

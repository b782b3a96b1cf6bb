variable "org" {
  type    = string
  default = "tenant-1"
}

variable "archive_api_key" {
  type      = string
  sensitive = true
  default   = "example-only-change-me"
}

resource "otaas_pipeline" "orders" {
  name    = "orders"
  signals = ["logs", "metrics"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/orders/*.log"] })
  }
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

# Sends the pipeline's processed data to two destinations. Header values are
# sensitive: they are rendered into collector configs but never read back.
resource "otaas_exporter_binding" "orders_out" {
  name        = "orders-out"
  pipeline_id = otaas_pipeline.orders.id
  signals     = ["logs"]
  destinations = [
    {
      name     = "loki"
      type     = "otlphttp"
      endpoint = "http://loki.internal:3100/otlp"
      headers  = { "x-scope-orgid" = var.org }
    },
    {
      name     = "archive"
      type     = "otlphttp"
      endpoint = "http://archive.internal:4318"
      # A secret referenced from the config: { "$secret" = "<name>" } stands for its value.
      config = jsonencode({
        compression = "zstd"
        headers     = { "x-api-key" = { "$secret" = "archive_key" } }
      })
    },
  ]
  # Secret values (sensitive) of the binding; `secrets_wo` keeps them out of state instead.
  secrets = { archive_key = var.archive_api_key }
}

# A pipeline: receivers and an ordered list of processors. Exporters are attached
# with otaas_exporter_binding; the pipeline reaches collectors through an agent group.
# A secret for the kafka receiver below; ephemeral, so it never reaches state or plan.
variable "kafka_password" {
  type      = string
  sensitive = true
  ephemeral = true
  default   = "example-only-change-me"
}

resource "otaas_pipeline" "checkout" {
  name        = "checkout"
  description = "Checkout service telemetry"
  signals     = ["traces", "metrics"]

  receivers = {
    "hostmetrics" = jsonencode({ collection_interval = "30s", scrapers = { cpu = {} } })
    # A secret is referenced as a whole string value: { "$secret" = "<name>" }.
    "kafka" = jsonencode({
      brokers = ["kafka.internal:9092"]
      topic   = "checkout-spans"
      auth = {
        sasl = {
          mechanism = "SCRAM-SHA-512"
          username  = "checkout"
          password  = { "$secret" = "kafka_password" }
        }
      }
    })
  }

  # Secret values are stored apart on the server, never read back (only their digests), and
  # rendered only into the config agents receive. secrets_wo keeps them out of state and plan
  # (Terraform 1.11+); change secrets_wo_version to send new values.
  secrets_wo         = { kafka_password = var.kafka_password }
  secrets_wo_version = 1

  processors = [
    { id = "memory_limiter", config = jsonencode({ limit_mib = 400, check_interval = "1s" }) },
    { id = "batch", config = jsonencode({}) },
  ]
}

resource "otaas_pipeline" "ingest" {
  name    = "ingest"
  signals = ["traces", "logs"]
  processors = [
    { id = "batch", config = jsonencode({ timeout = "2s" }) },
  ]
}

# A secure OTLP ingest endpoint feeding the pipeline. The bearer token is generated
# by the server, shown once (sensitive attribute `token`) and stored hashed.
# Bump token_version to rotate it.
resource "otaas_endpoint" "ingest_otlp" {
  name          = "ingest-otlp"
  pipeline_id   = otaas_pipeline.ingest.id
  protocol      = "otlp_http"
  port          = 4318
  auth          = "bearer"
  token_version = 1
}

output "ingest_token" {
  value     = otaas_endpoint.ingest_otlp.token
  sensitive = true
}

# Endpoints whose name starts with "checkout". Ingest tokens are not listed: bump
# token_version after adopting an endpoint to get a new one.
list "otaas_endpoint" "checkout" {
  provider = otaas
  config {
    name_prefix = "checkout"
  }
}

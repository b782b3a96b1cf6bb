resource "otaas_pipeline" "lookup_demo" {
  name    = "lookup-demo"
  signals = ["logs"]
  processors = [
    { id = "batch", config = jsonencode({}) },
  ]
}

# Read a pipeline managed elsewhere, by name.
data "otaas_pipeline" "by_name" {
  name       = "lookup-demo"
  depends_on = [otaas_pipeline.lookup_demo]
}

output "lookup_demo_signals" {
  value = data.otaas_pipeline.by_name.signals
}

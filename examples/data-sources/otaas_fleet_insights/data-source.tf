resource "otaas_pipeline" "insights_demo" {
  name    = "insights-demo"
  signals = ["logs"]
}

# An ingest endpoint without TLS or authentication: the insights list it as exposed.
resource "otaas_endpoint" "insights_demo" {
  name        = "insights-demo-open"
  pipeline_id = otaas_pipeline.insights_demo.id
  protocol    = "otlp_http"
  port        = 4318
  auth        = "none"
}

# The fleet's load, anomalies and security events.
data "otaas_fleet_insights" "fleet" {
  depends_on = [otaas_endpoint.insights_demo]
}

output "fleet_watch" {
  value = {
    open_endpoints   = [for e in data.otaas_fleet_insights.fleet.exposed_endpoints : e.name if !e.tls || !e.auth]
    flapping_agents  = [for a in data.otaas_fleet_insights.fleet.anomalies : a.agent_id if a.kind == "flapping_connection"]
    unmanaged_agents = length(data.otaas_fleet_insights.fleet.unmanaged_agents)
    # Items per second accepted by each collector pipeline, over the whole fleet.
    pipeline_load = { for p in data.otaas_fleet_insights.fleet.pipelines : p.pipeline => p.accepted_per_second }
  }
}

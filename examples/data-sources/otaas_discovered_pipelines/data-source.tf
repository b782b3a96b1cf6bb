# Pipelines connected collectors run that otaas can adopt, with at least one agent in no group.
data "otaas_discovered_pipelines" "candidates" {
  adoptable      = true
  unmanaged_only = true
}

# One line per candidate: what `otaas adopt <id>` would take over.
output "adoption_candidates" {
  value = [
    for p in data.otaas_discovered_pipelines.candidates.pipelines :
    "${substr(p.id, 0, 12)} ${p.suggested_name} (${join(",", p.signals)}) on ${p.agents} agents"
  ]
}

# Pipelines otaas cannot adopt, with what stops it.
data "otaas_discovered_pipelines" "blocked" {
  adoptable = false
}

output "not_adoptable" {
  value = { for p in data.otaas_discovered_pipelines.blocked.pipelines : p.suggested_name => p.unrepresentable... }
}

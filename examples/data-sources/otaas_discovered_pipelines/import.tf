# Without `terraform query` (Terraform before 1.14, OpenTofu): import the otaas pipelines that
# an adoption created, with `for_each` in import blocks (Terraform 1.7+). After `otaas adopt`,
# every adopted discovered pipeline lists the otaas pipeline managing it under `managed`.
data "otaas_discovered_pipelines" "all" {}

locals {
  adopted_pipeline_ids = toset(distinct(flatten([
    for p in data.otaas_discovered_pipelines.all.pipelines : [
      for m in p.managed : m.pipeline_id if m.pipeline_id != ""
    ]
  ])))
}

# Each adopted pipeline's current settings, so the imported resources plan no change.
data "otaas_pipeline" "adopted" {
  for_each = local.adopted_pipeline_ids
  id       = each.value
}

resource "otaas_pipeline" "adopted" {
  for_each    = local.adopted_pipeline_ids
  name        = data.otaas_pipeline.adopted[each.key].name
  description = data.otaas_pipeline.adopted[each.key].description
  signals     = data.otaas_pipeline.adopted[each.key].signals
  receivers   = data.otaas_pipeline.adopted[each.key].receivers
  processors  = data.otaas_pipeline.adopted[each.key].processors
}

import {
  for_each = local.adopted_pipeline_ids
  to       = otaas_pipeline.adopted[each.key]
  id       = each.value
}

output "adopted_pipelines" {
  value = sort([for p in otaas_pipeline.adopted : p.name])
}

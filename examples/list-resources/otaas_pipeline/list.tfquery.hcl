# Every pipeline on the server. `terraform query -generate-config-out=generated.tf`
# writes a resource block and an identity import block for each.
list "otaas_pipeline" "all" {
  provider = otaas
}

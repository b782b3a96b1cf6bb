# Makes this directory a complete root module: `terraform init` here finds the provider once
# `bash scripts/install-provider.sh` has put it in place; the endpoint and token come from
# OTAAS_ENDPOINT and OTAAS_TOKEN (see examples/provider/provider.tf for the provider block).
terraform {
  required_providers {
    otaas = {
      source = "otaas/otaas"
    }
  }
}

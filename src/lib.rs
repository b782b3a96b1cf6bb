//! terraform-provider-otaas: a Terraform/OpenTofu provider for otaas, spoken directly on tfplugin6.

terraform {
  required_providers {
    otaas = {
      source = "otaas/otaas"
    }
  }
}

# The endpoint and token can also come from OTAAS_ENDPOINT and OTAAS_TOKEN.
provider "otaas" {
  endpoint = "http://127.0.0.1:8080"
  # token    = var.otaas_token
  # ca_cert_pem = file("otaas-ca.pem") # when the server uses a private CA
  # Every change that reaches agents waits for their rollout; these are the defaults.
  # wait_for_rollout = true
  # rollout_timeout  = "10m"
}

# Import by id or by name.
terraform import otaas_pipeline.checkout 0b6d1c3e-1f0a-4a57-9d0e-3c1f4c2b9a10
terraform import otaas_pipeline.checkout checkout

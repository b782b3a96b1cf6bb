# Import by id or by name. The token is not importable: it was shown once at creation;
# bump token_version after import to get a new one.
terraform import otaas_endpoint.ingest_otlp ingest-otlp

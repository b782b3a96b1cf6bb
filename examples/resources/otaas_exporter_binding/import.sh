# Import by id or by name. Header values are not readable from the server, so set
# them in configuration after import; the next apply writes them.
terraform import otaas_exporter_binding.orders_out orders-out

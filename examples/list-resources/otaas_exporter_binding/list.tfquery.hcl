# Every exporter binding. Header values are secret and not listed: add them to the
# generated configuration before the first apply.
list "otaas_exporter_binding" "all" {
  provider = otaas
}

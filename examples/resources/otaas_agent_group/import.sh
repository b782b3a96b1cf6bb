# Import by id or by name.
terraform import otaas_agent_group.edge_eu edge-eu

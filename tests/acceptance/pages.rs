//! The provider reads every page of a list: against a server that serves at most 5 objects per
//! page (`--api-max-page-size 5`), refresh finds all 12 pipelines (a provider reading one page
//! would plan 7 of them for re-creation), `terraform query` lists all 12, and
//! `data.otaas_agents` sees all 7 agents; the refresh still costs one request per page, not
//! one per resource.

use serde_json::Value;

use crate::common::*;
use crate::harness::{FleetSim, Server};

const PAGED: &str = r#"
resource "otaas_pipeline" "p" {
  count   = 12
  name    = "paged-${count.index}"
  signals = ["logs"]
  receivers = {
    "filelog" = jsonencode({ include = ["/var/log/paged-${count.index}.log"] })
  }
}

data "otaas_agents" "paged" {
  selector   = { env = "paged" }
  depends_on = [otaas_pipeline.p]
}

output "agents" {
  value = length(data.otaas_agents.paged.agents)
}
"#;

const QUERY: &str = r#"
list "otaas_pipeline" "all" {
  provider = otaas
}
"#;

#[test]
fn the_provider_reads_every_page() {
    // Given a server serving at most 5 objects per page, 7 agents, and 12 pipelines applied
    let server = Server::start_with_flags(&["--api-max-page-size", "5"], &[]);
    let _fleet = FleetSim::builder(&server)
        .agents(7)
        .label("env", "paged")
        .start();
    wait_for_agents(&server, ("env", "paged"), 7);
    let ws = workspace(&server, PAGED);
    ws.apply();
    assert_eq!(block_on(api(&server).list_pipelines()).unwrap().len(), 12);

    // When Terraform refreshes them, then it finds all 12 (no change planned) with one list
    // request per page of 5
    let before = successful_gets(&server, Some("/api/v1/pipelines"));
    assert_plan_clean(&ws);
    let lists = successful_gets(&server, Some("/api/v1/pipelines")) - before;
    assert_eq!(
        lists, 3,
        "the refresh of 12 pipelines in pages of 5 cost {lists} list requests"
    );

    // And the data source sees all 7 agents
    let out = ws.terraform(&["output", "-json"]);
    out.assert_success();
    let outputs: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(outputs["agents"]["value"], 7, "{outputs:#}");

    // And terraform query lists all 12 pipelines
    let q = workspace(&server, "");
    q.write("main.tfquery.hcl", QUERY);
    let generated = q.query_generate("generated.tf");
    let found = generated.matches("resource \"otaas_pipeline\"").count();
    assert_eq!(found, 12, "{generated}");
}

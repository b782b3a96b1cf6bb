//! Acceptance tests: the real Terraform engine (1.15, see scripts/install-terraform.sh) drives
//! `terraform-provider-otaas` against a real `otaas serve` with simulated agents.
//!
//! One test binary (so the harness's per-process setup, such as building `otaas`, happens once);
//! one module per area. A test reads like this (locals drop in reverse order, so the workspace is
//! gone before the fleet and the server stop):
//!
//! ```ignore
//! let server = Server::start();                               // otaas serve, SQLite, port 0
//! let _fleet = FleetSim::builder(&server).agents(10).label("env", "demo").start();
//! let ws = Workspace::for_server(&server);                     // mirror + OTAAS_ENDPOINT/TOKEN
//! ws.write("main.tf", PIPELINE_TF);
//! ws.init();
//! ws.apply();
//! ws.plan_detailed_exitcode().assert_code(0);
//! let id = ws.state_resource("otaas_pipeline.p").unwrap()["values"]["id"].clone();
//! ws.destroy();
//! ```

mod adopt;
mod adopt_collector;
mod agent_group;
mod agent_health;
mod bench;
mod busy;
mod collector_config_plan;
mod common;
mod completeness;
mod console;
mod endpoint_binding;
mod examples;
mod harness;
mod harness_self_test;
mod insights;
mod old_engine;
mod pages;
mod pin_actions;
mod pipeline;
mod query;
mod rollout_wait;
mod secrets;
mod tls;

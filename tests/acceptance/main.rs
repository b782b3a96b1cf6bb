//! Acceptance tests: the real Terraform engine (1.15, see scripts/install-terraform.sh) drives
//! `terraform-provider-otaas` against a real `otaas serve` with simulated agents.
//!
//! One test binary (so the harness's per-process setup, such as building `otaas`, happens once);
//! one module per area.

mod harness;
mod harness_self_test;

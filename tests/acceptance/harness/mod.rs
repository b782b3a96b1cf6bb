//! The acceptance-test harness: the real Terraform engine with our provider from a filesystem
//! mirror (`terraform`), the real `otaas serve`, `otaas fleet-sim` and `otaas agent` with a real
//! collector (`server`), a fresh PostgreSQL
//! database (`postgres`), how binaries are found or built (`tools`), bounded child processes
//! (`process`), and a headless Chromium driven over WebDriver, with axe-core checks (`browser`).
//!
//! Not every test file uses every helper, hence `dead_code` and
//! `unused_imports` are allowed for this module.
#![allow(dead_code, unused_imports)]

pub(crate) mod browser;
pub(crate) mod postgres;
pub(crate) mod process;
pub(crate) mod server;
pub(crate) mod sink;
pub(crate) mod terraform;
pub(crate) mod tools;

pub(crate) use browser::{Browser, BrowserOptions, Element};
pub(crate) use postgres::PgDatabase;
pub(crate) use server::{FleetSim, RealAgent, Server};
pub(crate) use terraform::Workspace;

//! What the tests and the acceptance harness of otaas share: the `otaas` binary built for the
//! test profile, a real `otaas serve` and `otaas fleet-sim` as child processes, polling until a
//! condition holds, and PostgreSQL schemas.
//!
//! - [`bin`]: the `otaas` binary (built once per test process).
//! - [`procs`]: `Serve` and `Sim`, with their output collected; `wait_for`, `free_addr`.
//! - [`pg`]: the machine's PostgreSQL and fresh schema names.

pub mod bin;
pub mod pg;
pub mod procs;

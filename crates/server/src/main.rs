//! The `otaas` binary.

fn main() {}

//! Entry point of the provider binary: handshake and serve only.

fn main() {}

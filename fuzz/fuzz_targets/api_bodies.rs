//! cargo-fuzz target `api_bodies`: see `fuzz/checks/api_bodies.rs` for the input format and invariants.
#![no_main]

#[path = "../checks/api_bodies.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});

//! cargo-fuzz target `opamp_frames`: see `fuzz/checks/opamp_frames.rs` for the input format and invariants.
#![no_main]

#[path = "../checks/opamp_frames.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});

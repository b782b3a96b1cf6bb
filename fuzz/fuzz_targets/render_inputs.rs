//! cargo-fuzz target `render_inputs`: see `fuzz/checks/render_inputs.rs` for the input format and invariants.
#![no_main]

#[path = "../checks/render_inputs.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});

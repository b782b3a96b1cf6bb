//! cargo-fuzz target `msgpack_decode`: see `fuzz/checks/msgpack_decode.rs` for the input format and invariants.
#![no_main]

#[path = "../checks/msgpack_decode.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});

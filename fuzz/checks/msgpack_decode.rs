//! Fuzz check `msgpack_decode`, shared by the cargo-fuzz target and the corpus regression test
//! (`tests/fuzz_corpus.rs`): msgpack `DynamicValue` bytes as Terraform sends them.
//!
//! Input: `<type JSON>\n<msgpack>` (the type in Terraform's JSON type syntax, e.g.
//! `["object",{"name":"string"}]`), or raw msgpack decoded as `dynamic` when there is no
//! newline. Invariants: no panic; a value that decodes re-encodes and decodes back equal.

use terraform_provider_otaas::codec::{json_type, msgpack};
use terraform_provider_otaas::framework::value::Type;

/// `"bad_type"`, `"error"` (a clean decode error) or `"ok"`; panics on a broken invariant.
pub(crate) fn check(data: &[u8]) -> &'static str {
    let (ty, bytes) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => match json_type::from_slice(&data[..i]) {
            Ok(t) => (t, &data[i + 1..]),
            Err(_) => return "bad_type",
        },
        None => (Type::Dynamic, data),
    };
    match msgpack::decode(bytes, &ty) {
        Err(_) => "error",
        Ok(v) => {
            let again = msgpack::encode(&v, &ty).expect("a decoded value re-encodes");
            let back = msgpack::decode(&again, &ty).expect("a re-encoded value decodes");
            assert_eq!(back, v, "msgpack round trip changed the value");
            "ok"
        }
    }
}

//! The `msgpack_decode` fuzz target's seed corpus (`fuzz/seeds/msgpack_decode/`) as a regular
//! test: every seed decodes to its expected outcome without a panic.

#[path = "../fuzz/checks/msgpack_decode.rs"]
mod check;
#[path = "../fuzz/checks/corpus.rs"]
mod corpus;

#[test]
fn msgpack_decode_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/msgpack_decode");
    let n = corpus::replay(&dir, check::check);
    assert!(n >= 20, "only {n} seeds");
}

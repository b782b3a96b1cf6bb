//! Replays a seed corpus as a regression test (used by `tests/fuzz_corpus.rs` and
//! `crates/server/tests/fuzz_corpus.rs`, so CI checks every seed without the fuzzer).
//!
//! Seed files are named `<expected outcome>__<description>`: the check must not panic and must
//! return that outcome. Crash inputs the fuzzer finds are added here under the outcome the fixed
//! code gives them.

use std::path::Path;

/// Runs `check` on every seed in `dir`; panics listing every seed that panicked or gave another
/// outcome. Returns how many seeds ran.
pub(crate) fn replay(dir: &Path, check: fn(&[u8]) -> &'static str) -> usize {
    let mut failures = Vec::new();
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some((expected, _)) = name.split_once("__") else {
            failures.push(format!("{name}: not named <outcome>__<description>"));
            continue;
        };
        let data = std::fs::read(&path).unwrap();
        n += 1;
        match std::panic::catch_unwind(|| check(&data)) {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!("{name}: expected {expected}, got {got}")),
            Err(_) => failures.push(format!("{name}: panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "corpus {}:\n{}",
        dir.display(),
        failures.join("\n")
    );
    n
}

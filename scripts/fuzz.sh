#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time, starting from the
# committed seeds (fuzz/seeds/<target>/), and prints execs/s per target.
#
#   bash scripts/fuzz.sh                      # 60 s per target
#   FUZZ_SECONDS=600 FUZZ_TARGETS=api_bodies bash scripts/fuzz.sh
#   FUZZ_SANITIZER=address bash scripts/fuzz.sh   # ASan (slower build and runs)
#
# The machine's toolchain is stable Rust; cargo-fuzz passes nightly-only flags, which
# RUSTC_BOOTSTRAP=1 unlocks on stable. The default sanitizer is `none`: the code under test is
# safe Rust, so the findings are panics, overflows (debug assertions are on: `-a`) and
# broken invariants, which need no sanitizer; ASan stays available.
#
# A crash stops that target, leaves the input in fuzz/artifacts/<target>/, and makes the script
# exit 1 at the end. To keep it as a regression test, copy it to
# fuzz/seeds/<target>/<expected outcome>__<description> once fixed (see fuzz/checks/corpus.rs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-msgpack_decode api_bodies render_inputs}"
SANITIZER="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi

cd "$REPO/fuzz"
echo "==> building fuzz targets (sanitizer: $SANITIZER)" >&2
cargo fuzz build -O -a --sanitizer "$SANITIZER"

failed=()
results=()
for t in $TARGETS; do
  # The working corpus grows while fuzzing; it starts from (and never replaces) the seeds.
  mkdir -p "corpus/$t"
  cp -n "seeds/$t/"* "corpus/$t/" 2>/dev/null || true
  log="$(mktemp)"
  echo "==> fuzzing $t for ${SECONDS_PER_TARGET} s" >&2
  if cargo fuzz run -O -a --sanitizer "$SANITIZER" "$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
    tail -40 "$log" >&2
  fi
  # libFuzzer ends with "Done <runs> runs in <secs> second(s)".
  runs="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | awk '{print $2}' || true)"
  secs="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | awk '{print $5}' || true)"
  if [[ -z "$runs" ]]; then
    runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo 0)"
    secs="$SECONDS_PER_TARGET"
  fi
  cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo '?')"
  corpus_n="$(find "corpus/$t" -type f | wc -l)"
  results+=("$(printf '%-16s %-6s %12s %10s %8s %8s' "$t" "$status" "$runs" "$((runs / (secs > 0 ? secs : 1)))" "$cov" "$corpus_n")")
  rm -f "$log"
done

printf '%-16s %-6s %12s %10s %8s %8s\n' target status execs execs/s cov corpus
printf '%s\n' "${results[@]}"
if ((${#failed[@]})); then
  echo "==> crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi

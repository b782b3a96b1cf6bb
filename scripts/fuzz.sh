#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets/) for a bounded time each, starting from the
# committed seeds (fuzz/seeds/<target>/), and prints execs/s per target.
#
#   bash scripts/fuzz.sh                      # every target, 60 s each
#   bash scripts/fuzz.sh --ci 30              # what scripts/test.sh runs: every target, 30 s each,
#                                             # in a scratch corpus (nothing left in the tree)
#   FUZZ_SECONDS=600 FUZZ_TARGETS=opamp_frames bash scripts/fuzz.sh
#   FUZZ_SANITIZER=address bash scripts/fuzz.sh   # ASan (slower build and runs)
#
# Needs cargo-fuzz: the pinned version on PATH, else this script installs it once into
# $OTAAS_TOOLS_DIR/cargo-fuzz (default <repo>/.tools; env.sh puts its bin on PATH). Only this
# script needs it: setup, the tests and the demo do not. The machine's toolchain is stable
# Rust; cargo-fuzz passes nightly-only flags, which RUSTC_BOOTSTRAP=1 unlocks on stable. The
# default sanitizer is `none`: the code under test is safe Rust, so the findings are panics,
# overflows (debug assertions are on: `-a`) and broken invariants, which need no sanitizer; ASan
# stays available.
#
# A crash stops that target, leaves the input in fuzz/artifacts/<target>/, and makes the script
# exit 1 at the end. To keep it as a regression test, copy it to
# fuzz/seeds/<target>/<expected outcome>__<description> once fixed (see fuzz/checks/corpus.rs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL_TARGETS="opamp_frames msgpack_decode api_bodies render_inputs"
CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"
SANITIZER="${FUZZ_SANITIZER:-none}"
CI_MODE=0
while (($#)); do
  case "$1" in
    --ci)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --ci needs a number of seconds per target" >&2; exit 2; }
      CI_MODE=1
      SECONDS_PER_TARGET="$2"
      shift 2
      ;;
    *) echo "fuzz.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
export RUSTC_BOOTSTRAP=1

TOOLS="${OTAAS_TOOLS_DIR:-$REPO/.tools}"
export PATH="$TOOLS/cargo-fuzz/bin:$PATH"
if [[ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]]; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS/cargo-fuzz (once, a minute or two)" >&2
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$TOOLS/cargo-fuzz"
fi

cd "$REPO/fuzz"
start=$SECONDS
echo "==> building fuzz targets (sanitizer: $SANITIZER)" >&2
cargo fuzz build -O -a --sanitizer "$SANITIZER"
build_secs=$((SECONDS - start))

if ((CI_MODE)); then
  # A scratch corpus: CI checks the code, it does not grow the committed seeds.
  CORPUS_ROOT="$(mktemp -d)"
  trap 'rm -rf "$CORPUS_ROOT"' EXIT
else
  CORPUS_ROOT="corpus"
fi

failed=()
results=()
for t in $TARGETS; do
  # The working corpus grows while fuzzing; it starts from (and never replaces) the seeds.
  mkdir -p "$CORPUS_ROOT/$t"
  cp -n "seeds/$t/"* "$CORPUS_ROOT/$t/" 2>/dev/null || true
  log="$(mktemp)"
  echo "==> fuzzing $t for ${SECONDS_PER_TARGET} s" >&2
  if cargo fuzz run -O -a --sanitizer "$SANITIZER" "$t" "$CORPUS_ROOT/$t" -- \
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
  corpus_n="$(find "$CORPUS_ROOT/$t" -type f | wc -l)"
  results+=("$(printf '%-16s %-6s %12s %10s %8s %8s' "$t" "$status" "$runs" "$((runs / (secs > 0 ? secs : 1)))" "$cov" "$corpus_n")")
  rm -f "$log"
done

printf '%-16s %-6s %12s %10s %8s %8s\n' target status execs execs/s cov corpus
printf '%s\n' "${results[@]}"
echo "==> fuzz: build ${build_secs} s, fuzzing $((SECONDS - start - build_secs)) s" >&2
if ((${#failed[@]})); then
  echo "==> crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi

#!/usr/bin/env bash
# THE test command: `bash scripts/test.sh`. What CI runs (.ci/run), on a fresh machine.
#
# 0. the repository stands alone: no tracked file refers to a path outside it;
# 1. scripts/setup.sh (Terraform engine, null provider, OpAMP peer, collector, Chromium and
#    axe-core for the console's browser tests; idempotent) and
#    its env.sh;
# 2. cargo fmt --check, clippy with warnings as errors, the crates' direction
#    (scripts/check-layers.sh), no import cycle between the modules of a crate
#    (scripts/check-cycles.py), the dependency policy (scripts/check-deps.py, deps-policy.toml),
#    rustdoc with warnings as errors, cargo test, all on the whole workspace with the committed
#    Cargo.lock;
# 3. every fuzz target for a bounded time (FUZZ_CI_SECONDS each, default 30; 0 skips it);
# 4. the README demo (scripts/demo.sh), with simulated agents and with a real collector.
# Stops at the first failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export OTAAS_TOOLS_DIR="${OTAAS_TOOLS_DIR:-$REPO/.tools}"

step() {
  local name="$1"; shift
  local start=$SECONDS
  echo "==> $name" >&2
  "$@"
  echo "==> $name: ok ($((SECONDS - start)) s)" >&2
}

step standalone python3 scripts/check-standalone.py
step setup bash scripts/setup.sh
# shellcheck source=/dev/null
source "$OTAAS_TOOLS_DIR/env.sh"

step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
step layers bash scripts/check-layers.sh
step cycles python3 scripts/check-cycles.py
step deps python3 scripts/check-deps.py
step docs env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked
step test cargo test --workspace --locked
if [[ "${FUZZ_CI_SECONDS:-30}" != 0 ]]; then
  step fuzz bash scripts/fuzz.sh --ci "${FUZZ_CI_SECONDS:-30}"
fi
# The README's demo, end to end, on the debug binaries `cargo test` just built (the demo's own
# default is the README's release build, which CI would otherwise compile a second time).
step demo env DEMO_AGENTS=5 DEMO_PROFILE=debug bash scripts/demo.sh
step "demo (real collector)" env DEMO_PROFILE=debug bash scripts/demo.sh --collector
echo "==> all passed in $SECONDS s" >&2

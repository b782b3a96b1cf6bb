#!/usr/bin/env bash
# The benchmark suite from a clean checkout: tools (scripts/setup.sh), a release build of `otaas`
# and the provider, then `otaas bench`, which writes bench/RESULTS.md. Extra arguments go to
# `otaas bench`:
#
#   bash scripts/bench.sh                        # full run: both backends, 10,000 agents (~10 min)
#   bash scripts/bench.sh --quick                # small sizes (under a minute once built)
#   bash scripts/bench.sh --only push,idle --backend sqlite
#
# PostgreSQL: the run creates (and drops) its own databases on the server of
# $OTAAS_BENCH_POSTGRES_URL, else $OTAAS_TEST_DATABASE_URL (scripts/setup.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export OTAAS_TOOLS_DIR="${OTAAS_TOOLS_DIR:-$REPO/.tools}"

bash scripts/setup.sh
# shellcheck source=/dev/null
source "$OTAAS_TOOLS_DIR/env.sh"
export OTAAS_BENCH_POSTGRES_URL="${OTAAS_BENCH_POSTGRES_URL:-$OTAAS_TEST_DATABASE_URL}"

cargo build --release --locked -p otaas -p terraform-provider-otaas
exec ./target/release/otaas bench --out bench/RESULTS.md "$@"

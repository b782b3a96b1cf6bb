#!/usr/bin/env bash
# Installs the third-party OpAMP peer client the OpAMP tests run against
# (../shared/peers next to the repository: python_agent.py + setup.sh, pinned PyPI versions).
#
#   scripts/setup-peers.sh [DIR]     # default DIR: $PEERS_DIR or <repo>/target/opamp-peers
#
# Idempotent (a quick no-op when already installed). Needs python3 with venv; only PyPI is
# contacted. The tests in crates/server/tests/opamp.rs call this themselves.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS_SRC="${OTAAS_PEERS_SRC:-$ROOT/../shared/peers}"
DIR="${1:-${PEERS_DIR:-$ROOT/target/opamp-peers}}"
if [ ! -f "$PEERS_SRC/setup.sh" ] || [ ! -f "$PEERS_SRC/python_agent.py" ]; then
  echo "setup-peers.sh: no OpAMP peers at $PEERS_SRC (expected ../shared/peers next to the repo; set OTAAS_PEERS_SRC)" >&2
  exit 1
fi
bash "$PEERS_SRC/setup.sh" "$DIR"

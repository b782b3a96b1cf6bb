#!/usr/bin/env bash
# Installs the third-party OpAMP client that tests/peers/opamp_peer.py drives, at the versions
# pinned in tests/peers/requirements.txt, into a venv:
#
#   scripts/setup-peers.sh [DIR]     # venv in DIR/py; default DIR: $PEERS_DIR or <repo>/target/opamp-peers
#
# Idempotent: when DIR/py already holds exactly the pinned versions it only checks them (well
# under a second). Needs python3 with venv; only PyPI is contacted. The OpAMP tests
# (crates/server/tests/opamp.rs) call this themselves.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PINS="$ROOT/tests/peers/requirements.txt"
DIR="${1:-${PEERS_DIR:-$ROOT/target/opamp-peers}}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# One installer at a time per directory (test binaries may start in parallel).
exec 9>"$DIR/.setup.lock"
flock 9

# The pins as `name==version` lines, and what the venv has, normalised the same way.
want="$(grep -E '^[A-Za-z0-9_.-]+==' "$PINS" | tr 'A-Z_' 'a-z-' | sort)"
have() { "$DIR/py/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' | sort; }
if [[ ! -x "$DIR/py/bin/python" ]] || ! diff -q <(echo "$want") <(have | grep -F -x -f <(echo "$want")) >/dev/null; then
  echo "setup-peers: installing $(grep -c '==' "$PINS") pinned packages into $DIR/py" >&2
  "$PYTHON" -m venv "$DIR/py" || { echo "setup-peers: '$PYTHON -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$DIR/py/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$PINS"
fi
echo "setup-peers: ready: PEERS_DIR=$DIR python3 $ROOT/tests/peers/opamp_peer.py" >&2

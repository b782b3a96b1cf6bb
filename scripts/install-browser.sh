#!/usr/bin/env bash
# Install what the web console's browser tests drive: a headless Chromium, its ChromeDriver, and
# the axe-core accessibility checker.
#
#   bash scripts/install-browser.sh [DIR]        # DIR: $OTAAS_TOOLS_DIR, else <repo>/.tools
#
# What lands where:
#   /usr/bin/chromium, /usr/bin/chromedriver   Debian's `chromium` and `chromium-driver` (apt-get,
#                                              as root or through sudo). One source package builds
#                                              both, so the driver always matches the browser.
#                                              Recommends are skipped (upower, a notification
#                                              daemon, printing) but for fonts-liberation, so that
#                                              pages asking for Arial or Helvetica get
#                                              metric-compatible fonts in screenshots.
#   DIR/axe/node_modules/axe-core/axe.min.js   npm `axe-core@4.14.1` (what OTAAS_AXE_JS names).
#
# Idempotent: a second run only asks both binaries and axe-core's package.json for their versions
# (well under a second). The first run needs Debian's package archive, and npm with the npm
# registry (about half a minute in all).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${OTAAS_TOOLS_DIR:-$REPO/.tools}}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

AXE_VERSION="4.14.1"
AXE_DIR="$DIR/axe"
AXE_JS="$AXE_DIR/node_modules/axe-core/axe.min.js"
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

say() { echo "install-browser: $*" >&2; }

# One installer at a time per tools dir (test processes may call this script concurrently).
exec 9>"$DIR/.install-browser.lock"
flock 9

# --- Chromium and ChromeDriver (Debian packages) --------------------------------------------------
if [[ ! -x "$CHROMIUM" || ! -x "$CHROMEDRIVER" ]]; then
  if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    say "need Debian's packages 'chromium' and 'chromium-driver' (for $CHROMIUM and $CHROMEDRIVER);"
    say "not root and no sudo: install them as root with"
    say "  apt-get update && apt-get install -y chromium chromium-driver"
    exit 1
  fi
  say "installing Debian packages chromium, chromium-driver and fonts-liberation (apt-get)"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-liberation >/dev/null
fi
for bin in "$CHROMIUM" "$CHROMEDRIVER"; do
  if [[ ! -x "$bin" ]]; then
    say "$bin is still missing after installing chromium and chromium-driver"
    exit 1
  fi
done
# Debian's launcher script trips over this machine kind's findmnt output on stderr; harmless.
say "$("$CHROMIUM" --version 2>/dev/null)"
say "$("$CHROMEDRIVER" --version)"

# --- axe-core (npm) -------------------------------------------------------------------------------
installed_axe() {
  local manifest="$AXE_DIR/node_modules/axe-core/package.json"
  [[ -f "$AXE_JS" && -f "$manifest" ]] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

if [[ "$(installed_axe)" != "$AXE_VERSION" ]]; then
  if ! command -v npm >/dev/null; then
    say "need npm (Debian package 'npm') to install axe-core@$AXE_VERSION"
    exit 1
  fi
  say "installing axe-core@$AXE_VERSION into $AXE_DIR (npm)"
  # Install next to the old copy and swap, so a concurrent reader never sees half a file.
  NEW="$(mktemp -d "$DIR/axe.XXXXXX")"
  trap 'rm -rf "$NEW"' EXIT
  npm install --prefix "$NEW" --no-audit --no-fund --no-save --no-package-lock \
    --loglevel=error "axe-core@$AXE_VERSION" >/dev/null
  rm -rf "$AXE_DIR"
  mv "$NEW" "$AXE_DIR"
  trap - EXIT
fi
if [[ "$(installed_axe)" != "$AXE_VERSION" ]]; then
  say "expected axe-core $AXE_VERSION in $AXE_DIR, found: $(installed_axe || true)"
  exit 1
fi
say "axe-core $AXE_VERSION"
say "  chromium:     $CHROMIUM"
say "  chromedriver: $CHROMEDRIVER"
say "  axe:          $AXE_JS"

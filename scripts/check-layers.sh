#!/usr/bin/env bash
# The crates' dependency direction, checked from cargo's own graph (normal dependencies only):
# the control plane (`otaas-server`) and a control-plane-only `otaas` (no default features) link
# neither the supervisor, the simulator, the benchmarks nor the test kit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

forbidden='^(otaas-agent|otaas-fleet-sim|otaas-bench|otaas-testkit) '
fail=0
check() {
  local what="$1"; shift
  local found
  found="$(cargo tree --locked -e normal --prefix none "$@" | grep -E "$forbidden" | sort -u || true)"
  if [[ -n "$found" ]]; then
    echo "check-layers: $what links:" >&2
    echo "$found" >&2
    fail=1
  else
    echo "check-layers: $what links none of the agent, simulator, bench or test kit crates" >&2
  fi
}
check "otaas-server" -p otaas-server
check "otaas --no-default-features" -p otaas --no-default-features
# The OpAMP client plumbing is the agents' side: the server must not compile it.
if cargo tree --locked -e normal,features -p otaas-server | grep -q 'otaas-opamp feature "client"'; then
  echo "check-layers: otaas-server enables otaas-opamp's client feature" >&2
  fail=1
fi
exit "$fail"

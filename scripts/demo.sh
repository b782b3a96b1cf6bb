#!/usr/bin/env bash
# The otaas demo, end to end on one machine:
#
#   bash scripts/demo.sh                          # simulated agents (otaas fleet-sim)
#   bash scripts/demo.sh --collector PATH         # one real collector under `otaas agent`
#
# With a real collector (--collector PATH, or DEMO_COLLECTOR=PATH; `--collector` alone takes
# $OTAAS_COLLECTOR, which scripts/setup.sh installs), step 2 starts `otaas agent` running that
# binary instead of fleet-sim, step 3 applies examples/real-collector (filelog -> batch -> otlphttp)
# and the demo then appends lines to the watched file and waits until a small OTLP/HTTP sink it
# started has received them.
#
# 1. builds the workspace as the README does (`cargo build --release --locked`: nothing to do when
#    the README's build is there; DEMO_PROFILE=debug uses the debug build instead) and installs the
#    Terraform 1.15 engine and the collector if needed (scripts/setup.sh; no fuzzing tools);
# 2. starts `otaas serve` on loopback (SQLite in a temp data dir, ports chosen by the OS, read from
#    its `otaas: api|opamp listening on ADDR` lines) and `otaas fleet-sim` with DEMO_AGENTS agents
#    labelled DEMO_LABELS (default env=demo, which the quickstart's agent group selects);
# 3. installs the provider with scripts/install-provider.sh, runs a real `terraform init` and `apply` on a copy of
#    examples/quickstart (the apply waits for the rollout to the simulated fleet);
# 4. prints the fleet's health as the quickstart's data sources read it
#    (data.otaas_agent_group_status.demo, data.otaas_agents.demo);
# 5. stops what it started and removes its temp dir (DEMO_KEEP=1 keeps it, for a look at the logs).
#
# Env: DEMO_PROFILE (release, the default, or debug), DEMO_AGENTS (default 20), DEMO_LABELS (default env=demo), OTAAS_TERRAFORM (engine, >= 1.14;
# default the one scripts/setup.sh installs), OTAAS_TOOLS_DIR, OTAAS_BIN and OTAAS_PROVIDER_BIN
# (binaries to use instead of the ones built here).
#
# CI runs this script after the test suite (scripts/test.sh), so the README's demo keeps working.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
COLLECTOR="${DEMO_COLLECTOR:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --collector)
      # A path, or nothing (the next word is another flag or absent): the installed collector.
      if [[ $# -ge 2 && "$2" != --* ]]; then COLLECTOR="$2"; shift; else COLLECTOR=installed; fi ;;
    --collector=*) COLLECTOR="${1#--collector=}" ;;
    *) echo "demo: unknown argument $1 (usage: demo.sh [--collector [PATH]])" >&2; exit 2 ;;
  esac
  shift
done
AGENTS="${DEMO_AGENTS:-20}"
[[ -n "$COLLECTOR" ]] && AGENTS=1
LABELS="${DEMO_LABELS:-env=demo}"
say() { echo "demo: $*" >&2; }

# --- 1. build and tools -----------------------------------------------------------------------------
bash scripts/setup.sh
export OTAAS_TOOLS_DIR="${OTAAS_TOOLS_DIR:-$REPO/.tools}"
# shellcheck source=/dev/null
source "$OTAAS_TOOLS_DIR/env.sh"
if [[ "$COLLECTOR" == installed ]]; then COLLECTOR="$OTAAS_COLLECTOR"; fi
if [[ -n "$COLLECTOR" && ! -x "$COLLECTOR" ]]; then
  say "--collector $COLLECTOR: not an executable file"; exit 1
fi
PROFILE="${DEMO_PROFILE:-release}"
case "$PROFILE" in
  release) say "building as the README does (cargo build --release --locked)"
           cargo build --release --locked ;;
  debug)   cargo build --locked ;;
  *) say "DEMO_PROFILE must be release or debug, not $PROFILE"; exit 2 ;;
esac
TARGET_DIR="$(cargo metadata --locked --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
OTAAS="${OTAAS_BIN:-$TARGET_DIR/$PROFILE/otaas}"
PROVIDER="${OTAAS_PROVIDER_BIN:-$TARGET_DIR/$PROFILE/terraform-provider-otaas}"

DEMO_DIR="$(mktemp -d -t otaas-demo-XXXXXX)"
PIDS=()
cleanup() {
  # Only what this script started, by pid; SIGTERM first so the server shuts down gracefully.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${DEMO_KEEP:-}" == 1 ]]; then say "kept $DEMO_DIR"; else rm -rf "$DEMO_DIR"; fi
}
trap cleanup EXIT

# --- 2. otaas serve and fleet-sim ---------------------------------------------------------------------
TOKEN="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$OTAAS" serve --listen 127.0.0.1:0 --opamp-listen 127.0.0.1:0 --data-dir "$DEMO_DIR/data" \
  --admin-token "$TOKEN" 2>"$DEMO_DIR/serve.log" &
PIDS+=($!)
API="" OPAMP=""
for _ in $(seq 1 600); do
  API="$(sed -n 's/.*otaas: api listening on \([^ ]*\).*/\1/p' "$DEMO_DIR/serve.log" | head -n1)"
  OPAMP="$(sed -n 's/.*otaas: opamp listening on \([^ ]*\).*/\1/p' "$DEMO_DIR/serve.log" | head -n1)"
  [[ -n "$API" && -n "$OPAMP" ]] && curl -fsS "http://$API/healthz" >/dev/null 2>&1 && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { say "otaas serve exited:"; cat "$DEMO_DIR/serve.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$API" && -n "$OPAMP" ]] || { say "otaas serve did not come up in 60 s:"; cat "$DEMO_DIR/serve.log" >&2; exit 1; }
say "otaas serve: API http://$API, OpAMP ws://$OPAMP/v1/opamp (log: $DEMO_DIR/serve.log)"
# Agents need an enrollment token (anonymous agents are a lab setting, --allow-anonymous-agents).
# Passed in the environment, so it is not in any command line.
OTAAS_AGENT_TOKEN="$("$OTAAS" token create --scope agent --description "demo agents" --data-dir "$DEMO_DIR/data")"
export OTAAS_AGENT_TOKEN
say "agent enrollment token created (otaas token create --scope agent)"

if [[ -n "$COLLECTOR" ]]; then
  # A small OTLP/HTTP sink for the collector's exporter: counts the demo lines it receives.
  SINK_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  python3 - "$SINK_PORT" "$DEMO_DIR/sink.count" >"$DEMO_DIR/sink.log" 2>&1 <<'PY' &
import gzip, http.server, sys

port, out = int(sys.argv[1]), sys.argv[2]
seen = 0

class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        # Each log record's body is the line's text inside the protobuf: count the demo's lines.
        seen += body.count(b"otaas demo line ")
        open(out, "w").write(str(seen))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

http.server.HTTPServer(("127.0.0.1", port), Sink).serve_forever()
PY
  PIDS+=($!)
  LOG_FILE="$DEMO_DIR/app.log"
  : >"$LOG_FILE"
  "$OTAAS" agent --server "ws://$OPAMP/v1/opamp" --collector "$COLLECTOR" \
    --data-dir "$DEMO_DIR/agent" --labels "$LABELS" >"$DEMO_DIR/agent.log" 2>&1 &
  PIDS+=($!)
  say "otaas agent: running $COLLECTOR, labelled $LABELS (log: $DEMO_DIR/agent.log)"
  EXAMPLE=real-collector
  export TF_VAR_log_file="$LOG_FILE" TF_VAR_otlp_endpoint="http://127.0.0.1:$SINK_PORT"
else
  "$OTAAS" fleet-sim --server "ws://$OPAMP/v1/opamp" --agents "$AGENTS" --labels "$LABELS" \
    >"$DEMO_DIR/fleet-sim.log" 2>&1 &
  PIDS+=($!)
  say "otaas fleet-sim: $AGENTS agents labelled $LABELS"
  EXAMPLE=quickstart
fi
# Let the fleet connect before the rollout, so the apply has agents to wait for (best effort).
for _ in $(seq 1 300); do
  COUNT="$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://$API/api/v1/agents?limit=1000" 2>/dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d if isinstance(d, list) else d.get("agents", d.get("items", []))))' 2>/dev/null || echo 0)"
  [[ "$COUNT" -ge "$AGENTS" ]] && break
  sleep 0.1
done
say "agents connected: ${COUNT:-0}/$AGENTS"

# --- 3. terraform init + apply on examples/quickstart (or examples/real-collector) ------------------------------------------------
# Exactly as the README's "Use the provider" says: the provider in the implied local mirror
# (~/.terraform.d/plugins, under a HOME of the demo's own so the user's is left alone), no CLI config.
TF_HOME="$DEMO_DIR/home"
OTAAS_PROVIDER_BIN="$PROVIDER" TF_PLUGIN_DIR="$TF_HOME/.terraform.d/plugins" bash scripts/install-provider.sh --no-build
unset TF_CLI_CONFIG_FILE
cp -r "examples/$EXAMPLE" "$DEMO_DIR/quickstart"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
# The provider reads its endpoint and token from the environment (the token stays out of argv).
export OTAAS_ENDPOINT="http://$API" OTAAS_TOKEN="$TOKEN"
TF=(env HOME="$TF_HOME" "$OTAAS_TERRAFORM" -chdir="$DEMO_DIR/quickstart")
say "terraform ($("$OTAAS_TERRAFORM" version | head -n1)) init"
"${TF[@]}" init -input=false
say "terraform apply (waits for the rollout)"
"${TF[@]}" apply -input=false -auto-approve

# --- 4. fleet health, as the data sources read it ------------------------------------------------------
say "fleet health"
"${TF[@]}" show -json >"$DEMO_DIR/state.json"
python3 - "$DEMO_DIR/state.json" <<'PY'
import json, sys

state = json.load(open(sys.argv[1]))
for r in state.get("values", {}).get("root_module", {}).get("resources", []):
    if r.get("mode") != "data":
        continue
    v = r["values"]
    if r["type"] == "otaas_agent_group_status":
        keys = ["revision", "state", "matched", "applied", "applying", "failed", "pending",
                "healthy", "unhealthy", "drifted"]
        print("group status:", ", ".join(f"{k}={v.get(k)}" for k in keys))
        if v.get("state") != "complete" or v.get("applied") != v.get("matched") or not v.get("matched"):
            sys.exit("demo: the fleet did not converge on the quickstart's config")
    elif r["type"] == "otaas_agents":
        agents = v.get("agents") or []
        healthy = sum(1 for a in agents if a.get("healthy"))
        print(f"agents: {len(agents)} listed, {healthy} healthy")
        for a in agents[:10]:
            print(f"  {a.get('id')}  connected={a.get('connected')} healthy={a.get('healthy')}"
                  f" remote_config={a.get('remote_config_status')} hash={str(a.get('config_hash'))[:12]}")
PY

# --- 4b. the web console shows the same fleet (the token goes in on stdin, not the command line) ------
JAR="$DEMO_DIR/console.cookies"
curl -fsS -c "$JAR" -o /dev/null --data-urlencode "token@-" "http://$API/sign-in" <<<"$TOKEN"
if curl -fsS -b "$JAR" "http://$API/fleet" | grep -q "data-count=\"total\">$AGENTS<"; then
  say "web console: http://$API/ shows the $AGENTS agents (sign in with the admin token)"
else
  say "the web console's fleet page does not show $AGENTS agents"; exit 1
fi

# --- 5. with a real collector: lines appended to the watched file reach the sink -------------------
if [[ -n "$COLLECTOR" ]]; then
  for i in $(seq 1 10); do echo "otaas demo line $i" >>"$LOG_FILE"; done
  GOT=0
  for _ in $(seq 1 600); do
    GOT="$(cat "$DEMO_DIR/sink.count" 2>/dev/null || echo 0)"
    [[ "$GOT" -ge 10 ]] && break
    sleep 0.1
  done
  say "OTLP/HTTP sink received $GOT of the 10 lines appended to $LOG_FILE"
  [[ "$GOT" -ge 10 ]] || { say "the lines did not arrive; agent log:"; tail -n 30 "$DEMO_DIR/agent.log" >&2; exit 1; }
fi
say "done; stopping what the demo started"

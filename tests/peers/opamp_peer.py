#!/usr/bin/env python3
"""A test agent built on a third-party OpAMP client (OpenTelemetry Python's
`opentelemetry-opamp-client`, plain HTTP transport): the server's tests run it to check that
an OpAMP implementation nobody on this team wrote gets along with `otaas serve`.

Configured by environment variables, it reports what happens as JSON lines on stdout and
writes every new remote config it receives under AGENT_OUT. See README.md beside this file
for the variables, the events and the exit codes.
"""

import json
import os
import sys
import threading
import time


def _venv_python():
    """The interpreter of the venv scripts/setup-peers.sh made, if any."""
    base = os.environ.get("PEERS_DIR")
    if not base:
        return None
    exe = os.path.join(base, "py", "bin", "python")
    return exe if os.path.exists(exe) else None


try:
    from opentelemetry._opamp.agent import OpAMPAgent
    from opentelemetry._opamp.callbacks import OpAMPCallbacks
    from opentelemetry._opamp.client import OpAMPClient
    from opentelemetry._opamp.proto import opamp_pb2
    from opentelemetry._opamp.version import __version__ as LIBRARY_VERSION
except ImportError:
    # Started with the system python: run again inside the venv that has the library.
    # (A venv's interpreter is a link to the system one: compare prefixes, not binaries.)
    venv = _venv_python()
    if venv and os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(os.path.dirname(venv))):
        os.execv(venv, [venv, *sys.argv])
    print(
        json.dumps({"event": "exit", "code": 3, "error": "opentelemetry-opamp-client is not "
                    "installed: run scripts/setup-peers.sh and set PEERS_DIR"}),
        flush=True,
    )
    sys.exit(3)

# OpAMP says these describe the agent's identity; every other label is non-identifying.
IDENTIFYING_KEYS = {"service.name", "service.namespace", "service.version", "service.instance.id"}

_print_lock = threading.Lock()


def emit(event, **fields):
    """One JSON object per line on stdout; the lock keeps lines of two threads apart."""
    with _print_lock:
        print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def parse_labels(text):
    identifying = {"service.name": "opamp-peer-python"}
    other = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"AGENT_LABELS: {part!r} is not key=value")
        (identifying if key in IDENTIFYING_KEYS else other)[key] = value
    other["peer.library"] = f"opentelemetry-opamp-client {LIBRARY_VERSION}"
    return identifying, other


def safe_name(name):
    """A config map key as a file name: never a path outside the config's directory."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return "default" if cleaned in ("", ".", "..") else cleaned


class Peer(OpAMPCallbacks):
    """Applies every remote config by writing it to disk, then reports the outcome."""

    def __init__(self, out_dir, fail_configs):
        self.out_dir = out_dir
        self.fail_configs = fail_configs
        self.exchanges = 0
        self.configs = 0
        self.last_error = None
        self.last_hash = None
        self.lock = threading.Lock()

    def on_connect(self, agent, client):
        with self.lock:
            self.exchanges += 1

    def on_connect_failed(self, agent, client, error):
        with self.lock:
            self.last_error = str(error)
        emit("send_failed", error=str(error))

    def on_error(self, agent, client, error_response):
        emit(
            "server_error",
            type=opamp_pb2.ServerErrorResponseType.Name(error_response.type),
            message=error_response.error_message,
            retry_after_ns=error_response.retry_info.retry_after_nanoseconds,
        )

    def on_message(self, agent, client, message):
        remote = message.remote_config
        if remote is None:
            return
        config_hash = remote.config_hash
        if config_hash == self.last_hash:
            emit("remote_config_repeat", hash=config_hash.hex())
            return
        self.last_hash = config_hash
        with self.lock:
            self.configs += 1
            n = self.configs
        directory = os.path.join(self.out_dir, f"config-{n:03d}")
        os.makedirs(directory, exist_ok=True)
        files = {}
        bodies = {}
        for name, entry in remote.config.config_map.items():
            path = os.path.join(directory, safe_name(name))
            with open(path, "wb") as f:
                f.write(entry.body)
            files[name] = {"content_type": entry.content_type, "bytes": len(entry.body), "path": path}
            bodies[name] = entry.body
        with open(os.path.join(directory, "meta.json"), "w") as f:
            json.dump({"hash": config_hash.hex(), "files": files}, f, indent=1, sort_keys=True)
        emit("remote_config", n=n, hash=config_hash.hex(), files=files)

        if self.fail_configs:
            status, error = opamp_pb2.RemoteConfigStatuses_FAILED, "AGENT_FAIL_CONFIG is set"
        else:
            status, error = opamp_pb2.RemoteConfigStatuses_APPLIED, ""
            # The library takes one content type for the whole map; ours are YAML files.
            content_type = next(iter(files.values()))["content_type"] if files else "text/yaml"
            client.update_effective_config(bodies, content_type)
        changed = client.update_remote_config_status(config_hash, status, error)
        emit("config_status", hash=config_hash.hex(),
             status=opamp_pb2.RemoteConfigStatuses.Name(status).split("_")[-1], error=error)
        if changed is not None:
            # A full state carries the status and, when applied, the effective config.
            agent.send(client.build_full_state_message())


def main():
    url = os.environ.get("OPAMP_URL", "http://127.0.0.1:4320/v1/opamp")
    out_dir = os.environ.get("AGENT_OUT", "agent-out")
    seconds = float(os.environ.get("AGENT_SECONDS", "30"))
    poll = float(os.environ.get("AGENT_POLL_SECONDS", "1"))
    try:
        identifying, other = parse_labels(os.environ.get("AGENT_LABELS", ""))
    except ValueError as e:
        emit("exit", code=3, error=str(e))
        return 3
    headers = {}
    if os.environ.get("OPAMP_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["OPAMP_TOKEN"]
    if os.environ.get("OPAMP_INSECURE") == "1":
        verify = False
    else:
        verify = os.environ.get("OPAMP_CA") or True
    os.makedirs(out_dir, exist_ok=True)

    client = OpAMPClient(
        endpoint=url,
        headers=headers,
        agent_identifying_attributes=identifying,
        agent_non_identifying_attributes=other,
        tls_certificate=verify,
        tls_client_certificate=os.environ.get("OPAMP_CLIENT_CERT"),
        tls_client_key=os.environ.get("OPAMP_CLIENT_KEY"),
    )
    peer = Peer(out_dir, os.environ.get("AGENT_FAIL_CONFIG") == "1")
    emit(
        "start",
        library=LIBRARY_VERSION,
        transport="http",
        url=url,
        instance_uid=client._instance_uid.hex(),  # the library keeps it private; tests need it
        identifying=identifying,
        non_identifying=other,
        out=out_dir,
    )
    agent = OpAMPAgent(interval=poll, callbacks=peer, client=client)
    agent.start()
    time.sleep(seconds)
    agent.stop(timeout=5)

    code = 0 if peer.exchanges > 0 else 2
    fields = {"code": code, "exchanges": peer.exchanges, "configs": peer.configs}
    if code != 0:
        fields["error"] = peer.last_error or "no exchange with the server succeeded"
    emit("exit", **fields)
    return code


if __name__ == "__main__":
    sys.exit(main())

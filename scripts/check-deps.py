#!/usr/bin/env python3
"""The dependency policy (deps-policy.toml), checked from cargo's own view of Cargo.lock.

- licences: every crate outside the workspace must be usable under the allowed SPDX ids
  (`A OR B` needs one, `A AND B` both); workspace crates are Apache-2.0;
- sources: every crate comes from crates.io or from this repository (no git or other registry);
- duplicates: a crate built in two or more versions must be listed, and a listed one must still
  be duplicated (the list only shrinks);
- yanked: no locked version is yanked on crates.io (the sparse index says so per version). A
  yank is how crate authors withdraw a broken or compromised release.

The RustSec advisory database lives in a git repository on GitHub, which CI cannot reach (only
crates.io, PyPI, npm and Debian are), so advisories are not checked here: run
`cargo deny check advisories` or `cargo audit` where GitHub is reachable.

Usage: python3 scripts/check-deps.py [--offline]   (--offline skips the yanked check)
"""

import concurrent.futures
import json
import re
import subprocess
import sys
import tomllib
import urllib.request
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def spdx_ok(expr, allowed):
    """Whether an SPDX expression can be satisfied with the allowed ids."""
    expr = expr.replace("/", " OR ")
    tokens = re.findall(r"\(|\)|[^\s()]+", expr)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom():
        if peek() == "(":
            take()
            value = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return value
        ident = take()
        if peek() == "WITH":
            take()
            ident = f"{ident} WITH {take()}"
        return ident in allowed

    def conjunction():
        value = atom()
        while peek() == "AND":
            take()
            value = atom() and value
        return value

    def disjunction():
        value = conjunction()
        while peek() == "OR":
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if pos != len(tokens):
        raise ValueError(f"cannot parse licence expression {expr!r}")
    return result


def index_path(name):
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def yanked(name, version):
    url = f"https://index.crates.io/{index_path(name)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            entry = json.loads(line)
            if entry["vers"] == version:
                return entry.get("yanked", False)
    raise LookupError(f"{name} {version} is not in the crates.io index")


def main():
    offline = "--offline" in sys.argv[1:]
    policy = tomllib.loads((REPO / "deps-policy.toml").read_text())
    allowed = set(policy["licenses"])
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--locked", "--format-version", "1",
             "--filter-platform", "x86_64-unknown-linux-gnu"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    )
    members = set(meta["workspace_members"])
    built = {node["id"] for node in meta["resolve"]["nodes"]}
    problems = []
    registry = []
    for pkg in meta["packages"]:
        if pkg["id"] not in built:
            continue
        label = f"{pkg['name']} {pkg['version']}"
        if pkg["id"] in members:
            if pkg.get("license") != "Apache-2.0":
                problems.append(f"{label}: a workspace crate must be Apache-2.0")
            continue
        if pkg.get("source") != CRATES_IO:
            problems.append(f"{label}: source {pkg.get('source')} is not crates.io")
        else:
            registry.append((pkg["name"], pkg["version"]))
        lic = pkg.get("license")
        try:
            if not lic or not spdx_ok(lic, allowed):
                problems.append(f"{label}: licence {lic!r} is not allowed")
        except ValueError as err:
            problems.append(f"{label}: {err}")

    # Duplicates as cargo builds them (the metadata's resolve also holds unused optional parts).
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "--workspace", "-e", "normal,build,dev", "--duplicates",
         "--prefix", "none", "--depth", "0"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    built_versions = defaultdict(set)
    for line in tree.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            built_versions[parts[0]].add(parts[1][1:])
    versions = built_versions
    duplicated = {name for name, vs in versions.items() if len(vs) > 1}
    listed = set(policy["duplicates"])
    for name in sorted(duplicated - listed):
        problems.append(f"{name}: built in versions {sorted(versions[name])}; remove one or list it")
    for name in sorted(listed - duplicated):
        problems.append(f"{name}: listed as a duplicate but built once; take it off the list")

    if not offline:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = {pool.submit(yanked, n, v): (n, v) for n, v in registry}
            for fut in concurrent.futures.as_completed(futures):
                n, v = futures[fut]
                try:
                    if fut.result():
                        problems.append(f"{n} {v}: yanked on crates.io")
                except Exception as err:  # a check that cannot run fails
                    problems.append(f"{n} {v}: yanked check failed: {err}")

    for p in problems:
        print(f"check-deps: {p}", file=sys.stderr)
    print(
        f"check-deps: {len(registry)} crates.io crates, {len(duplicated)} duplicated "
        f"({'yanked check skipped' if offline else 'none yanked' if not problems else 'see above'})",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

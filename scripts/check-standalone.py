#!/usr/bin/env python3
"""Fails when a tracked file refers to a path outside the repository.

A clone of the repository alone must build, test and read whole, so no tracked file may point
at a directory beside the clone (a `..` step out of the repository root) or at an absolute path of a developer's
machine. Relative paths are resolved from the file's own directory, paths written after a
repository-root variable (`$REPO`, `$ROOT`, `${REPO}`, ...) from the repository root; a path that
lands outside the repository is reported with its file and line.

    python3 scripts/check-standalone.py        # exit 0: none; exit 1: each offender printed
"""

import os
import re
import subprocess
import sys

ROOT = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                      check=True).stdout.strip()
# A path with at least one `..` step, optionally after a root variable.
RELATIVE = re.compile(r"(?P<var>\$\{?(?:REPO|ROOT|REPO_ROOT|TOP)\}?/)?(?P<path>(?:\.\./)+[A-Za-z0-9_.-][A-Za-z0-9_./-]*)")
# Absolute paths of this workplace's machines, which exist nowhere else.
ABSOLUTE = re.compile(r"(?<![A-Za-z0-9_.~-])/work/[A-Za-z0-9_.-]+")
SKIP = ("Cargo.lock", "fuzz/Cargo.lock")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and p not in SKIP]


def inside(path):
    real = os.path.normpath(path)
    return real == ROOT or real.startswith(ROOT + os.sep)


def offences(rel):
    path = os.path.join(ROOT, rel)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        return
    base = os.path.dirname(path)
    for n, line in enumerate(lines, 1):
        for m in RELATIVE.finditer(line):
            start = ROOT if m.group("var") else base
            if not inside(os.path.join(start, m.group("path"))):
                yield n, m.group(0)
        for m in ABSOLUTE.finditer(line):
            yield n, m.group(0)


def main():
    bad = [(rel, n, what) for rel in tracked_files() for n, what in offences(rel)]
    for rel, n, what in bad:
        print(f"{rel}:{n}: refers to {what!r}, outside the repository")
    if bad:
        print(f"{len(bad)} reference(s) to paths outside the repository; a clone alone cannot use them",
              file=sys.stderr)
        return 1
    print("standalone: no tracked file refers to a path outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())

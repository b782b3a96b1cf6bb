#!/usr/bin/env python3
"""No import cycle between the modules of any crate of the workspace.

Each module file (`src/a/b.rs` or `src/a/b/mod.rs` is module `a::b`) is a node; a path in one
file that names another module of the same crate is an edge: `crate::a::b::Item`,
`super::x::f`, `self::y::T`, or `y::T` where `y` is a module the file declares. A module's
inline `#[cfg(test)] mod tests` and comments are left out. A cycle (a strongly connected
component of two or more modules) fails the check, and is printed with one edge per line.

Usage: python3 scripts/check-cycles.py [crate dir ...]   (default: every workspace crate)
"""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRATES = [REPO] + sorted(p.parent for p in (REPO / "crates").glob("*/Cargo.toml"))

PATH_RE = re.compile(r"\b((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
MOD_RE = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)
INLINE_MOD_RE = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*\{", re.M)
USE_GROUP_RE = re.compile(r"\buse\s+([^;]+);", re.S)


def blank(text):
    """The code without comments, string and char literals (one pass, in the order Rust reads)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not text[i - 1].isalnum()):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            out.append('""')
            i = n if j < 0 else j + len(end)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and (m := re.match(r"'(?:\\.[^']*|[^'\\])'", text[i:])):
            out.append("''")
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip(text):
    text = blank(text)
    # An inline test module sees its parent through `super`: it is part of the file, not an
    # edge. Only its block is left out (brace-matched), not what follows it.
    while True:
        cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+[a-z_]+\s*\{", text)
        if not cut:
            return text
        depth, end = 0, len(text)
        for i in range(cut.end() - 1, len(text)):
            depth += text[i] == "{"
            depth -= text[i] == "}"
            if depth == 0:
                end = i + 1
                break
        text = text[: cut.start()] + text[end:]


def modules(src):
    """Module path (tuple) -> file, for every .rs file reachable as a module under src."""
    out = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        elif len(parts) == 1 and parts[0] in ("lib", "main"):
            parts = []
        out[tuple(parts)] = f
    return out


def expand_use(body):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d'] (enough for module paths)."""
    body = re.sub(r"\s+", "", body)

    def rec(prefix, s):
        res, depth, cur = [], 0, ""
        items = []
        for ch in s:
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        items.append(cur)
        for it in filter(None, items):
            m = re.match(r"^(.*?)::\{(.*)\}$", it)
            if m:
                res += rec(prefix + m.group(1) + "::", m.group(2))
            else:
                res.append(prefix + it)
        return res

    return rec("", body)


def resolve(path, here, mods, children, reexports, depth=0):
    """The module defining what `path` names, seen from module `here` (None: not ours)."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] == "super":
        base, rest = here[:-1], parts[1:]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif parts[0] == "self":
        base, rest = here, parts[1:]
    elif parts[0] in children:
        base, rest = here, parts
    else:
        return None
    best, used = (base, 0) if base in mods else (None, 0)
    for i in range(1, len(rest) + 1):
        cand = base + tuple(rest[:i])
        if cand in mods:
            best, used = cand, i
    if best is None:
        return None
    # An item re-exported by `pub use` belongs to the module that defines it.
    item = rest[used] if used < len(rest) else None
    target = reexports.get((best, item)) if item else None
    if target is not None and depth < 8:
        kids = children_of(best, mods)
        found = resolve(target, best, mods, kids, reexports, depth + 1)
        if found is not None:
            return found
        if target.split("::")[0] not in ("crate", "super", "self", *kids):
            return None  # an item of another crate, re-exported here
    return best


_CHILDREN = {}


def children_of(module, mods):
    key = (id(mods), module)
    if key not in _CHILDREN:
        f = mods.get(module)
        text = strip(f.read_text()) if f else ""
        _CHILDREN[key] = set(MOD_RE.findall(text)) | set(INLINE_MOD_RE.findall(text))
    return _CHILDREN[key]


PUB_USE_RE = re.compile(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]+);", re.S)


def reexports_of(mods):
    """(module, name) -> the path it re-exports, for every `pub use` with explicit names."""
    out = {}
    for here, f in mods.items():
        if f is None:
            continue
        for body in PUB_USE_RE.findall(strip(f.read_text())):
            for full in expand_use(body):
                name = full.rsplit("::", 1)[-1]
                if " as " in full or "as" in name.split():
                    full, name = [x.strip() for x in re.split(r"\bas\b", full)]
                if name not in ("*", "self"):
                    out[(here, name)] = full
    return out


def crate_cycles(crate):
    src = crate / "src"
    if not src.is_dir():
        return []
    mods = modules(src)
    # Inline modules (`mod proto { ... }`) are modules too; their text stays with their file.
    for here, f in list(mods.items()):
        for inline in INLINE_MOD_RE.findall(strip(f.read_text())):
            mods.setdefault(here + (inline,), None)
    edges = {m: set() for m in mods}
    reexports = reexports_of(mods)
    for here, f in mods.items():
        if f is None:
            continue
        text = strip(f.read_text())
        children = set(MOD_RE.findall(text)) | set(INLINE_MOD_RE.findall(text))
        paths = PATH_RE.findall(text)
        for body in USE_GROUP_RE.findall(text):
            paths += expand_use(body)
        for p in paths:
            target = resolve(p.strip(), here, mods, children, reexports)
            if target is not None and target != here:
                edges[here].add(target)
    return sccs(edges)


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append((sorted(comp), edges))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "crate::" + "::".join(m) if m else "crate"


def self_test():
    """The check finds a planted cycle (and no false one), or it is not run at all."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        (src / "b").mkdir(parents=True)
        (src / "lib.rs").write_text("mod a;\nmod b;\npub use a::A;\n")
        (src / "a.rs").write_text("use crate::b::c::C;\npub struct A;\n")
        (src / "b" / "mod.rs").write_text("pub mod c;\n// crate::a::A in a comment\n")
        (src / "b" / "c.rs").write_text(
            "pub struct C;\nfn f() { let _ = super::super::a::A; }\n"
            "#[cfg(test)]\nmod tests { use crate::*; }\n"
        )
        found = crate_cycles(Path(tmp))
        assert [c for c, _ in found] == [[("a",), ("b", "c")]], found
        (src / "b" / "c.rs").write_text("pub struct C;\n")
        assert crate_cycles(Path(tmp)) == [], "a false cycle"
        # Code after an inline test module still counts.
        (src / "e.rs").write_text("pub struct E;\nfn g() { let _ = crate::f::F; }\n")
        (src / "f.rs").write_text(
            "#[cfg(test)]\nmod tests { fn f() { let _ = '{'; } }\n"
            "pub struct F;\nimpl crate::e::E {}\n"
        )
        found = crate_cycles(Path(tmp))
        assert [c for c, _ in found] == [[("e",), ("f",)]], found


def main():
    self_test()
    crates = [Path(a).resolve() for a in sys.argv[1:]] or CRATES
    failed = False
    for crate in crates:
        for comp, edges in crate_cycles(crate):
            failed = True
            members = set(comp)
            label = crate.relative_to(REPO) if crate != REPO else Path(".")
            print(f"check-cycles: {label}: {len(comp)} modules import each other:", file=sys.stderr)
            for m in comp:
                for t in sorted(edges[m] & members):
                    print(f"  {name(m)} -> {name(t)}", file=sys.stderr)
    if not failed:
        print(f"check-cycles: no import cycle in {len(crates)} crates", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

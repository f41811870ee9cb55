#!/usr/bin/env python3
"""Structure checks CI runs (docs/architecture.md):

1. No import cycles between the top-level modules of camera-core,
   camera-app and camctl: module A depends on B when code in A (outside its test
   modules) names `crate::B`, `super::B` from A's root, or `B::` after a
   `use crate::{...}`. A cycle is reported with its modules.
2. camera-app's main.rs is at most 100 lines.

Exits non-zero with every problem listed."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_MAX_LINES = 100


def strip_tests(text):
    """Drop `#[cfg(test)] mod tests { ... }` blocks (and `mod tests;`)."""
    out = []
    i = 0
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(#\[[^\]]*\]\s*)*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*(;|\{)", text[i:])
        if not m:
            out.append(text[i:])
            break
        start = i + m.start()
        out.append(text[i:start])
        end = i + m.end()
        if m.group(4) == "{":
            depth = 1
            while depth and end < len(text):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
        i = end
    return "".join(out)


def top_modules(src):
    """Top-level modules of a crate: name -> list of files."""
    mods = {}
    for entry in sorted(os.listdir(src)):
        path = os.path.join(src, entry)
        if entry in ("lib.rs", "main.rs"):
            continue
        if os.path.isdir(path):
            files = []
            for dirpath, _, names in os.walk(path):
                files += [os.path.join(dirpath, n) for n in names if n.endswith(".rs")]
            mods[entry] = files
        elif entry.endswith(".rs"):
            name = entry[:-3]
            mods.setdefault(name, []).append(path)
    # test-only files (`tests.rs` under a module) carry no dependencies
    return {
        k: [f for f in v if os.path.basename(f) != "tests.rs"] for k, v in mods.items()
    }


def dependencies(mods):
    deps = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            text = strip_tests(open(f, encoding="utf-8").read())
            # Comments (docs naming other modules) are no dependency.
            text = re.sub(r"//[^\n]*", "", text)
            for other in mods:
                if other == m:
                    continue
                if re.search(r"\bcrate::%s\b" % re.escape(other), text) or re.search(
                    r"use crate::\{[^}]*\b%s\b" % re.escape(other), text, re.S
                ):
                    deps[m].add(other)
    return deps


def cycles(deps):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
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
                out.append(sorted(comp))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def main():
    problems = []
    for crate in ("camera-core", "camera-app", "camctl"):
        deps = dependencies(top_modules(os.path.join(ROOT, crate, "src")))
        for comp in cycles(deps):
            edges = ", ".join(
                f"{a} -> {b}" for a in comp for b in sorted(deps[a]) if b in comp
            )
            problems.append(f"{crate}: import cycle between {', '.join(comp)} ({edges})")
        found = cycles(deps)
        print(f"{crate}: {len(deps)} modules, {len(found)} import cycles")
    main_rs = os.path.join(ROOT, "camera-app", "src", "main.rs")
    n = sum(1 for _ in open(main_rs, encoding="utf-8"))
    print(f"camera-app/src/main.rs: {n} lines (at most {MAIN_MAX_LINES})")
    if n > MAIN_MAX_LINES:
        problems.append(f"camera-app/src/main.rs has {n} lines, more than {MAIN_MAX_LINES}")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

"""How the library notebooks read: cell and function sizes, definitions per cell, helpers defined twice.

    python .ci/style_stats.py            # the numbers, each beside its goal
    python .ci/style_stats.py --list     # and every cell, function and helper over its goal
    python .ci/style_stats.py --check    # exit 1 when a goal is not met (run by tests/test_project.py)

Measured on the exported cells of `nbs/[0-9]*.ipynb` (the cells marked `#| export` / `#| exports`, as nbdev writes
them into `medinterp/`), with Python's `ast`:
- lines per export cell (directives and blank lines excluded): the median, and how many reach 60;
- functions and methods longer than 50 lines (from `def` to the last line of the body);
- public definitions per cell: top-level functions, classes and `@patch`ed methods whose name has no leading
  underscore; a cell with more than one breaks "one idea per cell";
- private helpers (`_name`) defined at top level in more than one module;
- export cells (the imports excepted) with no markdown cell right before them.
Goals (issue 16): median <= 15 lines, no export cell >= 60, at most 3 functions over 50 lines, no helper twice.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPORT = re.compile(r"^#\|\s*export(s|i)?\b", re.M)


def export_cells(nb_path: Path, unexplained: list | None = None) -> list[str]:
    "The exported cells' code; appends to `unexplained` those (but the imports) with no markdown right before them."
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    out = []
    for i, c in enumerate(cells):
        src = "".join(c["source"])
        if c["cell_type"] == "code" and EXPORT.search(src):
            code = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith("#|"))
            out.append(code)
            if unexplained is not None and "from __future__" not in code and (i == 0 or cells[i - 1]["cell_type"] != "markdown"):
                unexplained.append((nb_path.stem, code.strip().splitlines()[0][:70]))
    return out


def code_lines(src: str) -> int: return sum(1 for l in src.splitlines() if l.strip())


def definitions(tree: ast.Module) -> list[ast.AST]:
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def long_functions(tree: ast.Module, limit: int) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit: out.append((node.name, n))
    return out


def measure(limit_cell: int = 60, limit_fn: int = 50) -> dict:
    cells, big, fns, multi, helpers, bare = [], [], [], [], defaultdict(set), []
    for nb in sorted((ROOT / "nbs").glob("[0-9]*.ipynb")):
        for src in export_cells(nb, bare):
            n = code_lines(src)
            cells.append(n)
            try: tree = ast.parse(src)
            except SyntaxError: continue
            defs = definitions(tree)
            if n >= limit_cell: big.append((nb.stem, n, [d.name for d in defs][:4]))
            fns += [(nb.stem, name, k) for name, k in long_functions(tree, limit_fn)]
            public = [d.name for d in defs if not d.name.startswith("_")]
            if len(public) > 1: multi.append((nb.stem, public))
            for d in defs:
                if d.name.startswith("_") and not d.name.startswith("__"): helpers[d.name].add(nb.stem)
    twice = {k: sorted(v) for k, v in helpers.items() if len(v) > 1}
    return {"cells": len(cells), "median": statistics.median(cells) if cells else 0, "big": big, "functions": fns,
            "multi": multi, "twice": twice, "bare": bare}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="list what is over each goal")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    a = p.parse_args(argv)
    m = measure()
    rows = [("export cells", m["cells"], ""),
            ("median lines per export cell", m["median"], "<= 15"),
            ("export cells of >= 60 lines", len(m["big"]), "0"),
            ("functions over 50 lines", len(m["functions"]), "<= 3, each with its reason"),
            ("cells with more than one public definition", len(m["multi"]), "0"),
            ("export cells with no sentence before them", len(m["bare"]), "0 (the imports excepted)"),
            ("private helpers defined in more than one module", len(m["twice"]), "0")]
    for name, value, goal in rows:
        print(f"{name:<50} {value:>6}" + (f"   goal {goal}" if goal else ""))
    if a.list:
        for nb, n, names in m["big"]: print(f"  cell {nb}: {n} lines ({', '.join(names)})")
        for nb, name, n in m["functions"]: print(f"  function {nb}.{name}: {n} lines")
        for nb, names in m["multi"]: print(f"  cell {nb}: {', '.join(names)}")
        for name, where in m["twice"].items(): print(f"  helper {name}: {', '.join(where)}")
        for nb, first in m["bare"]: print(f"  no sentence before: {nb}: {first}")
    met = (m["median"] <= 15 and not m["big"] and len(m["functions"]) <= 3 and not m["multi"] and not m["bare"]
           and not m["twice"])
    return 0 if met or not a.check else 1


if __name__ == "__main__":
    sys.exit(main())

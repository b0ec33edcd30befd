"""Check that the prose of the executed tutorials states no result the notebook does not compute.

    python .ci/claims.py                      # the committed index and tutorials
    python .ci/claims.py nbs/tutorials/02_learning_rdx.ipynb

A sentence about a result must be printed by a cell (an f-string over the result) or hold for every run. This check
finds the sentences that quote one run: every decimal number or percentage in a markdown cell ("0.72", "83 %") and
every layer transition ("trunk.blocks.3→trunk.blocks.4") must occur in the notebook's code or outputs, or be a
constant of the library (a default such as 0.8, also read as "80 %"), or stand in a sentence that cites its source with
a link (a number quoted from a paper). A markdown cell that reports measurements made by commands (the README's
"Measured" section) opts out with the comment `<!-- claims: example run -->`, and must name its commands.
`execute_tutorials.py` runs this check on the freshly executed notebooks, so a quoted number that a run on another
machine no longer prints fails CI there.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?\s?%)(?![\w.])")
ARROW = re.compile(r"[\w.]+→[\w.]+")
LINK = re.compile(r"\]\(https?://")
OPT_OUT = "<!-- claims: example run -->"


def _literals(text: str) -> set[str]:
    "Decimal literals of `text` as written, and those in [0, 1] also as percentages ('0.8' -> '80%')."
    out = set()
    for m in re.finditer(r"(?<![\w.])\d+\.\d+(?![\w.])", text):
        out.add(m.group(0))
        v = float(m.group(0))
        if 0 <= v <= 1: out.add(f"{100 * v:g}%")
    return out


def _library_constants() -> set[str]:
    "Decimal defaults of the library: function arguments, config fields and module constants (not drawing internals)."
    values = []
    for path in (ROOT / "medinterp").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                values += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            elif isinstance(node, (ast.Module, ast.ClassDef)):
                values += [n.value for n in node.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None]
    found = [c.value for v in values for c in ast.walk(v) if isinstance(c, ast.Constant) and type(c.value) is float]
    return _literals(" ".join(repr(v) for v in found))


def _norm(s: str) -> str: return re.sub(r"(\d)\s%", r"\1%", s)


def _evidence(nb) -> str:
    "Everything the notebook computes or sets: code and the text of its outputs."
    parts = []
    for c in nb.cells:
        if c.cell_type != "code": continue
        parts.append(c.source)
        for o in c.get("outputs", []):
            if "text" in o: parts.append(o["text"])
            for k, v in o.get("data", {}).items():
                if k.startswith("text/"): parts.append(v if isinstance(v, str) else "".join(v))
    return _norm("\n".join(parts))


def _sentences(md: str) -> list[str]:
    md = re.sub(r"```.*?```", "", md, flags=re.S)
    return re.split(r"(?<=[.;:!?])\s+(?=[A-Z*`(])|\n\s*\n|\n(?=\s*[-*\d]+[.)]?\s)", md)


def unsupported(path, constants: set[str] | None = None) -> list[str]:
    "One line per number or transition in `path`'s prose that nothing in the notebook or the library supports."
    nb = nbformat.read(path, as_version=4)
    seen = _evidence(nb)
    constants = _library_constants() if constants is None else constants
    known = {_norm(m.group(1)) for m in NUMBER.finditer(seen)} | _literals(seen) | constants
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "markdown" or OPT_OUT in c.source: continue
        for s in _sentences(c.source):
            if LINK.search(s): continue
            for m in NUMBER.finditer(s):
                t = _norm(m.group(1))
                if t in known: continue
                out.append(f"{Path(path).name} cell {i}: {t!r} in prose is not computed by the notebook: "
                           f"{' '.join(s.split())[:160]}")
            for m in ARROW.finditer(s):
                if m.group(0) not in seen:
                    out.append(f"{Path(path).name} cell {i}: transition {m.group(0)} in prose is not printed by the "
                               f"notebook: {' '.join(s.split())[:160]}")
    return out


def notebooks() -> list[Path]:
    return [ROOT / "nbs" / "index.ipynb", *sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))]


def main(argv=None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)] or notebooks()
    constants = _library_constants()
    bad = [line for p in paths for line in unsupported(p, constants)]
    for line in bad: print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Execute `nbs/index.ipynb` and `nbs/tutorials/*.ipynb` top to bottom and store their outputs, so a reader sees the
lesson before running it (library notebooks stay without outputs).

    python .ci/execute_tutorials.py                 # execute and write the outputs into the notebooks
    python .ci/execute_tutorials.py --check         # execute into a temporary folder; check, write nothing
    python .ci/execute_tutorials.py nbs/tutorials/02_learning_rdx.ipynb   # only these
    python .ci/execute_tutorials.py --run-all       # every cell, flagged ones too, as "Run all" would; write nothing

Cells flagged `#| slow`, `#| weights` or `#| data` are not run (as under `nbdev_test`) and keep no output. Outputs are
made portable: the checkout's path, the home folder and temporary folders are replaced by placeholders, widget views
(whose state is not saved) are reduced to their text, a picture shown as both PNG and JPEG keeps the PNG, and
execution counts and metadata go (`nbdev_clean`). Each notebook must end up at most 3 MB with at least one output, with
every figure as a static image (an interactive plotly figure without a PNG beside it fails: no viewer shows it), and
its prose must quote no number its cells do not compute (`claims.py`); the script exits 1 otherwise, naming the
notebook and the reason.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from claims import unsupported  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 3_000_000
FLAGS = ("slow", "weights", "data")
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"


def notebooks(paths) -> list[Path]:
    "The notebooks to execute: the given ones, or the index and every tutorial."
    if paths: return [Path(p).resolve() for p in paths]
    return [ROOT / "nbs" / "index.ipynb", *sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))]


def flagged(cell) -> bool:
    "Whether a code cell carries a test flag (`#| slow` ...) and is therefore not executed."
    head = [l.strip() for l in cell.source.splitlines() if l.strip().startswith("#|")]
    return any(re.fullmatch(rf"#\|\s*{f}\s*", l) for l in head for f in FLAGS)


def scrub_text(text: str) -> str:
    "Machine-specific paths replaced by placeholders."
    text = text.replace(str(ROOT), "<repo>")
    text = re.sub(r"/tmp/[A-Za-z0-9_.-]+", "<tmp>", text)
    return text.replace(str(Path.home()), "~")


def scrub_output(out: dict) -> dict | None:
    "One output made portable (None: dropped)."
    data = out.get("data")
    if data is not None:
        if WIDGET in data:                                  # its state is not saved: keep the text fallback only
            data = {k: v for k, v in data.items() if k == "text/plain"}
            if not data: return None
        if "image/png" in data: data.pop("image/jpeg", None)     # PIL images come as both: one picture is enough
        out["data"] = {k: scrub_text(v) if isinstance(v, str) and not k.startswith("image/") else v
                       for k, v in data.items()}
    if "text" in out: out["text"] = scrub_text(out["text"])
    return out


def execute(path: Path, dest: Path, timeout: int, every_cell: bool = False) -> tuple[float, int]:
    "Run `path` cell by cell (flagged cells skipped unless `every_cell`) and write it to `dest`; returns (seconds, bytes)."
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            store_widget_state=False)
    t0 = time.perf_counter()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code": continue
            if flagged(cell) and not every_cell: cell.outputs = []; continue
            client.execute_cell(cell, i)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in (scrub_output(dict(o)) for o in cell.outputs) if o is not None]
            cell.outputs = [nbformat.from_dict(o) for o in cell.outputs]
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, dest)
    subprocess.run(["nbdev_clean", "--fname", str(dest)], cwd=ROOT, check=True)    # counts, metadata, ids
    return time.perf_counter() - t0, dest.stat().st_size


def problems_of(path: Path, size: int) -> list[str]:
    "What is wrong with an executed notebook: size, no output, interactive-only figures, unsupported prose claims."
    nb = nbformat.read(path, as_version=4)
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    out = [f"{size / 1e6:.2f} MB is over {MAX_BYTES / 1e6:g} MB"] if size > MAX_BYTES else []
    if not outs: out.append("no cell has an output")
    if any(PLOTLY in o.get("data", {}) and "image/png" not in o.get("data", {}) for o in outs):
        out.append("a plotly figure without a static PNG (show a picture instead, or beside it)")
    return out + unsupported(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", help="notebooks (default: nbs/index.ipynb and nbs/tutorials/*.ipynb)")
    p.add_argument("--check", action="store_true", help="execute into a temporary folder and check; write nothing")
    p.add_argument("--run-all", action="store_true",
                   help="as 'Run all' in JupyterLab: flagged cells too (they must say what is missing); implies --check")
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="medinterp-execute-"))
    bad = []
    try:
        for path in notebooks(a.paths):
            dest = tmp / path.name if a.check or a.run_all else path
            seconds, size = execute(path, dest, a.timeout, every_cell=a.run_all)
            problems = [] if a.run_all else problems_of(dest, size)
            print(f"{path.relative_to(ROOT)}: {seconds:.0f} s, {size / 1e6:.2f} MB" +
                  "".join(f"\n  <-- {p}" for p in problems))
            if problems: bad.append(path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if bad: print(f"failed: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

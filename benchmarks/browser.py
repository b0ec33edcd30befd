"""Benchmark the study browser's latency: open, pair switch, direction switch, probe.

The goals of the issue, on the demo study (`medinterp demo`: 2,500 phantoms, 6 layer pairs) and 2 cores: open with
cache <= 2 s, pair switch <= 0.5 s, direction switch <= 0.3 s, probe <= 0.3 s.

What is measured: the kernel's side of every interaction, as a user's click triggers it. A control of the widget is
changed (`pair_select.value`, `direction_toggle.value`, a grid tile's 'probe' button), which calls the view-model
(`BrowserModel`) and redraws the panels the model says changed; every message the widgets would send to the front
end is serialized to JSON on the way (a stand-in for the kernel's comm, installed before any widget exists), so the
time includes building and encoding what JupyterLab receives. Not included: the network and the browser's own drawing
(tests/test_jupyterlab.py checks that it draws). Printed per interaction: the median and the max wall time, the seconds
spent in the two heavy panels (the probe snapshot: `rdx.snapshot` and its picture; the projection: its plotly
figure), the kilobytes sent, and the machine's load (1-minute load average and Linux CPU pressure, read right after
the group's last measurement) beside it: other processes share the cores, and on a busy machine everything is slower.

  - imports: `medinterp.browser`, ipywidgets and plotly's FigureWidget, once per kernel (reported, not part of "open").
  - open: `Browser(Study.open(path))` with the cache in `<study>/cache/` (projections, neighbourhood affinity),
    `--repeats` times; when the cache was missing, the first open builds it and is reported on its own line. A fresh
    kernel pays the imports once more: the "fresh kernel" line adds them to the first open with cache.
  - pair switch: every pair in turn, `--repeats` rounds on one browser; "first" = the first round, where each pair's
    probe snapshot is new (later rounds find it cached).
  - direction switch: per pair, '10' -> '01' (first: a new snapshot) and back, `--repeats` times.
  - probe: per pair, 'probe' clicked on `--repeats` different tiles of the grid (each a new snapshot).
  - SAE tab: its first visit (the RDX <-> SAE bridge table is computed then), reported without a goal.

The verdict uses the medians of the first visits (the slower, honest case). Without a study path a small study is
built first (`--n` phantoms through a small phantom ViT, the demo's pipeline; `--n 48` takes seconds: the smoke test).

    python benchmarks/browser.py /tmp/demo/run                 # the demo study (cache built on the first open)
    python benchmarks/browser.py                               # builds a 300-image study in a temporary folder
    python benchmarks/browser.py --n 48 --repeats 1            # smoke run
    python benchmarks/browser.py /tmp/demo/run --profile       # + cProfile of one interaction of each kind
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note  # noqa: E402  (shared with the other benchmark scripts)

GOALS = {"open": 2.0, "pair": 0.5, "direction": 0.3, "probe": 0.3}       # seconds
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


# ------------------------------------------------------------------------------------------------ the comm stand-in
class Wire:
    "Counts what the widgets send: every message JSON-encoded, plus its binary buffers."
    bytes = 0

    @classmethod
    def install(cls):
        "Make every new widget's comm serialize its messages (instead of ipywidgets' silent DummyComm)."
        import comm
        from comm.base_comm import BaseComm

        class SerializingComm(BaseComm):
            def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
                cls.bytes += len(json.dumps({"data": data, "metadata": metadata}, default=str))
                cls.bytes += sum(len(memoryview(b).cast("B")) for b in buffers or ())
        comm.create_comm = lambda *a, **kw: SerializingComm(*a, **kw)


PANELS = {"snapshot": "_render_probe", "projection": "_render_projection"}      # the heavy panels, timed apart


class Timer:
    """Wall time of one interaction, the part spent in the two heavy panels (the probe snapshot: `rdx.snapshot` and
    its picture; the projection: the plotly figure) and the bytes sent. One Timer per browser."""
    def __init__(self, browser):
        self.parts = dict.fromkeys(PANELS, 0.0)
        for name, method in PANELS.items():
            setattr(browser, method, self._timed(name, getattr(browser, method)))

    def _timed(self, name, fn):
        def timed(*a, **kw):
            t = time.perf_counter()
            try: return fn(*a, **kw)
            finally: self.parts[name] += time.perf_counter() - t
        return timed

    def __call__(self, action) -> dict:
        self.parts, b0, t0 = dict.fromkeys(PANELS, 0.0), Wire.bytes, time.perf_counter()
        action()
        return {"wall": time.perf_counter() - t0, **self.parts, "kb": (Wire.bytes - b0) / 1e3, "load": load_note()}


# ------------------------------------------------------------------------------------------------ the study
def build_study(out: Path, n: int):
    "A small study made like the demo's: `n` phantoms (64 px) through a small phantom ViT, the RDX sweep, an SAE."
    from medinterp.cli import demo
    from medinterp.phantom_vit import PhantomViTConfig
    from medinterp.rdx import RDXConfig
    cfg = PhantomViTConfig(image_size=64, depth=3, width=32, heads=2, batch_size=16, max_steps=30)
    rdx = RDXConfig(n_clusters=min(10, max(3, n // 30)), stability_runs=2 if n >= 200 else 0)
    return demo(out, n, model_images=max(64, n), model_config=cfg, rdx_config=rdx, report=False, progress=False)


# ------------------------------------------------------------------------------------------------ measuring
def measure_open(path: Path, repeats: int) -> tuple[dict | None, list[dict], object]:
    "(first open when it built the cache, else None; the opens with cache; the last browser)."
    from medinterp.browser import Browser
    from medinterp.study import Study
    cached = (path / "cache").is_dir() and any((path / "cache").glob("projection_*.npy"))
    first, runs = None, []
    for r in range(repeats + (0 if cached else 1)):
        b0, t0 = Wire.bytes, time.perf_counter()
        b = Browser(Study.open(path), progress=False)
        row = {"wall": time.perf_counter() - t0, "kb": (Wire.bytes - b0) / 1e3, "load": load_note()}
        if not cached and r == 0: first = row
        else: runs.append(row)
    return first, runs, b


def measure_switches(b, timer: Timer, repeats: int) -> dict:
    "Pair switches, direction switches and probes on browser `b` (see the module docstring); rows tagged 'first'."
    m = b.model
    pairs = [p for p, d in zip(m.pairs, m.done) if d]
    out = {"pair": [], "direction": [], "probe": []}
    for r in range(repeats):                                        # pairs in turn, starting with the next one
        for p in pairs[1:] + pairs[:1]:
            out["pair"].append({**timer(lambda: setattr(b.pair_select, "value", p)), "first": r == 0})
    for p in pairs:
        b.pair_select.value = p
        for r in range(repeats):
            out["direction"].append({**timer(lambda: setattr(b.direction_toggle, "value", "01")), "first": r == 0})
            out["direction"].append({**timer(lambda: setattr(b.direction_toggle, "value", "10")), "first": False})
        tiles = [k for k, row in enumerate(b.grid.rows) if row is not None and row != m.state["probe"]][:repeats]
        for k in tiles:
            out["probe"].append({**timer(b.grid.probe_buttons[k].click), "first": True})
    return out


def measure_sae_tab(b, timer: Timer) -> dict | None:
    "The first visit of the SAE tab (None without an SAE)."
    if not b.model.study.saes: return None
    b.tabs.selected_index = 0
    return {**timer(lambda: setattr(b.tabs, "selected_index", 1)), "bridge": len(b.model.bridge())}


def profile(path: Path, top: int = 18):
    "cProfile of one open with cache, one pair switch, one direction switch and one probe."
    import cProfile
    import pstats
    from medinterp.browser import Browser
    from medinterp.study import Study
    holder = {}
    steps = [("open with cache", lambda: holder.update(b=Browser(Study.open(path), progress=False))),
             ("pair switch", lambda: setattr(holder["b"].pair_select, "value", holder["b"].model.pairs[-1])),
             ("direction switch", lambda: setattr(holder["b"].direction_toggle, "value", "01")),
             ("probe", lambda: holder["b"].grid.probe_buttons[2].click())]
    for name, fn in steps:
        pr = cProfile.Profile()
        pr.enable(); fn(); pr.disable()
        print(f"\ncProfile of one {name} ({load_note()}), by cumulative time:")
        pstats.Stats(pr, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


# ------------------------------------------------------------------------------------------------ printing
def line(name: str, rows: list[dict], goal: float | None) -> dict:
    "One line of the table: median / max wall, the heavy panels, kB sent, goal, verdict, the load after the last."
    med, worst = statistics.median(r["wall"] for r in rows), max(r["wall"] for r in rows)
    parts = " | ".join(f"{statistics.median(r[p] for r in rows):8.3f}" if p in rows[0] else f"{'–':>8}" for p in PANELS)
    verdict = "" if goal is None else f"{goal:6.2f} | {'met' if med <= goal else 'NOT met'}"
    print(f"  {name:<34} | {len(rows):3d} | {med:8.3f} | {worst:8.3f} | {parts} | "
          f"{statistics.median(r['kb'] for r in rows):8.1f} | {verdict:<15} | {rows[-1]['load']}", flush=True)
    return {"median": med, "max": worst, "n": len(rows), "met": None if goal is None else med <= goal}


def report(first_open, opens, switches, sae, imports: float) -> dict:
    print(f"  {'interaction':<34} | {'n':>3} | {'median s':>8} | {'max s':>8} | {'snapshot':>8} | {'projectn':>8} | "
          f"{'kB sent':>8} | {'goal s':>6} | verdict | load when measured", flush=True)
    out = {}
    if first_open: line("first open (builds cache)", [first_open], None)
    out["open"] = line("open with cache", opens, GOALS["open"])
    print(f"  {'fresh kernel: imports + 1st open':<34} |   1 | {imports + opens[0]['wall']:8.3f} |"
          f"{'':>30}(the imports above + the first open with cache)", flush=True)
    for kind, label in (("pair", "pair switch"), ("direction", "direction switch"), ("probe", "probe")):
        rows = switches[kind]
        if not rows: print(f"  {label}: nothing to measure"); continue
        out[kind] = line(f"{label} (first visits)", [r for r in rows if r["first"]], GOALS[kind])
        line(f"{label} (all)", rows, None)
    if sae: line(f"SAE tab 1st visit ({sae['bridge']} bridge rows)", [sae], None)
    met = [v["met"] for v in out.values()]
    print(f"\ngoals met: {sum(met)} of {len(met)} (verdicts on the medians of first visits; {load_note()})")
    return out


# ------------------------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", nargs="?", default=None, help="a study folder with an RDX sweep (default: build one)")
    ap.add_argument("--n", type=int, default=300, help="images of the study built when none is given (default 300)")
    ap.add_argument("--repeats", type=int, default=5, help="opens, rounds of switches, probes per pair (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: all cores)")
    ap.add_argument("--profile", action="store_true", help="also cProfile one interaction of each kind")
    args = ap.parse_args(argv)
    if args.repeats < 1: ap.error("--repeats must be >= 1")
    cores = len(os.sched_getaffinity(0))
    args.threads = args.threads or cores
    for v in THREAD_VARS: os.environ[v] = str(args.threads)
    t0 = time.perf_counter()
    import ipywidgets
    import plotly
    import medinterp.browser  # noqa: F401
    t1 = time.perf_counter()
    from plotly.graph_objects import FigureWidget  # noqa: F401  (imported by the first Browser: nbformat, jsonschema ...)
    imports, figure_widget = time.perf_counter() - t0, time.perf_counter() - t1
    import torch
    torch.set_num_threads(args.threads)
    Wire.install()
    print(f"browser latency benchmark: {cores} cores, {args.threads} threads; ipywidgets {ipywidgets.__version__}, "
          f"plotly {plotly.__version__}; {load_note()}", flush=True)
    print(f"imports once per kernel, not part of 'open': {imports:.2f} s (medinterp.browser, ipywidgets; plotly's "
          f"FigureWidget {figure_widget:.2f} s of it)", flush=True)
    tmp = None
    if args.study is None:
        tmp = tempfile.TemporaryDirectory(prefix="medinterp-bench-browser-")
        t0 = time.perf_counter()
        path = build_study(Path(tmp.name) / "study", args.n).path
        print(f"built a {args.n}-image study in {time.perf_counter() - t0:.1f} s: {path}", flush=True)
    else:
        path = Path(args.study)
    try:
        first, opens, b = measure_open(path, args.repeats)
        m = b.model
        print(f"study {path}: {m.n} images, {sum(m.done)} layer pairs, SAE runs {m.study.saes}; {args.repeats} repeat(s)\n",
              flush=True)
        timer = Timer(b)
        out = report(first, opens, measure_switches(b, timer, args.repeats), measure_sae_tab(b, timer), imports)
        if args.profile: profile(path)
        return out
    finally:
        if tmp is not None: tmp.cleanup()


if __name__ == "__main__":
    main()

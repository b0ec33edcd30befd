"""Benchmark the HTML report of a study: file size against its cap, how many concept and latent articles fit, how long
writing it takes, and how soon the page is ready in headless Chromium with networking off.

Goals of the report issue: the demo report (N = 2,500, 6 layer pairs) at most 8 MB and at most 3 MB at N = 300 (the
size cap `size_budget_mb`, default 8, is never exceeded: what does not fit is listed, not drawn), and the page ready
(its one script has run: `<body data-ready="yes">`) within 2 s of navigation. The time to ready is read from the
page's own Navigation Timing (navigation start to load-event end) in Chromium driven by selenium; Chromium runs with
a dead proxy, so any network request would fail (and show in the console, which is printed).

    python benchmarks/report.py runs/demo                  # an existing study (e.g. from `medinterp demo`)
    python benchmarks/report.py runs/demo --cap 8 --cap 3  # one report per cap
    python benchmarks/report.py --quick                    # builds a 60-image study first: a few seconds

The report is written to a temporary folder, so the study's own report.html is left alone.
"""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note  # noqa: E402

GOAL_READY_S = 2.0


def quick_study(folder: Path):
    "A 60-phantom study through a 2-block random ViT, with an RDX sweep and an SAE (seconds)."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_extract import tiny_backbone
    from medinterp.phantoms import make_phantoms
    from medinterp.rdx import RDXConfig
    from medinterp.sae import SAEConfig
    from medinterp.study import Study, StudyConfig
    ds = make_phantoms(60, size=64, seed=0, out_dir=folder / "phantoms", flip=0.5, opacity=0.5, progress=False)
    s = Study.create(folder / "study", StudyConfig(name="quick", backbone="tiny", dataset="60 phantoms", thumb_size=64))
    s.extract(ds, tiny_backbone(2), pooling=("cls", "mean"), batch_size=16, progress=False)
    s.run_rdx(RDXConfig(n_clusters=3, grid_size=9, stability_runs=0), progress=False)
    s.train_sae(config=SAEConfig(architecture="topk", expansion=2, k=4, epochs=2, batch_size=16), progress=False)
    return s


def page_ready(path: Path) -> tuple[float | None, list]:
    "(seconds from navigation start to the end of the load event, browser console errors); (None, []) without Chromium."
    try:
        from selenium import webdriver
    except ImportError: return None, []
    exe, drv = shutil.which("chromium"), shutil.which("chromedriver")
    if not (exe and drv): return None, []
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1000", "--proxy-server=127.0.0.1:9"):
        opts.add_argument(a)
    opts.binary_location = exe
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=webdriver.ChromeService(drv), options=opts)
    try:
        d.get(path.as_uri())
        ready = d.execute_script("return document.body.getAttribute('data-ready')")
        t = d.execute_script("var n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;")
        errors = [e["message"][:200] for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        return (t / 1000.0 if ready == "yes" else None), errors
    finally: d.quit()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", nargs="?", help="a study folder (default with --quick: a 60-image study built first)")
    p.add_argument("--cap", type=float, action="append", help="size_budget_mb (repeatable; default 8)")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    from medinterp.study import Study
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.study: study = Study.open(a.study)
        elif a.quick: study = quick_study(tmp)
        else: p.error("give a study folder or --quick")
        n = len(study.store)
        pairs = len(study.sweep.pairs) if study.sweep is not None else 0
        print(f"study {study.config.name}: {n:,} images, {pairs} layer pairs, {len(study.saes)} SAE(s), "
              f"thumbnails {study.config.thumb_size} px; {load_note()}")
        print(f"{'cap MB':>7} | {'size MB':>8} | {'articles drawn':>15} | {'write s':>7} | {'ready s':>7} | goals")
        for cap in a.cap or [8.0]:
            t0 = time.perf_counter()
            out = study.export_html(tmp / f"report_{cap:g}.html", size_budget_mb=cap, progress=False)
            write = time.perf_counter() - t0
            head = out.read_text(encoding="utf-8")[:4000]
            import re
            m = re.search(r'name="medinterp-articles" content="(\d+) of (\d+)"', head)
            drawn = f"{m.group(1)} of {m.group(2)}" if m else "?"
            size = out.stat().st_size / 1e6
            ready, errors = page_ready(out)
            size_goal = 8.0 if n >= 2000 else 3.0 if 200 <= n <= 400 else None      # the goals are for N = 2,500 and N = 300
            goals = [f"size <= cap: {'met' if size <= cap else 'NOT met'}"]
            if size_goal: goals.append(f"size <= {size_goal:g} MB at N = {n:,}: {'met' if size <= size_goal else 'NOT met'}")
            goals.append("ready: no Chromium" if ready is None else
                         f"ready <= {GOAL_READY_S:g} s: {'met' if ready <= GOAL_READY_S else 'NOT met'}")
            rs = "–" if ready is None else f"{ready:.2f}"
            print(f"{cap:>7g} | {size:>8.2f} | {drawn:>15} | {write:>7.1f} | {rs:>7} | " + "; ".join(goals))
            for e in errors: print("  console error:", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Smoke test of benchmarks/browser.py: on a 48-image study it builds itself, it runs end to end in a subprocess and
prints one line per interaction (open, pair switch, direction switch, probe, SAE tab) with the goals beside the
medians (no timings are checked: the goals are the benchmark's business, not the tests')."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_run_prints_each_interaction_beside_its_goal():
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "browser.py"), "--n", "48", "--repeats", "1"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "built a 48-image study" in out and "48 images" in out, out
    for name, goal in (("open with cache", "2.00"), ("pair switch \\(first visits\\)", "0.50"),
                       ("direction switch \\(first visits\\)", "0.30"), ("probe \\(first visits\\)", "0.30")):
        assert re.search(rf"^  {name} +\| +\d+ \| +\d+\.\d+ \|.*\| +{goal} \| (met|NOT met) +\| load", out, flags=re.M), (name, out)
    assert re.search(r"SAE tab 1st visit \(\d+ bridge rows\)", out) and "fresh kernel: imports + 1st open" in out, out
    assert re.search(r"^goals met: \d of 4", out, flags=re.M), out

"""Smoke test of benchmarks/stability.py: `--quick` runs end to end in a subprocess and prints the per-pair table,
the sweep ratio with stability / without against the goal, and the concept counts (no timings are checked)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_ratio():
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stability.py"), "--quick", "--threads", "1"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert re.search(r"ratio \(with stability / without\) = \d+\.\d+ +goal <= 3\.0: (met|NOT met)", out), out
    assert len(re.findall(r"^ +\d+->\d+ +\|", out, flags=re.M)) == 3, out          # 4 layers -> 3 pairs
    assert "direction 10: kept" in out and "direction 01: kept" in out and "median stability" in out

"""Smoke test of benchmarks/report.py: `--quick` builds a small study, writes its report under two caps and prints
size, articles drawn, write time and page-ready time beside the goals (no timings are checked)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_size_and_goals():
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--quick", "--cap", "8", "--cap", "0.3"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = re.findall(r"^ +([\d.]+) \| +([\d.]+) \| +(\d+) of (\d+) \|", p.stdout, flags=re.M)
    assert len(rows) == 2, p.stdout
    for cap, size, drawn, total in rows:
        assert float(size) <= float(cap) and int(drawn) <= int(total)
    assert int(rows[1][2]) < int(rows[0][2])                     # a smaller cap draws fewer articles
    assert "size <= cap: met" in p.stdout and "console error" not in p.stdout

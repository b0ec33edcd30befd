"""Smoke test of benchmarks/rdx.py at tiny sizes: the synthetic pair, the baseline recipe against `rdx`, the
rdx vs rdx_large agreement and the summary table run and give well-formed numbers (no timings are checked).
The fresh-process worker is covered by a `slow` test."""

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/rdx.py")


def test_make_pair_is_deterministic_and_structured(bench):
    A, B, comp = bench.make_pair(300, d=48, seed=1)
    A2, B2, comp2 = bench.make_pair(300, d=48, seed=1)
    assert A.shape == B.shape == (300, 48) and A.dtype == np.float32 and comp.shape == (300,)
    assert np.array_equal(A, A2) and np.array_equal(B, B2) and np.array_equal(comp, comp2)
    assert np.isfinite(A).all() and np.isfinite(B).all() and len(np.unique(comp)) > 10


@pytest.mark.parametrize("mode", ["v2", "paper"])
def test_baseline_matches_rdx_and_tables_print(bench, mode, capsys):
    from medinterp.rdx import RDXConfig
    A, B, comp = bench.make_pair(120, d=32)
    stages = {}
    base = bench.baseline_rdx(A, B, RDXConfig(mode=mode), stages)
    assert set(stages) == {"distances", "ranks", "delta+M+S", "spectral", "relabel"}
    assert np.all(np.diag(base["R_A"]) == 0) and np.all(np.sort(base["R_B"], 1) == np.arange(120))
    assert ("RS_A" in base) == (mode == "v2")
    ident = bench.identity(A, B, mode, comp)
    assert ident["delta"] <= 1e-9 and ident["M_10"] <= 1e-9 and ident["M_01"] <= 1e-9
    assert ident["labels_10"] and ident["labels_01"]
    agree = bench.agreement(A, B, mode, [40], comp)
    row = agree["rows"][0]
    for key in ("10", "01"):
        assert -1 <= row[f"ari_concepts_{key}"] <= 1 and len(row[f"jaccard_{key}"]) == row[f"top_{key}"] <= 3
    dense = {k: {"median_s": 2.0, "cpu_s": 3.0, "extra_mib": 100.0} for k in ("baseline", "medinterp")}
    large = {"n": 400, "landmarks": 40, "seconds": 1.0, "peak_mib": 600.0, "extra_mib": 50.0,
             "estimate_bytes": 10 * 2**20, "available_bytes": 2**34}
    bench.summary(dense, ident, agree, large, type("Args", (), {"n": 120})())
    out = capsys.readouterr().out
    assert "| baseline" in out and "met?" in out and "labels equal, direction 01" in out and "ARI concepts 10" in out


@pytest.mark.slow
def test_quick_run_end_to_end(bench):
    res = bench.main(["--n", "120", "--d", "32", "--repeats", "1", "--agree-n", "200", "--landmarks", "40",
                      "--large-n", "300", "--large-landmarks", "40", "--threads", "1"])
    assert res["dense"]["baseline"]["peak_mib"] > res["dense"]["baseline"]["pre_mib"] > 0
    assert res["identity"]["labels_10"] and res["large"]["kept"]["10"] >= 1

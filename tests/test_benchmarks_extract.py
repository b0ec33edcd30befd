"""Smoke test of benchmarks/extract.py's bf16 vs float32 comparison at tiny sizes (a 3-block ViT at 32 px on a few
cxr-demo X-rays): both precisions are extracted, the fidelity and RDX agreement numbers are in range and the printed
report names every field. No timings are checked. The BiomedCLIP-shaped run through `main` is a `slow` test."""

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/extract.py")


@pytest.fixture(scope="module")
def tiny():
    import torch
    from medinterp.models import load_backbone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return load_backbone("timm:vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, embed_dim=32,
                             num_heads=2)


def test_cpu_flags_and_machine_facts(bench, capsys):
    info = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nmodel name\t: X\nprocessor\t: 1\nflags\t: amx_bf16\n"
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= bench.cpu_flags(info) and "X" not in bench.cpu_flags(info)
    assert bench.cpu_flags("") == set()
    m = bench.machine_facts()
    assert m["cpus"] >= 1 and m["threads"] >= 1 and set(m["flags"]) == set(bench.BF16_FLAGS)
    assert all(v in (True, False, None) for v in m["flags"].values())
    bench.print_machine(m)
    out = capsys.readouterr().out
    for field in ("CPUs", "threads", "avx512_bf16", "amx_bf16", "oneDNN", "native bf16 matmuls"):
        assert field in out


def test_bf16_compare_on_a_tiny_vit(bench, tiny, tmp_path, capsys):
    from medinterp.rdx import RDXConfig
    ds = bench.bf16_images("cxr-demo", 24, tmp_path)
    res = bench.bf16_compare(ds, tiny, tmp_path, batch_size=8, repeats=2,
                             rdx_config=RDXConfig(n_clusters=3, grid_size=4, stability_runs=0))
    out = capsys.readouterr().out
    for field in ("float32", "bfloat16", "img/s", "ratio bf16/f32", "repeat runs bit-identical", "CKA", "10-NN overlap",
                  "relative error", "RDX concept agreement on trunk.blocks.0 -> trunk.blocks.2 (mean, seed 0)",
                  "direction 10: ARI cluster labels", "direction 01: ARI cluster labels", "matched (Jaccard > 0.5)",
                  "the same vector for every image"):
        assert field in out, field
    runs = res["runs"]
    for p in bench.PRECISIONS:
        assert len(runs[p]["img_s"]) == 2 and runs[p]["median_img_s"] > 0 and runs[p]["store"].complete
        assert runs[p]["store"]._m["precision"] == p and runs[p]["repeatable"] in (True, False)
    f32, b16 = runs["float32"]["store"], runs["bfloat16"]["store"]
    assert not np.array_equal(f32.load("trunk.blocks.2", "mean"), b16.load("trunk.blocks.2", "mean"))  # bf16 did run
    fid = res["fidelity"]
    assert [(r["layer"], r["pooling"]) for r in fid] == [(l, q) for l in tiny.default_layers for q in ("cls", "mean")]
    const = [r for r in fid if r["constant"]]
    assert [(r["layer"], r["pooling"]) for r in const] == [("pre_trunk", "cls")] and np.isnan(const[0]["cka"])
    for r in fid:
        assert r["k"] == 10 and 0 <= r["rel_err"] < 0.05   # bf16 keeps about 3 significant digits
        if not r["constant"]: assert 0.99 < r["cka"] <= 1 and 0.8 <= r["knn"] <= 1
    agree = res["rdx"]
    assert agree["pair"] == ("trunk.blocks.0", "trunk.blocks.2") and agree["pooling"] == "mean"
    for which in ("bf16", "seed+1"):
        for key in ("10", "01"):
            a = agree[which][key]
            assert -1 <= a["ari_labels"] <= 1 and -1 <= a["ari_concepts"] <= 1
            assert 0 <= a["matched"] <= a["kept"][0] == len(a["jaccard"]) and all(0 <= j <= 1 for j in a["jaccard"])


def test_fidelity_sees_a_row_shuffle(bench, tiny, tmp_path):
    "The fidelity numbers can fail: a store against itself is perfect, against its own rows shuffled it is not."
    from medinterp.extract import extract
    ds = bench.bf16_images("cxr-demo", 24, tmp_path)
    a = extract(ds, tiny, out_dir=tmp_path / "a", pooling=("mean",), batch_size=8, progress=False, verbose=False)
    same = bench.fidelity(a, a)
    assert all(r["cka"] == pytest.approx(1) and r["knn"] == 1 and r["rel_err"] == 0 for r in same)
    perm = np.roll(np.arange(24), 12)

    class Shuffled:
        ids, path = a.ids, "shuffled"
        def load(self, layer, pooling, mmap=True): return a.load(layer, pooling, mmap=False)[perm]
    moved = bench.fidelity(a, Shuffled())
    assert len(moved) == len(tiny.default_layers) and all(r["knn"] < 0.9 and r["rel_err"] > 0.05 for r in moved)
    b = extract(ds.subset(perm.tolist()), tiny, out_dir=tmp_path / "b", pooling=("mean",), batch_size=8,
                progress=False, verbose=False)
    with pytest.raises(ValueError, match="other images"): bench.fidelity(a, b)


def test_command_line_refuses_bad_sizes(bench):
    for argv in (["--bf16-only", "--bf16-n", "0"], ["--bf16-only", "--bf16-repeats", "0"],
                 ["--bf16-only", "--bf16-n", "242"], ["--bf16-only", "--bf16-data", "nih"]):
        with pytest.raises(SystemExit) as e: bench.main(argv)
        assert e.value.code == 2


@pytest.mark.slow
def test_biomedclip_shaped_end_to_end(bench, capsys):
    res = bench.main(["--bf16-only", "--bf16-n", "24", "--bf16-repeats", "1", "--batch-size", "8"])
    out = capsys.readouterr().out
    assert "RANDOM weights" in out and "trunk.blocks.0 -> trunk.blocks.11 (mean" in out
    assert len(res["bf16"]["fidelity"]) == 26 and set(res) == {"bf16"}

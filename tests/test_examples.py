"""The scripts under examples/: `slurm_extract.sh --local` runs its shards as plain processes and merges them, and the
merged study equals one unsharded `medinterp extract` bit for bit (arrays, index, images.csv, thumbnails)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medinterp.study import Study

ROOT = Path(__file__).resolve().parents[1]
CALL = "import sys; from medinterp.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "Tiny phantoms and a phantom ViT trained for two steps on them, and a `medinterp` on PATH running this checkout."
    from medinterp.phantom_vit import PhantomViTConfig, train_phantom_vit
    from medinterp.phantoms import make_phantoms
    tmp = tmp_path_factory.mktemp("examples")
    ds = make_phantoms(22, size=64, seed=0, out_dir=tmp / "imgs", progress=False)
    cfg = PhantomViTConfig(image_size=64, depth=2, width=32, heads=2, batch_size=8, max_steps=2)
    train_phantom_vit(ds, tmp / "vit", cfg, progress=False)
    (tmp / "bin").mkdir()
    exe = tmp / "bin" / "medinterp"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{CALL}" "$@"\n')
    exe.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1"}
    return tmp, ds, f"phantom-vit:{tmp / 'vit'}", env


def _files(study: Study) -> dict:
    "The bytes of every array, index.csv, images.csv and thumbnails.npy of a study."
    s = study.store
    out = {f"{l}/{p}": s.array_path(l, p).read_bytes() for l in s.layers for p in s.poolings}
    out.update({n: (study.path / n).read_bytes() for n in ("images.csv", "thumbnails.npy")})
    out["index.csv"] = (study.activations_dir / "index.csv").read_bytes()
    return out


def test_slurm_example_locally_equals_one_unsharded_extraction(tiny):
    tmp, ds, backbone, env = tiny
    opts = "--batch-size 4 --pooling cls,mean --n 18 --seed 3"
    r = subprocess.run([str(ROOT / "examples" / "slurm_extract.sh"), "--local"], capture_output=True, text=True, timeout=900,
                       env={**env, "IMAGES": str(ds.root), "METADATA": str(ds.root / "metadata.csv"), "BACKBONE": backbone,
                            "OUT": str(tmp / "merged"), "SHARDS": "2", "EXTRA": opts})
    assert r.returncode == 0, r.stderr[-3000:]
    shards = [Study.open(tmp / f"merged.shards/shard-{i}") for i in (1, 2)]
    assert [s.store.shard for s in shards] == [(0, 2), (1, 2)] and sum(len(s.store) for s in shards) == 18
    assert 0 < len(shards[0].store) < 18                           # each shard really holds a part
    r = subprocess.run(["medinterp", "--quiet", "extract", "--backbone", backbone, "--images", ds.root, "--metadata",
                        ds.root / "metadata.csv", "--out", tmp / "single", *opts.split()],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    merged, single = Study.open(tmp / "merged"), Study.open(tmp / "single")
    assert merged.store.complete and merged.store.shard is None and len(merged.store) == 18
    assert merged.store.poolings == ["cls", "mean"] and merged.store.manifest["batch_size"] == 4
    a, b = _files(merged), _files(single)
    assert a.keys() == b.keys() and len(a) == 2 * len(single.store.layers) + 3
    for k in a: assert a[k] == b[k], k                             # bit for bit
    assert merged.config.replace(name="single") == single.config


def test_merge_refuses_an_incomplete_set(tiny, tmp_path):
    tmp, ds, backbone, env = tiny
    r = subprocess.run(["medinterp", "--quiet", "extract", "--backbone", backbone, "--images", ds.root, "--n", "10",
                        "--batch-size", "4", "--shard", "1/2", "--out", tmp_path / "s1"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(["medinterp", "merge", tmp_path / "m", tmp_path / "s1"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

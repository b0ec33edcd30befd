"""Activation extraction: store round trips, crash-safe resume, refusal of mismatched stores, NaN and bad-image
handling, shard + merge, bf16 and float16, on tiny timm ViTs (and one ViT-B/16 shaped like BiomedCLIP's vision tower)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medinterp.data import CANONICAL, KINDS, CXRDataset, ImageReadError, cxr_demo_dir
from medinterp.extract import (ActivationStore, ExtractConfig, IncompleteStoreError, NonFiniteActivationError,
                               StoreMismatchError, comparable_manifest, extract, merge_stores, shard_rows)
from medinterp.models import Backbone, capture, vit_layers

HERE = Path(__file__).resolve().parent
N_PHANTOMS = 12


# ---------------------------------------------------------------- helpers (also imported by the crash subprocess)
def tiny_preprocess(img):
    x = torch.as_tensor(np.asarray(img, np.float32))[None, None]
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)[0]
    return (x.expand(3, -1, -1) - 0.5) / 0.25


def tiny_backbone(seed: int = 0, depth: int = 3) -> Backbone:
    "A 32 px timm ViT (patch 8, width 32) with weights drawn from `seed` (no global RNG involved)."
    import timm
    m = timm.create_model("vit_base_patch16_224", pretrained=False, depth=depth, embed_dim=32, num_heads=2,
                          patch_size=8, img_size=32, num_classes=0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters(): p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return Backbone("tiny-vit", m, tiny_preprocess, vit_layers(m), image_size=32,
                    preprocess_info={"size": 32, "mean": 0.5, "std": 0.25})


def arrays(store):
    return {(l, p): np.asarray(store.load(l, p)) for l in store.layers for p in store.poolings}


def assert_same_arrays(a, b):
    A, B = arrays(a), arrays(b)
    assert A.keys() == B.keys()
    for k in A:
        assert A[k].dtype == B[k].dtype and A[k].shape == B[k].shape, k
        assert np.array_equal(A[k], B[k], equal_nan=True), f"{k} differs"


def direct(backbone, dataset, rows, layers, poolings):
    "Activations from one direct forward pass + capture on `rows` as one batch."
    with torch.no_grad(), capture(backbone, layers, poolings) as acts:
        backbone(backbone.batch([dataset.image(int(r)) for r in rows]))
    return {k: v.numpy() for k, v in acts.items()}


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from medinterp.phantoms import make_phantoms
    return make_phantoms(N_PHANTOMS, size=64, seed=3, out_dir=tmp_path_factory.mktemp("ph") / "phantoms")


@pytest.fixture(scope="module")
def bb():
    return tiny_backbone(0)


@pytest.fixture(scope="module")
def ref(phantoms, bb, tmp_path_factory):
    "The uninterrupted reference run: all layers, cls + mean, batches of 4."
    return extract(phantoms, bb, out_dir=tmp_path_factory.mktemp("ref") / "acts", pooling=("cls", "mean"),
                   batch_size=4, progress=False, verbose=False)


KW = dict(pooling=("cls", "mean"), batch_size=4, progress=False, verbose=False)


# ---------------------------------------------------------------- config and shards
def test_config_validation():
    c = ExtractConfig(layers="pre_trunk", poolings="mean", shard=[0, 2], device=torch.device("cpu"))
    assert (c.layers, c.poolings, c.shard, c.device) == (("pre_trunk",), ("mean",), (0, 2), "cpu")
    assert ExtractConfig.from_json(c.to_json()) == c
    for bad, msg in [(dict(poolings=("max",)), "poolings"), (dict(dtype="float64"), "dtype"),
                     (dict(precision="int8"), "precision"), (dict(on_nonfinite="ignore"), "on_nonfinite"),
                     (dict(on_error="drop"), "on_error"), (dict(shard=(2, 2)), "shard"), (dict(batch_size=0), "batch_size"),
                     (dict(num_workers=-1), "num_workers"), (dict(layers=()), "layers")]:
        with pytest.raises(ValueError, match=msg): ExtractConfig(**bad)


def test_shard_rows_partition():
    for n in (0, 1, 7, 12, 13, 100):
        for bs in (1, 4, 5):
            for k in (1, 2, 3, 7):
                spans = [shard_rows(n, bs, (i, k)) for i in range(k)]
                assert spans[0][0] == 0 and spans[-1][1] == n
                assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
                assert all(s % bs == 0 for s, _ in spans if s < n)          # batch-aligned starts


# ---------------------------------------------------------------- round trips
def test_round_trip_phantoms(phantoms, bb, ref, capsys):
    s = ActivationStore.open(ref.path)
    assert s.complete and len(s) == N_PHANTOMS and s.rows_completed == N_PHANTOMS
    assert s.layers == ["pre_trunk", "trunk.blocks.0", "trunk.blocks.1", "trunk.blocks.2"]
    assert s.poolings == ["cls", "mean"] and s.dims == {l: 32 for l in s.layers}
    names = sorted(p.name for p in s.path.iterdir())
    assert names == sorted(["config.json", "index.csv", "manifest.json"] +
                           [f"{l}__{p}.npy" for l in s.layers for p in ("cls", "mean")])
    for l in s.layers:
        for p in s.poolings:
            a = s.load(l, p)
            assert isinstance(a, np.memmap) and not a.flags.writeable and a.shape == (N_PHANTOMS, 32)
            assert a.dtype == np.float32
            np.testing.assert_array_equal(np.load(s.array_path(l, p), allow_pickle=False), a)   # plain .npy
            assert type(s.load(l, p, mmap=False)) is np.ndarray
    # equal to a direct forward + capture of the same batches
    for rows in (range(0, 4), range(4, 8), range(8, 12)):
        d = direct(bb, phantoms, rows, s.layers, s.poolings)
        for (l, p), v in d.items(): np.testing.assert_array_equal(s.load(l, p)[rows.start:rows.stop], v)
    # the index is the dataset's, paths relative to its root, labels aligned
    idx = s.index
    assert idx["valid"].all() and s.ids == phantoms.ids
    exp = phantoms.index
    exp["path"] = [f"images/{Path(p).name}" for p in exp["path"]]
    pd.testing.assert_frame_equal(idx.drop(columns="valid"), exp)
    pd.testing.assert_frame_equal(s.labels, phantoms.labels)
    assert s.label_names == phantoms.label_names
    assert "complete" in repr(s) and "tiny-vit" in repr(s)


def test_manifest_records_provenance(phantoms, bb, ref):
    m = ref.manifest
    assert m["backbone"]["key"] == "tiny-vit" and m["backbone"]["weights_fingerprint"] == bb.weights_fingerprint
    assert m["backbone"]["preprocess_info"] == {"size": 32, "mean": 0.5, "std": 0.25}
    assert m["dataset"]["fingerprint"] == phantoms.fingerprint() and m["dataset"]["rows"] == N_PHANTOMS
    assert (m["dtype"], m["precision"], m["batch_size"], m["shard"]) == ("float32", "float32", 4, None)
    assert (m["rows_total"], m["rows_completed"], m["complete"]) == (N_PHANTOMS, N_PHANTOMS, True)
    import medinterp
    assert m["medinterp_version"] == medinterp.__version__
    assert ExtractConfig.from_dict(m["config"]).layers == tuple(m["layers"])
    json.loads((ref.path / "config.json").read_text())       # config.json beside the store


def test_store_records_kinds(phantoms, ref):
    s = ActivationStore.open(ref.path)
    assert s.manifest["dataset"]["kinds"] == phantoms.kinds and s.kinds == phantoms.kinds
    assert list(s.kinds) == [c for c in s.index.columns if c not in (*CANONICAL, "valid")]
    assert set(s.kinds.values()) <= set(KINDS)
    assert (s.kinds["pacemaker"], s.kinds["opacity"], s.kinds["cardiothoracic_ratio"], s.kinds["brightness"]) == \
        ("hardware", "finding", "anatomy", "acquisition")


def test_store_round_trips_declared_kinds(phantoms, bb, tmp_path):
    ds = CXRDataset(phantoms.index, phantoms.label_names, root=phantoms.root,
                    kinds={**phantoms.kinds, "render_seed": "acquisition", "opacity": "anatomy"})
    s = extract(ds, bb, ["trunk.blocks.0"], out_dir=tmp_path / "k", **KW)
    again = ActivationStore.open(tmp_path / "k")
    assert again.kinds == s.kinds == ds.kinds
    assert (again.kinds["render_seed"], again.kinds["opacity"], again.kinds["tube"]) == ("acquisition", "anatomy", "hardware")


def without_kinds(path):
    "Make the store at `path` look written before kinds were recorded."
    f = Path(path) / "manifest.json"
    m = json.loads(f.read_text())
    del m["dataset"]["kinds"]
    f.write_text(json.dumps(m))
    return m


def test_stores_without_kinds_stay_usable(phantoms, bb, ref, tmp_path):
    # an incomplete old store opens with default kinds and resumes (kinds are not part of the identity)
    h = crash_at(bb, 3)
    try:
        with pytest.raises(Boom): extract(phantoms, bb, out_dir=tmp_path / "old", **KW)
    finally: h.remove()
    without_kinds(tmp_path / "old")
    old = ActivationStore.open(tmp_path / "old")
    assert list(old.kinds) == list(phantoms.kinds)
    assert (old.kinds["opacity"], old.kinds["source"], old.kinds["view"], old.kinds["pacemaker"]) == \
        ("finding", "source", "acquisition", "other")
    done = extract(phantoms, bb, out_dir=tmp_path / "old", **KW)
    assert_same_arrays(done, ref)
    assert done.manifest["dataset"]["kinds"] == phantoms.kinds           # the resumed store records them
    # a complete old store is returned as it is, still readable
    m = without_kinds(tmp_path / "old")
    again = extract(phantoms, bb, out_dir=tmp_path / "old", **KW)
    assert json.loads((tmp_path / "old" / "manifest.json").read_text()) == m and again.kinds == old.kinds
    assert comparable_manifest(again.manifest) == comparable_manifest(m)
    # shards with and without kinds merge; the merged store keeps the first one's
    parts = [extract(phantoms, bb, out_dir=tmp_path / f"s{i}", shard=(i, 2), **KW) for i in range(2)]
    without_kinds(parts[1].path)
    merged = merge_stores([p.path for p in parts], tmp_path / "merged")
    assert merged.manifest["dataset"]["kinds"] == phantoms.kinds and merged.kinds == ref.kinds


def test_estimate_printed(phantoms, bb, tmp_path, capsys):
    extract(phantoms, bb, ["trunk.blocks.2"], out_dir=tmp_path / "a", batch_size=4, progress=False)
    out = capsys.readouterr().out
    # 12 images x 1 layer x 1 pooling x 32 float32 values = 1536 bytes
    assert "12 images x 1 layers x 1 poolings = 32 float32 values per image -> about 1.5 KB" in out


@pytest.mark.skipif(cxr_demo_dir() is None, reason="cxr-demo data set not found")
def test_round_trip_cxr_demo(tmp_path):
    full = CXRDataset.from_cxr_demo(progress=False)
    ds = full.subset([0, 30, 60, 90, 120, 150, 200, 240])
    bb = tiny_backbone(5)
    s = extract(ds, bb, ["pre_trunk", "trunk.blocks.2"], out_dir=tmp_path / "cxr", batch_size=3, progress=False,
                verbose=False, pooling=("cls", "mean"))
    for rows in (range(0, 3), range(3, 6), range(6, 8)):
        d = direct(bb, ds, rows, s.layers, s.poolings)
        for (l, p), v in d.items(): np.testing.assert_array_equal(s.load(l, p)[rows.start:rows.stop], v)
    exp = ds.index
    exp["path"] = [f"images/{Path(p).name}" for p in exp["path"]]
    pd.testing.assert_frame_equal(s.index.drop(columns="valid"), exp)     # str metadata with blanks, ints, floats
    pd.testing.assert_frame_equal(s.labels, ds.labels)
    assert s.ids == ds.ids and s.index["patient_id"].tolist() == ds.index["patient_id"].tolist()
    assert s.kinds == ds.kinds and s.kinds["resize_method"] == "acquisition"


def test_index_alignment_with_labels(phantoms, bb, ref, tmp_path):
    order = [11, 3, 7, 0, 5]
    sub = phantoms.subset(order)
    s = extract(sub, bb, out_dir=tmp_path / "sub", **KW)
    assert s.ids == [phantoms.ids[i] for i in order]
    pd.testing.assert_frame_equal(s.labels, phantoms.labels.iloc[order].reset_index(drop=True))
    for l in s.layers:   # each row is the activation of its own image (batched with other neighbours here)
        np.testing.assert_allclose(s.load(l, "mean"), ref.load(l, "mean")[order], rtol=1e-5, atol=1e-6)


def test_num_workers_and_batch_independence(phantoms, bb, ref, tmp_path):
    s = extract(phantoms, bb, out_dir=tmp_path / "w", num_workers=2, **KW)
    assert_same_arrays(s, ref)


def test_biomedclip_shaped_vit(tmp_path):
    "All 13 layers of a ViT-B/16 (BiomedCLIP's vision config), CLS + mean, on two 224 px phantoms."
    import timm
    from medinterp.phantoms import make_phantoms
    ds = make_phantoms(2, size=224, seed=1, out_dir=tmp_path / "ph")
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    pre = lambda img: (torch.as_tensor(img)[None].expand(3, -1, -1) - 0.5) / 0.25
    big = Backbone("vit_b16", vit, pre, vit_layers(vit), image_size=224)
    s = extract(ds, big, out_dir=tmp_path / "acts", pooling=("cls", "mean"), batch_size=2, progress=False,
                verbose=False)
    assert len(s.layers) == 13 and s.dims == {l: 768 for l in s.layers}
    assert len(list(s.path.glob("*.npy"))) == 26
    with torch.no_grad(): head = vit(big.batch([ds.image(0), ds.image(1)]))
    # the last block's CLS, normed, is what the model itself returns
    with torch.no_grad():
        normed = vit.norm(torch.from_numpy(s.load("trunk.blocks.11", "cls", mmap=False)))
    torch.testing.assert_close(normed, head, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- resume
CRASH_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_extract import tiny_backbone
    from medinterp.data import CXRDataset
    from medinterp.extract import extract
    ds = CXRDataset.from_folder({data!r}, {data!r} + "/metadata.csv", verify="none")
    bb = tiny_backbone(0)
    bb.module.register_forward_pre_hook(lambda m, i: time.sleep(0.3))   # slow batches: time to be killed
    print("started", flush=True)
    extract(ds, bb, out_dir={out!r}, pooling=("cls", "mean"), batch_size=2, progress=False, verbose=False)
    print("finished", flush=True)
""")


def test_resume_after_sigkill(phantoms, bb, tmp_path):
    out = tmp_path / "killed"
    code = CRASH_SCRIPT.format(tests=str(HERE), data=str(phantoms.root), out=str(out))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline, seen = time.time() + 120, 0
        while time.time() < deadline and proc.poll() is None:
            try: seen = json.loads((out / "manifest.json").read_text())["rows_completed"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError): seen = 0
            if seen >= 4: break
            time.sleep(0.05)
        assert proc.poll() is None, f"the extraction ended before it could be killed: {proc.communicate()}"
        assert 4 <= seen < N_PHANTOMS, seen
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()
    assert proc.returncode == -signal.SIGKILL
    half = ActivationStore.open(out)
    assert not half.complete and 4 <= half.rows_completed < N_PHANTOMS
    with pytest.raises(IncompleteStoreError, match="re-run extract"): half.load("pre_trunk")
    assert "INCOMPLETE" in repr(half)
    assert not half.index["valid"].iloc[half.rows_completed:].any()
    assert json.loads((out / "manifest.json").read_text())["complete"] is False
    # resume in this process, then compare with an uninterrupted run with the same batches
    calls = []
    h = bb.module.register_forward_pre_hook(lambda m, i: calls.append(len(i[0])))
    try: done = extract(phantoms, bb, out_dir=out, pooling=("cls", "mean"), batch_size=2, progress=False, verbose=False)
    finally: h.remove()
    assert done.complete
    assert sum(calls) == N_PHANTOMS - half.rows_completed      # only the missing rows (no probe on resume)
    whole = extract(phantoms, bb, out_dir=tmp_path / "whole", pooling=("cls", "mean"), batch_size=2, progress=False,
                    verbose=False)
    assert_same_arrays(done, whole)
    assert comparable_manifest(done.manifest)["rows_completed"] == N_PHANTOMS


class Boom(Exception): pass


def crash_at(bb, forward_call: int):
    "A hook raising on the `forward_call`-th forward pass (1 is extract's probe)."
    n = {"k": 0}
    def hook(module, inputs):
        n["k"] += 1
        if n["k"] == forward_call: raise Boom("simulated crash")
    return bb.module.register_forward_pre_hook(hook)


def test_resume_after_exception_and_incomplete_is_not_complete(phantoms, bb, ref, tmp_path, capsys):
    hooks_before = sum(len(m._forward_hooks) for m in bb.module.modules())
    h = crash_at(bb, 3)
    try:
        with pytest.raises(Boom): extract(phantoms, bb, out_dir=tmp_path / "c", pooling=("cls", "mean"), batch_size=4,
                                          progress=False)
    finally: h.remove()
    assert sum(len(m._forward_hooks) for m in bb.module.modules()) == hooks_before   # capture cleaned up
    assert "call extract(...) again" in capsys.readouterr().out
    half = ActivationStore.open(tmp_path / "c")
    assert (half.complete, half.rows_completed) == (False, 4)
    with pytest.raises(IncompleteStoreError): half.load("trunk.blocks.0", "mean")
    np.testing.assert_array_equal(half.load("trunk.blocks.0", "mean", allow_incomplete=True), ref.load("trunk.blocks.0", "mean")[:4])
    assert half.index["valid"].tolist() == [True] * 4 + [False] * 8
    assert pd.read_csv(tmp_path / "c" / "index.csv")["valid"].sum() == 0     # not valid on disk until complete
    # merge refuses an incomplete shard-like store too
    with pytest.raises(IncompleteStoreError, match="incomplete"): merge_stores([tmp_path / "c"], tmp_path / "m")
    done = extract(phantoms, bb, out_dir=tmp_path / "c", **KW)     # batch_size could also be left out here
    assert_same_arrays(done, ref)
    assert (tmp_path / "c" / "index.csv").read_bytes() == (ref.path / "index.csv").read_bytes()
    assert comparable_manifest(done.manifest) == comparable_manifest(ref.manifest)


def test_resume_uses_stored_batch_size(phantoms, bb, ref, tmp_path):
    h = crash_at(bb, 3)
    try:
        with pytest.raises(Boom): extract(phantoms, bb, out_dir=tmp_path / "c", **KW)
    finally: h.remove()
    done = extract(phantoms, bb, out_dir=tmp_path / "c", pooling=("cls", "mean"), progress=False, verbose=False)
    assert done.manifest["batch_size"] == 4
    assert_same_arrays(done, ref)


def test_complete_store_is_not_recomputed(phantoms, bb, ref, capsys):
    calls = []
    h = bb.module.register_forward_pre_hook(lambda m, i: calls.append(len(i[0])))
    try: again = extract(phantoms, bb, out_dir=ref.path, **{**KW, "verbose": True})
    finally: h.remove()
    assert calls == [] and "already complete" in capsys.readouterr().out      # no forward pass at all
    assert_same_arrays(again, ref)


# ---------------------------------------------------------------- refusals
def test_unknown_layer_and_pooling(phantoms, bb, ref, tmp_path):
    with pytest.raises(KeyError, match=r"valid: \['pre_trunk'"):
        extract(phantoms, bb, ["trunk.blocks.9"], out_dir=tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="poolings"):
        extract(phantoms, bb, out_dir=tmp_path / "y", pooling="max", progress=False)
    with pytest.raises(KeyError, match=r"stored layers: \['pre_trunk'"): ref.load("trunk.blocks.9")
    with pytest.raises(KeyError, match=r"stored poolings: \['cls', 'mean'\]"): ref.load("pre_trunk", "max")
    with pytest.raises(FileNotFoundError, match="not an activation store"): ActivationStore.open(tmp_path)


def test_mismatched_store_refuses(phantoms, bb, ref, tmp_path):
    def refuses(what, *args, **kw):
        with pytest.raises(StoreMismatchError) as e: extract(*args, out_dir=ref.path, **{**KW, **kw})
        assert what in str(e.value) and "overwrite=True" in str(e.value)
    refuses("backbone weights", phantoms, tiny_backbone(1))
    refuses("dataset", phantoms.subset(range(10)), bb)
    refuses("layers", phantoms, bb, ["pre_trunk"])
    refuses("poolings", phantoms, bb, pooling="cls")
    refuses("dtype", phantoms, bb, dtype="float16")
    refuses("precision", phantoms, bb, precision="bfloat16")
    refuses("batch_size", phantoms, bb, batch_size=3)
    refuses("shard", phantoms, bb, shard=(0, 2))
    # an unrelated folder is never touched
    (tmp_path / "notes").mkdir(); (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"): extract(phantoms, bb, out_dir=tmp_path / "notes", **KW)
    # overwrite=True replaces a store made differently
    s = extract(phantoms, bb, ["pre_trunk"], out_dir=tmp_path / "o", **KW)
    s = extract(phantoms, bb, ["trunk.blocks.2"], out_dir=tmp_path / "o", overwrite=True, **KW)
    assert s.layers == ["trunk.blocks.2"] and not (tmp_path / "o" / "pre_trunk__cls.npy").exists()


# ---------------------------------------------------------------- NaN / Inf and unreadable images
def poison(bb, x_bad, block: int = 1, value=float("nan")):
    "Hooks making block `block` emit `value` for the rows of a batch equal to the input `x_bad`."
    state = {}
    def spot(m, inputs): state["hit"] = (inputs[0] - x_bad).flatten(1).abs().amax(1) == 0
    def hit(m, inputs, output): return output.masked_fill(state["hit"][:, None, None], value)
    return [bb.module.register_forward_pre_hook(spot), bb.module.blocks[block].register_forward_hook(hit)]


def test_nonfinite_names_image_and_layer(phantoms, bb, ref, tmp_path):
    bad_id = phantoms.ids[6]
    hs = poison(bb, bb.preprocess(phantoms.image(6)))
    try:
        with pytest.raises(NonFiniteActivationError) as e: extract(phantoms, bb, out_dir=tmp_path / "n", **KW)
        msg = str(e.value)
        assert f"image {bad_id!r} (row 6) at layer trunk.blocks.1 (cls)" in msg and "on_nonfinite='record'" in msg
        assert {(r["id"], r["layer"]) for r in e.value.records} == {(bad_id, "trunk.blocks.1"), (bad_id, "trunk.blocks.2")}
        half = ActivationStore.open(tmp_path / "n")
        assert half.rows_completed == 4 and not half.complete          # the batch before is saved, not this one
        s = extract(phantoms, bb, out_dir=tmp_path / "n", on_nonfinite="record", **{**KW, "verbose": False})
    finally:
        for h in hs: h.remove()
    assert s.complete
    nf = s.nonfinite
    assert set(nf["id"]) == {bad_id} and set(nf["row"]) == {6}
    assert set(zip(nf["layer"], nf["pooling"])) == {(l, p) for l in ("trunk.blocks.1", "trunk.blocks.2") for p in ("cls", "mean")}
    assert np.isnan(s.load("trunk.blocks.2")[6]).all()
    keep = [i for i in range(N_PHANTOMS) if i != 6]
    np.testing.assert_array_equal(s.load("trunk.blocks.2")[keep], ref.load("trunk.blocks.2")[keep])
    assert "non-finite" in repr(s)


def test_float16_overflow_is_reported(phantoms, bb, tmp_path):
    hs = poison(bb, bb.preprocess(phantoms.image(2)), block=2, value=1e6)
    try:
        with pytest.raises(NonFiniteActivationError, match="overflow"):
            extract(phantoms, bb, ["trunk.blocks.2"], out_dir=tmp_path / "h", dtype="float16", **KW)
    finally:
        for h in hs: h.remove()


def test_float16_storage(phantoms, bb, ref, tmp_path):
    s = extract(phantoms, bb, out_dir=tmp_path / "h", dtype="float16", **KW)
    for l in s.layers:
        a = s.load(l, "cls")
        assert a.dtype == np.float16
        np.testing.assert_allclose(a.astype(np.float32), ref.load(l, "cls"), rtol=1e-3, atol=1e-3)


@pytest.fixture()
def broken(phantoms, tmp_path):
    import shutil
    d = tmp_path / "broken"
    shutil.copytree(phantoms.root, d)
    ds = CXRDataset.from_folder(d, d / "metadata.csv", verify="none")
    Path(ds.paths[5]).write_bytes(b"\x89PNG truncated")
    return ds


def test_bad_image_raises_naming_file(broken, bb, tmp_path):
    with pytest.raises(ImageReadError, match=r"phantom_00005\.png.*on_error='skip'") as e:
        extract(broken, bb, out_dir=tmp_path / "b", **KW)
    assert e.value.path.endswith("phantom_00005.png")
    assert ActivationStore.open(tmp_path / "b").rows_completed == 4


def test_bad_image_skipped_is_recorded(broken, bb, ref, tmp_path):
    s = extract(broken, bb, out_dir=tmp_path / "b", on_error="skip", **KW)
    assert s.complete and len(s) == N_PHANTOMS
    assert s.index["valid"].tolist() == [i != 5 for i in range(N_PHANTOMS)]
    assert pd.read_csv(s.path / "index.csv")["valid"].tolist() == s.index["valid"].tolist()
    sk = s.skipped
    assert sk["row"].tolist() == [5] and sk["id"].tolist() == [broken.ids[5]] and sk["path"].iloc[0] == "images/phantom_00005.png"
    assert s.manifest["skipped"][0]["reason"]
    for l in s.layers:
        a = s.load(l, "mean")
        assert np.isnan(a[5]).all()
        keep = [i for i in range(N_PHANTOMS) if i != 5]
        np.testing.assert_allclose(a[keep], ref.load(l, "mean")[keep], rtol=1e-5, atol=1e-6)
    assert "skipped" in repr(s)


# ---------------------------------------------------------------- shards and merge
@pytest.mark.parametrize("n_shards,batch_size", [(3, 4), (2, 5), (5, 3)])
def test_shard_merge_equals_single_run(phantoms, bb, tmp_path, n_shards, batch_size):
    kw = dict(pooling=("cls", "mean"), batch_size=batch_size, progress=False, verbose=False)
    single = extract(phantoms, bb, out_dir=tmp_path / "single", **kw)
    parts = [extract(phantoms, bb, out_dir=tmp_path / f"s{i}", shard=(i, n_shards), **kw) for i in range(n_shards)]
    assert sum(len(p) for p in parts) == N_PHANTOMS
    merged = merge_stores([p.path for p in reversed(parts)], tmp_path / "merged")
    assert_same_arrays(merged, single)
    assert (merged.path / "index.csv").read_bytes() == (single.path / "index.csv").read_bytes()
    assert comparable_manifest(merged.manifest) == comparable_manifest(single.manifest)
    pd.testing.assert_frame_equal(merged.index, single.index)
    assert merged.kinds == single.kinds == phantoms.kinds and merged.manifest["dataset"]["kinds"] == phantoms.kinds


def test_merge_refuses_bad_sets(phantoms, bb, tmp_path):
    kw = dict(batch_size=4, progress=False, verbose=False)
    a, b, c = (extract(phantoms, bb, out_dir=tmp_path / f"s{i}", shard=(i, 3), **kw) for i in range(3))
    with pytest.raises(ValueError, match=r"missing: shard=\(2, 3\) \(--shard 3/3\)"): merge_stores([a, b], tmp_path / "m")
    with pytest.raises(ValueError, match=r"given twice: shard=\(1, 3\) \(--shard 2/3\)"): merge_stores([a, b, b, c], tmp_path / "m")
    c16 = extract(phantoms, bb, out_dir=tmp_path / "c16", shard=(2, 3), dtype="float16", **kw)
    with pytest.raises(StoreMismatchError, match="dtype"): merge_stores([a, b, c16], tmp_path / "m")
    other = extract(phantoms, tiny_backbone(1), out_dir=tmp_path / "o", shard=(2, 3), **kw)
    with pytest.raises(StoreMismatchError, match="backbone weights"): merge_stores([a, b, other], tmp_path / "m")
    two = extract(phantoms, bb, out_dir=tmp_path / "two", shard=(1, 2), **kw)
    with pytest.raises(StoreMismatchError, match="different shardings"): merge_stores([a, b, two], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    merge_stores([a, b, c], tmp_path / "m")
    with pytest.raises(FileExistsError): merge_stores([a, b, c], tmp_path / "m")


# ---------------------------------------------------------------- precision and devices
def test_bf16_close_to_fp32(phantoms, bb, ref, tmp_path):
    s = extract(phantoms, bb, out_dir=tmp_path / "bf", precision="bfloat16", **KW)
    assert s.manifest["precision"] == "bfloat16" and s.dtype == np.float32
    for l in s.layers:
        for p in s.poolings:
            a, b = s.load(l, p).astype(np.float64), ref.load(l, p).astype(np.float64)
            rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
            assert rel.max() < 0.05, (l, p, rel.max())
            if l != "pre_trunk" or p == "mean":      # pre_trunk's CLS (token + position) never meets a matmul
                assert not np.array_equal(a, b), (l, p)   # it really ran in bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(phantoms, ref, tmp_path):
    gpu = tiny_backbone(0)
    s = extract(phantoms, gpu, out_dir=tmp_path / "gpu", device="cuda", **KW)
    for l in s.layers: np.testing.assert_allclose(s.load(l, "cls"), ref.load(l, "cls"), rtol=1e-3, atol=1e-4)
    s = extract(phantoms, gpu, out_dir=tmp_path / "gpu_bf16", device="cuda", precision="bfloat16", **KW)
    for l in s.layers:
        rel = np.linalg.norm(s.load(l, "cls") - ref.load(l, "cls"), axis=1) / np.linalg.norm(ref.load(l, "cls"), axis=1)
        assert rel.max() < 0.05

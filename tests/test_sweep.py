"""The RDX layer sweep: row selection with recorded exclusions, persistence, resume, refusal of mixed configs, engines,
pooling choice, and the layer overview."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medinterp.compare import overview_figure
from medinterp.concepts import Concepts
from medinterp.data import CXRDataset
from medinterp.extract import extract
from medinterp.rdx import DIRECTIONS, RDXConfig, rdx
from medinterp.sweep import Sweep, consecutive_pairs, layer_overview, rdx_sweep, resolve_poolings
from test_extract import tiny_backbone

N = 40
CFG = RDXConfig(n_clusters=3, grid_size=4)
KW = dict(pooling=("cls", "mean"), batch_size=8, progress=False, verbose=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from medinterp.phantoms import make_phantoms
    root = tmp_path_factory.mktemp("sweep")
    ds = make_phantoms(N, size=64, seed=5, out_dir=root / "phantoms", flip=0.5)
    return extract(ds, tiny_backbone(1), out_dir=root / "acts", **KW)


@pytest.fixture(scope="module")
def sweep(store, tmp_path_factory):
    return rdx_sweep(store, config=CFG, out_dir=tmp_path_factory.mktemp("s") / "rdx", progress=False)


def test_pairs_results_and_concepts(store, sweep):
    assert sweep.pairs == consecutive_pairs(store.layers) and len(sweep.pairs) == len(store.layers) - 1
    assert sweep.record["poolings"]["pre_trunk"] == "mean"
    for i, (a, b) in enumerate(sweep.pairs):
        res = sweep.result(i)
        assert res.layers == (a, b) and res.n == N and res.config == CFG
        A = np.asarray(store.load(a, sweep.record["poolings"][a]), np.float64)
        B = np.asarray(store.load(b, sweep.record["poolings"][b]), np.float64)
        ref = rdx(A, B, CFG)
        for key in DIRECTIONS:
            np.testing.assert_array_equal(res[key].labels, ref[key].labels)
            every, c = sweep.concepts(i, key, flagged=True), sweep.concepts(i, key)
            assert isinstance(c, Concepts) and len(every) == len(res[key].kept) and c == every.reported()
            assert c.explained == (b if key == "10" else a)
            enr = sweep.enrichment(i, key)
            assert set(enr["concept"]) <= set(every.keys)
    s = sweep.summary()
    assert len(s) == 2 * len(sweep.pairs) and set(s["direction"]) == set(DIRECTIONS)
    assert sweep.result(f"{sweep.pairs[0][0]}→{sweep.pairs[0][1]}").layers == sweep.pairs[0]
    with pytest.raises(KeyError, match="no pair"): sweep.result(("x", "y"))
    reopened = Sweep.open(sweep.path)
    assert reopened.pairs == sweep.pairs and "pairs done" in repr(reopened)


def test_rerun_skips_finished_pairs_and_resumes(store, sweep):
    stamps = {p["dir"]: (sweep.path / p["dir"] / "result.json").stat().st_mtime_ns for p in sweep.record["pairs"]}
    last = sweep.record["pairs"][-1]["dir"]
    shutil.rmtree(sweep.path / last)
    (sweep.path / f".{last}.partial").mkdir()                      # debris of a killed run
    again = rdx_sweep(store, config=CFG, out_dir=sweep.path, progress=False)
    for d, t in stamps.items():
        now = (again.path / d / "result.json").stat().st_mtime_ns
        assert (now == t) == (d != last)
    assert again.done(-1) and not (sweep.path / f".{last}.partial").exists()


def test_refuses_mixing_configs(store, sweep, tmp_path):
    with pytest.raises(ValueError, match="different store, pooling, config"):
        rdx_sweep(store, config=CFG.replace(beta=3.0), out_dir=sweep.path, progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(sweep.path, copy)
    replaced = rdx_sweep(store, config=CFG.replace(beta=3.0), out_dir=copy, overwrite=True, progress=False)
    assert replaced.result(0).config.beta == 3.0


def test_unreadable_images_are_excluded_and_recorded(tmp_path):
    from medinterp.phantoms import make_phantoms
    ds = make_phantoms(N, size=64, seed=6, out_dir=tmp_path / "ph")
    Path(ds.paths[7]).write_bytes(b"\x89PNG truncated")
    ds = CXRDataset.from_folder(tmp_path / "ph", tmp_path / "ph" / "metadata.csv", verify="none")
    st = extract(ds, tiny_backbone(1), out_dir=tmp_path / "acts", on_error="skip", **KW)
    sw = rdx_sweep(st, config=CFG, out_dir=tmp_path / "rdx", progress=False)
    ex = sw.excluded
    assert ex["row"].tolist() == [7] and ex["id"].tolist() == [ds.ids[7]] and "unreadable" in ex["reason"].iloc[0]
    assert len(sw.rows) == N - 1 and 7 not in sw.rows
    c = sw.concepts(0, "10")
    assert ds.ids[7] not in c.ids and len(c.ids) == N - 1


def test_pooling_choice(store):
    auto = resolve_poolings(store, store.layers)
    assert auto["pre_trunk"] == "mean" and all(auto[l] == "cls" for l in store.layers[1:])
    assert resolve_poolings(store, store.layers, "mean") == {l: "mean" for l in store.layers}
    with pytest.raises(ValueError, match="no pooling given"): resolve_poolings(store, store.layers, {"pre_trunk": "mean"})
    with pytest.raises(ValueError, match="is constant"):               # the CLS before the first block is constant
        rdx_sweep(store, config=CFG, pooling="cls", out_dir=store.path.parent / "cls-sweep", progress=False)


def test_bad_arguments(store, tmp_path):
    with pytest.raises(ValueError, match="not in the store"): rdx_sweep(store, layers=["nope", "trunk.blocks.0"], out_dir=tmp_path)
    with pytest.raises(ValueError, match="at least two"): rdx_sweep(store, layers=["trunk.blocks.0"], out_dir=tmp_path)
    with pytest.raises(ValueError, match="engine must be"): rdx_sweep(store, config=CFG, engine="magic", out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="needs at least"):
        rdx_sweep(store, config=RDXConfig(n_clusters=30), out_dir=tmp_path / "k", progress=False)


def test_landmark_engine(store, tmp_path):
    sw = rdx_sweep(store, layers=store.layers[1:3], config=CFG, out_dir=tmp_path / "lm", engine="landmarks",
                   landmarks=N, progress=False)
    res = sw.result(0)
    assert res.meta["engine"] == "landmarks" and res.meta["approximation"] == "landmarks"
    a, b = store.layers[1:3]
    dense = rdx(np.asarray(store.load(a), np.float64), np.asarray(store.load(b), np.float64), CFG)
    # every image a landmark: the landmark engine reproduces the dense labels (float32 distances aside)
    for key in DIRECTIONS: assert (res[key].labels == dense[key].labels).mean() > 0.9


def test_layer_overview(store, sweep):
    t = layer_overview(store, sweep=sweep, progress=False)
    assert list(t.columns) == ["pair", "layer_a", "layer_b", "n", "cka", "knn_overlap", "mean_abs_delta"]
    assert list(t["pair"]) == [f"{a}→{b}" for a, b in sweep.pairs]
    assert t["cka"].between(-1, 1).all() and t["knn_overlap"].between(0, 1).all()
    np.testing.assert_allclose(t["mean_abs_delta"], [sweep.result(i).mean_abs_delta for i in range(len(sweep.pairs))])
    direct = layer_overview(store, config=CFG, progress=False)
    np.testing.assert_allclose(direct["mean_abs_delta"], t["mean_abs_delta"], rtol=0, atol=1e-12)
    fig = overview_figure(t)
    assert len(fig.data) == 3
    with pytest.raises(ValueError, match="run rdx_sweep first"):
        layer_overview(store, config=CFG, max_dense=10, progress=False)


def test_summaries_and_depth_profile_are_saved_and_built_from_the_stored_enrichment(sweep):
    from medinterp.sweep import concept_factors, findings, sweep_depth_profile, transition_summaries
    saved = json.loads((sweep.path / "summaries.json").read_text())["summaries"]
    assert saved == transition_summaries(sweep) == sweep.summaries()
    assert [(s["pair"], s["direction"]) for s in saved] == [(f"{a}→{b}", d) for a, b in sweep.pairs for d in DIRECTIONS]
    for s in saved:
        assert 1 <= len(s["sentences"]) <= 2 and s["text"].startswith((s["pair"], "It "))
    prof = sweep.depth_profile()
    assert list(prof.columns) == [f"{a}→{b}" for a, b in sweep.pairs]
    pd.testing.assert_frame_equal(prof, sweep_depth_profile(sweep), check_dtype=False, check_index_type=False)
    # every non-empty cell is the purity of a reported concept's significant factor in that transition
    for (kind, words), row in prof.iterrows():
        for j, v in enumerate(row):
            if np.isnan(v): continue
            f = concept_factors(sweep.concepts(j, "10"), sweep.enrichment(j, "10"))
            hit = f[(f["kind"] == kind) & (f["words"] == words)]
            assert len(hit) and hit["share_in"].max() == pytest.approx(v)
    f = findings(sweep)
    assert list(f["label"]) == sweep.record["label_names"]
    for r in f[f["organised"]].itertuples():
        i = [f"{a}→{b}" for a, b in sweep.pairs].index(r.pair)
        c = sweep.concepts(i, "10")[r.concept]
        assert not c.flags and r.stability == c.stability and r.purity >= 0.8


def test_a_summary_sentence_follows_the_stored_enrichment(store, tmp_path):
    from medinterp.sweep import transition_summaries
    sw = rdx_sweep(store, config=CFG, out_dir=tmp_path / "rdx", progress=False)
    i, key = next((i, k) for i in range(len(sw.pairs)) for k in DIRECTIONS if len(sw.concepts(i, k)))
    c = sw.concepts(i, key)
    path = sw.path / sw.record["pairs"][i]["dir"] / f"enrichment_{key}.csv"
    enr = pd.read_csv(path)
    planted = {"concept": c[0].key, "column": "planted_factor", "kind": "hardware", "levels": "binary", "value": "1",
               "label": "planted_factor=1", "words": "a planted device", "n_in": c[0].size, "count_in": c[0].size,
               "share_in": 0.97, "n_all": N, "count_all": 5, "share_all": 0.125, "lift": 7.76, "effect": 9.0,
               "p": 1e-9, "q": 1e-9, "significant": True}
    pd.concat([pd.DataFrame([planted]), enr]).to_csv(path, index=False)
    text = next(s["text"] for s in transition_summaries(sw) if s["pair"] == f"{sw.pairs[i][0]}→{sw.pairs[i][1]}"
                and s["direction"] == key)
    assert f"hardware (a planted device, {c[0].key} 97 % vs 12 %" in text

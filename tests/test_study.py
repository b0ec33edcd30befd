"""The Study folder: creation rules, the three stages writing into it, resumption, recorded skips and atomicity."""
import shutil
import warnings

import numpy as np
import pytest

import medinterp.study as study_mod
from medinterp.phantoms import make_phantoms
from medinterp.rdx import RDXConfig
from medinterp.sae import SAEConfig
from medinterp.study import Study, StudyConfig, write_images
from medinterp.viz import thumbnail
from test_extract import tiny_backbone

N = 40
RDX = RDXConfig(n_clusters=3, grid_size=4)
SAE_CFG = SAEConfig(architecture="topk", expansion=2, k=4, epochs=2, batch_size=16, seed=0)
KW = dict(pooling=("cls", "mean"), batch_size=8, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    "A study whose row 7 is an unreadable file, extracted with on_error='skip', swept and with one SAE."
    root = tmp_path_factory.mktemp("study")
    ds = make_phantoms(N, size=64, seed=3, out_dir=root / "phantoms", flip=0.5, opacity=0.5)
    broken = ds.paths[7]
    with open(broken, "wb") as f: f.write(b"not a png")
    s = Study.create(root / "s", StudyConfig(name="t", backbone="tiny", dataset="phantoms", thumb_size=24))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s.extract(ds, tiny_backbone(2), on_error="skip", **KW)
    s.run_rdx(RDX, progress=False)
    run = s.train_sae(config=SAE_CFG, progress=False)
    return s, ds, run, [str(x.message) for x in w]


def test_unreadable_image_is_recorded_not_dropped(built):
    s, ds, _, msgs = built
    assert len(s.store) == N and s.thumbnails.shape == (N, 24, 24)
    img = s.images
    assert len(img) == N and img["id"].tolist() == ds.ids
    assert img.loc[7, "error"] != "" and np.isnan(img.loc[7, "image_mean"])
    assert (img.drop(index=7)["error"] == "").all() and img.drop(index=7)["image_mean"].notna().all()
    assert not np.asarray(s.thumbnails[7]).any()
    assert any(ds.ids[7] in m for m in msgs), msgs


def test_thumbnails_are_row_aligned(built):
    s, ds, _, _ = built
    for r in (0, 13, N - 1):
        np.testing.assert_array_equal(np.asarray(s.thumbnails[r]), thumbnail(ds.image(r), 24))


def test_sweep_and_sae_leave_out_the_bad_row_with_a_reason(built):
    s, ds, run, _ = built
    sw = s.sweep
    assert 7 not in sw.rows.tolist() and len(sw.rows) == N - 1
    assert 7 in sw.excluded["row"].tolist()
    assert 7 not in run.record["rows"] and any(e["row"] == 7 for e in run.record["excluded"])
    assert s.representation(s.store.layers[-1]).shape[0] == N - 1
    assert list(s.overview()["pair"]) == [f"{a}→{b}" for a, b in sw.pairs]


def test_reopened_study_reads_every_part(built):
    s, _, run, _ = built
    t = Study.open(s.path)
    assert t.config == s.config and t.saes == [run.name]
    assert t.sae_run().record == run.record
    assert t.sae_run().concepts().fingerprint() == run.concepts().fingerprint()
    st = t.status().set_index("part")["present"].to_dict()
    assert st == {"activations": True, "thumbnails": True, "rdx": True, "overview": True, "sae": True, "report": False}


def test_image_falls_back_to_the_thumbnail(built, tmp_path):
    s, ds, _, _ = built
    assert s.image(3).shape == ds.image(3).shape
    p = ds.paths[4]
    moved = tmp_path / "moved.png"
    shutil.move(p, moved)
    try:
        np.testing.assert_array_equal(s.image(4), np.asarray(s.thumbnails[4]))
    finally:
        shutil.move(moved, p)
    with pytest.raises(IndexError): s.image(N)


def test_stages_need_their_inputs(tmp_path):
    s = Study.create(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="study.extract"): s.run_rdx(RDX)
    with pytest.raises(FileNotFoundError, match="study.extract"): s.train_sae()
    with pytest.raises(FileNotFoundError, match="run_rdx"): s.overview()
    with pytest.raises(FileNotFoundError, match="train_sae"): s.sae_run()
    assert s.sweep is None and s.saes == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a study"): Study.create(tmp_path / "file")
    with pytest.raises(FileNotFoundError): Study.open(tmp_path / "nowhere")


def test_failed_sae_run_leaves_nothing_behind(built, monkeypatch):
    s, _, run, _ = built
    def boom(*a, **k): raise RuntimeError("interrupted")
    monkeypatch.setattr(study_mod, "_evaluate_sae", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        s.train_sae(config=SAE_CFG.replace(seed=1), name="second", progress=False)
    assert s.saes == [run.name]
    assert not (s.sae_dir / "second").exists() and not list(s.sae_dir.glob(".*partial"))


def test_write_images_needs_the_studys_images(built, tmp_path):
    s, ds, _, _ = built
    other = make_phantoms(5, size=64, seed=9, out_dir=tmp_path / "other")
    with pytest.raises(ValueError, match=r"lacks \d+ of the study's"):
        write_images(s, other, overwrite=True, progress=False)
    assert s.thumbnails.shape == (N, 24, 24)          # the failed rewrite left the old files intact


def test_bridge_matches_every_reported_concept_to_the_sae_on_its_layer(built):
    from medinterp.evaluate import concept_latents
    from medinterp.sae import encode_all
    s, _, run, _ = built
    sw = s.sweep
    i = len(sw.pairs) - 1                                     # the SAE is on the last layer, explained by direction 10
    table = s.bridge(i, "10")
    assert set(table["concept"]) == set(sw.concepts(i, "10").keys)
    X = np.asarray(s.store.load(run.layer, run.pooling)[sw.rows], np.float32)
    ref = concept_latents(sw.concepts(i, "10"), encode_all(run.sae(), X))
    assert table.equals(ref)
    back = s.bridge(i, "10", reverse=True)
    assert set(back["latent"].dropna()) <= set(range(run.sae().m))
    with pytest.raises(ValueError, match="no SAE of this study was trained on"): s.bridge(0, "10")
    with pytest.raises(ValueError, match="no SAE of this study was trained on"): s.bridge(i, "01")

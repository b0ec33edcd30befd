"""Synthetic chest phantoms: determinism, factor statistics, confounds, what each factor does to the pixels, and the
dataset folder (PNG + metadata.csv + config.json) read back through `CXRDataset`."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medinterp import phantoms as ph
from medinterp.core import load_config
from medinterp.data import KINDS, KINDS_FILE
from medinterp.phantoms import (FACTOR_COLUMNS, FACTOR_KINDS, FACTOR_WORDS, LABELS, PhantomConfig, PhantomSet,
                                contact_sheet, describe, make_phantoms, neutral_factors, render_phantom, sample_factors)

S = 128          # image size for pixel tests: small and fast, large enough for the anatomy


def render(seed=11, **changes):
    return render_phantom(neutral_factors(**changes), S, seed).astype(np.float64)


# ---------------------------------------------------------------- determinism

def test_same_seed_same_set_and_prefix_property():
    ten, five = make_phantoms(10, size=96, seed=3), make_phantoms(5, size=96, seed=3)
    assert ten[:5] == five
    assert make_phantoms(5, size=96, seed=3) == five
    pd.testing.assert_frame_equal(sample_factors(50, seed=9).iloc[:20], sample_factors(20, seed=9))


def test_different_seeds_differ():
    a, b = make_phantoms(4, size=96, seed=0), make_phantoms(4, size=96, seed=1)
    assert a != b
    assert all(not np.array_equal(x, y) for x, y in zip(a.images, b.images))
    assert not np.array_equal(render_phantom(neutral_factors(), S, 1), render_phantom(neutral_factors(), S, 2))


def test_render_seed_in_meta_reproduces_each_image():
    ps = make_phantoms(3, size=96, seed=5)
    for i in range(3):
        np.testing.assert_array_equal(render_phantom(ps.meta.iloc[i], 96), ps.images[i])
        np.testing.assert_array_equal(render_phantom(ps.meta.iloc[i], 96, int(ps.meta.render_seed[i])), ps.images[i])


def test_workers_do_not_change_the_result():
    assert make_phantoms(6, size=64, seed=2, workers=2) == make_phantoms(6, size=64, seed=2, workers=1)


def test_no_global_random_state_is_touched():
    before = np.random.get_state()[1].copy()
    make_phantoms(3, size=64, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# ---------------------------------------------------------------- factor statistics

def test_marginals_match_the_requested_probabilities():
    probs = dict(opacity=0.35, effusion=0.15, cardiomegaly=0.3, tube=0.5, ecg_leads=0.1, pacemaker=0.05,
                 breast_shadows=0.4, flip=0.2, collimation=0.6, marker=0.9)
    cfg = PhantomConfig(**probs, rotation=(-3.0, 7.0), brightness=(0.0, 0.05))
    f = sample_factors(4000, cfg, seed=1)
    assert list(f.columns) == list(FACTOR_COLUMNS)
    for k, p in probs.items():
        assert abs(f[k].mean() - p) < 4 * np.sqrt(p * (1 - p) / len(f)) + 1e-3, k
    assert f.rotation.between(-3, 7).all() and abs(f.rotation.mean() - 2.0) < 0.2
    assert f.brightness.between(0, 0.05).all()
    assert ((f.cardiothoracic_ratio > 0.5) == (f.cardiomegaly == 1)).all()
    on = f[f.opacity == 1]
    for col, choices in (("opacity_zone", ph.ZONES), ("opacity_side", ph.SIDES)):
        freq = on[col].value_counts(normalize=True)
        assert set(freq.index) == set(choices) and (abs(freq - 1 / len(choices)) < 0.06).all(), col
    assert (f.loc[f.opacity == 0, "opacity_zone"] == "none").all()
    assert (f.loc[f.effusion == 0, "effusion_side"] == "none").all()
    assert (f.loc[f.tube == 1, "tube_kind"].isin(ph.TUBE_KINDS)).all()


def test_extreme_probabilities():
    f = sample_factors(300, PhantomConfig(opacity=0.0, pacemaker=1.0), seed=0)
    assert f.opacity.sum() == 0 and f.pacemaker.all()


def test_correlate_plants_a_confound_and_default_is_independent():
    base = dict(opacity=0.3, pacemaker=0.3)
    ind = sample_factors(4000, PhantomConfig(**base), seed=2)
    assert abs(ind.opacity.corr(ind.pacemaker)) < 0.05
    corrs = []
    for strength in (0.3, 0.6, 0.9):
        f = sample_factors(4000, PhantomConfig(**base, correlate={"pacemaker": ("opacity", strength)}), seed=2)
        corrs.append(f.opacity.corr(f.pacemaker))
        assert abs(corrs[-1] - strength) < 0.06, (strength, corrs[-1])
        assert abs(f.pacemaker.mean() - 0.3) < 0.03          # equal marginals are kept
    assert corrs == sorted(corrs)
    neg = sample_factors(4000, PhantomConfig(**base, correlate={"pacemaker": ("opacity", -0.8)}), seed=2)
    assert neg.opacity.corr(neg.pacemaker) < -0.25


def test_correlate_chains_and_cardiomegaly_target():
    cfg = PhantomConfig(correlate={"tube": ("pacemaker", 1.0), "pacemaker": ("opacity", 1.0),
                                   "cardiomegaly": ("effusion", 1.0)})
    f = sample_factors(500, cfg, seed=0)
    assert (f.tube == f.opacity).all() and (f.pacemaker == f.opacity).all()
    assert (f.cardiomegaly == f.effusion).all() and ((f.cardiothoracic_ratio > 0.5) == (f.effusion == 1)).all()


def test_make_phantoms_accepts_correlate():
    ps = make_phantoms(40, size=64, seed=0, opacity=0.5, pacemaker=0.5, correlate={"pacemaker": ("opacity", 1.0)})
    assert (ps.meta.pacemaker == ps.meta.opacity).all()
    assert ps.config.correlate == (("pacemaker", "opacity", 1.0),)


# ---------------------------------------------------------------- what each factor does to the pixels

ZONE_ROWS = {"upper": slice(20, 50), "middle": slice(45, 75), "lower": slice(65, 95)}


@pytest.mark.parametrize("zone", ["upper", "middle", "lower"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_opacity_brightens_its_zone_and_side_only(zone, side):
    seed = 11
    base = render(seed)
    on = render(seed, opacity=1, opacity_zone=zone, opacity_side=side, opacity_extent=0.12)
    diff = on - base
    same, other = (slice(0, S // 2 - 6), slice(S // 2 + 6, S)) if side == "right" else \
        (slice(S // 2 + 6, S), slice(0, S // 2 - 6))            # patient's right = image left
    assert diff[ZONE_ROWS[zone], same].mean() > 3.0
    assert np.abs(diff[:, other]).max() == 0
    assert diff.min() >= 0
    rows = np.nonzero(diff.max(axis=1) > 8)[0]
    centre = np.average(np.arange(S), weights=diff.sum(axis=1))
    assert ZONE_ROWS[zone].start - 5 <= centre <= ZONE_ROWS[zone].stop + 5, (zone, centre, rows)


def test_opacity_zones_are_ordered_top_to_bottom():
    centres = []
    for zone in ("upper", "middle", "lower"):
        d = render(3, opacity=1, opacity_zone=zone, opacity_side="left", opacity_extent=0.12) - render(3)
        centres.append(np.average(np.arange(S), weights=d.sum(axis=1)))
    assert centres[0] < centres[1] < centres[2]


@pytest.mark.parametrize("side", ["right", "left"])
def test_effusion_brightens_the_stated_lung_base(side):
    base = render(4)
    diff = render(4, effusion=1, effusion_side=side, effusion_height=0.3) - base
    half, other = (slice(0, S // 2), slice(S // 2, S)) if side == "right" else (slice(S // 2, S), slice(0, S // 2))
    assert diff[int(0.55 * S):int(0.8 * S), half].mean() > 5
    assert diff[: int(0.35 * S), half].max() == 0                # the base, not the apex
    assert np.abs(diff[:, other]).max() == 0


def test_small_effusion_blunts_the_costophrenic_angle():
    base = render(4)
    diff = render(4, effusion=1, effusion_side="right", effusion_height=0.12) - base
    ys, xs = np.nonzero(diff > 10)
    assert len(ys) > 10 and xs.mean() < 0.3 * S and ys.mean() > 0.55 * S   # lateral and low


def test_flip_mirrors_the_picture():
    np.testing.assert_array_equal(render(5, flip=1), render(5)[:, ::-1])
    a = render(5, opacity=1, opacity_zone="middle", opacity_side="right", opacity_extent=0.12, flip=1) - render(5, flip=1)
    assert a[:, S // 2:].sum() > 0 and a[:, : S // 2].sum() == 0     # the right lung is now on the image's right


@pytest.mark.parametrize("style,sign", [("dark", -1), ("bright", 1)])
def test_collimation_changes_the_border(style, sign):
    base = render(6)
    col = render(6, collimation=1, collimation_style=style, collimation_width=0.1)
    border = np.zeros((S, S), bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    assert sign * (col[border].mean() - base[border].mean()) > 40
    np.testing.assert_array_equal(col[30:98, 30:98], base[30:98, 30:98])
    target = 0 if style == "dark" else 255
    assert abs(np.median(col[border]) - target) < 25


def heart_width(img, rows):
    "Mean number of bright pixels per row in the central part of the image (the cardiac silhouette)."
    band = img[rows, S // 5: 4 * S // 5]
    return (band > 0.5 * (img[40:60, 15:35].mean() + img[rows, S // 2].mean())).sum(axis=1).mean()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_larger_cardiothoracic_ratio_widens_the_heart(seed):
    rows = slice(int(0.55 * S), int(0.65 * S))
    widths = [heart_width(render(seed, cardiothoracic_ratio=r), rows) for r in (0.38, 0.48, 0.62)]
    assert widths[0] < widths[1] < widths[2], widths
    assert widths[2] - widths[0] > 0.08 * S


def test_brightness_contrast_gamma_noise_act():
    mid = render(7)
    assert render(7, brightness=0.1).mean() - render(7, brightness=-0.1).mean() > 30
    assert render(7, gamma=0.8).mean() > mid.mean() + 3
    assert render(7, contrast=1.2).std() > mid.std()
    hp = lambda im: np.abs(np.diff(im, axis=1)).mean()
    assert hp(render(7, noise=0.03)) > hp(render(7, noise=0.005)) + 2


def lung_tilt(img):
    "How much lower (in rows) the dark lung pixels sit in the image's right half than in its left half."
    dark = img < 0.6 * np.median(img)
    rows = np.arange(S)[:, None]
    right, left = dark[:, 70:100], dark[:, 28:58]
    return (rows * right).sum() / right.sum() - (rows * left).sum() / left.sum()


@pytest.mark.parametrize("seed", [1, 8])
def test_rotation_turns_the_picture_counter_clockwise(seed):
    tilt = {r: lung_tilt(render(seed, rotation=r)) for r in (-6.0, 0.0, 6.0)}
    assert tilt[6.0] + 3 < tilt[0.0] < tilt[-6.0] - 2        # counter-clockwise as displayed: the right side rises


@pytest.mark.parametrize("changes", [dict(tube=1, tube_kind="ett"), dict(tube=1, tube_kind="ng"),
                                     dict(tube=1, tube_kind="central_line"), dict(ecg_leads=1), dict(pacemaker=1)])
def test_hardware_adds_bright_pixels(changes):
    base = render(9)
    diff = render(9, **changes) - base
    assert diff.min() >= 0
    assert (diff > 25).sum() > 15, changes


def test_pacemaker_is_very_bright():
    base = render(9)
    pm = render(9, pacemaker=1)
    assert ((pm - base > 30) & (pm > 240)).sum() > 20


def test_marker_is_burned_into_the_stated_corner():
    base = render(10)
    for corner in ph.CORNERS:
        diff = np.abs(render(10, marker=1, marker_text="L", marker_corner=corner) - base)
        ys, xs = np.nonzero(diff > 0)
        assert len(ys) > 10
        assert (ys.mean() < S / 2) == corner.startswith("top") and (xs.mean() < S / 2) == corner.endswith("left")


def test_breast_shadows_brighten_the_lower_chest():
    diff = render(12, breast_shadows=1) - render(12)
    assert diff[int(0.6 * S):, :].mean() > diff[: int(0.4 * S), :].mean() + 2


# ---------------------------------------------------------------- outputs

@pytest.mark.parametrize("size", [64, 224, 300])
def test_output_dtype_shape_range(size):
    ps = make_phantoms(3, size=size, seed=0)
    assert ps.images.dtype == np.uint8 and ps.images.shape == (3, size, size)
    assert ps.images.min() < 40 and ps.images.max() > 200
    assert len(ps.meta) == 3 and ps.meta.id.is_unique and ps.meta.patient_id.is_unique


def test_phantom_set_interface():
    ps = make_phantoms(4, size=64, seed=0)
    img, row = ps[1]
    assert img.shape == (64, 64) and row["id"] == "phantom_00001"
    assert len(ps) == 4 and len(ps[[0, 2]]) == 2 and len(ps[ps.meta.opacity.to_numpy() >= 0]) == 4
    assert list(ps.labels.columns) == list(LABELS) and ps.ids[0] == "phantom_00000"
    assert "PhantomSet(4 images 64x64" in repr(ps)


def test_out_dir_writes_a_dataset_folder(tmp_path):
    from medinterp.data import CXRDataset
    out = tmp_path / "ph"
    ds = make_phantoms(6, size=96, seed=4, out_dir=out, opacity=0.5)
    mem = make_phantoms(6, size=96, seed=4, opacity=0.5)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "images", "kinds.json", "metadata.csv"]
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"phantom_0000{i}.png" for i in range(6)]
    csv = pd.read_csv(out / "metadata.csv")
    assert list(csv.columns[:6]) == ["id", "path", "patient_id", "label:opacity", "label:effusion", "label:cardiomegaly"]
    assert csv.path[0] == "images/phantom_00000.png" and csv.patient_id.is_unique
    for k in LABELS:
        assert (csv[f"label:{k}"].to_numpy() == mem.meta[k].to_numpy()).all() and k not in csv.columns
    for k in FACTOR_COLUMNS:
        if k not in LABELS: assert k in csv.columns, k
    for i, name in enumerate(csv.id):
        np.testing.assert_array_equal(np.asarray(Image.open(out / "images" / f"{name}.png")), mem.images[i])
    cfg = load_config(out, PhantomConfig)
    assert cfg == mem.config and cfg.opacity == 0.5
    assert json.loads((out / "config.json").read_text())["provenance"]["seed"] == 4
    # the round trip through the data module
    assert isinstance(ds, CXRDataset) and len(ds) == 6
    assert ds.label_names == list(LABELS)
    np.testing.assert_array_equal(ds.labels[list(LABELS)].to_numpy(), mem.meta[list(LABELS)].to_numpy())
    assert ds.ids == mem.ids
    assert list(ds.meta["opacity_zone"]) == list(mem.meta.opacity_zone)
    np.testing.assert_allclose(ds.meta["rotation"].to_numpy(), mem.meta.rotation.to_numpy())
    np.testing.assert_array_equal(np.round(ds.image(2) * 255).astype(np.uint8), mem.images[2])
    reread = CXRDataset.from_folder(out, out / "metadata.csv")
    assert reread.ids == ds.ids


def test_out_dir_is_atomic_and_refuses_to_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "ph"
    make_phantoms(2, size=64, out_dir=out)
    with pytest.raises(FileExistsError):
        make_phantoms(2, size=64, out_dir=out)
    make_phantoms(3, size=64, out_dir=out, overwrite=True)
    assert len(list((out / "images").iterdir())) == 3

    def crash(*a, **k): raise RuntimeError("disk full")
    monkeypatch.setattr(ph, "_finish_folder", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        make_phantoms(2, size=64, out_dir=tmp_path / "broken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ph"]       # nothing half-written left behind


def test_save_writes_the_same_folder(tmp_path):
    ps = make_phantoms(3, size=64, seed=1)
    ps.save(tmp_path / "a")
    make_phantoms(3, size=64, seed=1, out_dir=tmp_path / "b")
    assert (tmp_path / "a" / "metadata.csv").read_text() == (tmp_path / "b" / "metadata.csv").read_text()
    assert (tmp_path / "a" / KINDS_FILE).read_text() == (tmp_path / "b" / KINDS_FILE).read_text()
    for name in ps.ids:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "images" / f"{name}.png")),
                              np.asarray(Image.open(tmp_path / "b" / "images" / f"{name}.png")))


# ---------------------------------------------------------------- kinds

def test_every_factor_column_has_a_kind_and_words():
    assert set(FACTOR_KINDS) == (set(FACTOR_COLUMNS) - {"render_seed"}) | {"source"}
    assert set(FACTOR_KINDS.values()) <= set(KINDS) and set(FACTOR_WORDS) == set(FACTOR_KINDS)
    assert all(isinstance(w, str) and w and "_" not in w for w in FACTOR_WORDS.values())
    expected = {"brightness": "acquisition", "gamma": "acquisition", "flip": "acquisition",
                "collimation_width": "acquisition", "marker_text": "acquisition", "tube_kind": "hardware",
                "ecg_leads": "hardware", "pacemaker": "hardware", "cardiothoracic_ratio": "anatomy",
                "breast_shadows": "anatomy", "opacity_zone": "finding", "effusion_height": "finding",
                "cardiomegaly": "finding", "source": "source"}
    assert {c: FACTOR_KINDS[c] for c in expected} == expected
    assert (FACTOR_WORDS["cardiothoracic_ratio"], FACTOR_WORDS["ecg_leads"]) == ("heart size", "ECG leads")


def test_phantom_folder_declares_kinds(tmp_path):
    ds = make_phantoms(20, size=64, out_dir=tmp_path / "ph")
    assert ds.kinds["pacemaker"] == "hardware"
    assert json.loads((tmp_path / "ph" / KINDS_FILE).read_text()) == FACTOR_KINDS
    assert {c: ds.kinds[c] for c in FACTOR_KINDS} == FACTOR_KINDS        # every factor column, labels included
    assert set(ds.kinds) == {*ds.label_names, *ds.meta.columns} and set(ds.kinds.values()) <= set(KINDS)
    assert ds.kinds["render_seed"] == "other"
    from medinterp.data import CXRDataset
    mine = CXRDataset.from_folder(tmp_path / "ph", tmp_path / "ph" / "metadata.csv", kinds={"render_seed": "acquisition"})
    assert mine.kinds["render_seed"] == "acquisition" and mine.kinds["pacemaker"] == "hardware"


# ---------------------------------------------------------------- validation

def test_unknown_keyword_arguments_raise_listing_valid_names():
    with pytest.raises(TypeError) as e:
        make_phantoms(2, pacemakers=0.5)
    assert "pacemakers" in str(e.value) and "pacemaker" in str(e.value) and "opacity" in str(e.value)


@pytest.mark.parametrize("bad", [dict(opacity=1.5), dict(effusion=-0.1), dict(marker=True), dict(size=32),
                                 dict(rotation=(5.0, -5.0)), dict(noise=(0.0, 2.0)), dict(ctr_enlarged=(0.45, 0.6)),
                                 dict(marker_texts=()), dict(correlate={"pacemaker": ("opacity", 1.5)}),
                                 dict(correlate={"pacemaker": ("rotation", 0.5)}),
                                 dict(correlate={"a": ("opacity", 0.5)}),
                                 dict(correlate={"tube": ("ecg_leads", 0.5), "ecg_leads": ("tube", 0.5)})])
def test_invalid_configs_raise(bad):
    with pytest.raises(ValueError):
        PhantomConfig(**bad)


def test_invalid_probabilities_raise_through_make_phantoms():
    with pytest.raises(ValueError, match="opacity is a probability"):
        make_phantoms(2, opacity=1.2)
    with pytest.raises(ValueError):
        make_phantoms(2, workers=0)


def test_config_json_round_trip():
    cfg = PhantomConfig(opacity=0.4, rotation=(-2.0, 2.0), correlate={"pacemaker": ("opacity", 0.8)})
    assert PhantomConfig.from_json(cfg.to_json()) == cfg
    assert "opacity" in PhantomConfig.factor_names() and "size" not in PhantomConfig.factor_names()


def test_render_rejects_incomplete_rows_and_bad_values():
    with pytest.raises(KeyError):
        render_phantom({"opacity": 1}, 64, 0)
    with pytest.raises(ValueError):
        render_phantom(neutral_factors(opacity=1, opacity_zone="apex", opacity_side="left", opacity_extent=0.1), 64, 0)
    with pytest.raises(ValueError):
        render_phantom(neutral_factors(), 32, 0)


# ---------------------------------------------------------------- looking at them

def test_contact_sheet_and_captions():
    ps = make_phantoms(5, size=64, seed=0)
    sheet = contact_sheet(ps, ncols=3)
    assert sheet.mode == "L" and sheet.size[0] == 3 * (64 + 2) + 2 and sheet.size[1] > 2 * (64 + 2)
    plain = contact_sheet(ps.images, ncols=5, pad=0)
    assert plain.size == (5 * 64, 64)
    np.testing.assert_array_equal(np.asarray(plain)[:, 64:128], ps.images[1])
    text = describe(neutral_factors(opacity=1, opacity_zone="upper", opacity_side="left", opacity_extent=0.1,
                                    pacemaker=1, cardiothoracic_ratio=0.6))
    assert text.startswith("GGO L upp") and "CM" in text and "PM" in text.split("\n")[1]
    with pytest.raises(ValueError):
        contact_sheet([])

"""medinterp.viz: image conversion, PNG/data URIs, colour scales, grids, snapshot pictures/HTML, projections, scatter."""
import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from medinterp.data import read_image
from medinterp.rdx import RDXConfig, rdx, snapshot
from medinterp.viz import (DELTA_COLORSCALE, HIGHLIGHT_COLOR, NAN_COLOR, align_2d, data_uri, delta_colors, grid_image,
                           legend_image, png_bytes, project, rank_colors, save_png, scatter_figure,
                           side_by_side_figure, snapshot_html, snapshot_image, thumbnail, to_uint8)


def _rgb(h):
    return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# --- to_uint8 / thumbnail ----------------------------------------------------------------------------------------

def test_to_uint8_from_read_image(tmp_path):
    img = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    Image.fromarray(img).save(tmp_path / "x.png")
    f = read_image(tmp_path / "x.png")                      # float32 in [0, 1]
    assert f.dtype == np.float32
    np.testing.assert_array_equal(to_uint8(f), img)
    Image.fromarray((img.astype(np.uint16) * 257)).save(tmp_path / "x16.png")
    np.testing.assert_array_equal(to_uint8(read_image(tmp_path / "x16.png")), img)


@pytest.mark.parametrize("kind", ["uint8", "float01", "uint16_12bit", "int_small", "bool", "rgb", "rgba", "hw1",
                                  "chw3", "float_wide"])
def test_to_uint8_kinds(kind):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (6, 9)).astype(np.uint8)
    base[0, 0], base[0, 1] = 0, 255                          # full range, so stretched inputs map back exactly
    a, want = {
        "uint8": (base, base),
        "float01": (base / 255.0, base),
        "uint16_12bit": ((base.astype(np.uint32) * 4095 // 255).astype(np.uint16), None),
        "int_small": (base.astype(np.int64), base),
        "bool": (base > 127, np.where(base > 127, 255, 0).astype(np.uint8)),
        "rgb": (np.repeat(base[..., None], 3, -1), base),
        "rgba": (np.dstack([base, base, base, np.zeros_like(base)]), base),
        "hw1": (base[..., None], base),
        "chw3": (np.repeat(base[None], 3, 0), base),
        "float_wide": (base * 10.0 - 300.0, base),
    }[kind]
    out = to_uint8(a)
    assert out.dtype == np.uint8 and out.shape == (6, 9)
    if want is None:                                         # 12-bit: min..max stretch, within rounding of the original
        assert np.abs(out.astype(int) - base).max() <= 1
    else:
        np.testing.assert_array_equal(out, want)


def test_to_uint8_errors_and_nan():
    with pytest.raises(ValueError, match="no finite"):
        to_uint8(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="shape"):
        to_uint8(np.zeros(5))
    with pytest.raises(ValueError, match="shape"):
        to_uint8(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="empty"):
        to_uint8(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="numeric"):
        to_uint8(np.array([["a"]]))
    np.testing.assert_array_equal(to_uint8(np.array([[np.nan, np.inf, 0.0, 1.0]])), [[0, 0, 0, 255]])
    np.testing.assert_array_equal(to_uint8(np.full((2, 2), 7.5)), np.zeros((2, 2), np.uint8))   # constant -> black


def test_thumbnail_aspect_and_letterbox():
    tall = np.full((100, 40), 255, np.uint8)
    t = thumbnail(tall, 50)
    assert t.shape == (50, 50) and t.dtype == np.uint8
    cols = np.flatnonzero(t.max(0) > 0)
    assert (cols.min(), cols.max()) == (15, 34)             # 20 px wide band, centred
    assert t[:, cols].min() == 255
    with pytest.raises(ValueError):
        thumbnail(tall, 0)


# --- PNG ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (1, 1)])
def test_png_roundtrip_and_determinism(shape):
    a = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    data = png_bytes(a)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(_png(data), a)
    assert png_bytes(a.copy()) == data
    uri = data_uri(a)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == data


def test_png_rejects_bad_arrays():
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        png_bytes(np.zeros((3, 3, 4), np.uint8))


def test_save_png_atomic(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    p = save_png(a, tmp_path / "sub" / "a.png")
    np.testing.assert_array_equal(np.asarray(Image.open(p)), a)
    save_png(a[..., 0], p)                                    # overwrite
    np.testing.assert_array_equal(np.asarray(Image.open(p)), a[..., 0])
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.png"]
    with pytest.raises(ValueError):
        save_png(np.zeros((2, 2, 5)), tmp_path / "sub" / "b.png")
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.png"]


# --- colours --------------------------------------------------------------------------------------------------------

def test_delta_colors_sides_and_midpoint():
    neg, zero, pos = delta_colors([-0.4, 0.0, 0.4], vmax=1.0)
    assert zero == DELTA_COLORSCALE[1][1] == "#ffffff" and DELTA_COLORSCALE[1][0] == 0.5
    rn, _, bn = _rgb(neg)
    rp, _, bp = _rgb(pos)
    assert bn > rn and rp > bp
    assert delta_colors([-1, 1], vmax=1) == [DELTA_COLORSCALE[0][1], DELTA_COLORSCALE[-1][1]]
    assert delta_colors([-3, 3], vmax=1) == delta_colors([-1, 1], vmax=1)         # clipped
    assert delta_colors([-0.25, 0.1]) [0] == DELTA_COLORSCALE[0][1]               # vmax=None: max |value|
    assert delta_colors([np.nan]) == [NAN_COLOR]
    # symmetric: equal |Δ| gives mirror colours
    a, b = delta_colors([-0.3, 0.3], vmax=1)
    assert a != b and sum(_rgb(a)) < 3 * 255 and sum(_rgb(b)) < 3 * 255


def test_rank_colors_near_dark_far_light():
    c = rank_colors(np.arange(0, 1000, 50), n=1000)
    light = [sum(_rgb(x)) for x in c]
    assert light == sorted(light) and light[0] < light[-1]
    assert len(rank_colors([1, 2], n=1)) == 2
    with pytest.raises(ValueError):
        rank_colors([1], n=0)


def test_legend_image():
    leg = legend_image(n=100, vmax=0.5, width=300)
    assert leg.dtype == np.uint8 and leg.ndim == 3 and leg.shape[1:] == (300, 3)


# --- grid -------------------------------------------------------------------------------------------------------------

def test_grid_image_layout():
    rng = np.random.default_rng(3)
    ims = [rng.integers(0, 256, (10, 12), dtype=np.uint8) for _ in range(7)]
    pad = 3
    g = grid_image(ims, ncols=3, highlight=[0, 4], pad=pad)
    assert g.dtype == np.uint8 and g.shape == (3 * (10 + pad) + pad, 3 * (12 + pad) + pad, 3)
    for k, im in enumerate(ims):
        r, c = divmod(k, 3)
        y, x = pad + r * (10 + pad), pad + c * (12 + pad)
        np.testing.assert_array_equal(g[y:y + 10, x:x + 12], np.repeat(im[..., None], 3, -1))
    hl = np.array(_rgb(HIGHLIGHT_COLOR), np.uint8)
    y, x = pad + 1 * (10 + pad), pad + 1 * (12 + pad)          # tile 4: row 1, col 1
    assert (g[y - 1, x:x + 12] == hl).all() and (g[y:y + 10, x - 1] == hl).all()
    assert (g[pad + 10 + pad - 1, pad + 2 * (12 + pad) + 5] == 255).all()     # gutter under tile 2: not framed
    assert (g[-pad:, -pad:] == 255).all()                      # empty 9th cell stays white


def test_grid_image_captions_and_mixed_sizes():
    ims = [np.zeros((8, 8), np.uint8), np.full((4, 6), 200, np.uint8), (np.zeros((8, 8, 3)) + [0, 0, 255]).astype(np.uint8)]
    g = grid_image(ims, ncols=3, pad=2, captions=["a", "b\nc", None])
    assert g.shape[0] > 8 + 4 and g.shape[1] == 3 * 10 + 2
    np.testing.assert_array_equal(g[2 + 2:2 + 6, 12 + 1:12 + 7], np.full((4, 6, 3), 200))   # centred in its tile
    np.testing.assert_array_equal(g[2:10, 22:30], np.zeros((8, 8, 3)) + [0, 0, 255])       # colour tile kept
    with pytest.raises(ValueError, match="captions"):
        grid_image(ims, captions=["a"])
    with pytest.raises(ValueError):
        grid_image([])


# --- snapshots --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def snap_case():
    rng = np.random.default_rng(0)
    n = 40
    A = rng.normal(size=(n, 5))
    B = A.copy(); B[:20] *= 0.2
    ids = [f"img{i}" for i in range(n)]
    ids[7] = "<script>alert('x')</script>"
    res = rdx(A, B, RDXConfig(n_clusters=3, grid_size=4), layers=("L<1>", "L2"), ids=ids)
    snap = snapshot(A, B, res, 7, "10", k=5)
    images = rng.random((n, 20, 30)).astype(np.float32)
    return snap, images, ids


def _shown(snap):
    return [snap.probe] + [int(i) for r in snap.rows for i in r.indices]


def test_snapshot_image(snap_case):
    snap, images, _ = snap_case
    pic = snapshot_image(snap, images, size=32)
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[2] == 3
    as_dict = {i: images[i] for i in _shown(snap)}
    np.testing.assert_array_equal(snapshot_image(snap, as_dict, size=32, n=len(images)), pic)
    np.testing.assert_array_equal(snapshot_image(snap, lambda i: images[i], size=32, n=len(images)), pic)
    np.testing.assert_array_equal(snapshot_image(snap, list(images), size=32), pic)
    with pytest.raises(KeyError, match="no entry for row"):
        snapshot_image(snap, {snap.probe: images[snap.probe]}, size=32)


def test_snapshot_image_shows_the_thumbnails(snap_case):
    snap, images, _ = snap_case
    pic = snapshot_image(snap, images, size=32)
    th = np.repeat(thumbnail(images[snap.rows[2].indices[0]], 32)[..., None], 3, -1)
    hits = [(y, x) for y in range(pic.shape[0] - 31) for x in range(pic.shape[1] - 31)
            if pic[y, x, 0] == th[0, 0, 0] and np.array_equal(pic[y:y + 32, x:x + 32], th)]
    assert hits


def test_snapshot_html(snap_case):
    snap, images, ids = snap_case
    page = snapshot_html(snap, images, title="<script>bad()</script> & more", ids=ids, size=32)
    assert page.startswith("<!DOCTYPE html>")
    assert "http" not in page.lower()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;bad()&lt;/script&gt; &amp; more" in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page           # the probe id, escaped
    assert "L&lt;1&gt;" in page                                                   # layer names too
    shown = _shown(snap)
    assert page.count("<img ") == len(shown)
    srcs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(srcs) == len(shown)
    np.testing.assert_array_equal(_png(base64.b64decode(srcs[0])), thumbnail(images[snap.probe], 32))
    assert page.count('class="bar"') == 3 * (len(shown) - 1)
    assert snapshot_html(snap, images, ids=ids, size=32) == snapshot_html(snap, images, ids=ids, size=32)


# --- projections ------------------------------------------------------------------------------------------------------

def test_project_pca_deterministic_and_correct():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 6)) * [6, 3, 1, 0.5, 0.5, 0.5]
    P = project(X)
    assert P.shape == (80, 2) and P.dtype == np.float64
    np.testing.assert_array_equal(project(X), P)
    U, S, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(P), np.abs(U[:, :2] * S[:2]), atol=1e-8)
    np.testing.assert_allclose(project(X - 100.0), P, atol=1e-8)
    for j in range(2):                                        # sign convention
        assert P[np.abs(P[:, j]).argmax(), j] > 0
    Xw = rng.normal(size=(5, 30))                              # N < d path
    U, S, _ = np.linalg.svd(Xw - Xw.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(project(Xw)), np.abs(U[:, :2] * S[:2]), atol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        project(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="method"):
        project(X, "tsne")


@pytest.mark.parametrize("reflect", [False, True])
def test_align_2d_recovers_similarity_transform(reflect):
    rng = np.random.default_rng(5)
    P = rng.normal(size=(60, 2))
    th = 1.1
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    if reflect:
        R = R @ np.diag([1.0, -1.0])
    Q = 0.37 * P @ R + [10.0, -3.0]
    np.testing.assert_allclose(align_2d(P, Q), P, atol=1e-10)
    np.testing.assert_allclose(align_2d(Q, P), Q, atol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        align_2d(P, P[:10])


@pytest.mark.slow
def test_project_umap_seeded():
    X = np.random.default_rng(6).normal(size=(60, 8))
    U = project(X, "umap", seed=1, n_neighbors=8)
    assert U.shape == (60, 2)
    np.testing.assert_array_equal(project(X, "umap", seed=1, n_neighbors=8), U)


# --- scatter ----------------------------------------------------------------------------------------------------------

def _rows(fig, traces=None):
    return np.concatenate([np.asarray(t.customdata) for t in (traces or fig.data)])


def test_scatter_subsample_deterministic_and_customdata():
    rng = np.random.default_rng(7)
    xy = rng.normal(size=(500, 2))
    lab = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, 500)]
    f1 = scatter_figure(xy, lab, max_points=120, seed=9, selected=[3, 499], hover=[f"id{i}" for i in range(500)])
    f2 = scatter_figure(xy, lab, max_points=120, seed=9, selected=[3, 499], hover=[f"id{i}" for i in range(500)])
    assert [t.name for t in f1.data] == ["a", "b", "c", "selected"]
    base = _rows(f1, f1.data[:3])
    assert len(base) == 120 == len(set(base)) and {3, 499} <= set(base)
    np.testing.assert_array_equal(_rows(f1), _rows(f2))
    assert not np.array_equal(np.sort(base), np.sort(_rows(scatter_figure(xy, lab, max_points=120, seed=10))))
    for t in f1.data:
        rows = np.asarray(t.customdata)
        np.testing.assert_array_equal(np.c_[t.x, t.y], xy[rows])
        if t.name in "abc":
            assert (lab[rows] == t.name).all()
        assert all(txt.startswith(f"row {r} ") and f"id{r}" in txt for r, txt in zip(rows, t.text))
    np.testing.assert_array_equal(np.sort(np.asarray(f1.data[3].customdata)), [3, 499])
    assert "120 of 500" in f1.layout.title.text
    full = scatter_figure(xy, lab)
    assert sorted(_rows(full)) == list(range(500)) and full.layout.title.text is None


def test_scatter_colour_kinds():
    rng = np.random.default_rng(8)
    xy = rng.normal(size=(50, 2))
    lab = rng.integers(0, 2, 50).astype(float); lab[:5] = np.nan
    f = scatter_figure(xy, lab)
    assert [t.name for t in f.data] == ["0", "1", "unknown"]
    assert f.data[2].marker.color == NAN_COLOR and sorted(f.data[2].customdata) == list(range(5))
    v = rng.normal(size=50); v[0] = np.nan
    g = scatter_figure(xy, v, max_points=20, seed=0)
    assert g.layout.coloraxis.cmin == np.nanmin(v) and g.layout.coloraxis.cmax == np.nanmax(v)  # over all rows
    assert scatter_figure(xy, lab, categorical=False).layout.coloraxis.cmin == 0
    with pytest.raises(ValueError, match="one value per point"):
        scatter_figure(xy, lab[:10])
    with pytest.raises(ValueError, match="N×2"):
        scatter_figure(rng.normal(size=(5, 3)))
    assert len(scatter_figure(xy).data) == 1
    h = scatter_figure(xy, hover=["<b>&</b>"] * 50)
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in h.data[0].text[0] and "<b>" not in h.data[0].text[0]
    h.to_json()                                               # serialisable (numpy row indices included)


def test_side_by_side_shares_rows_and_colours():
    rng = np.random.default_rng(9)
    Pa = rng.normal(size=(300, 2))
    Pb = -2.0 * Pa[:, ::-1] + 4.0
    lab = np.array(["x", "y"], dtype=object)[rng.integers(0, 2, 300)]
    fig = side_by_side_figure(Pa, Pb, lab, titles=("before", "after"), max_points=100, selected=[1])
    half = len(fig.data) // 2
    left, right = fig.data[:half], fig.data[half:]
    for a, b in zip(left, right):
        assert a.name == b.name and a.marker.color == b.marker.color
        np.testing.assert_array_equal(a.customdata, b.customdata)
        np.testing.assert_allclose(np.c_[b.x, b.y], np.c_[a.x, a.y], atol=1e-9)     # Pb aligned onto Pa
    assert all(t.showlegend is False for t in right)
    assert [a.text for a in fig.layout.annotations] == ["before", "after"]
    raw = side_by_side_figure(Pa, Pb, lab, align=False)
    np.testing.assert_allclose(np.c_[raw.data[2].x, raw.data[2].y], Pb[np.asarray(raw.data[2].customdata)])
    with pytest.raises(ValueError, match="same rows"):
        side_by_side_figure(Pa, Pb[:10])


def test_align_2d_keeps_the_spread_of_an_unrelated_layer():
    "A least-squares scale would shrink an unrelated layer towards a point; the aligned panel keeps ref's spread."
    rng = np.random.default_rng(0)
    ref, P = rng.normal(size=(200, 2)), 5 * rng.normal(size=(200, 2)) + 3
    Q = align_2d(ref, P)
    np.testing.assert_allclose(((Q - Q.mean(0)) ** 2).sum(), ((ref - ref.mean(0)) ** 2).sum())
    np.testing.assert_allclose(Q.mean(0), ref.mean(0), atol=1e-12)


# --- depth profile and transition summaries ------------------------------------------------------------------------

from medinterp.viz import depth_profile_figure, depth_profile_image, depth_profile_png, summaries_html  # noqa: E402
import pandas as pd  # noqa: E402


def _profile(rows=None, cols=("b0→b1", "b1→b2", "b2→b3")):
    rows = rows or [("acquisition", "brightness: high"), ("acquisition", "rotation: left"), ("hardware", "pacemaker"),
                    ("hardware", "ECG leads"), ("anatomy", "heart size: large"), ("finding", "effusion: left")]
    rng = np.random.default_rng(0)
    V = np.where(rng.random((len(rows), len(cols))) < 0.6, rng.uniform(0.2, 1.0, (len(rows), len(cols))), np.nan)
    V[0, :3] = [0.5, np.nan, 0.0]                               # a NaN and a true 0 % next to each other
    return pd.DataFrame(V, index=pd.MultiIndex.from_tuples(rows, names=["kind", "factor"]), columns=list(cols))


def test_depth_profile_figure_empty():
    empty = _profile().iloc[:0]
    for prof in (empty, _profile() * np.nan):
        fig = depth_profile_figure(prof, title="t")
        assert len(fig.data) == 0
        assert fig.layout.annotations[0].text == "no reported concept organises any recorded factor"
    im = Image.open(io.BytesIO(depth_profile_png(empty, scale=1)))
    assert im.mode == "RGB" and np.asarray(im).min() < 255


def test_depth_profile_figure_nan_blank_not_zero():
    fig = depth_profile_figure(_profile())
    hm = fig.data[0]
    assert tuple(hm.text[0]) == ("50 %", "", "0 %")
    assert hm.z[0][1] is None and hm.z[0][2] == 0               # NaN uncoloured, 0 % coloured
    prof = _profile()
    for i, j in zip(*np.nonzero(np.isnan(prof.to_numpy()))):
        assert hm.text[i][j] == "" and hm.z[i][j] is None
    assert (hm.zmin, hm.zmax, hm.colorbar.title.text) == (0, 100, "purity")


def test_depth_profile_figure_row_order_and_escaping():
    rows = [("finding", "effusion"), ("acquisition", "<b>x</b>"), ("hardware", "pacemaker"), ("finding", "opacity")]
    fig = depth_profile_figure(_profile(rows))
    hm = fig.data[0]
    assert list(hm.y) == ["finding · effusion", "acquisition · &lt;b&gt;x&lt;/b&gt;", "hardware · pacemaker",
                          "finding · opacity"]
    assert fig.layout.yaxis.autorange == "reversed"              # first row on top
    assert len(fig.layout.shapes) == 3                            # a rule at each change of kind
    assert list(hm.x) == ["b0→b1", "b1→b2", "b2→b3"]
    tall = depth_profile_figure(_profile([(k, f"{k}{i}") for k in ("hardware", "finding") for i in range(10)]))
    assert tall.layout.height > fig.layout.height


def test_depth_profile_rejects_non_profiles():
    with pytest.raises(ValueError, match=r"\[0, 1\]"): depth_profile_figure(_profile() * 4)
    with pytest.raises(ValueError, match="kind, factor"): depth_profile_png(_profile().reset_index(drop=True))
    with pytest.raises(TypeError): depth_profile_figure(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="scale"): depth_profile_png(_profile(), scale=0)


def test_depth_profile_png_size(tmp_path):
    prof = _profile()
    data = depth_profile_png(prof, tmp_path / "d" / "depth.png", scale=1)
    assert (tmp_path / "d" / "depth.png").read_bytes() == data
    im = Image.open(io.BytesIO(data))
    assert im.mode == "RGB"
    w, h = im.size
    # short column names: horizontal; 6 rows of 26 px + header + legend; 3 cells of >= 60 px + labels
    assert 420 < w < 700 and 6 * 26 + 60 < h < 400, (w, h)
    w2, h2 = Image.open(io.BytesIO(depth_profile_png(prof, scale=2))).size
    assert abs(w2 / w - 2) < 0.1 and abs(h2 / h - 2) < 0.1
    more = depth_profile_image(_profile([("finding", f"f{i}") for i in range(12)]), scale=1)
    assert more.shape[0] - h == pytest.approx(6 * 26, abs=2)
    long = depth_profile_image(_profile(cols=[f"blocks.{i}→blocks.{i + 1}" for i in range(12)]), scale=1)
    assert long.shape[1] > w and long.shape[0] > h                # turned labels need a taller header


def _summary(pair, direction, sentences, kinds=()):
    return {"pair": pair, "direction": direction, "sentences": sentences, "text": " ".join(sentences),
            "groups": [{"kind": k, "factors": []} for k in kinds], "reported": len(kinds), "flagged": 0,
            "unexplained": []}


def test_summaries_html_escapes_and_emphasises():
    bad = '<script>alert("x")</script>'
    sums = [_summary("a→b", "10", [f"a→b newly groups images by hardware ({bad} wire, c0 80 % vs 10 %)."], ["hardware"]),
            _summary("a→b", "01", ["It keeps every stable grouping of a."]),
            _summary(f"b→{bad}", "10", ["b→c newly groups images by findings (effusion, c1 70 % vs 20 %) and "
                                        "demographics (sex & age, c2 60 % vs 50 %)."], ["finding", "demographic"])]
    out = summaries_html(sums)
    assert "<script" not in out and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert "sex &amp; age" in out
    for k in ("hardware", "findings", "demographics"): assert out.count(f"<b>{k}</b>") == 1
    assert out.index("a→b") < out.index("b→&lt;script")
    assert out.count("<section") == 2 and "not computed" in out   # the second pair has no direction 01
    assert "No transition summaries" in summaries_html([])
    with pytest.raises(ValueError, match="direction"): summaries_html([_summary("a→b", "11", ["x"])])

"""The study browser: the view-model (concept lists, grids, snapshots, colours, projections and their cache, affinity,
SAE panel, notes, errors, callbacks) and the ipywidgets Browser driven through its controls."""
import html
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import medinterp.browser as browser_mod
from medinterp.browser import Browser, BrowserModel, neighbourhood_affinity, read_notes
from medinterp.concepts import describe_concept
from medinterp.evaluate import label_correlation
from medinterp.phantoms import make_phantoms
from medinterp.rdx import DIRECTIONS, RDXConfig, pair_difference
from medinterp.rdx import snapshot as rdx_snapshot
from medinterp.sae import SAEConfig
from medinterp.study import Study, StudyConfig
from medinterp.viz import align_2d, png_bytes, project
from test_extract import tiny_backbone

N, BROKEN = 40, 7
RDX = RDXConfig(n_clusters=3, grid_size=4, stability_runs=0, min_size=1, max_share=1.0)   # every cluster reported: the browser, not the flags, is under test
SAE_CFG = SAEConfig(architecture="topk", expansion=2, k=4, epochs=2, batch_size=16, seed=0)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    "A swept study with one SAE whose row 7 is unreadable (so sweep rows and store rows differ)."
    root = tmp_path_factory.mktemp("browser")
    ds = make_phantoms(N, size=64, seed=3, out_dir=root / "phantoms", flip=0.5, opacity=0.5)
    with open(ds.paths[BROKEN], "wb") as f: f.write(b"not a png")
    s = Study.create(root / "s", StudyConfig(name="t", backbone="tiny", dataset="phantoms", thumb_size=24))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.extract(ds, tiny_backbone(2), on_error="skip", pooling=("cls", "mean"), batch_size=8, progress=False)
    s.run_rdx(RDX, progress=False)
    s.train_sae(config=SAE_CFG, progress=False)
    return s


@pytest.fixture(scope="module")
def model(study):
    return BrowserModel(study, progress=False)


@pytest.fixture
def fresh(study):
    "A model whose state tests may change freely."
    return BrowserModel(study, progress=False)


def test_rows_are_store_rows(model, study):
    assert BROKEN not in model.rows.tolist() and model.n == N - 1
    np.testing.assert_array_equal(model.rows, study.sweep.rows)
    assert model.ids == [study.store.ids[r] for r in model.rows]


def test_state_is_plain_data(fresh):
    fresh.select_probe(fresh.grid()[-1]).color_by("flip")
    fresh.set_affinity_rank(1)
    fresh.enlarge(fresh.grid()[0])
    assert tuple(fresh.state) == browser_mod.STATE_KEYS
    assert json.loads(json.dumps(fresh.state)) == fresh.state


def test_concept_lists_ordered_by_strength_with_top_enrichment(model, study):
    sw = study.sweep
    for i in range(len(sw.pairs)):
        for d in DIRECTIONS:
            lst, c, enr = model.concepts(i, d), sw.concepts(i, d), sw.enrichment(i, d)
            assert lst["key"].tolist() == list(c.keys)
            assert (np.diff(lst["strength"].to_numpy()) <= 0).all()
            for r in lst.itertuples():
                assert r.top == describe_concept(enr, r.key) and r.name == c[r.key].name
                assert r.grid == [int(x) for x in sw.rows[c[r.key].grid]] and r.anchor == r.grid[0]
                assert r.size == c[r.key].size


def test_grid_is_the_selected_concepts_grid(fresh, study):
    sw = study.sweep
    for key in fresh.concepts()["key"]:
        fresh.select_concept(key)
        assert fresh.grid() == [int(x) for x in sw.rows[sw.concepts(0, "10")[key].grid]]
        assert fresh.state["probe"] == fresh.grid()[0]                       # the anchor becomes the probe


def test_snapshot_equals_rdx_snapshot(fresh, study):
    sw = study.sweep
    fresh.select_pair(len(sw.pairs) - 1).set_direction("01")
    probe = fresh.grid()[-1]
    fresh.select_probe(probe)
    a, b = sw.pairs[-1]
    ref = rdx_snapshot(study.representation(a), study.representation(b), sw.result(len(sw.pairs) - 1),
                       int(np.flatnonzero(sw.rows == probe)[0]), "01")
    assert fresh.snapshot().to_dict() == ref.to_dict()
    img = fresh.snapshot_image()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_colour_by_columns(fresh, study):
    opts = fresh.color_options()
    assert opts[:2] == ["concept", "affinity"]
    assert set(study.store.label_names) <= set(opts) and {"flip", "marker_text", "image_mean"} <= set(opts)
    assert not {"id", "path", "patient_id", "valid"} & set(opts)
    for col in ("opacity", "marker_text"):
        fresh.color_by(col)
        np.testing.assert_array_equal(fresh.scatter()["color"], study.store.index[col].to_numpy()[fresh.rows])
    fresh.color_by("image_mean")
    np.testing.assert_allclose(fresh.scatter()["color"], study.images["image_mean"].to_numpy()[fresh.rows])
    fresh.color_by("concept")
    res, keys = study.sweep.result(0)["10"], set(study.sweep.concepts(0, "10").keys)
    assert fresh.scatter()["color"].tolist() == [f"c{l}" if f"c{l}" in keys else "null" for l in res.labels]
    fresh.color_by("affinity")
    np.testing.assert_array_equal(fresh.scatter()["color"], fresh.affinity_scores())
    with pytest.raises(KeyError, match="cannot colour by"): fresh.color_by("patient_id")


def test_scatter_selection_and_figure(fresh):
    s = fresh.scatter()
    sel = set(fresh.rows[s["selected"]].tolist())
    assert sel == set(fresh.grid()) | {fresh.state["probe"]}
    fig = fresh.figure()
    shown = set()
    for t in fig.data: shown |= set(np.asarray(t.customdata).tolist())
    assert shown == set(range(fresh.n))
    assert len(fig.data) % 2 == 0                                                # the same traces left and right


def test_projection_cache_reused_and_row_aligned(model, study, monkeypatch):
    sw = study.sweep
    for a in dict.fromkeys(l for p in sw.pairs for l in p):
        P = np.load(model.projection_path(a))
        np.testing.assert_allclose(P, project(study.representation(a), "pca"))
    for i, (a, b) in enumerate(sw.pairs):
        left, right = model._coords[i]
        np.testing.assert_allclose(right, align_2d(np.load(model.projection_path(a)), np.load(model.projection_path(b))))
    mtimes = {p: p.stat().st_mtime_ns for p in (study.path / "cache").glob("projection_*.npy")}
    monkeypatch.setattr(browser_mod, "project", lambda *a, **k: pytest.fail("the cached projection was recomputed"))
    again = BrowserModel(study, progress=False)
    for i in range(len(sw.pairs)):
        np.testing.assert_array_equal(again._coords[i][0], model._coords[i][0])
    assert {p: p.stat().st_mtime_ns for p in (study.path / "cache").glob("projection_*.npy")} == mtimes
    assert not list((study.path / "cache").glob(".*partial"))


def test_projection_cache_keyed_by_method(model, study):
    assert model.projection_path("pre_trunk").name.startswith("projection_pre_trunk_pca_")
    other = object.__new__(BrowserModel)
    other.__dict__.update(model.__dict__, projection="umap")
    assert other.projection_path("pre_trunk") != model.projection_path("pre_trunk")


def test_affinity_matches_definition_and_is_cached(fresh, study, monkeypatch):
    sw, k = study.sweep, fresh.k
    a, b = sw.pairs[0]
    res = sw.result(0)
    A, B = study.representation(a), study.representation(b)
    delta = pair_difference(A, B, gamma=res.gamma, symmetrize=res.config.symmetrize)
    np.testing.assert_allclose(fresh.affinity_scores(0, "10"), neighbourhood_affinity(B, delta, "10", k=k))
    np.testing.assert_allclose(fresh.affinity_scores(0, "01"), neighbourhood_affinity(A, delta, "01", k=k))
    assert fresh.affinity_path(0).is_file()
    monkeypatch.setattr(browser_mod, "pair_difference", lambda *a, **kw: pytest.fail("affinity recomputed"))
    np.testing.assert_array_equal(BrowserModel(study, progress=False).affinity_scores(0, "10"), fresh.affinity_scores(0, "10"))
    order = fresh.affinity_order()
    fresh.set_affinity_rank(2)
    assert fresh.state["probe"] == int(fresh.rows[order[2]]) and fresh.state["affinity_rank"] == 2
    fresh.select_probe(fresh.grid()[0])
    assert fresh.state["affinity_rank"] is None


def test_selection_rules(fresh, study):
    sw = study.sweep
    fresh.select_pair(0)
    keys = fresh.concepts()["key"].tolist()
    fresh.select_concept(keys[-1])
    member = fresh.grid()[-1]
    fresh.select_concept(keys[0])
    fresh.select_probe(member)                                  # the probe's concept follows
    assert fresh.state["concept"] == keys[-1]
    fresh.select_pair(1)                      # a pair switch opens its first reported concept, probed at its anchor
    first = fresh.concepts()["key"].tolist()[0]
    assert fresh.state["concept"] == first and fresh.state["probe"] == fresh.concept_info(first)["anchor"]
    fresh.set_direction("01").select_probe(member)            # a direction switch keeps the probe and follows it
    fresh.set_direction("10")
    assert fresh.state["probe"] == member
    lab = sw.result(1)["10"].labels[int(np.flatnonzero(sw.rows == member)[0])]
    if f"c{lab}" in fresh.concepts()["key"].tolist(): assert fresh.state["concept"] == f"c{lab}"
    fresh.select_pair(f"{sw.pairs[0][0]} -> {sw.pairs[0][1]}")
    assert fresh.state["pair"] == f"{sw.pairs[0][0]}→{sw.pairs[0][1]}"
    fresh.select_pair(tuple(sw.pairs[1]))
    assert fresh.pair_index == 1


def test_on_change_fires_once_per_call_with_changed_keys(fresh):
    seen = []
    fresh.on_change(seen.append)
    fresh.set_direction("01")
    assert len(seen) == 1 and "direction" in seen[0] and isinstance(seen[0], frozenset)
    fresh.set_direction("01")                                   # nothing changed: no call
    assert len(seen) == 1
    fresh.color_by("flip")
    assert seen[-1] == frozenset({"color_by"})
    with pytest.raises(KeyError): fresh.select_concept("nope")
    assert len(seen) == 2                                       # a refused call changes nothing
    fresh.remove_callback(seen.append)
    fresh.set_direction("10")
    assert len(seen) == 2


def test_errors_name_the_valid_choices(fresh, study):
    with pytest.raises(KeyError, match="no layer pair 'x→y'; pairs"): fresh.select_pair("x→y")
    with pytest.raises(IndexError, match="outside"): fresh.select_pair(99)
    with pytest.raises(KeyError, match="no concept 'c42'.*concepts"): fresh.select_concept("c42")
    with pytest.raises(IndexError, match="row 999 is outside"): fresh.select_probe(999)
    with pytest.raises(ValueError, match="not in the RDX sweep"): fresh.select_probe(BROKEN)
    with pytest.raises(TypeError, match="integer"): fresh.select_probe("3")
    with pytest.raises(ValueError, match="direction must be"): fresh.set_direction("11")
    with pytest.raises(KeyError, match="no SAE run"): fresh.select_sae("nope")
    with pytest.raises(KeyError, match="does not fire"): fresh.select_latent(10_000)
    with pytest.raises(IndexError, match="rank"): fresh.set_affinity_rank(fresh.n)
    with pytest.raises(ValueError, match="no image is enlarged"): fresh.next_image()
    with pytest.raises(ValueError, match="projection"): BrowserModel(study, projection="tsne", progress=False)
    with pytest.raises(KeyError, match="no concept"): fresh.set_note("c42", "x")
    with pytest.raises(ValueError, match="fmt"): fresh.export_notes(study.path / "n.txt", "xml")


def test_study_without_sae(study, tmp_path):
    import shutil
    shutil.copytree(study.path, tmp_path / "nosae", ignore=shutil.ignore_patterns("sae", "cache", "notes*"))
    b = Browser(Study.open(tmp_path / "nosae"), progress=False)
    assert b.state["sae"] is None and b.model.sae_panel() is None
    with pytest.raises(ValueError, match="no SAE"): b.model.select_latent(0)
    assert "train_sae" in b.tabs.children[1].value
    b.grid.probe_buttons[1].click()
    assert b.state["probe"] == b.model.grid()[1]


def test_no_sweep_is_a_clear_error(tmp_path):
    s = Study.create(tmp_path / "empty")
    with pytest.raises(ValueError, match="run_rdx"): BrowserModel(s, progress=False)


def test_notes_round_trip_with_ids_and_fingerprints(fresh, study, tmp_path):
    study.notes_path.unlink(missing_ok=True)
    fresh._notes = {}
    key = fresh.state["concept"]
    fresh.set_note(key, "flipped, with a burned-in R marker, 'quoted', comma, \"and\" a newline\nhere")
    other = fresh.concepts(1, "01")["key"].iloc[0]
    fresh.set_note(other, "lost after block 1", pair=1, direction="01")
    sae = fresh.state["sae"]
    lat = f"latent{fresh.state['latent']}"
    fresh.set_note(lat, "fires on portable films", sae=sae)
    assert fresh.note() == fresh.notes().set_index("scope").loc[f"rdx:{fresh.pairs[0]}:10", "text"]
    assert BrowserModel(study, progress=False).note(key) == fresh.note(key)       # kept in the study's notes.json
    s0, s1, s2 = f"rdx:{fresh.pairs[0]}:10", f"rdx:{fresh.pairs[1]}:01", f"sae:{sae}"
    for fmt in ("csv", "json"):
        back = read_notes(fresh.export_notes(tmp_path / f"notes.{fmt}")).set_index("scope")
        assert sorted(back.index) == sorted([s0, s1, s2])
        assert back.loc[s0, ["pair", "direction", "concept", "text"]].tolist() == [fresh.pairs[0], "10", key, fresh.note(key)]
        assert back.loc[s1, ["pair", "direction", "concept"]].tolist() == [fresh.pairs[1], "01", other]
        assert back.loc[s0, "config_fingerprint"] == study.sweep.config.fingerprint()
        assert back.loc[s0, "concepts_fingerprint"] == study.sweep.concepts(0, "10").fingerprint()
        assert back.loc[s1, "concepts_fingerprint"] == study.sweep.concepts(1, "01").fingerprint()
        assert back.loc[s2, ["sae", "concept", "config_fingerprint"]].tolist() == [sae, lat, SAE_CFG.fingerprint()]
        assert back.loc[s2, "concepts_fingerprint"] == study.sae_run(sae).concepts().fingerprint()
    fresh.set_note(key, "   ")                                                  # blank: deleted
    assert fresh.note(key) == "" and s0 not in read_notes(study.notes_path)["scope"].tolist()


def test_enlarge_and_navigation(fresh, study):
    g = fresh.grid()
    fresh.enlarge(g[0])
    e = fresh.enlarged()
    assert e["row"] == g[0] and e["position"] == (1, len(g)) and e["caption"].startswith(study.store.ids[g[0]])
    fresh.previous_image()
    assert fresh.state["enlarged"] == g[-1]                                    # wraps around
    fresh.next_image(); fresh.next_image()
    assert fresh.state["enlarged"] == g[1 % len(g)]
    fresh.enlarge(BROKEN)                                                     # not in the sweep, still viewable
    assert fresh.enlarged()["image"].shape == (384, 384)
    fresh.enlarge(None)
    assert fresh.enlarged() is None


def test_save_snapshot_writes_png_and_html(fresh, study, tmp_path):
    out = fresh.save_snapshot(tmp_path / "snaps")
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = out["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and fresh.snapshot().probe_id in page and "http" not in page
    assert fresh.save_snapshot()["png"].parent == study.path / "snapshots"


def test_sae_panel(fresh, study):
    run = study.sae_run()
    p = fresh.sae_panel()
    assert p["name"] == run.name and "FVU" in p["header"] and "L0" in p["header"]
    c = run.concepts()
    assert p["latents"]["key"].tolist() == list(c.keys)
    j = int(p["latents"]["latent"].iloc[1])
    fresh.select_latent(f"latent{j}")
    p = fresh.sae_panel()
    rows = np.asarray(run.record["rows"])
    assert p["latent"] == j and p["top_rows"] == [int(r) for r in rows[c[f"latent{j}"].grid]]
    assert p["concept"] == run.names()[j]["concept"]
    f = np.zeros(len(rows)); f[c[f"latent{j}"].members] = c[f"latent{j}"].scores
    ref = label_correlation(pd.DataFrame({"f": f}), study.store.labels.iloc[rows].reset_index(drop=True)).iloc[0]
    got = p["correlations"].set_index("label")["r"]
    np.testing.assert_allclose(got[ref.index].to_numpy(), ref.to_numpy())


# the widget, driven through its controls

@pytest.fixture
def br(study):
    return Browser(study, progress=False)


def test_widget_state_is_the_models(br):
    assert br.state is br.model.state
    assert br.concept_list.value == br.state["concept"] and br.pair_select.value == br.state["pair"]
    bundle = br._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_widget_pair_concept_probe(br, study):
    fired = []
    br.model.on_change(fired.append)
    m = br.model
    br.pair_select.value = m.pairs[1]
    assert br.state["pair"] == m.pairs[1] and "pair" in fired[-1]
    br.direction_toggle.value = "01"
    assert br.state["direction"] == "01"
    assert [v for _, v in br.concept_list.options] == m.concepts()["key"].tolist()
    key = br.concept_list.options[-1][1]
    br.concept_list.value = key
    assert br.state["concept"] == key and "concept" in fired[-1]
    rows = m.grid()
    assert br.grid.rows[:len(rows)] == rows and all(r is None for r in br.grid.rows[len(rows):])
    for k, r in enumerate(rows): assert br.grid.images[k].value == png_bytes(np.asarray(study.thumbnails[r]))
    assert [t.layout.display for t in br.grid.tiles[len(rows):]] == ["none"] * (16 - len(rows))
    br.grid.probe_buttons[len(rows) - 1].click()
    assert br.state["probe"] == rows[-1] and "probe" in fired[-1]
    assert br.grid.tiles[len(rows) - 1].layout.border.endswith("#ff9f00")
    assert br.snapshot_view.value == browser_mod._quick_png(m.snapshot_image())
    assert m.snapshot().probe_id in br.snapshot_title.value
    assert br.status.value == ""


def test_widget_clicks_on_figures(br):
    from plotly.callbacks import Points
    m = br.model
    t = br.overview_figure.data[0]
    t._dispatch_on_click(Points(point_inds=[1], trace_index=0), None)           # a bar of the overview strip
    assert br.state["pair"] == m.pairs[1]
    trace = next(t for t in br.projection_figure.data if len(t.customdata))
    i = int(trace.customdata[0])
    trace._dispatch_on_click(Points(point_inds=[0], trace_index=0), None)       # a point of the projection
    assert br.state["probe"] == int(m.rows[i])


def test_widget_slider_colour_enlarge_save_notes(br, study):
    m = br.model
    br.color_select.value = "flip"
    assert br.state["color_by"] == "flip" and "flip" in br.projection_figure.layout.title.text
    br.affinity_slider.value = 3
    assert br.state["affinity_rank"] == 3 and br.state["probe"] == int(m.rows[m.affinity_order()[3]])
    assert "rank 3" in br.affinity_text.value
    view = br.enlarged["rdx"]
    br.grid.enlarge_buttons[0].click()
    assert br.state["enlarged"] == m.grid()[0] and view.widget.layout.display is None
    assert br.grid.widget.layout.display == "none"                              # in place of the grid
    view.next.click()
    assert br.state["enlarged"] == m.grid()[1 % len(m.grid())]
    view.prev.click()
    assert br.state["enlarged"] == m.grid()[0]
    view.close.click()
    assert br.state["enlarged"] is None and view.widget.layout.display == "none" and br.grid.widget.layout.display is None
    br.save_button.click()
    assert "snapshot saved" in br.status.value and list((study.path / "snapshots").glob("*.html"))
    br.note_box.value = "a note typed in the box"
    assert m.note() == "a note typed in the box"
    br.export_json.click()
    back = read_notes(study.path / "notes_export.json")
    assert "a note typed in the box" in back["text"].tolist()
    br.help_button.value = True
    assert br.help.layout.display is None and "How to read" in br.help.value


def test_widget_errors_go_to_the_status_line(br, monkeypatch):
    monkeypatch.setattr(br.model, "save_snapshot", lambda *a, **k: (_ for _ in ()).throw(ValueError("disk full")))
    br.save_button.click()
    assert "disk full" in br.status.value


def test_widget_sae_tab(br, study):
    m = br.model
    run = study.sae_run()
    assert br.sae_select.value == run.name and "FVU" in br.sae_header.value
    j = br.latent_list.options[2][1]
    br.latent_list.value = j
    assert br.state["latent"] == j
    top = m.sae_panel()["top_rows"]
    assert br.sae_grid.rows[:len(top)] == top
    assert f"latent {j}" in br.latent_info.value
    br.latent_note.value = "portable"
    assert m.note(sae=run.name) == "portable"


def test_study_browse_returns_the_browser(study):
    b = study.browse(progress=False)
    assert isinstance(b, Browser) and b.model.study is study


def test_an_enlarged_image_closes_when_what_it_belongs_to_changes(fresh):
    keys = fresh.select_pair(0).concepts()["key"].tolist()
    for change in (lambda: fresh.select_pair(1), lambda: fresh.set_direction("01" if fresh.state["direction"] == "10" else "10"),
                   lambda: fresh.select_concept([k for k in fresh.concepts()["key"] if k != fresh.state["concept"]][0]),
                   lambda: fresh.select_latent(int(fresh._sae(fresh.state["sae"])["latents"]["latent"].iloc[1])),
                   lambda: fresh.select_tab("sae" if fresh.state["tab"] == "rdx" else "rdx")):
        fresh.enlarge(fresh.grid()[0])
        assert fresh.state["enlarged"] is not None
        change()
        assert fresh.state["enlarged"] is None
    fresh.enlarge(fresh.grid()[0], tab="rdx")
    fresh.select_concept(fresh.state["concept"])                 # the same concept again: it stays open
    fresh.select_tab("rdx")                                      # the same tab again: it stays open
    assert fresh.state["enlarged"] is not None


def test_the_browser_shows_each_transitions_summary(fresh, study):
    said = {(x["pair"], x["direction"]): x["text"] for x in study.sweep.summaries()}
    for i, p in enumerate(fresh.pairs):
        for d in ("10", "01"):
            assert fresh.transition_summary(i, d) == said[(p, d)] and said[(p, d)]
    from medinterp.browser import Browser
    b = Browser(fresh)
    fresh.select_pair(1).set_direction("01")
    assert html.escape(fresh.transition_summary()) in b.direction_text.value



# issue 13: flagged clusters, tabs and their enlarged views, the bridge, fixed layout, stable CSS classes

@pytest.fixture(scope="module")
def flagged_study(study, tmp_path_factory):
    "The same images swept with the default quality flags on (min_size 5): tiny clusters are flagged."
    import shutil
    root = tmp_path_factory.mktemp("flagged")
    shutil.copytree(study.path, root / "s", ignore=shutil.ignore_patterns("rdx", "cache", "notes*", "snapshots"))
    s = Study.open(root / "s")
    s.run_rdx(RDXConfig(n_clusters=4, grid_size=4, stability_runs=0, min_size=5, max_share=1.0), progress=False)
    return s


def _mixed(model):
    "(pair, direction) with reported and flagged concepts."
    for i in range(len(model.pairs)):
        for d in DIRECTIONS:
            flags = model.concepts(i, d, flagged=True)["flags"].map(bool)
            if flags.any() and not flags.all(): return i, d
    pytest.skip("no pair with both reported and flagged concepts")


def test_flagged_concepts_are_hidden_unless_asked_for(flagged_study):
    m = BrowserModel(flagged_study, progress=False)
    sw = flagged_study.sweep
    i, d = _mixed(m)
    assert m.state["show_flagged"] is False
    assert m.concepts(i, d)["key"].tolist() == list(sw.concepts(i, d).keys)          # reported only
    every = m.concepts(i, d, flagged=True)
    reported = [c.key for c in sw.concepts(i, d, flagged=True) if not c.flags]
    flagged = [c.key for c in sw.concepts(i, d, flagged=True) if c.flags]
    assert every["key"].tolist() == reported + flagged                                  # reported first
    assert every.set_index("key").loc[flagged, "flags"].map(list).tolist() == [list(sw.concepts(i, d, flagged=True)[k].flags) for k in flagged]
    m.select_pair(i).set_direction(d)
    with pytest.raises(KeyError, match=r"is flagged \(tiny"): m.select_concept(flagged[0])
    seen = []
    m.on_change(seen.append)
    m.set_show_flagged(True)
    assert seen == [frozenset({"show_flagged"})] and m.concepts()["key"].tolist() == reported + flagged
    m.select_concept(flagged[0])
    assert m.state["concept"] == flagged[0] and m.state["probe"] == m.concept_info()["anchor"]
    assert set(m.scatter()["color"]) - {"null"} == set(reported + flagged)
    m.set_show_flagged(False)                                   # the flagged concept is no longer listed: it gives way
    assert m.state["concept"] in reported
    with pytest.raises(TypeError, match="True or False"): m.set_show_flagged("yes")


def test_a_pair_without_reported_concepts(flagged_study):
    m = BrowserModel(flagged_study, progress=False)
    empty = [(i, d) for i in range(len(m.pairs)) for d in DIRECTIONS if m.concepts(i, d).empty and len(m.concepts(i, d, flagged=True))]
    if not empty: pytest.skip("every direction has a reported concept")
    i, d = empty[0]
    m.set_direction(d).select_pair(i)
    assert m.state["concept"] is None and m.grid() == []
    m.set_show_flagged(True)
    assert m.state["concept"] == m.concepts()["key"].iloc[0]


def test_widget_show_all_clusters_checkbox(flagged_study):
    b = Browser(flagged_study, progress=False)
    i, d = _mixed(b.model)
    b.pair_select.value = b.model.pairs[i]
    b.direction_toggle.value = d
    n = len(b.concept_list.options)
    b.flagged_box.value = True
    labels = [lab for lab, _ in b.concept_list.options]
    assert b.state["show_flagged"] and len(labels) > n
    assert all(lab.startswith("⚑ tiny") for lab in labels[n:]) and not any(lab.startswith("⚑") for lab in labels[:n])
    b.flagged_box.value = False
    assert len(b.concept_list.options) == n


def test_each_tab_has_its_own_enlarged_view(fresh, study):
    assert fresh.state["tab"] == "rdx"
    top = fresh.sae_panel()["top_rows"]
    fresh.enlarge(top[1], tab="sae")                             # from the SAE tab: steps through the latent's images
    assert fresh.state["tab"] == "sae" and fresh.enlarged()["position"] == (2, len(top))
    fresh.select_tab("rdx")
    assert fresh.state["enlarged"] is None
    g = fresh.grid()
    fresh.enlarge(g[0])                                          # the current tab: rdx, the grid
    assert fresh.enlarged()["position"] == (1, len(g))
    with pytest.raises(ValueError, match="tab must be"): fresh.select_tab("umap")
    with pytest.raises(ValueError, match="tab must be"): fresh.enlarge(g[0], tab="x")


def test_widget_enlarged_views_follow_the_tab(br):
    m = br.model
    br.grid.enlarge_buttons[0].click()
    assert br.enlarged["rdx"].widget.layout.display is None and br.enlarged["sae"].widget.layout.display == "none"
    br.tabs.selected_index = 1                                   # switching tabs closes it
    assert br.state["tab"] == "sae" and br.state["enlarged"] is None
    assert br.enlarged["rdx"].widget.layout.display == "none" and br.grid.widget.layout.display is None
    br.sae_grid.enlarge_buttons[1].click()
    assert br.state["enlarged"] == m.sae_panel()["top_rows"][1]
    assert br.enlarged["sae"].widget.layout.display is None and br.enlarged["rdx"].widget.layout.display == "none"
    assert br.sae_grid.widget.layout.display == "none" and br.grid.widget.layout.display is None
    m.select_tab("rdx")                                          # the model's tab drives the widget's
    assert br.tabs.selected_index == 0 and br.enlarged["sae"].widget.layout.display == "none"


def test_bridge_is_the_reports_table(fresh, study):
    run = study.sae_run()
    t = fresh.bridge()
    assert list(t.columns) == list(browser_mod.BRIDGE_COLUMNS) and len(t)
    sw = study.sweep
    for (pair, d), part in t.groupby(["pair", "direction"], sort=False):
        ref = study.bridge(fresh.pairs.index(pair), d, sae=run.name, top=1).dropna(subset=["latent"])
        assert sw.concepts(pair, d).explained == run.layer
        assert part["concept"].tolist() == ref["concept"].tolist() and part["latent"].tolist() == ref["latent"].tolist()
        np.testing.assert_allclose(part["auroc"], ref["auroc"]); np.testing.assert_allclose(part["jaccard"], ref["jaccard"])
    explaining = {(p, d) for i, p in enumerate(fresh.pairs) for d in DIRECTIONS if sw.concepts(i, d).explained == run.layer
                  and len(sw.concepts(i, d))}
    assert set(map(tuple, t[["pair", "direction"]].values.tolist())) == explaining
    with pytest.raises(KeyError, match="no SAE run"): fresh.bridge("nope")


def test_widget_bridge_table_on_the_sae_tab(br):
    assert br.bridge_html.value == ""                            # not computed before the tab is shown
    br.tabs.selected_index = 1
    t = br.model.bridge()
    assert "best latent" in br.bridge_html.value and all(html.escape(k) in br.bridge_html.value for k in t["concept"])


def test_overview_labels_are_short_and_clicks_use_full_names(br):
    fig = br.overview_figure
    t = fig.data[0]
    assert t.orientation == "h" and list(t.customdata) == br.model.overview["pair"].tolist()
    assert all("trunk.blocks" not in y for y in t.y) and len(set(t.y)) == len(t.y)
    assert fig.layout.yaxis2.showticklabels is False and fig.layout.yaxis3.showticklabels is False   # one label axis


def test_fixed_layout_and_css_classes(br):
    import ipywidgets as W
    classes = set()
    stack = [br.widget]
    while stack:
        w = stack.pop()
        classes |= set(getattr(w, "_dom_classes", ()))
        stack.extend(getattr(w, "children", ()))
    expected = {"mi-browser", "mi-help-button", "mi-help", "mi-tabs", "mi-pair", "mi-direction", "mi-show-flagged",
                "mi-concepts", "mi-grid", "mi-tile", "mi-probe-button", "mi-enlarge-button", "mi-enlarged-rdx",
                "mi-enlarged-sae", "mi-enlarged-close", "mi-snapshot", "mi-snapshot-title", "mi-overview", "mi-projection",
                "mi-sae-header", "mi-latents", "mi-sae-grid", "mi-bridge", "mi-probed"}
    assert expected <= classes, expected - classes
    probed = [k for k, t in enumerate(br.grid.tiles) if "mi-probed" in t._dom_classes]
    assert [br.grid.rows[k] for k in probed] == [br.state["probe"]]
    rows = [w for w in br.tabs.children[0].children if isinstance(w, W.HBox) and w.layout.flex_flow == "row nowrap"]
    assert rows, "the concept list and the grid share one row that never wraps"
    concepts, grid = rows[0].children
    assert concepts.layout.width and grid.layout.width and grid.layout.min_height        # fixed box sizes
    assert br.direction_text.layout.height                                               # a summary never pushes it down
    i = br.tabs.children[0].children.index(rows[0])
    assert br.snapshot_view in br.tabs.children[0].children[i + 1].children              # the snapshot right under the grid

"""medinterp.concepts: validation, ordering, membership, exact save/load round trips, and the enrichment test
(planted enrichment found, random concepts clean, Fisher and Benjamini–Hochberg against references, NaN handling,
level labels, row alignment, `describe_concept` text)."""
import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from medinterp.concepts import (ARRAYS_NPZ, CONCEPTS_JSON, Concept, Concepts, bh_adjust, column_levels, describe_concept,
                                enrichment, fisher_exact_two_sided, image_statistics, enrichment_table, name_concepts)
from medinterp.core import Config

IDS = tuple(f"img{i}" for i in range(10))


def make(concepts, **kw):
    return Concepts(kw.pop("method", "rdx"), kw.pop("ids", IDS), concepts, kw.pop("explained", "blocks.4"), **kw)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, message", [
    (dict(members=[1, 1], grid=[]), "concept 'k': members are not unique (row 1 repeats)"),
    (dict(members=[1, 2], grid=[2, 2]), "concept 'k': grid rows are not unique"),
    (dict(members=[1, 2], grid=[3]), "concept 'k': grid rows [3] are not members"),
    (dict(members=[1.0, 2.0], grid=[]), "concept 'k': members must be integer row indices"),
    (dict(members=[True, False], grid=[]), "boolean mask"),
    (dict(members=[-1, 2], grid=[]), "negative row index"),
    (dict(members=[[1, 2]], grid=[]), "1-D array"),
    (dict(members=[1, 2], grid=[], strength=float("inf")), "strength must be finite"),
    (dict(members=[1, 2], grid=[], strength="high"), "strength must be a number"),
    (dict(members=[1, 2], grid=[], scores=[1.0]), "1 scores for 2 members"),
    (dict(members=[1, 2], grid=[], scores=[1.0, np.nan]), "scores must be finite"),
    (dict(members=[1, 2], grid=[], info={"a": float("nan")}), "info of concept 'k' must be JSON-able"),
    (dict(members=[1, 2], grid=[], info=[1]), "info must be a dict"),
    (dict(members=[1, 2], grid=[], name=None), "name must be a string"),
])
def test_concept_validation_names_the_key(kwargs, message):
    kwargs.setdefault("strength", 1.0)
    with pytest.raises(ValueError) as e:
        Concept("k", **kwargs)
    assert message in str(e.value)


def test_concept_arrays_are_readonly_int64_copies():
    m = np.array([3, 1, 2], dtype=np.int32)
    c = Concept("k", m, m[:1], np.float32(2.5), scores=np.array([1, 2, 3], np.int16))
    m[0] = 9
    assert c.members.tolist() == [3, 1, 2] and c.members.dtype == np.int64 and c.grid.dtype == np.int64
    assert c.scores.dtype == np.float64 and type(c.strength) is float
    for a in (c.members, c.grid, c.scores):
        with pytest.raises(ValueError):
            a[0] = 0
    assert Concept("e", [], [], 0.0).members.dtype == np.int64


def test_concepts_validation():
    ok = Concept("a", [0, 9], [9], 1.0)
    with pytest.raises(ValueError, match="concept 'b': member row 10 is out of range for 10 images"):
        make([ok, Concept("b", [10], [], 0.5)])
    with pytest.raises(ValueError, match="concept keys must be unique; 'a' repeats"):
        make([ok, Concept("a", [1], [], 0.5)])
    with pytest.raises(ValueError, match="ids must be unique; 'img0' repeats"):
        make([ok], ids=IDS + ("img0",))
    with pytest.raises(ValueError, match="concepts must be Concept objects"):
        make([ok, {"key": "b"}])
    with pytest.raises(ValueError, match="explained must be a non-empty string"):
        make([ok], explained="")
    with pytest.raises(ValueError, match="direction must be None or a non-empty string"):
        make([ok], direction=1)
    with pytest.raises(ValueError, match="meta must be JSON-able"):
        make([ok], meta={"x": object()})
    with pytest.raises(ValueError, match="not one string"):
        make([ok], ids="img0")


def test_ordering_is_a_stable_sort_by_strength():
    cs = make([Concept(k, [i], [i], s) for i, (k, s) in enumerate([("a", 1.0), ("b", 3.0), ("c", 1.0), ("d", -2.0),
                                                                   ("e", 3.0)])])
    assert cs.keys == ("b", "e", "a", "c", "d")
    assert [c.strength for c in cs] == [3.0, 3.0, 1.0, 1.0, -2.0]
    assert cs.top(2).keys == ("b", "e") and cs.top(0).keys == ()
    assert cs[0].key == "b" and cs[-1].key == "d" and cs["c"].key == "c"
    with pytest.raises(KeyError, match="no concept 'z'"):
        cs["z"]
    with pytest.raises(TypeError):
        cs[1.0]


def test_membership_assignment_sizes_summary():
    cs = make([Concept("a", [0, 1, 2], [1], 0.5, info={"cluster": 0, "size": 3}),
               Concept("b", [5, 7], [7, 5], 0.9, name="bee", info={"cluster": 1, "extra": [1, 2]})])
    assert (len(cs), cs.n_images, cs.sizes.tolist()) == (2, 10, [2, 3])
    m = cs.membership()
    assert m.shape == (10, 2) and m.dtype == bool
    assert np.flatnonzero(m[:, 0]).tolist() == [5, 7] and np.flatnonzero(m[:, 1]).tolist() == [0, 1, 2]
    assert cs.assignment().tolist() == [1, 1, 1, -1, -1, 0, -1, 0, -1, -1]
    s = cs.summary()
    assert list(s.columns) == ["key", "name", "strength", "size", "grid_size", "stability", "flags", "cluster", "extra", "info_size"]
    assert s["key"].tolist() == ["b", "a"] and s["grid_size"].tolist() == [2, 1] and s["name"].tolist() == ["bee", ""]
    empty = make([])
    assert empty.membership().shape == (10, 0) and (empty.assignment() == -1).all() and len(empty.summary()) == 0


def test_overlap_error():
    cs = make([Concept("a", [0, 3], [0], 1.0), Concept("b", [3, 4], [4], 0.5)])
    assert cs.membership().sum(1).tolist()[3] == 2
    with pytest.raises(ValueError, match=r"row 3 \(id 'img3'\) is in \['a', 'b'\]"):
        cs.assignment()


def test_with_names_returns_a_new_object():
    cs = make([Concept("a", [0], [0], 1.0, name="old"), Concept("b", [1], [1], 0.5)])
    named = cs.with_names({"b": "new"})
    assert [c.name for c in named] == ["old", "new"] and [c.name for c in cs] == ["old", ""]
    assert named.fingerprint() != cs.fingerprint()
    with pytest.raises(KeyError, match="no concept"):
        cs.with_names({"zz": "x"})


def test_from_assignment():
    cs = Concepts.from_assignment(np.array([2, 2, -1, 0, 2]), IDS[:5], method="kmeans", explained="x",
                                  strengths={0: 5.0}, grid_size=2)
    assert cs.keys == ("c0", "c2") and cs["c2"].members.tolist() == [0, 1, 4] and cs["c2"].grid.tolist() == [0, 1]
    assert cs["c2"].strength == pytest.approx(3 / 5) and cs["c2"].info == {"cluster": 2, "size": 3}
    with pytest.raises(ValueError, match="4 entries for 5 ids"):
        Concepts.from_assignment([0, 1, 1, 0], IDS[:5], method="k", explained="x")


# ---------------------------------------------------------------- save / load
def rich_concepts():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg(Config):
        k: int = 3
        layers: tuple = ("a", "b")

    return Concepts("rdx", IDS, [
        Concept("c3", [4, 2, 9], [9, 4], 0.1 + 0.2, name="view=AP 78 % vs 30 %", scores=[0.5, 1e-300, 3.25],
                info={"cluster": 3, "size": 3, "nested": {"x": [1, 2.5, None], "s": "é"}}),
        Concept("c1", [0], [0], 2.0 / 3.0),
        Concept("c7", [], [], -1.0, info={"empty": True}),
        Concept("c0", [1, 3, 5, 6, 7, 8], [], 2.0 / 3.0, scores=np.linspace(-1, 1, 6)),
    ], "trunk.blocks.4", reference="trunk.blocks.3", direction="10", config=Cfg(), meta={"seed": 0, "note": None})


def test_save_load_is_exact(tmp_path):
    cs = rich_concepts()
    assert cs.config == {"k": 3, "layers": ["a", "b"]}
    path = cs.save(tmp_path / "run" / "rdx")
    assert sorted(p.name for p in path.iterdir()) == [ARRAYS_NPZ, CONCEPTS_JSON]
    back = Concepts.load(path)
    assert back == cs and back.fingerprint() == cs.fingerprint()
    for f in ("method", "ids", "explained", "reference", "direction", "config", "meta"):
        assert getattr(back, f) == getattr(cs, f) and type(getattr(back, f)) is type(getattr(cs, f)), f
    for a, b in zip(cs, back):
        assert (a.key, a.name, a.strength, a.info) == (b.key, b.name, b.strength, b.info)
        assert np.array_equal(a.members, b.members) and a.members.dtype == b.members.dtype
        assert np.array_equal(a.grid, b.grid)
        assert (a.scores is None) == (b.scores is None)
        if a.scores is not None:
            assert a.scores.tobytes() == b.scores.tobytes()
    assert back["c1"].scores is None and back["c7"].size == 0
    assert not back["c3"].members.flags.writeable
    # the arrays file holds no pickles
    with np.load(path / ARRAYS_NPZ, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    rec = json.loads((path / CONCEPTS_JSON).read_text())
    assert rec["format_version"] == 2 and rec["fingerprint"] == cs.fingerprint() and "provenance" in rec


def test_stability_and_flags_round_trip_and_version_1_files_still_load(tmp_path):
    ids = [f"i{k}" for k in range(8)]
    cs = Concepts("rdx", ids, [Concept("c1", [0, 1, 2, 3], [0, 1], 2.0, stability=0.9),
                               Concept("c2", [4, 5], [4], 9.0, stability=0.3, flags=("tiny", "unstable"))], "B")
    assert cs.keys == ("c1", "c2") and cs.reported().keys == ("c1",) and cs.flagged().keys == ("c2",)
    back = Concepts.load(cs.save(tmp_path / "v2"))
    assert back == cs and back["c2"].flags == ("tiny", "unstable") and back["c1"].stability == 0.9
    rec = json.loads((tmp_path / "v2" / CONCEPTS_JSON).read_text())
    rec["format_version"] = 1
    for c in rec["concepts"]: del c["stability"], c["flags"]
    del rec["fingerprint"]
    (tmp_path / "v2" / CONCEPTS_JSON).write_text(json.dumps(rec))
    old = Concepts.load(tmp_path / "v2")
    assert [c.stability for c in old] == [None, None] and old.flagged().keys == () and old.keys == ("c2", "c1")


def test_save_refuses_to_overwrite_and_load_names_missing_files(tmp_path):
    cs = rich_concepts()
    cs.save(tmp_path / "x")
    with pytest.raises(FileExistsError):
        cs.save(tmp_path / "x")
    cs.with_names({"c1": "one"}).save(tmp_path / "x", overwrite=True)
    assert Concepts.load(tmp_path / "x")["c1"].name == "one"
    (tmp_path / "x" / CONCEPTS_JSON).unlink()
    with pytest.raises(FileNotFoundError, match="lacks concepts.json"):
        Concepts.load(tmp_path / "x")
    cs.save(tmp_path / "y")
    (tmp_path / "y" / ARRAYS_NPZ).unlink()
    with pytest.raises(FileNotFoundError, match="lacks arrays.npz"):
        Concepts.load(tmp_path / "y")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        Concepts.load(tmp_path / "nothing")


def test_load_detects_edits(tmp_path):
    path = rich_concepts().save(tmp_path / "x")
    rec = json.loads((path / CONCEPTS_JSON).read_text())
    rec["concepts"][0]["strength"] = 99.0
    (path / CONCEPTS_JSON).write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="does not match the stored fingerprint"):
        Concepts.load(path)
    rec["format_version"] = 99
    (path / CONCEPTS_JSON).write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="format version 99"):
        Concepts.load(path)


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    cs = rich_concepts()
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        cs.save(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- enrichment
def planted_setup(seed=0, n=500):
    rng = np.random.default_rng(seed)
    rows = rng.permutation(n)
    planted = np.sort(rows[:80])
    random_ = np.sort(rng.choice(n, 80, replace=False))       # a null concept: a random sample of all images
    inside = np.zeros(n, bool)
    inside[planted] = True
    table = pd.DataFrame({
        "id": [f"i{i}" for i in range(n)],
        "tube_kind": np.where(rng.random(n) < np.where(inside, 0.7, 0.2), "ett", rng.choice(["none", "ng"], n)),
        "sex": rng.choice(["F", "M"], n),
        "age": rng.uniform(18, 95, n),
        "brightness": rng.normal(0, 1, n),
        "label": (rng.random(n) < 0.3).astype(float),
        "source": rng.choice(["a", "b", "c"], n),
    })
    cs = Concepts("test", table["id"], [Concept("planted", planted, planted[:9], 2.0),
                                        Concept("random", random_, random_[:9], 1.0)], "x")
    return cs, table


def test_planted_enrichment_is_found_and_a_random_concept_is_clean():
    cs, table = planted_setup()
    e = enrichment(cs, table)
    assert list(e.columns) == ["concept", "column", "kind", "levels", "value", "label", "words", "n_in", "count_in",
                               "share_in", "n_all", "count_all", "share_all", "lift", "effect", "p", "q", "significant"]
    assert set(e["kind"]) == {"other"}                                   # no kinds given
    k = enrichment(cs, table, kinds={"tube_kind": "hardware"})
    assert set(k[k["column"] == "tube_kind"]["kind"]) == {"hardware"} and set(k[k["column"] != "tube_kind"]["kind"]) <= {"other", "acquisition"}
    with pytest.raises(ValueError, match="unknown kind.*'hardwre'"): enrichment(cs, table, kinds={"tube_kind": "hardwre"})
    hit = e[(e["concept"] == "planted") & (e["label"] == "tube_kind=ett")].iloc[0]
    assert hit["q"] < 0.01 and hit["lift"] > 1.5 and hit["effect"] > 1 and hit["significant"]
    assert e.iloc[0]["label"] == "tube_kind=ett"                      # the strongest concept's best value comes first
    assert not e[e["concept"] == "random"]["significant"].any()
    assert set(e[e["significant"] & (e["effect"] > 0)]["label"]) == {"tube_kind=ett"}
    # sorted by concept order, then q, then -|effect|
    assert e["concept"].tolist() == sorted(e["concept"], key=["planted", "random"].index)
    for _, g in e.groupby("concept"):
        assert (np.diff(g["q"].to_numpy()) >= 0).all()
    # shares and counts are consistent
    assert np.allclose(e["share_in"], e["count_in"] / e["n_in"]) and np.allclose(e["lift"], e["share_in"] / e["share_all"])
    a, n, k, m = (e[c].to_numpy() for c in ("count_in", "n_in", "count_all", "n_all"))
    ref = np.log2((a + 0.5) * (m - n - k + a + 0.5) / ((n - a + 0.5) * (k - a + 0.5)))
    assert np.allclose(e["effect"], ref)


def test_enrichment_is_fast():
    rng = np.random.default_rng(0)
    n = 2500
    cols = {f"cat{j}": rng.choice(list("ABCDE"), n) for j in range(10)}
    cols |= {f"num{j}": rng.normal(size=n) for j in range(10)}
    cols |= {f"bin{j}": (rng.random(n) < 0.3).astype(float) for j in range(9)}
    cols["age"] = rng.uniform(18, 95, n)
    table = pd.DataFrame(cols)
    cs = Concepts.from_assignment(rng.integers(0, 10, n), [str(i) for i in range(n)], method="k", explained="x")
    enrichment(cs, table.head(n))                                      # warm-up (scipy imports)
    t = time.perf_counter()
    e = enrichment(cs, table)
    assert time.perf_counter() - t < 2.0
    assert e["concept"].nunique() == 10 and e["column"].nunique() == 30


def test_fisher_matches_scipy():
    rng = np.random.default_rng(0)
    tables = []
    for _ in range(400):
        m = int(rng.integers(2, 200)); n = int(rng.integers(1, m + 1)); k = int(rng.integers(1, m + 1))
        tables.append((int(rng.integers(max(0, n + k - m), min(n, k) + 1)), n, k, m))
    tables += [(5, 10, 10, 20), (0, 10, 10, 20), (10, 10, 10, 20), (1, 2, 2, 4), (3, 3, 3, 3), (0, 1, 1, 2)]
    a, n, k, m = np.array(tables).T
    mine = fisher_exact_two_sided(a, n, k, m)
    ref = np.array([fisher_exact([[x, y - x], [z - x, w - y - z + x]]).pvalue for x, y, z, w in tables])
    assert np.allclose(mine, ref, rtol=1e-9, atol=1e-300)
    with pytest.raises(ValueError, match="inconsistent counts"):
        fisher_exact_two_sided(5, 4, 10, 20)


def test_bh_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, np.nan])
    # sorted: 0.005 0.01 0.03 0.04 0.2 (m = 5) -> p*m/rank: 0.025 0.025 0.05 0.05 0.2 -> running min from the top
    q = bh_adjust(p)
    assert np.allclose(q[:5], [0.025, 0.05, 0.05, 0.025, 0.2]) and np.isnan(q[5])
    assert np.allclose(bh_adjust([0.9, 0.8]), [0.9, 0.9])
    try:
        from scipy.stats import false_discovery_control
    except ImportError:
        return
    r = np.random.default_rng(1).random(50) ** 3
    assert np.allclose(bh_adjust(r), false_discovery_control(r))


def test_q_is_corrected_across_all_tests():
    cs, table = planted_setup()
    e = enrichment(cs, table)
    assert np.allclose(e["q"], bh_adjust(e["p"].to_numpy()))
    b = enrichment(cs, table, correction="bonferroni")
    assert np.allclose(b["q"], np.minimum(b["p"] * len(b), 1))
    assert np.allclose(enrichment(cs, table, correction="none")["q"], enrichment(cs, table, correction="none")["p"])
    with pytest.raises(ValueError, match="correction must be one of"):
        enrichment(cs, table, correction="holm")


def test_nan_values_are_excluded_from_both_shares():
    ids = [f"i{i}" for i in range(8)]
    cs = Concepts("t", ids, [Concept("a", [0, 1, 2, 3], [0], 1.0)], "x")
    table = pd.DataFrame({"id": ids, "lab": [1, 1, np.nan, np.nan, 0, 0, 1, np.nan],
                          "view": ["AP", None, "", "PA", "AP", "PA", "PA", "PA"]})
    e = enrichment(cs, table).set_index("label")
    assert (e.loc["lab=1", "n_in"], e.loc["lab=1", "count_in"], e.loc["lab=1", "n_all"], e.loc["lab=1", "count_all"]) == (2, 2, 5, 3)
    assert e.loc["lab=1", "share_in"] == 1.0 and e.loc["lab=1", "share_all"] == pytest.approx(0.6)
    assert "lab=0" not in e.index                                       # binary columns test "=1" only
    assert (e.loc["view=AP", "n_in"], e.loc["view=AP", "count_in"], e.loc["view=AP", "n_all"]) == (2, 1, 6)


def test_level_labels():
    kind, known, codes, values, labels = column_levels(pd.Series(np.arange(1, 9) / 100), "brightness")
    assert kind == "numeric" and labels == ["brightness Q1 [0.01, 0.02]", "brightness Q2 [0.03, 0.04]",
                                            "brightness Q3 [0.05, 0.06]", "brightness Q4 [0.07, 0.08]"]
    assert codes.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert column_levels(pd.Series(np.arange(10.0)), "x", numeric_bins=2)[4] == ["x Q1 [0, 4]", "x Q2 [5, 9]"]
    assert column_levels(pd.Series([0.0] * 6 + [0.01, 0.03, 0.04, 0.1]), "w")[4] == ["w Q1-3 [0, 0.01]", "w Q4 [0.03, 0.1]"]
    assert column_levels(pd.Series([1000.0, 2500.5, 3, 4, 5]), "h", numeric_bins=2)[4] == ["h Q1 [3, 5]", "h Q2 [1000, 2500]"]
    kind, _, codes, values, labels = column_levels(pd.Series([3.0, 1, 2, 3, np.nan]), "grade")
    assert kind == "discrete" and labels == ["grade=1", "grade=2", "grade=3"] and codes.tolist() == [2, 0, 1, 2, -1]
    assert column_levels(pd.Series([True, False, True]), "flip")[4] == ["flip=1"]
    kind, _, codes, _, labels = column_levels(pd.Series(["b", "a", "b", "c", "a", "b", None]), "s", max_levels=2)
    assert labels == ["s=b", "s=a"] and codes.tolist() == [0, 1, 0, -1, 1, 0, -1]


def test_age_decades():
    kind, known, codes, values, labels = column_levels(pd.Series([40.0, 49.9, 50, 8, np.nan, 91]), "age")
    assert kind == "age" and labels == ["age 0-9", "age 40-49", "age 50-59", "age 90-99"]
    assert codes.tolist() == [1, 1, 2, 0, -1, 3] and known.tolist() == [True] * 4 + [False, True]
    assert column_levels(pd.Series([40.0, 45]), "Age")[4] == ["age 40-49"]


def test_table_must_be_row_aligned():
    cs, table = planted_setup(n=200)
    swapped = table.copy()
    swapped.loc[[3, 4], "id"] = swapped.loc[[4, 3], "id"].to_numpy()
    with pytest.raises(ValueError, match="row 3 has id 'i4' where 'i3' is expected"):
        enrichment(cs, swapped)
    with pytest.raises(ValueError, match="199 rows but the concepts refer to 200 images"):
        enrichment(cs, table.iloc[:-1])
    no_ids = table.drop(columns="id").set_index(np.arange(200) + 1000)      # same length, no ids: taken as aligned
    assert len(enrichment(cs, no_ids)) == len(enrichment(cs, table))
    with pytest.raises(KeyError, match="not in the table"):
        enrichment(cs, table, columns=["nope"])
    e = enrichment(cs, table, columns=["sex"])
    assert set(e["column"]) == {"sex"}


def test_describe_and_name_concepts():
    cs, table = planted_setup()
    e = enrichment(cs, table)
    hit = e[(e["concept"] == "planted") & (e["label"] == "tube_kind=ett")].iloc[0]
    text = describe_concept(e, "planted")
    assert text == f"other: tube kind ett ({100 * hit['share_in']:.0f} % vs {100 * hit['share_all']:.0f} %)"
    assert describe_concept(e, "random") == "" and describe_concept(e, "no-such-key") == ""
    assert describe_concept(e, "planted", min_lift=100.0) == ""
    fake = pd.DataFrame({"concept": ["k"] * 3, "column": ["view", "view", "sex"], "label": ["view=AP", "view=LL", "sex=F"],
                         "kind": ["acquisition", "acquisition", "demographic"], "words": ["view AP", "view LL", "sex F"],
                         "share_in": [0.78, 0.5, 0.6], "share_all": [0.3, 0.2, 0.5], "lift": [2.6, 2.5, 1.2],
                         "effect": [3.0, 2.0, 0.5], "q": [1e-5, 1e-5, 0.01], "significant": [True, True, True]})
    assert describe_concept(fake, "k", n=3) == "acquisition: view AP (78 % vs 30 %); demographic: sex F (60 % vs 50 %)"  # one value per column
    # the sentence is built from the stored table: change the table, the text changes
    fake.loc[0, "share_in"] = 0.9
    assert describe_concept(fake, "k").startswith("acquisition: view AP (90 %")
    named = name_concepts(cs.with_names({"random": "kept"}), e)
    assert named["planted"].name == describe_concept(e, "planted", n=2) and named["random"].name == "kept"


def test_metadata_table_selects_columns():
    index = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "path": ["a.png", "b.png", "c.png", "d.png"], "patient_id": ["p1", "p1", "p2", "p3"],
        "Effusion": [1.0, 0.0, np.nan, 1.0], "view": ["AP", "PA", "AP", None], "sex": ["F", "F", "F", "F"],
        "age": [np.nan] * 4, "render_seed": [1, 2, 3, 4], "valid": [True] * 4, "tube_kind": ["ett", "none", "ng", "none"],
        "brightness": [0.1, 0.2, 0.3, 0.4], "accession": ["x1", "x2", "x3", "x4"], "flip": [0, 1, 0, 1]})
    t = enrichment_table(index, label_names=["Effusion"])
    assert list(t.columns) == ["id", "Effusion", "view", "tube_kind", "brightness", "flip"]
    extra = pd.DataFrame({"id": list("abcd"), "image_mean": [0.5, 0.6, 0.7, np.nan]})
    t2 = enrichment_table(index, extra=extra, drop=["flip"])
    assert list(t2.columns) == ["id", "Effusion", "view", "tube_kind", "brightness", "image_mean"]
    with pytest.raises(ValueError, match="row 1 has id 'c' where 'b' is expected"):
        enrichment_table(index, extra=extra.iloc[[0, 2, 1, 3]])
    with pytest.raises(ValueError, match="already in the table"):
        enrichment_table(index, extra=pd.DataFrame({"view": [1, 2, 3, 4]}))
    with pytest.raises(KeyError, match="label column"):
        enrichment_table(index, label_names=["Nope"])


class FakeDataset:
    def __init__(self, images):
        self.images = images
        self.ids = [f"r{i}" for i in range(len(images))]
        self.index = pd.DataFrame({"id": self.ids, "path": [f"{i}.png" for i in self.ids], "x": [0, 1] * (len(images) // 2)})
        self.label_names = []

    def image(self, i):
        img = self.images[i]
        if isinstance(img, Exception):
            raise img
        return img


def test_image_statistics_scales_and_records_failures():
    imgs = [np.full((4, 4), 0.25, np.float32), np.array([[0, 65535]], np.uint16), OSError("gone"),
            np.full((2, 2, 3), 255, np.uint8), np.full((2, 2), 3.0), np.array([[0.0, 1.0]])]
    ds = FakeDataset(imgs)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = image_statistics(ds)
    assert list(s.columns) == ["id", "image_mean", "image_std"] and s["id"].tolist() == ds.ids
    assert np.allclose(s["image_mean"].to_numpy()[[0, 1, 3, 5]], [0.25, 0.5, 1.0, 0.5])
    assert np.allclose(s["image_std"].to_numpy()[[0, 1, 5]], [0.0, 0.5, 0.5])
    assert np.isnan(s["image_mean"][2]) and np.isnan(s["image_mean"][4])
    msg = str(w[0].message)
    assert "2 of 6 images" in msg and "row 2 ('r2')" in msg and "row 4 ('r4')" in msg
    t = enrichment_table(ds, extra=s)                      # an object with .index / .label_names works too
    assert list(t.columns) == ["id", "x", "image_mean", "image_std"]


def test_enrichment_on_empty_inputs():
    ids = ["a", "b", "c"]
    none = Concepts("t", ids, [], "x")
    e = enrichment(none, pd.DataFrame({"v": ["x", "y", "x"]}))
    assert len(e) == 0 and "q" in e.columns
    constant = Concepts("t", ids, [Concept("a", [0], [0], 1.0)], "x")
    assert len(enrichment(constant, pd.DataFrame({"v": ["x", "x", "x"]}))) == 0

"""medinterp.confounds: the data audit (planted confound flagged, independent columns not, AUROC and q against direct
computations, skipped columns and untestable labels, save/load), the stratified CMH test (against Pearson's χ² and the
hypergeometric moments; planted explained / not explained / Simpson cases), and the max-statistic permutation test
for the best latent per label (planted signal found, noise not, deterministic), plus the real in-repository X-rays."""
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, false_discovery_control, hypergeom

from medinterp.concepts import bh_adjust
from medinterp.confounds import (AUDIT_COLUMNS, LATENT_SIGNIFICANCE_COLUMNS, Audit, Stratified, audit, explain,
                                 explained_by, label_status, latent_significance, mantel_haenszel)
from medinterp.data import CXRDataset, cxr_demo_dir


def planted_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    "Label `covid` = source with 5 % noise; `effusion` independent; a rare label, a one-class label, odd columns."
    rng = np.random.default_rng(seed)
    source = rng.choice(["Hannover Medical School COVID-19 image repository", "NIH ChestX-ray14"], n)
    covid = (source == "NIH ChestX-ray14").astype(float)
    flip = rng.random(n) < 0.05
    covid[flip] = 1 - covid[flip]
    covid[rng.choice(n, 20, replace=False)] = np.nan
    age = rng.normal(50, 12, n) + 8 * np.nan_to_num(covid)              # older with the label: a weaker numeric link
    return pd.DataFrame({
        "id": [f"img{i}" for i in range(n)], "covid": covid, "effusion": (rng.random(n) < 0.25).astype(float),
        "rare": (np.arange(n) < 9).astype(float), "never": np.zeros(n),
        "source": source, "view": rng.choice(["AP", "PA"], n), "sex": rng.choice(["F", "M", None], n),
        "age": age.round(1), "scanner_id": [f"s{i}" for i in range(n)], "license_class": ["permissive"] * n,
        "qc_notes": [""] * n, "finding_group": np.where(covid == 1, "covid-19", "normal")})


LABELS = ["covid", "effusion", "rare", "never"]


@pytest.fixture(scope="module")
def au() -> Audit:
    return audit(planted_frame(), labels=LABELS)


# ---------------------------------------------------------------- label status
def test_label_status_counts_and_statuses():
    y = pd.DataFrame({"ok": [1, 0] * 15, "rare": [1] * 3 + [0] * 27, "few_neg": [1] * 25 + [0] * 5,
                      "one": [1.0] * 20 + [np.nan] * 10, "none": [np.nan] * 30})
    st = label_status(y)
    assert st["status"].to_dict() == {"ok": "tested", "rare": "too few positives", "few_neg": "too few negatives",
                                      "one": "one class", "none": "one class"}
    assert st.loc["one"].tolist() == [20, 0, 10, "one class"]
    assert label_status(y, min_positives=3).loc["rare", "status"] == "tested"
    with pytest.raises(ValueError, match="min_positives must be an integer >= 1"):
        label_status(y, min_positives=0)
    with pytest.raises(ValueError, match=r"label 'bad' must be 0/1 \(NaN = unknown\), got 0.5 in row 2"):
        label_status(pd.DataFrame({"bad": [0, 1, 0.5]}))


# ---------------------------------------------------------------- audit
def test_planted_confound_is_flagged_and_independent_columns_are_not(au):
    t = au.table.set_index(["label", "column"])
    assert au.confounds("covid")[0] == "source"
    assert bool(t.loc[("covid", "source"), "confounded"]) and t.loc[("covid", "source"), "strength"] > 0.8
    for pair in [("covid", "view"), ("covid", "sex"), ("effusion", "source"), ("effusion", "view"), ("effusion", "age")]:
        assert not t.loc[pair, "confounded"], pair
        assert t.loc[pair, "strength"] < 0.2, (pair, t.loc[pair, "strength"])
    assert au.confounds("effusion") == []
    detail = t.loc[("covid", "source"), "detail"]
    assert detail.startswith("covid in ") and "of source = NIH ChestX-ray14 vs " in detail, detail


def test_cramers_v_is_the_uncorrected_chi_square(au):
    df = planted_frame()
    use = df["covid"].notna() & df["sex"].notna()
    tab = pd.crosstab(df.loc[use, "sex"], df.loc[use, "covid"]).to_numpy()
    chi2, p = chi2_contingency(tab, correction=False)[:2]
    row = au.table.set_index(["label", "column"]).loc[("covid", "sex")]
    assert (row["measure"], row["n"], row["levels"]) == ("cramers_v", int(use.sum()), 2)
    assert row["strength"] == pytest.approx(np.sqrt(chi2 / use.sum()), rel=1e-12)
    assert row["p"] == pytest.approx(p, rel=1e-12)


def test_numeric_column_is_measured_by_auroc(au):
    df = planted_frame()
    use = df["covid"].notna()
    x, y = df.loc[use, "age"].to_numpy(), df.loc[use, "covid"].to_numpy()
    pos, neg = x[y == 1], x[y == 0]
    direct = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    row = au.table.set_index(["label", "column"]).loc[("covid", "age")]
    assert (row["measure"], row["levels"], row["positives"]) == ("auroc", "numeric", len(pos))
    assert row["auroc"] == pytest.approx(direct, abs=1e-12)
    assert row["strength"] == pytest.approx(abs(2 * direct - 1), abs=1e-12)
    assert direct > 0.6 and "higher age with covid" in row["detail"]
    assert au.table.loc[au.table["measure"] == "cramers_v", "auroc"].isna().all()


def test_skipped_columns_and_untested_labels(au):
    skipped = au.skipped.set_index("column")["reason"].to_dict()
    assert skipped == {"scanner_id": "identifier", "license_class": "one value", "qc_notes": "no known values"}
    assert set(au.table["column"]) == {"source", "view", "sex", "age"}          # finding_group is an outcome
    assert au.tested == ["covid", "effusion"]
    assert au.too_few["status"].to_dict() == {"rare": "too few positives", "never": "one class"}
    assert au.too_few.loc["rare", "positives"] == 9
    assert not au.table["label"].isin(["rare", "never"]).any()
    assert au.confounds("rare") == []
    with pytest.raises(KeyError, match="no label 'nope'"):
        au.confounds("nope")


def test_q_is_benjamini_hochberg_of_p_and_the_table_is_sorted(au):
    t = au.table
    assert list(t.columns) == list(AUDIT_COLUMNS)
    np.testing.assert_allclose(t["q"], false_discovery_control(t["p"].to_numpy(), method="bh"), rtol=1e-12)
    assert (t["confounded"] == ((t["strength"] > au.threshold) & (t["q"] < au.alpha))).all()
    for _, g in t.groupby("label", sort=False):
        assert (np.diff(g["strength"].to_numpy()) <= 1e-12).all()
    assert t["label"].tolist() == sorted(t["label"], key=["covid", "effusion"].index)


def test_thresholds_change_what_is_flagged():
    df = planted_frame()
    assert audit(df, labels=LABELS, threshold=0.95).confounds("covid") == []
    assert "age" in audit(df, labels=LABELS, threshold=0.1).confounds("covid")
    assert audit(df, labels=LABELS, min_positives=5).too_few.index.tolist() == ["never"]


def test_audit_reads_dataset_like_objects_and_their_kinds():
    df = planted_frame()
    kinds = {"covid": "finding", "effusion": "finding", "rare": "finding", "never": "finding", "source": "source",
             "view": "acquisition", "sex": "demographic", "age": "finding", "scanner_id": "hardware",
             "license_class": "source", "qc_notes": "acquisition", "finding_group": "other"}
    store = SimpleNamespace(index=df, label_names=["covid", "effusion"], kinds=kinds)
    a = audit(store)
    assert a.labels.index.tolist() == ["covid", "effusion"]
    assert set(a.table["column"]) == {"source", "view", "sex", "finding_group"}   # age declared a finding here
    assert a.table.set_index("column")["kind"].to_dict()["finding_group"] == "other"
    assert "rare" not in set(a.table["column"]) | set(a.skipped["column"])        # labels are never candidates
    only = audit(store, labels="covid", columns=["view", "license_class", "id"])
    assert set(only.table["column"]) == {"view"} and only.skipped["column"].tolist() == ["license_class", "id"]
    with_valid = SimpleNamespace(index=df.assign(path="p", patient_id="x", valid=True), label_names=["covid"], kinds=kinds)
    assert not {"id", "path", "patient_id", "valid"} & set(audit(with_valid).skipped["column"])   # structural


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(labels=LABELS, threshold=1.0), ValueError, r"threshold must be a number in \[0, 1\)"),
    (dict(labels=LABELS, alpha=0.0), ValueError, r"alpha must be a number in \(0, 1\)"),
    (dict(labels=LABELS, min_positives=2.5), ValueError, "min_positives must be an integer >= 1"),
    (dict(labels=["covid", "nope"]), KeyError, r"label column\(s\) \['nope'\] not in the data"),
    (dict(labels=LABELS, columns=["nope"]), KeyError, r"column\(s\) \['nope'\] not in the data"),
    (dict(), ValueError, "needs labels="),
])
def test_audit_rejects_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        audit(planted_frame(60), **kwargs)


def test_audit_rejects_labels_that_are_not_binary():
    df = planted_frame(60)
    df.loc[3, "effusion"] = 2
    with pytest.raises(ValueError, match="label 'effusion' must be 0/1"):
        audit(df, labels=LABELS)
    with pytest.raises(TypeError, match="data must be a CXRDataset"):
        audit([1, 2, 3])


def test_lines_summarise_flags_too_few_and_skipped(au):
    lines = au.lines()
    assert lines[0].startswith("audit: 2 of 4 labels tested (>= 10 positives and negatives) against 4 columns; ")
    flagged = [line for line in lines if line.startswith("  ")]
    assert len(flagged) == len(au.confounded) and flagged[0].startswith("  covid ~ source (source): Cramér's V ")
    assert lines.count(next(line for line in lines if line.startswith("too few"))) == 1
    assert "rare (9 positives)" in lines[-2] and "never (0 positives, 500 negatives: one class)" in lines[-2]
    assert lines[-1] == "skipped columns: identifier: scanner_id; one value: license_class; no known values: qc_notes"
    short = au.lines(max_rows=1)
    if len(au.confounded) > 1: assert short[2].startswith("  ... ") and "more" in short[2]


def test_save_load_round_trip(au, tmp_path):
    au.save(tmp_path / "a")
    back = Audit.load(tmp_path / "a")
    assert back == au
    pd.testing.assert_frame_equal(back.table, au.table)
    pd.testing.assert_frame_equal(back.labels, au.labels)
    pd.testing.assert_frame_equal(back.skipped, au.skipped)
    assert (back.threshold, back.min_positives, back.alpha) == (au.threshold, au.min_positives, au.alpha)
    assert back.lines() == au.lines()
    assert not list((tmp_path / "a").glob(".*")), "temporary files left behind"
    other = audit(planted_frame(), labels=LABELS, threshold=0.3)
    other.save(tmp_path / "a")                                            # overwrites, stays consistent
    assert Audit.load(tmp_path / "a") == other != au
    (tmp_path / "a" / "audit_labels.csv").write_text("label,positives,negatives,unknown,status\n")
    with pytest.raises(ValueError, match="do not match audit.json"):
        Audit.load(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="lacks audit.json"):
        Audit.load(tmp_path)


def test_audit_without_testable_labels_is_empty_but_complete(tmp_path):
    a = audit(planted_frame(), labels=["rare", "never"])
    assert a.tested == [] and len(a.table) == 0 and list(a.table.columns) == list(AUDIT_COLUMNS)
    assert a.lines()[0].startswith("audit: 0 of 2 labels tested")
    a.save(tmp_path / "empty")
    assert Audit.load(tmp_path / "empty") == a


# ---------------------------------------------------------------- Mantel–Haenszel
def test_cmh_of_one_stratum_is_scaled_pearson_chi_square():
    tab = np.array([[23, 7], [11, 19]])
    N = tab.sum()
    odds, stat, p, k = mantel_haenszel(*tab.ravel(), correction=False)
    assert k == 1
    assert stat == pytest.approx((N - 1) / N * chi2_contingency(tab, correction=False)[0], rel=1e-12)
    assert odds == pytest.approx(23 * 19 / (7 * 11), rel=1e-12)
    odds_c, stat_c, p_c, _ = mantel_haenszel(*tab.ravel())
    assert odds_c == odds and stat_c < stat and p_c > p


def test_cmh_matches_hypergeometric_moments_over_strata():
    rng = np.random.default_rng(3)
    a, b, c, d = rng.integers(0, 30, size=(4, 6))
    a[0] = c[0] = 0                                         # a stratum without positives: not informative
    odds, stat, p, k = mantel_haenszel(a, b, c, d)
    ok = (a + b > 0) & (c + d > 0) & (a + c > 0) & (b + d > 0)
    n, rows, cols = a + b + c + d, a + b, a + c
    mean = sum(hypergeom.mean(n[i], cols[i], rows[i]) for i in np.flatnonzero(ok))
    var = sum(hypergeom.var(n[i], cols[i], rows[i]) for i in np.flatnonzero(ok))
    assert k == ok.sum() == 5
    assert stat == pytest.approx((abs(a[ok].sum() - mean) - 0.5) ** 2 / var, rel=1e-10)
    assert odds == pytest.approx((a * d / n)[ok].sum() / (b * c / n)[ok].sum(), rel=1e-12)
    assert mantel_haenszel([4, 0], [0, 3], [5, 0], [0, 2])[3] == 0     # nothing informative: NaNs and 0
    with pytest.raises(ValueError, match="non-negative"):
        mantel_haenszel([-1], [1], [1], [1])


# ---------------------------------------------------------------- explained_by
def sources(n: int = 800, seed: int = 0):
    rng = np.random.default_rng(seed)
    source = rng.choice(["Hannover", "NIH", "Cohen"], n, p=[0.4, 0.5, 0.1])
    members = np.where(source == "Hannover", rng.random(n) < 0.8, rng.random(n) < 0.15)   # membership follows source
    return rng, source, members


def test_label_that_is_the_source_is_explained_by_source():
    rng, source, members = sources()
    label = (source == "Hannover").astype(float)
    r = explained_by(members, label, source, confound="source", label_name="COVID-19")
    assert isinstance(r, Stratified) and r.testable and r.explained
    assert r.crude_p < 1e-30 and r.informative == 0 and np.isnan(r.cmh_p)
    assert r.text.endswith("but within each source COVID-19 does not vary: explained by source"), r.text
    assert r.share_members > 0.7 and r.share_nonmembers < 0.2


def test_label_that_follows_membership_is_not_explained_by_source():
    rng, source, members = sources()
    label = np.where(members, rng.random(len(members)) < 0.6, rng.random(len(members)) < 0.1).astype(float)
    r = explained_by(members, label, source, confound="source", label_name="Effusion")
    assert not r.explained and r.crude_p < 1e-10 and r.cmh_p < 1e-10 and r.informative == 3
    assert r.mh_odds_ratio > 5 and r.within_members > 0.5 and r.within_nonmembers < 0.2
    assert r.text.startswith("Effusion in ") and r.text.endswith("not explained by source"), r.text


def test_simpson_like_association_is_explained_by_source():
    rng, source, members = sources()
    label = (rng.random(len(source)) < np.where(source == "Hannover", 0.7, 0.1)).astype(float)   # source drives it
    r = explained_by(members, label, source, confound="source", label_name="Pneumonia")
    assert r.crude_p < 1e-10 and r.cmh_p >= 0.05 and r.informative == 3 and r.explained, r
    assert abs(r.within_members - r.within_nonmembers) < 0.1 < r.share_members - r.share_nonmembers
    assert ", but within each source" in r.text and r.text.endswith("explained by source")
    hits = 0
    for seed in range(20):                                   # not luck: the verdict holds for nearly every draw
        rng, source, members = sources(seed=seed)
        label = (rng.random(len(source)) < np.where(source == "Hannover", 0.7, 0.1)).astype(float)
        hits += explained_by(members, label, source).explained
    assert hits >= 16, hits


def test_no_association_and_untestable_cases():
    rng, source, members = sources()
    noise = (rng.random(len(source)) < 0.3).astype(float)
    r = explained_by(members, noise, source, confound="source", label_name="Mass")
    assert not r.explained and r.crude_p > 0.05 and "no association for source to explain" in r.text
    one = explained_by(members, np.ones(len(source)), source, label_name="Hernia")
    assert (one.testable, one.explained, np.isnan(one.crude_p)) == (False, False, True)
    assert "cannot be tested: Hernia has one class" in one.text
    none = explained_by(np.zeros(len(source), bool), noise, source)
    assert not none.testable and "no members" in none.text


def test_unknown_rows_are_left_out_and_numbers_are_binned():
    rng, source, members = sources()
    label = (source == "Hannover").astype(float)
    label[:30] = np.nan
    strata = source.astype(object)
    strata[20:50] = None
    r = explained_by(members, label, strata)
    assert (r.n, r.left_out) == (len(source) - 50, 50)
    dose = rng.normal(size=len(source))
    b = explained_by(members, label, dose, confound="dose")
    assert b.strata == 4 and "within each dose band" in b.text or not b.explained
    rs = explain(members, label, {"source": source, "dose": dose})
    assert [x.confound for x in rs] == ["source", "dose"] and rs[0].explained and not rs[1].explained
    assert [x.confound for x in explain(members, label, pd.DataFrame({"s": source}))] == ["s"]


@pytest.mark.parametrize("call, message", [
    (lambda m, y, s: explained_by(m[:-1], y, s), "members has 799 rows but the label has 800"),
    (lambda m, y, s: explained_by(m, y, s[:-1], confound="source"), "strata of 'source' has 799 rows"),
    (lambda m, y, s: explained_by(m.astype(int), y, s), "members must be a boolean mask"),
    (lambda m, y, s: explained_by(m, y * 3, s, label_name="COVID-19"), "label 'COVID-19' must be 0/1"),
    (lambda m, y, s: explained_by(m, y, s, alpha=1.5), r"alpha must be a number in \(0, 1\)"),
    (lambda m, y, s: explain(m, y, [s]), "confounds must map confound names"),
])
def test_explained_by_rejects_bad_input(call, message):
    _, source, members = sources()
    with pytest.raises((ValueError, TypeError), match=message):
        call(members, (source == "NIH").astype(float), source)


# ---------------------------------------------------------------- latent_significance
def test_planted_latent_is_significant_and_noise_is_not():
    rng = np.random.default_rng(11)
    N, M, n_perm = 600, 120, 199
    Y = (rng.random((N, 3)) < 0.3).astype(float)
    codes = rng.normal(size=(N, M))
    codes[:, 42] += 0.8 * Y[:, 0]
    codes[:, 5] = 3.0                                                     # a dead (constant) latent
    out = latent_significance(codes, pd.DataFrame(Y, columns=["a", "b", "c"]), n_perm=n_perm, seed=0)
    assert list(out.columns) == list(LATENT_SIGNIFICANCE_COLUMNS)
    assert out.loc[0, "latent"] == 42 and out.loc[0, "r"] > 0.2
    assert out.loc[0, "p"] == 1 / (n_perm + 1) and out.loc[0, "q"] < 0.05 and out.loc[0, "significant"]
    assert (out["positives"] == Y.sum(0)).all()
    direct = max(abs(np.corrcoef(codes[:, m], Y[:, 1])[0, 1]) for m in range(M) if m != 5)
    assert abs(out.loc[1, "r"]) == pytest.approx(direct, rel=1e-9)
    np.testing.assert_allclose(out["q"], bh_adjust(out["p"].to_numpy()))


def test_p_value_is_the_max_statistic_permutation_test():
    "A direct re-implementation for one label: the same permutations (default_rng(seed)), max |r| over latents each."
    rng = np.random.default_rng(4)
    codes, y = rng.normal(size=(150, 25)), (rng.random(150) < 0.4).astype(float)
    codes[:, 3] += 0.25 * y                                              # a weak signal: p well above the minimum
    n_perm, seed = 99, 8
    perms = np.random.default_rng(seed).permuted(np.tile(y, (n_perm, 1)), axis=1)
    best = lambda v: np.abs(np.corrcoef(codes.T, v)[-1, :-1]).max()
    observed, null = best(y), np.array([best(v) for v in perms])
    out = latent_significance(codes, y, n_perm=n_perm, seed=seed)
    assert abs(out.loc[0, "r"]) == pytest.approx(observed, rel=1e-10)
    assert out.loc[0, "p"] == pytest.approx((1 + (null >= observed - 1e-12).sum()) / (n_perm + 1), abs=1e-12)
    assert 0.01 < out.loc[0, "p"] < 1


def test_noise_labels_give_roughly_uniform_p_values():
    rng = np.random.default_rng(5)
    codes = rng.normal(size=(400, 80))
    Y = (rng.random((400, 20)) < 0.3).astype(float)
    out = latent_significance(codes, Y, n_perm=99, seed=5)
    small = int((out["p"] < 0.05).sum())
    assert small < 5, out
    assert 0.25 < out["p"].mean() < 0.75 and not out["significant"].any()


def test_latent_significance_is_deterministic_and_handles_unknowns():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(300, 40))
    Y = pd.DataFrame({"x": (rng.random(300) < 0.4).astype(float), "one": np.ones(300)})
    Y.loc[:50, "x"] = np.nan
    a = latent_significance(codes, Y, n_perm=49, seed=7)
    pd.testing.assert_frame_equal(a, latent_significance(codes, Y, n_perm=49, seed=7))
    seeds = {latent_significance(codes, Y[["x"]], n_perm=49, seed=s)["p"].iloc[0] for s in range(6)}
    assert len(seeds) > 1                                                  # the seed is used
    known = Y["x"].notna().to_numpy()
    direct = np.array([np.corrcoef(codes[known, m], Y["x"][known])[0, 1] for m in range(40)])
    assert a.loc[0, "latent"] == int(np.argmax(np.abs(direct))) and a.loc[0, "r"] == pytest.approx(
        direct[np.argmax(np.abs(direct))], rel=1e-9)
    assert pd.isna(a.loc[1, "latent"]) and np.isnan(a.loc[1, "p"]) and not a.loc[1, "significant"]
    named = latent_significance(codes, Y[["x"]], n_perm=9, names=[f"z{m}" for m in range(40)])
    assert named.loc[0, "latent"] == f"z{a.loc[0, 'latent']}"


def test_latent_significance_accepts_torch_and_rejects_bad_input():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(100, 10)).astype(np.float32)
    y = (rng.random(100) < 0.5).astype(float)
    ref = latent_significance(codes, y, n_perm=19)
    pd.testing.assert_frame_equal(latent_significance(torch.from_numpy(codes), torch.from_numpy(y), n_perm=19), ref)
    with pytest.raises(ValueError, match="Y has 100 rows but codes have 99"):
        latent_significance(codes[:-1], y)
    with pytest.raises(ValueError, match="label 'label 0' must be 0/1"):
        latent_significance(codes, y + 0.5)
    with pytest.raises(ValueError, match="n_perm must be an integer >= 1"):
        latent_significance(codes, y, n_perm=0)
    with pytest.raises(ValueError, match="3 names for 10 latents"):
        latent_significance(codes, y, names=["a", "b", "c"])
    bad = codes.copy()
    bad[4, 6] = np.inf
    with pytest.raises(ValueError, match="first in latent 6"):
        latent_significance(bad, y, n_perm=9)


def test_latent_significance_is_fast_at_sae_scale():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(2500, 800)).astype(np.float32)
    Y = (rng.random((2500, 20)) < 0.2).astype(float)
    t = time.perf_counter()
    latent_significance(codes, Y, n_perm=200)
    assert time.perf_counter() - t < 30          # a guard (about 1-2 s on 2 cores), not a benchmark


# ---------------------------------------------------------------- the real X-rays in the repository
@pytest.mark.skipif(cxr_demo_dir() is None, reason="cxr-demo not found")
def test_real_cxr_demo_flags_covid_by_source():
    a = audit(CXRDataset.from_cxr_demo(progress=False))
    assert "source" in a.confounds("COVID-19")
    row = a.table.set_index(["label", "column"]).loc[("COVID-19", "source")]
    assert row["strength"] > 0.9 and row["q"] < 1e-10
    assert "finding_group" not in set(a.table["column"]) and "Pneumocystis" in a.too_few.index
    assert {"source_path": "identifier", "license_class": "one value"}.items() <= \
        a.skipped.set_index("column")["reason"].to_dict().items()


def test_a_persisting_but_underpowered_difference_is_not_called_explained():
    "Too few images within strata to reach significance, but the difference stays: 'too few to tell', not 'explained'."
    source = np.array(["Hannover"] * 34 + ["NIH"] * 60)
    members = np.zeros(94, bool); members[:8] = True; members[34:36] = True
    label = np.zeros(94)
    label[:6] = 1; label[8:21] = 1                  # Hannover: 6 of 8 members, 13 of 26 others
    label[34] = 1; label[36:39] = 1                 # NIH: 1 of 2 members, 3 of 58 others
    r = explained_by(members, label, source, confound="source", label_name="No Finding")
    assert r.crude_p < 0.01 and r.cmh_p > 0.05 and r.informative == 2
    assert np.isclose(r.within_members, 0.7) and np.isclose(r.within_nonmembers, (8 * 13 / 26 + 2 * 3 / 58) / 10)
    assert not r.explained and "too few images to tell" in r.text, r.text

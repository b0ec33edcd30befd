"""medinterp.evaluate: label correlation against scipy, entropy arithmetic, planted labels, balanced subsets, the
linear-time monosemanticity score against brute force, the naming-image contract, the offline namer, detection
accuracy and its derangement control, and the optional VLM namer's fail-fast checks and answer parsing."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from medinterp.evaluate import (CorrelationTable, ModelAnswerError, Name, Namer, NamingContext, OfflineNamer,
                                TransformersNamer, balanced_labels, compare_tables, correlation_entropy,
                                correlation_table, derangement_control, detection_accuracy, detection_sets,
                                detection_table, judge_prompt, label_correlation, monosemanticity_score,
                                name_latents, naming_images, naming_prompt, parse_judgement, parse_name_json,
                                random_derangement)
from medinterp.evaluate import _correlation


# ---------------------------------------------------------------- label correlation
def test_label_correlation_matches_scipy_with_nan_labels():
    rng = np.random.default_rng(0)
    N, M, C = 150, 7, 4
    F = rng.normal(size=(N, M)) * rng.uniform(0.1, 100, M) + rng.uniform(-1e3, 1e3, M)   # scales and offsets vary
    Y = (rng.random((N, C)) < [0.1, 0.3, 0.5, 0.7]).astype(float)
    Y[rng.random((N, C)) < 0.2] = np.nan
    Y[:5, 3] = np.nan
    R = label_correlation(F, Y)
    assert R.shape == (M, C)
    for j in range(M):
        for c in range(C):
            ok = ~np.isnan(Y[:, c])
            assert R[j, c] == pytest.approx(pearsonr(F[ok, j], Y[ok, c])[0], abs=1e-10)


def test_label_correlation_chunks_and_memmap(tmp_path):
    rng = np.random.default_rng(1)
    F = rng.normal(size=(60, 9)).astype(np.float32)
    Y = (rng.random((60, 3)) < 0.4).astype(float)
    Y[::7, 1] = np.nan
    np.save(tmp_path / "f.npy", F)
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    whole = label_correlation(F, Y)
    np.testing.assert_allclose(label_correlation(mm, Y), whole, atol=1e-12)
    np.testing.assert_allclose(_correlation(mm, Y, chunk_bytes=8 * 60 * 2), whole, atol=1e-12)   # 2 columns a chunk


def test_constant_columns_and_labels_give_zero_without_warnings():
    rng = np.random.default_rng(2)
    F = np.c_[rng.normal(size=50), np.full(50, 3.7), np.zeros(50)]
    Y = np.c_[(rng.random(50) < 0.5).astype(float), np.ones(50), np.full(50, np.nan)]
    Y[0, 2] = 1.0                                           # a single known row
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R = label_correlation(F, Y)
    assert np.isfinite(R).all()
    assert (R[1:] == 0).all() and (R[:, 1:] == 0).all() and R[0, 0] != 0


def test_constant_within_known_rows_of_one_label():
    # feature 0 varies overall but is constant on the rows where label 1 is known
    F = np.r_[np.zeros(10), np.arange(10.0)][:, None]
    Y = np.c_[np.r_[np.zeros(10), np.ones(10)], np.r_[np.tile([0.0, 1.0], 5), np.full(10, np.nan)]]
    R = label_correlation(F, Y)
    assert R[0, 1] == 0.0 and R[0, 0] > 0.5


def test_label_correlation_keeps_names_and_validates():
    F = pd.DataFrame(np.random.default_rng(3).normal(size=(20, 2)), columns=["x", "y"])
    Y = pd.DataFrame({"effusion": np.r_[np.ones(10), np.zeros(10)], "age_high": np.tile([0.0, 1.0], 10)})
    R = label_correlation(F, Y)
    assert isinstance(R, pd.DataFrame) and list(R.columns) == ["effusion", "age_high"] and list(R.index) == ["x", "y"]
    assert isinstance(label_correlation(F.to_numpy(), Y), pd.DataFrame)
    with pytest.raises(ValueError, match="row-aligned"):
        label_correlation(F.to_numpy(), Y.iloc[:5])
    with pytest.raises(ValueError, match="store.valid"):
        label_correlation(np.r_[F.to_numpy()[:19], [[np.nan, 0]]], Y)
    with pytest.raises(TypeError, match="not numeric"):
        label_correlation(F, pd.DataFrame({"v": ["AP"] * 20}))


# ---------------------------------------------------------------- entropy
def test_entropy_arithmetic():
    H = correlation_entropy(np.array([[0.0, 0.0, 0.8], [0.5, -0.5, 0.5], [0.0, 0.0, 0.0], [0.3, 0.1, 0.0]]))
    assert H[0] == 0.0
    assert H[1] == pytest.approx(math.log(3), abs=1e-12)
    assert H[2] == 0.0                                      # all-zero row: 0 by convention
    assert H[3] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-12)
    assert correlation_entropy(np.array([[0.4], [-0.9]])).tolist() == [0.0, 0.0]   # a single label
    C = 14
    assert correlation_entropy(np.full(C, 0.2)) == pytest.approx(math.log(C))
    s = correlation_entropy(pd.DataFrame([[0.1, 0.1]], index=["latent 3"]))
    assert isinstance(s, pd.Series) and s.index.tolist() == ["latent 3"]
    with pytest.raises(ValueError, match="NaN"):
        correlation_entropy(np.array([[np.nan, 0.1]]))


# ---------------------------------------------------------------- planted labels
def _planted(N=2000, seed=0):
    rng = np.random.default_rng(seed)
    Y = pd.DataFrame((rng.random((N, 5)) < [0.1, 0.2, 0.3, 0.25, 0.4]).astype(float),
                     columns=["effusion", "opacity", "cardiomegaly", "edema", "device"])
    Y.iloc[rng.random(N) < 0.1, 2] = np.nan
    Yf = Y.fillna(0).to_numpy()
    F = np.c_[rng.normal(size=N),                                     # noise
              Yf @ np.array([1.0, 1.0, 1.0, 1.0, 0.0]) + 0.5 * rng.normal(size=N),    # mixes four labels
              Yf[:, 1] + 0.2 * rng.normal(size=N),                    # opacity plus noise
              Yf @ np.array([0.0, 0.5, 0.0, 1.0, 1.0]) + 0.5 * rng.normal(size=N)]    # mixes three labels
    return F, Y


def test_planted_label_is_found_with_low_entropy():
    F, Y = _planted()
    ct = correlation_table(F, Y, names="latent")
    assert isinstance(ct, CorrelationTable)
    row = ct.table.set_index("label").loc["opacity"]
    assert row["neuron"] == 2 and row["name"] == "latent 2" and row["r"] > 0.8
    assert ct.entropy[2] < ct.entropy[1] - 0.5 and ct.entropy[2] < ct.entropy[3] - 0.5
    assert not ct.alive[0] and ct.alive[1:].all()
    assert row["entropy"] == pytest.approx(ct.entropy[2])
    frame = ct.to_frame()
    assert frame["label"].iloc[-1] == "mean" and frame["r"].iloc[-1] == pytest.approx(ct.table["r"].mean())
    assert ct.table.loc[ct.table["label"] == "cardiomegaly", "n_pos"].item() == int((Y["cardiomegaly"] == 1).sum())


def test_best_neuron_uses_alive_filter_and_signed_r():
    rng = np.random.default_rng(4)
    y = (rng.random(500) < 0.5).astype(float)
    anti = -y + 0.1 * rng.normal(size=500)                  # r close to -1
    weak = 0.1 * y + rng.normal(size=500)                   # |r| below the alive threshold
    pos = 0.5 * y + 0.5 * rng.normal(size=500)              # r around 0.45
    ct = correlation_table(np.c_[anti, weak], y[:, None], alive=0.2)
    assert ct.alive.tolist() == [True, False]
    assert ct.table["neuron"].iloc[0] == 0 and ct.table["r"].iloc[0] < -0.9      # the only alive one, even negative
    ct = correlation_table(np.c_[anti, weak, pos], y[:, None], alive=0.2)
    assert ct.table["neuron"].iloc[0] == 2 and 0.3 < ct.table["r"].iloc[0] < 0.6   # argmax of signed r
    ct2 = correlation_table(np.c_[anti, weak, pos], y[:, None], alive=0.999)
    assert ct2.table["neuron"].isna().all() and np.isnan(ct2.mean_r) and ct2.n_alive == 0


def test_balanced_subset_sizes_and_reproducibility():
    F, Y = _planted(3000)
    Yb = balanced_labels(Y, max_per_class=200, seed=0)
    for c in Y.columns:
        n_pos, n_neg = int((Y[c] == 1).sum()), int((Y[c] == 0).sum())
        k = min(200, n_pos, n_neg)
        assert (Yb[c] == 1).sum() == k and (Yb[c] == 0).sum() == k
        assert ((Yb[c] == 1) <= (Y[c] == 1)).all() and ((Yb[c] == 0) <= (Y[c] == 0)).all()
    small = balanced_labels(Y, max_per_class=20, seed=0)
    assert ((small == 1).sum() <= 20).all() and ((small == 0).sum() <= 20).all()
    assert balanced_labels(Y, seed=0).equals(Yb) and not balanced_labels(Y, seed=1).equals(Yb)
    a = correlation_table(F, Y, balanced=True, seed=7)
    b = correlation_table(F, Y, balanced=True, seed=7)
    assert np.array_equal(a.r, b.r) and a.table.equals(b.table)
    want = [min(200, int((Y[c] == 1).sum()), int((Y[c] == 0).sum())) for c in Y.columns]
    assert a.table["n_pos"].tolist() == want and a.table["n_neg"].tolist() == want
    rare = pd.DataFrame({"rare": np.r_[np.ones(30), np.zeros(970)]})
    assert (balanced_labels(rare)["rare"] == 1).sum() == 30 == (balanced_labels(rare)["rare"] == 0).sum()


def test_compare_tables_side_by_side():
    F, Y = _planted()
    raw = F[:, [1, 3]]
    cmp = compare_tables(raw, F, Y)
    assert list(cmp.columns) == ["subset", "label", "n_pos", "n_neg", "raw_dim", "raw_r", "raw_entropy", "sae_latent",
                                 "sae_r", "sae_entropy"]
    assert cmp["subset"].tolist() == ["balanced"] * 6 + ["full"] * 6
    op = cmp[(cmp["label"] == "opacity")]
    assert (op["sae_latent"] == 2).all() and (op["sae_r"] > op["raw_r"]).all()
    means = cmp[cmp["label"] == "mean"]
    for subset, t in zip(["balanced", "full"], [correlation_table(F, Y, balanced=True), correlation_table(F, Y)]):
        assert means.loc[means["subset"] == subset, "sae_r"].item() == pytest.approx(t.mean_r)


# ---------------------------------------------------------------- monosemanticity score
def _ms_bruteforce(F, E):
    U = E / np.linalg.norm(E, axis=1, keepdims=True)
    S = U @ U.T
    out = []
    for j in range(F.shape[1]):
        f = F[:, j]
        w = (f - f.min()) / (f.max() - f.min()) if np.ptp(f) > 0 else np.zeros_like(f)
        W = np.outer(w, w)
        np.fill_diagonal(W, 0)
        out.append((W * S).sum() / W.sum() if W.sum() > 1e-12 else np.nan)
    return np.array(out)


def test_monosemanticity_linear_identity_equals_bruteforce():
    rng = np.random.default_rng(5)
    F = np.maximum(rng.normal(size=(80, 6)), 0)
    F[:, 5] = rng.normal(size=80)                           # negative values: min-max scaling shifts them
    E = rng.normal(size=(80, 16)) + 0.5
    np.testing.assert_allclose(monosemanticity_score(F, E), _ms_bruteforce(F, E), atol=1e-10)
    np.testing.assert_allclose(monosemanticity_score(F, E, chunk_bytes=8 * 80), _ms_bruteforce(F, E), atol=1e-10)
    one = np.zeros((80, 2)); one[3, 0] = 1.0
    assert np.isnan(monosemanticity_score(one, E)).all()    # firing once / constant: NaN
    with pytest.raises(ValueError, match="all-zero rows"):
        monosemanticity_score(F, np.r_[E[:79], np.zeros((1, 16))])


# ---------------------------------------------------------------- naming images
def test_naming_images_contract():
    rng = np.random.default_rng(6)
    a = np.zeros(500)
    fire = rng.choice(500, 90, replace=False)
    a[fire] = rng.uniform(0.1, 5, 90)
    sel = naming_images(a)
    order = fire[np.argsort(-a[fire])]
    kept = order[:60]                                       # top two-thirds of 90
    assert sel.strongest.tolist() == kept[:15].tolist()
    assert sel.weakest.tolist() == kept[-15:].tolist()
    assert len(sel.rows) == 30 and len(set(sel.rows.tolist())) == 30
    assert (np.diff(a[sel.rows]) <= 0).all()                # decreasing activation overall
    assert a[sel.weakest].min() >= np.sort(a[fire])[::-1][59]
    few = naming_images(np.r_[np.zeros(10), [1.0, 4.0, 2.0, 3.0, 0.5, 0.7]])      # 6 fire -> keep 4
    assert few.strongest.tolist() == [11, 13, 12, 10] and few.weakest.tolist() == []
    mid = naming_images(np.arange(40, 0, -1.0))             # 40 fire -> keep 27: 15 strongest + 12 weakest
    assert mid.strongest.tolist() == list(range(15)) and mid.weakest.tolist() == list(range(15, 27))
    assert len(naming_images(np.zeros(5)).rows) == 0
    assert naming_images(np.arange(10.0), strongest=2, weakest=1, threshold=4.5).rows.tolist() == [9, 8, 6]


# ---------------------------------------------------------------- namers and detection
def _context(N=800, K=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = pd.DataFrame((rng.random((N, K)) < 0.3).astype(float), columns=[f"finding {k}" for k in range(K)])
    Z = labels.to_numpy() * rng.uniform(0.5, 2.0, (N, K))
    Z[rng.random((N, K)) < 0.05] = 0.0
    ap = rng.random(N) < np.where(Z[:, 0] > 0, 0.8, 0.3)
    meta = pd.DataFrame({"view": np.where(ap, "AP", "PA"), "age": rng.integers(20, 90, N).astype(float)})
    return NamingContext(Z, labels, meta), labels, meta, Z


def test_offline_namer_names_a_planted_latent_with_label_and_r():
    ctx, labels, meta, Z = _context()
    namer = OfflineNamer()
    assert isinstance(namer, Namer)
    nm = namer.name(0, naming_images(Z[:, 0]).rows, ctx)
    r0 = pearsonr(Z[:, 0], labels["finding 0"])[0]
    r_ap = pearsonr(Z[:, 0], (meta["view"] == "AP").astype(float))[0]
    assert nm.concept == f"finding 0 (r={r0:.2f}) | view=AP (r={r_ap:.2f})"
    top = nm.evidence["attributes"][0]
    assert (top["attribute"], top["kind"]) == ("finding 0", "label") and top["r"] == pytest.approx(r0, abs=1e-4)
    assert nm.evidence["attributes"][1]["attribute"] == "view=AP"
    assert f"r={r0:.2f}" in nm.description
    json_roundtrip = Name(nm.concept, nm.description, nm.evidence)
    assert json_roundtrip == nm
    assert namer.judge(nm, [0, 1, 2], ctx) == labels["finding 0"].iloc[:3].astype(int).tolist()
    silent = NamingContext(np.c_[Z, np.zeros(len(Z))], labels, meta)
    assert namer.name(6, [], silent).concept == "(unexplained)"
    assert namer.judge(namer.name(6, [], silent), [0, 1], silent) == [0, 0]


def test_naming_context_from_dataset(tmp_path):
    from medinterp.data import CXRDataset
    ctx, labels, meta, Z = _context(N=50)
    index = pd.concat([pd.DataFrame({"id": [f"i{k}" for k in range(50)], "path": [f"{k}.png" for k in range(50)],
                                     "patient_id": [f"p{k // 2}" for k in range(50)]}), labels, meta], axis=1)
    ds = CXRDataset(index, list(labels.columns), root=tmp_path)
    c2 = NamingContext.from_dataset(Z, ds)
    assert callable(c2.images) and list(c2.labels.columns) == list(labels.columns)
    assert {"view", "age"} <= set(c2.meta.columns) and not {"id", "path", "patient_id"} & set(c2.meta.columns)
    assert not set(labels.columns) & set(c2.meta.columns)
    np.testing.assert_allclose(c2.attribute_r[:, :6], ctx.attribute_r[:, :6])
    bare = NamingContext(Z, labels)
    with pytest.raises(ValueError, match="no image loader"):
        bare.image(0)
    with pytest.raises(ValueError, match="row-aligned"):
        NamingContext(Z, labels.iloc[:10])
    with pytest.raises(KeyError, match="no attribute 'view=LL'"):
        ctx.attribute_values("view=LL", [0])


def test_detection_accuracy_on_planted_latents_and_derangement_control():
    ctx, labels, meta, Z = _context()
    namer = OfflineNamer()
    names = name_latents(namer, range(6), ctx)
    fires, nonfires = detection_sets(Z[:, 0])
    assert len(fires) == 30 and (np.diff(Z[fires, 0]) <= 0).all() and (Z[nonfires, 0] == 0).all()
    det = detection_accuracy(namer, names[0], fires, nonfires, ctx, seed=0)
    assert det.n == 60 and det.tp + det.fn == 30 and det.tn + det.fp == 30
    assert det.accuracy > 0.8 and det.accuracy == (det.tp + det.tn) / 60
    again = detection_accuracy(namer, names[0], fires, nonfires, ctx, seed=0)
    assert np.array_equal(again.rows, det.rows) and again.accuracy == det.accuracy
    assert not np.array_equal(detection_accuracy(namer, names[0], fires, nonfires, ctx, seed=1).rows, det.rows)
    ctl = derangement_control(namer, names, ctx, seed=0)
    assert (ctl["name_from"] != ctl["latent"]).all() and sorted(ctl["name_from"]) == list(range(6))
    assert abs(ctl["accuracy"].mean() - 0.5) < 0.1
    table = detection_table(namer, names, ctx, seed=0)
    assert (table["accuracy"] > 0.8).all()
    assert table["control_accuracy"].tolist() == ctl["accuracy"].tolist()


def test_detection_checks_the_judge_and_the_sets():
    ctx, *_ = _context(N=100)

    class Bad:
        def name(self, latent, images, context): return Name("x")
        def judge(self, name, images, context): return [2] * len(images)

    with pytest.raises(ValueError, match="one 0/1 mark per image"):
        detection_accuracy(Bad(), Name("x"), [0, 1], [2, 3], ctx)
    with pytest.raises(ValueError, match="both in fires and in nonfires"):
        detection_accuracy(OfflineNamer(), Name("x"), [0, 1], [1, 3], ctx)
    with pytest.raises(ValueError, match="firing and non-firing"):
        detection_accuracy(OfflineNamer(), Name("x"), [], [1, 3], ctx)
    few = detection_accuracy(OfflineNamer(), Name("x"), [0, 1, 2], list(range(10, 100)), ctx, seed=0)
    assert few.n == 6 and few.truth.sum() == 3            # the groups stay balanced: chance stays 0.5


def test_random_derangement():
    for k in (2, 3, 10):
        for s in range(5):
            p = random_derangement(k, seed=s)
            assert sorted(p.tolist()) == list(range(k)) and (p != np.arange(k)).all()
    assert random_derangement(10, seed=3).tolist() == random_derangement(10, seed=3).tolist()
    with pytest.raises(ValueError, match="at least 2"):
        random_derangement(1)


# ---------------------------------------------------------------- the VLM namer
def test_transformers_namer_fails_fast_naming_the_path(tmp_path):
    missing = tmp_path / "medgemma-4b-it"
    with pytest.raises(FileNotFoundError, match="no model folder at .*medgemma-4b-it"):
        TransformersNamer(missing)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        TransformersNamer(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="holds no weights"):
        TransformersNamer(tmp_path)


def test_transformers_namer_fails_fast_without_the_package(tmp_path):
    try:
        import transformers  # noqa: F401
        pytest.skip("transformers is installed")
    except ImportError:
        pass
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ImportError, match="`transformers`"):
        TransformersNamer(tmp_path)


def test_prompts():
    p = naming_prompt(30, n_strongest=15)
    assert "30 chest radiographs" in p and "first 15" in p and "strict JSON" in p and '"description"' in p
    assert "first" not in naming_prompt(5, n_strongest=5)
    j = judge_prompt(Name("left pleural effusion", "blunted left costophrenic angle"))
    assert '"left pleural effusion"' in j and "blunted left" in j and '{"present": true}' in j
    with pytest.raises(ValueError):
        naming_prompt(0)


@pytest.mark.parametrize("answer, expected", [
    ('{"concept": "Pacemaker", "description": "A cardiac device."}', ("Pacemaker", "A cardiac device.")),
    ('```json\n{"concept": "AP view",\n "description": "Portable film."}\n```', ("AP view", "Portable film.")),
    ('Here is my answer:\n{"concept": " Left  effusion ", "description": "Blunted angle.", "confidence": 0.7} Thanks',
     ("Left effusion", "Blunted angle.")),
    ('{"concept": "Tube"}', ("Tube", "")),
    ('{"other": {"x": 1}} {"concept": "ECG leads", "description": "Wires."}', ("ECG leads", "Wires.")),
])
def test_parse_name_json_valid(answer, expected):
    d = parse_name_json(answer)
    assert (d["concept"], d["description"]) == expected


@pytest.mark.parametrize("answer, message", [
    ("The images show pacemakers.", "holds no JSON object"),
    ('{"concept": "", "description": "x"}', "non-empty string 'concept'"),
    ('{"concept": 3}', "non-empty string 'concept'"),
    ('{"concept": "x", "description": ', "holds no JSON object"),
    ('["concept", "x"]', "holds no JSON object"),
])
def test_parse_name_json_invalid(answer, message):
    with pytest.raises(ModelAnswerError, match=message) as e:
        parse_name_json(answer)
    assert isinstance(e.value, ValueError) and "got:" in str(e.value)


def test_parse_judgement():
    assert [parse_judgement(t) for t in ['{"present": true}', '```json\n{"present": false}\n```', "Yes", "no.",
                                         '{"present": 1}', '{"present": "yes"}']] == [1, 0, 1, 0, 1, 1]
    with pytest.raises(ModelAnswerError, match="cannot read"):
        parse_judgement("probably")

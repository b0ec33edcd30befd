"""medinterp.evaluate, the RDX <-> SAE bridge: `concept_latents` finds a latent planted on a concept's members, leaves
unrelated latents near AUROC 0.5, matches sklearn's roc_auc_score (ties included) and a brute-force Jaccard / firing
rate; `latent_concepts` finds the concept of the planted latent; codes are aligned by id; bad inputs fail by name;
and the whole path RDX -> Concepts, SAE -> codes -> bridge runs end to end."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from sklearn.metrics import roc_auc_score

from medinterp.concepts import Concept, Concepts
from medinterp.evaluate import BRIDGE_MEASURES, concept_latents, latent_concepts

N, M = 300, 20
PLANTED, DEAD = 7, 19


def planted(seed: int = 0):
    "Three concepts of 100 images, 20 latents of sparse noise, latent 7 planted on c1 (95 % of it, 2 % elsewhere), 19 dead."
    rng = np.random.default_rng(seed)
    cs = Concepts.from_assignment(np.repeat(np.arange(3), 100), [f"img{i:03d}" for i in range(N)], method="test",
                                  explained="layer")
    Z = rng.exponential(size=(N, M)) * (rng.random((N, M)) < 0.1)
    member = np.zeros(N, bool)
    member[cs["c1"].members] = True
    Z[:, PLANTED] = np.where(member, rng.uniform(1, 3, N) * (rng.random(N) < 0.95),
                             rng.uniform(0, 0.5, N) * (rng.random(N) < 0.02))
    Z[:, DEAD] = 0
    return cs, Z


def brute(codes: np.ndarray, members: np.ndarray):
    "Reference measures of one latent column against one member set, straight from the definitions."
    N = len(codes)
    y = np.zeros(N, bool)
    y[members] = True
    pos, neg = codes[y], codes[~y]
    auroc = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    order = sorted(range(N), key=lambda i: (-codes[i], i))[: len(members)]
    top = {i for i in order if codes[i] > 0}
    mem = set(members.tolist())
    return {"auroc": auroc, "jaccard": len(top & mem) / len(top | mem),
            "fires_in": (pos > 0).mean(), "fires_out": (neg > 0).mean()}


# ---------------------------------------------------------------- planted latent
@pytest.mark.parametrize("seed", range(5))
def test_planted_latent_is_found_and_noise_stays_near_half(seed):
    cs, Z = planted(seed)
    table = concept_latents(cs, Z, top=3)
    assert table["concept"].tolist() == ["c0"] * 3 + ["c1"] * 3 + ["c2"] * 3
    best = table[table["concept"] == "c1"].iloc[0]
    assert (best["rank"], best["latent"]) == (1, PLANTED)
    assert best["auroc"] > 0.95 and best["jaccard"] > 0.8
    assert best["fires_in"] > 0.9 and best["fires_out"] < 0.05
    full = concept_latents(cs, Z, top=M)
    assert full.attrs["live"] == M - 1 and DEAD not in set(full["latent"])
    assert len(full) == 3 * (M - 1)
    noise = full[full["latent"] != PLANTED]
    assert noise["auroc"].between(0.4, 0.6).all() and noise["jaccard"].max() < 0.3
    assert (table["note"] == "").all()


def test_order_is_auroc_then_jaccard_then_latent():
    cs, Z = planted(1)
    full = concept_latents(cs, Z, top=M)
    for _, block in full.groupby("concept", sort=False):
        assert block["rank"].tolist() == list(range(1, len(block) + 1))
        key = list(zip(-block["auroc"], -block["jaccard"], block["latent"]))
        assert key == sorted(key)
    # exact ties: identical columns tie on every measure and come out by latent index
    Z2 = np.c_[Z[:, [PLANTED]], Z[:, [PLANTED]]]
    t = concept_latents(cs, Z2[:, ::-1], top=2)
    assert t[t["concept"] == "c1"]["latent"].tolist() == [0, 1]


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize("seed", range(3))
def test_measures_match_sklearn_and_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n, m = 120, 9
    codes = rng.integers(0, 4, (n, m)).astype(float) * (rng.random((n, m)) < 0.5)   # many ties, many zeros
    codes[:, 3] = np.round(rng.random(n), 1)                                         # ties without zeros
    codes[:, 5] = rng.normal(size=n)                                                  # negative values too
    items = []
    for k, size in enumerate((5, 30, 60, 119)):                                      # overlapping concepts
        mem = np.sort(rng.choice(n, size, replace=False))
        items.append(Concept(f"k{k}", mem, mem[:3], float(k)))
    cs = Concepts("test", [str(i) for i in range(n)], items, "layer")
    table = concept_latents(cs, codes, top=m, min_fires=0)
    assert len(table) == len(items) * m
    for r in table.itertuples():
        mem = cs[r.concept].members
        y = np.zeros(n, bool)
        y[mem] = True
        assert r.auroc == pytest.approx(roc_auc_score(y, codes[:, r.latent]), abs=1e-12)
        ref = brute(codes[:, r.latent], mem)
        for f in BRIDGE_MEASURES:
            assert getattr(r, f) == pytest.approx(ref[f], abs=1e-12), (r.concept, r.latent, f)


def test_chunked_columns_give_the_same_measures():
    from medinterp.evaluate import _bridge_measures
    cs, Z = planted(0)
    members = [c.members for c in cs]
    whole = _bridge_measures(Z, None, members, np.arange(M))
    tiny = _bridge_measures(Z, None, members, np.arange(M), chunk_bytes=8 * N * 3)    # 3 columns a chunk
    for f in (*BRIDGE_MEASURES, "fires"):
        np.testing.assert_array_equal(whole[f], tiny[f])


# ---------------------------------------------------------------- reverse table
def test_latent_concepts_finds_the_concept_of_the_planted_latent():
    cs, Z = planted(0)
    lc = latent_concepts(Z, cs)
    assert sorted(set(lc["latent"])) == [j for j in range(M) if j != DEAD]
    assert len(lc) == (M - 1) * 3
    first = lc[lc["latent"] == PLANTED].iloc[0]
    assert (first["rank"], first["concept"]) == (1, "c1") and first["auroc"] > 0.9
    for _, block in lc.groupby("latent"):
        assert block["auroc"].is_monotonic_decreasing
    one = latent_concepts(Z, cs, [PLANTED, 2], top=1)
    assert one["latent"].tolist() == [PLANTED, 2] and one["concept"].iloc[0] == "c1"
    # the same numbers both ways
    cl = concept_latents(cs, Z, top=M).set_index(["concept", "latent"])
    for r in lc.itertuples():
        assert cl.loc[(r.concept, r.latent), "auroc"] == r.auroc


def test_latent_concepts_explicit_dead_latent_is_noted():
    cs, Z = planted(0)
    t = latent_concepts(Z, cs, [DEAD], top=1)
    assert t["note"].iloc[0] == "fires on 0 rows (< min_fires=1)" and t["auroc"].iloc[0] == 0.5


# ---------------------------------------------------------------- alignment by id
def test_ids_align_codes_to_concepts():
    cs, Z = planted(0)
    ref = concept_latents(cs, Z, top=3)
    perm = np.random.default_rng(5).permutation(N)
    ids = np.array(cs.ids)[perm]
    pd.testing.assert_frame_equal(concept_latents(cs, Z[perm], ids=ids, top=3), ref)
    # extra images in the codes are ignored, even with NaN rows
    extra = np.vstack([Z[perm], np.full((2, M), np.nan)])
    pd.testing.assert_frame_equal(concept_latents(cs, extra, ids=[*ids, "x1", "x2"], top=3), ref)
    pd.testing.assert_frame_equal(latent_concepts(Z[perm], cs, ids=ids), latent_concepts(Z, cs))
    # same ids, same order: no copy needed, same result
    pd.testing.assert_frame_equal(concept_latents(cs, Z, ids=cs.ids, top=3), ref)


def test_misaligned_ids_name_the_missing_id():
    cs, Z = planted(0)
    ids = list(cs.ids)
    ids[17] = "stranger"
    with pytest.raises(ValueError, match="image id 'img017' of concepts.ids is not among the codes' ids"):
        concept_latents(cs, Z, ids=ids)
    with pytest.raises(ValueError, match="'img003' repeats"):
        concept_latents(cs, Z, ids=[*cs.ids[:-1], "img003"])
    with pytest.raises(ValueError, match="299 ids for 300 rows"):
        concept_latents(cs, Z, ids=cs.ids[:-1])
    with pytest.raises(ValueError, match="not one string"):
        concept_latents(cs, Z, ids="img000")


# ---------------------------------------------------------------- input types and bad inputs
def test_torch_sparse_and_memmap_codes_give_the_same_table(tmp_path):
    cs, Z = planted(0)
    ref = concept_latents(cs, Z, top=3)
    pd.testing.assert_frame_equal(concept_latents(cs, torch.from_numpy(Z).float().requires_grad_(), top=3),
                                  concept_latents(cs, Z.astype(np.float32), top=3))
    pd.testing.assert_frame_equal(concept_latents(cs, sparse.csr_matrix(Z), top=3), ref)
    np.save(tmp_path / "z.npy", Z)
    pd.testing.assert_frame_equal(concept_latents(cs, np.load(tmp_path / "z.npy", mmap_mode="r"), top=3), ref)
    pd.testing.assert_frame_equal(latent_concepts(sparse.csr_matrix(Z), cs), latent_concepts(Z, cs))


def test_bad_inputs_raise_clear_errors():
    cs, Z = planted(0)
    with pytest.raises(ValueError, match="2-D"): concept_latents(cs, Z[:, 0])
    with pytest.raises(ValueError, match="2-D"): concept_latents(cs, Z[None])
    with pytest.raises(ValueError, match="codes has 250 rows but concepts has 300 images"): concept_latents(cs, Z[:250])
    with pytest.raises(ValueError, match="codes has 250 rows but concepts has 300 images"): latent_concepts(Z[:250], cs)
    bad = Z.copy()
    bad[[88, 200], 4] = np.nan
    bad[150, 2] = np.inf
    with pytest.raises(ValueError, match=r"first in row 88 \(image id 'img088'\)"): concept_latents(cs, bad)
    with pytest.raises(ValueError, match=r"first in row 88"): latent_concepts(sparse.csr_matrix(bad), cs)
    for top in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top must be an integer >= 1"): concept_latents(cs, Z, top=top)
        with pytest.raises(ValueError, match="top must be an integer >= 1"): latent_concepts(Z, cs, top=top)
    with pytest.raises(ValueError, match="min_fires must be an integer >= 0"): concept_latents(cs, Z, min_fires=-1)
    with pytest.raises(TypeError, match="numeric"): concept_latents(cs, Z.astype(str))
    with pytest.raises(TypeError, match="concepts must be a Concepts object"): concept_latents(Z, cs)
    with pytest.raises(TypeError, match="concepts must be a Concepts object"): latent_concepts(cs, Z)
    with pytest.raises(IndexError, match="latent 20 is out of range for 20 latents"): latent_concepts(Z, cs, [3, 20])
    with pytest.raises(ValueError, match="latent indices"): latent_concepts(Z, cs, [0.5])


def test_min_fires_drops_rare_latents():
    cs, Z = planted(0)
    counts = (Z > 0).sum(0)
    t = concept_latents(cs, Z, top=M, min_fires=40)
    assert set(t["latent"]) == set(np.flatnonzero(counts >= 40).tolist())
    everything = concept_latents(cs, Z, top=M, min_fires=0)
    assert DEAD in set(everything["latent"])
    assert everything.set_index(["concept", "latent"]).loc[("c0", DEAD), "auroc"] == 0.5


def test_concepts_without_members_or_non_members_are_noted_not_dropped():
    cs, Z = planted(0)
    odd = Concepts("test", cs.ids, [*cs.concepts, Concept("empty", np.zeros(0, int), np.zeros(0, int), -1.0),
                                    Concept("all", np.arange(N), np.arange(9), -2.0)], "layer")
    t = concept_latents(odd, Z, top=2)
    assert t["concept"].tolist() == ["c0", "c0", "c1", "c1", "c2", "c2", "empty", "all"]
    notes = t.set_index("concept")
    assert notes.loc["empty", "note"] == "skipped: the concept has no members (AUROC undefined)"
    assert notes.loc["all", "note"].startswith("skipped: every image is a member")
    assert notes.loc[["empty", "all"], list(BRIDGE_MEASURES)].isna().all().all()
    assert notes.loc[["empty", "all"], "latent"].isna().all()
    pd.testing.assert_frame_equal(t[t["concept"].str.startswith("c")].reset_index(drop=True),
                                  concept_latents(cs, Z, top=2), check_like=False)
    with pytest.warns(UserWarning, match="2 concept\\(s\\) cannot be matched"):
        lc = latent_concepts(Z, odd)
    assert set(lc["concept"]) == {"c0", "c1", "c2"} and set(lc.attrs["skipped"]) == {"empty", "all"}
    only_odd = Concepts("test", cs.ids, odd.concepts[3:], "layer")
    with pytest.warns(UserWarning):
        lo = latent_concepts(Z, only_odd, [PLANTED])
    assert lo["note"].tolist() == ["no concept to match (every concept is skipped)"]


def test_no_live_latent_is_noted():
    cs, _ = planted(0)
    t = concept_latents(cs, np.zeros((N, 4)))
    assert len(t) == 3 and t["note"].str.startswith("no live latent").all()
    assert latent_concepts(np.zeros((N, 4)), cs).empty


# ---------------------------------------------------------------- end to end: RDX concepts vs SAE latents
def test_rdx_concepts_against_sae_latents_end_to_end():
    from medinterp.rdx import RDXConfig, merged_blobs, rdx
    from medinterp.sae import SAEConfig, encode_all, train_sae
    A, B, _ = merged_blobs(seed=0)
    res = rdx(A, B, RDXConfig(mode="paper", n_clusters=3, grid_size=9))
    cs = res.concepts("10")
    assert len(cs) >= 1
    sae = train_sae(B, SAEConfig(architecture="topk", expansion=4, k=4, epochs=10, batch_size=128, lr=3e-3, seed=0),
                    progress=False)
    codes = encode_all(sae, B)
    assert codes.shape == (len(B), 4 * B.shape[1])
    table = concept_latents(cs, codes, top=3)
    assert table["concept"].tolist() == [k for k in cs.keys for _ in range(3)]      # one block per concept, in order
    assert (table["note"] == "").all()
    assert np.isfinite(table["auroc"]).all() and table["auroc"].between(0, 1).all()
    assert table["jaccard"].between(0, 1).all()
    assert table.groupby("concept", sort=False)["rank"].apply(list).tolist() == [[1, 2, 3]] * len(cs)
    lc = latent_concepts(codes, cs, top=1)
    assert len(lc) == int((codes > 0).any(0).sum()) and lc["concept"].isin(cs.keys).all()
    # codes from the store order (reversed) aligned by id give the same table
    rev = concept_latents(cs, codes[::-1], ids=list(cs.ids)[::-1], top=3)
    pd.testing.assert_frame_equal(rev, table)

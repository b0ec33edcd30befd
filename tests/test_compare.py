"""Layer comparison: debiased/biased linear CKA against a direct Gram implementation, invariances, torch == numpy
with gradients, input errors, exact kNN against brute force (ties, duplicates, chunking), kNN overlap levels, the
overview figure."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medinterp.compare import (cka_torch, hsic_biased, hsic_debiased, knn_indices, knn_overlap, linear_cka,
                               overview_figure)

FAST = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------- references written from the definitions
def ref_u_centre(G):
    n = len(G)
    G = G.copy()
    np.fill_diagonal(G, 0.0)
    U = np.empty_like(G)
    s, S = G.sum(1), G.sum()
    for i in range(n):
        for j in range(n):
            U[i, j] = 0.0 if i == j else G[i, j] - s[i] / (n - 2) - s[j] / (n - 2) + S / ((n - 1) * (n - 2))
    return U


def ref_cka(X, Y, debiased=True):
    "CKA straight from rdx.md section 7 (debiased) or the centred Grams H G H (biased), with explicit N x N Grams."
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    n = len(X)
    if debiased:
        Kt, Lt = ref_u_centre(X @ X.T), ref_u_centre(Y @ Y.T)
    else:
        H = np.eye(n) - np.ones((n, n)) / n
        Kt, Lt = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return (Kt * Lt).sum() / np.sqrt((Kt * Kt).sum() * (Lt * Lt).sum())


def brute_knn(X, k):
    X = np.asarray(X, np.float64)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def related(rng, n, dx, dy, noise=1.0):
    X = rng.normal(size=(n, dx))
    Y = X @ rng.normal(size=(dx, dy)) + noise * rng.normal(size=(n, dy))
    return X, Y


def orthogonal(rng, d):
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    return Q * np.sign(np.diag(R))


shapes = st.tuples(st.integers(0, 2**32 - 1), st.integers(4, 40), st.integers(1, 12), st.integers(1, 12))


# ---------------------------------------------------------------- CKA: formula
@FAST
@given(shapes, st.booleans())
def test_cka_matches_direct_gram_formula(args, debiased):
    seed, n, dx, dy = args
    X, Y = related(np.random.default_rng(seed), n, dx, dy)
    assert linear_cka(X, Y, debiased=debiased) == pytest.approx(ref_cka(X, Y, debiased), abs=1e-10)


@pytest.mark.parametrize("n,dx,dy", [(6, 30, 40), (10, 60, 5), (25, 3, 80), (15, 15, 15)])
def test_cka_wide_and_mixed_shapes(n, dx, dy):
    "Both the feature-space and the Gram-space evaluation of |X^T Y|_F^2 agree with the direct formula."
    X, Y = related(np.random.default_rng(n * dx + dy), n, dx, dy)
    for debiased in (True, False):
        assert linear_cka(X, Y, debiased) == pytest.approx(ref_cka(X, Y, debiased), abs=1e-10)


def test_hsic_gram_helpers_match_reference():
    rng = np.random.default_rng(1)
    X, Y = related(rng, 11, 4, 6)
    Gx, Gy = X @ X.T, Y @ Y.T
    assert hsic_debiased(Gx, Gy) == pytest.approx((ref_u_centre(Gx) * ref_u_centre(Gy)).sum(), rel=1e-12)
    H = np.eye(11) - 1 / 11
    assert hsic_biased(Gx, Gy) == pytest.approx((H @ Gx @ H * (H @ Gy @ H)).sum(), rel=1e-12)
    # the diagonal of the Grams does not enter the debiased HSIC
    assert hsic_debiased(Gx + np.diag(rng.random(11)), Gy) == pytest.approx(hsic_debiased(Gx, Gy), rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        hsic_debiased(Gx, Gy[:5, :5])
    with pytest.raises(ValueError, match="square"):
        hsic_debiased(X, Y)


# ---------------------------------------------------------------- CKA: properties
@FAST
@given(shapes, st.floats(0.01, 100.0), st.floats(-1e3, 1e3), st.booleans())
def test_cka_invariances(args, scale, shift, debiased):
    seed, n, dx, dy = args
    rng = np.random.default_rng(seed)
    X, Y = related(rng, n, dx, dy)
    base = linear_cka(X, Y, debiased)
    moved = scale * X @ orthogonal(rng, dx) + shift
    assert linear_cka(moved, Y, debiased) == pytest.approx(base, abs=1e-9)
    assert linear_cka(X, Y @ orthogonal(rng, dy) * scale - shift, debiased) == pytest.approx(base, abs=1e-9)


@FAST
@given(shapes, st.booleans())
def test_cka_symmetric_bounded_and_self_one(args, debiased):
    seed, n, dx, dy = args
    X, Y = related(np.random.default_rng(seed), n, dx, dy)
    c = linear_cka(X, Y, debiased)
    assert c == pytest.approx(linear_cka(Y, X, debiased), abs=1e-12)
    assert -1.0 <= c <= 1.0
    assert linear_cka(X, X, debiased) == pytest.approx(1.0, abs=1e-12)


def test_cka_not_invariant_to_anisotropic_scaling():
    X = np.random.default_rng(2).normal(size=(100, 8))
    assert linear_cka(X, X * np.geomspace(0.1, 10, 8)) < 0.9


def test_debiased_near_zero_where_biased_is_not():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(100, 1000)), rng.normal(size=(100, 1000))
    assert abs(linear_cka(X, Y)) < 0.1
    assert linear_cka(X, Y, debiased=False) > 0.5


def test_cka_large_offset_and_scale_stay_accurate():
    X, Y = related(np.random.default_rng(4), 50, 5, 7)
    want = ref_cka(X, Y)
    assert linear_cka(X * 1e150 + 1e6, Y * 1e-150) == pytest.approx(want, abs=1e-9)
    assert linear_cka(X + 1e8, Y) == pytest.approx(want, abs=1e-6)


def test_cka_constant_features_and_constant_matrices():
    rng = np.random.default_rng(5)
    X, Y = related(rng, 30, 4, 3)
    assert linear_cka(np.c_[X, np.full(30, 0.1)], Y) == pytest.approx(linear_cka(X, Y), abs=1e-12)
    for debiased in (True, False):
        with pytest.warns(RuntimeWarning, match="all rows of X are identical"):
            assert np.isnan(linear_cka(np.full((30, 4), 0.1), Y, debiased))
        with pytest.warns(RuntimeWarning, match="all rows of Y are identical"):
            assert np.isnan(linear_cka(X, np.zeros((30, 2)), debiased))


def test_cka_accepts_float16_memmap_like_inputs_and_lists():
    X, Y = related(np.random.default_rng(6), 20, 3, 3)
    assert linear_cka(X.tolist(), Y.astype(np.float16)) == pytest.approx(ref_cka(X, Y.astype(np.float16)), abs=1e-10)


# ---------------------------------------------------------------- CKA: input errors
def test_cka_input_errors():
    X = np.random.default_rng(7).normal(size=(10, 3))
    with pytest.raises(ValueError, match="X has 10 rows, Y has 9"):
        linear_cka(X, X[:9])
    with pytest.raises(ValueError, match="at least 4 rows"):
        linear_cka(X[:3], X[:3])
    assert np.isfinite(linear_cka(X[:3], X[:3] ** 2, debiased=False))
    with pytest.raises(ValueError, match="at least 2 rows"):
        linear_cka(X[:1], X[:1], debiased=False)
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(X[:, 0], X)
    with pytest.raises(ValueError, match="at least one row and one column"):
        linear_cka(X[:, :0], X)
    bad = X.copy()
    bad[6, 2], bad[8, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"Y has non-finite values in 2 row\(s\); the first is row 6"):
        linear_cka(X, bad)
    with pytest.raises(ValueError, match="X has non-finite values .* first is row 6"):
        linear_cka(bad, X, debiased=False)


# ---------------------------------------------------------------- torch
@pytest.mark.parametrize("n,dx,dy", [(30, 5, 7), (8, 20, 30), (4, 2, 3)])
def test_torch_equals_numpy_and_has_gradients(n, dx, dy):
    X, Y = related(np.random.default_rng(n + dx), n, dx, dy)
    Xt, Yt = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
    c = cka_torch(Xt, Yt)
    assert c.ndim == 0 and c.dtype == torch.float64
    assert c.item() == pytest.approx(linear_cka(X, Y), abs=1e-10)
    (1 - c).backward()
    for T in (Xt, Yt):
        assert T.grad is not None and torch.isfinite(T.grad).all() and T.grad.abs().sum() > 0


def test_torch_gradient_matches_finite_differences():
    X, Y = related(np.random.default_rng(8), 12, 3, 4)
    Xt = torch.tensor(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda A: cka_torch(A, torch.tensor(Y)), (Xt,))


def test_torch_float32_and_errors():
    X, Y = related(np.random.default_rng(9), 50, 6, 6)
    c = cka_torch(torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32))
    assert c.dtype == torch.float32 and c.item() == pytest.approx(linear_cka(X, Y), abs=1e-4)
    with pytest.raises(ValueError, match="X has 50 rows, Y has 49"):
        cka_torch(torch.tensor(X), torch.tensor(Y[:49]))
    with pytest.raises(ValueError, match="at least 4 rows"):
        cka_torch(torch.tensor(X[:3]), torch.tensor(Y[:3]))
    with pytest.raises(ValueError, match="2-D"):
        cka_torch(torch.tensor(X[:, 0]), torch.tensor(Y))


# ---------------------------------------------------------------- kNN
@FAST
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.integers(1, 4), st.integers(1, 9), st.data())
def test_knn_matches_brute_force_on_tied_integer_grids(seed, n, d, batch_size, data):
    "Small integer coordinates: many exact ties and duplicate rows; order must be (distance, index)."
    X = np.random.default_rng(seed).integers(-2, 3, size=(n, d)).astype(np.float64) * 3 + 1000
    k = data.draw(st.integers(1, n - 1))
    got = knn_indices(X, k, batch_size=batch_size)
    assert got.dtype == np.int64 and got.shape == (n, k)
    np.testing.assert_array_equal(got, brute_knn(X, k))
    assert not (got == np.arange(n)[:, None]).any()


def test_knn_float_data_with_duplicate_rows():
    rng = np.random.default_rng(10)
    base = rng.normal(size=(60, 7)) * 5 + 3
    X = base[rng.integers(0, 60, size=150)]            # many duplicate rows at scattered positions
    got = knn_indices(X, 12, batch_size=16)
    np.testing.assert_array_equal(got, brute_knn(X, 12))
    assert not (got == np.arange(150)[:, None]).any()


def test_knn_all_identical_rows_and_errors():
    X = np.ones((5, 3))
    np.testing.assert_array_equal(knn_indices(X, 4), [[1, 2, 3, 4], [0, 2, 3, 4], [0, 1, 3, 4], [0, 1, 2, 4],
                                                      [0, 1, 2, 3]])
    with pytest.raises(ValueError, match="1 <= k < N = 5"):
        knn_indices(X, 5)
    with pytest.raises(ValueError, match="1 <= k < N"):
        knn_indices(X, 0)
    with pytest.raises(TypeError):
        knn_indices(X, True)
    with pytest.raises(ValueError, match="batch_size"):
        knn_indices(X, 2, batch_size=0)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="first is row 3"):
        knn_indices(bad, 2)


def test_knn_overlap_levels():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 8))
    assert knn_overlap(X, X) == 1.0
    assert knn_overlap(X, 2.5 * X @ orthogonal(rng, 8) + 7, k=5) == 1.0
    chance = np.mean([knn_overlap(X, rng.normal(size=(400, 8)), k=10) for _ in range(3)])
    assert chance == pytest.approx(10 / 399, abs=0.01)
    noisy = knn_overlap(X, X + 0.3 * rng.normal(size=X.shape), k=10)
    assert chance < noisy < 1.0
    with pytest.raises(ValueError, match="X has 400 rows, Y has 10"):
        knn_overlap(X, X[:10])
    with pytest.raises(ValueError, match="1 <= k < N"):
        knn_overlap(X[:10], X[:10], k=10)


def test_knn_overlap_hand_example():
    # 1-D: X orders points 0..5 on a line, Y swaps the roles of the two end pairs
    X = np.array([[0.], [1.], [2.], [3.], [4.], [5.]])
    Y = X[[1, 0, 2, 3, 5, 4]]
    ix, iy = knn_indices(X, 1), knn_indices(Y, 1)
    want = np.mean([len(set(a) & set(b)) for a, b in zip(ix.tolist(), iy.tolist())])
    assert knn_overlap(X, Y, k=1) == pytest.approx(want)


# ---------------------------------------------------------------- figure
@pytest.mark.parametrize("metrics", [["cka"], ["cka", "knn_overlap"], ["knn_overlap", "mean_abs_delta"],
                                     ["cka", "knn_overlap", "mean_abs_delta"]])
def test_overview_figure_traces(metrics):
    import plotly.graph_objects as go
    pairs = [f"trunk.blocks.{i}→trunk.blocks.{i + 1}" for i in range(4)]
    rng = np.random.default_rng(12)
    table = pd.DataFrame({"pair": pairs, "other": 1, **{m: rng.random(4) for m in metrics}})
    fig = overview_figure(table)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == len(metrics)
    for tr, m in zip(fig.data, metrics):
        assert list(tr.x) == pairs
        np.testing.assert_allclose(np.asarray(tr.y, float), table[m].to_numpy())
        assert tr.hovertemplate and "%{y" in tr.hovertemplate


def test_overview_figure_errors():
    with pytest.raises(ValueError, match="'pair' column"):
        overview_figure(pd.DataFrame({"cka": [1.0]}))
    with pytest.raises(ValueError, match="at least one of"):
        overview_figure(pd.DataFrame({"pair": ["a→b"], "foo": [1.0]}))


def test_cka_degenerate_self_similarity_is_nan():
    "One-hot rows: the Gram is the identity, whose U-centred form is zero (up to rounding): CKA is undefined."
    Y = np.random.default_rng(13).normal(size=(7, 3))
    for n in (4, 7):
        with pytest.warns(RuntimeWarning, match="degenerate"):
            assert np.isnan(linear_cka(np.eye(n) * 3, Y[:n]))

"""AS-RSI against numpy's SVD: exact recovery, near-optimal error, honest error reports."""
import numpy as np
import pytest

import adapprox
from reference import truncated_svd_error

SHAPES = [(50, 80), (80, 50), (1, 40), (40, 1), (37, 37)]


def decaying(m, n, rate=0.7, seed=0):
    rng = np.random.default_rng(seed)
    r = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, r)))
    v, _ = np.linalg.qr(rng.standard_normal((n, r)))
    return (u * rate ** np.arange(r)) @ v.T


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(60, 40), (40, 60)])
def test_exact_recovery_of_low_rank(shape, dtype):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((shape[0], 5)) @ rng.standard_normal((5, shape[1]))).astype(dtype)
    q, u, err = adapprox.as_rsi(a, rank=1, max_rank=20, tol=1e-4)
    assert q.dtype == dtype and u.dtype == dtype
    assert q.shape[1] == u.shape[1] <= 10
    tol = 1e-10 if dtype == np.float64 else 1e-4
    assert np.linalg.norm(a - q @ u.T) / np.linalg.norm(a) < tol
    assert np.allclose(q.T @ q, np.eye(q.shape[1]), atol=100 * np.finfo(dtype).eps)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1, 3, 8])
def test_error_close_to_truncated_svd(shape, k):
    a = decaying(*shape)
    k = min(k, min(shape))
    q, u, err = adapprox.as_rsi(a, rank=k, min_rank=k, max_rank=k, tol=0.0)
    assert q.shape == (shape[0], k) and u.shape == (shape[1], k)
    true = np.linalg.norm(a - q @ u.T) / np.linalg.norm(a)
    best = truncated_svd_error(a, k)
    assert true <= 1.05 * best + 1e-12, (true, best)
    assert err == pytest.approx(true, rel=1e-6, abs=1e-9)  # the reported error is the true one


@pytest.mark.parametrize("shape", SHAPES)
def test_adaptive_rank_meets_tolerance(shape):
    a = decaying(*shape, rate=0.5)
    for tol in [1e-1, 1e-2, 1e-4]:
        q, u, err = adapprox.as_rsi(a, tol=tol, max_rank=min(shape))
        true = np.linalg.norm(a - q @ u.T) / np.linalg.norm(a)
        assert true <= tol * (1 + 1e-6) and err == pytest.approx(true, rel=1e-6, abs=1e-9)
        # never more than needed by much: the optimal rank for this tolerance, plus the oversampling
        best_k = next(k for k in range(1, min(shape) + 1) if truncated_svd_error(a, k) <= tol)
        assert best_k <= q.shape[1] <= best_k + 1


def test_rank_bounds_and_cap():
    a = decaying(64, 48, rate=0.95)
    q, u, err = adapprox.as_rsi(a, tol=1e-6)  # default cap: min(m, n) // 4 = 12
    assert q.shape[1] == 12 and err > 1e-6
    q, u, err = adapprox.as_rsi(a, min_rank=20, max_rank=30, tol=0.5)
    assert q.shape[1] == 20


def test_float32_error_report_and_inputs_from_torch():
    torch = pytest.importorskip("torch")
    a = decaying(70, 30, rate=0.8).astype(np.float32)
    q, u, err = adapprox.as_rsi(torch.from_numpy(a), rank=4, min_rank=4, max_rank=4, tol=0)
    true = np.linalg.norm(a.astype(np.float64) - q.astype(np.float64) @ u.T.astype(np.float64)) / np.linalg.norm(a)
    assert err == pytest.approx(true, rel=1e-3)


def test_read_only_input_is_fine_and_unchanged():
    a = decaying(20, 30)
    a.setflags(write=False)
    before = a.copy()
    adapprox.as_rsi(a, rank=2)
    assert np.array_equal(a, before)


def test_deterministic_in_seed():
    a = np.random.default_rng(3).standard_normal((40, 30))
    q1, u1, _ = adapprox.as_rsi(a, rank=3, min_rank=3, max_rank=3, seed=7)
    q2, u2, _ = adapprox.as_rsi(a, rank=3, min_rank=3, max_rank=3, seed=7)
    q3, u3, _ = adapprox.as_rsi(a, rank=3, min_rank=3, max_rank=3, seed=8)
    assert np.array_equal(q1, q2) and np.array_equal(u1, u2)
    assert not np.array_equal(q1 @ u1.T, q3 @ u3.T)


def test_zero_matrix():
    q, u, err = adapprox.as_rsi(np.zeros((5, 7)))
    assert err == 0.0 and np.all(q @ u.T == 0)


@pytest.mark.parametrize("bad, exc, words", [
    (np.zeros(5), ValueError, "2-D"),
    (np.zeros((3, 4), np.int32), TypeError, "dtype"),
    (np.zeros((0, 4)), ValueError, "non-empty"),
    ([[1.0, 2.0]], TypeError, "DLPack"),
])
def test_bad_input(bad, exc, words):
    with pytest.raises(exc, match=words):
        adapprox.as_rsi(bad)


@pytest.mark.parametrize("kw, words", [
    (dict(min_rank=0), "min_rank"), (dict(rank=0), "rank"), (dict(min_rank=5, max_rank=2), "max_rank"),
    (dict(tol=-1.0), "tol"), (dict(oversample=-1), "oversample"), (dict(power_iters=-2), "power_iters"),
])
def test_bad_options(kw, words):
    with pytest.raises(ValueError, match=words):
        adapprox.as_rsi(np.ones((4, 4)), **kw)


@pytest.mark.parametrize("rate", [0.9, 0.5, 0.05])
def test_tall_sketches_stay_orthonormal(rate):
    # 20000 x 40 sketches take the CholeskyQR2 path (with Householder fallback when the
    # spectrum decays too fast for Cholesky): Q must be orthonormal and the error near optimal.
    a = decaying(20000, 60, rate=rate, seed=4).astype(np.float32)
    for k in (8, 30):
        q, u, err = adapprox.as_rsi(a, rank=k, min_rank=k, max_rank=k, tol=0)
        assert np.abs(q.T.astype(np.float64) @ q - np.eye(k)).max() < 2e-5
        true = np.linalg.norm(a - q.astype(np.float64) @ u.T) / np.linalg.norm(a)
        best = truncated_svd_error(a, k)
        assert true <= 1.05 * best + 1e-5, (true, best)  # 1e-5: float32's floor at this size


def test_tall_rank_deficient_sketch():
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((30000, 3)) @ rng.standard_normal((3, 50))).astype(np.float32)
    q, u, err = adapprox.as_rsi(a, rank=10, min_rank=10, max_rank=10, tol=0)  # sketch wider than the rank
    assert np.abs(q.T.astype(np.float64) @ q - np.eye(10)).max() < 2e-5
    assert np.linalg.norm(a - q @ u.T) / np.linalg.norm(a) < 1e-5

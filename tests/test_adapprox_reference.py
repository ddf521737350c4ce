"""Adapprox against the dense float64 formula wherever the factorization is exact."""
import numpy as np
import pytest

import adapprox.numpy as anp
from reference import DenseAdapprox

HYPER = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.05)


def rel_err(x, ref, start):
    """Error relative to the distance travelled: far stricter than relative to |theta|."""
    return np.linalg.norm(x - ref) / np.linalg.norm(ref - start)


def close(x, ref):
    return np.linalg.norm(x - ref) / np.linalg.norm(ref) < 1e-6


@pytest.mark.parametrize("shape", [(12, 7), (7, 12), (1, 9), (9, 1), (4, 3, 5), (17,), ()])
@pytest.mark.parametrize("b1", [0.9, 0.0])
def test_full_rank_matches_dense_formula(shape, b1):
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(shape).astype(np.float32)
    w = theta0.copy()
    full = min(shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else None
    hyper = dict(HYPER, betas=(b1, 0.999))
    opt = anp.Adapprox([w], tol=0.0, max_rank=full, **hyper)
    ref = DenseAdapprox(theta0, **hyper)
    for t in range(20):
        g = rng.standard_normal(shape).astype(np.float32)
        opt.step([g])
        ref.step(g)
        assert close(w, ref.theta), t
    assert rel_err(w, ref.theta, theta0) < 1e-4
    if full:
        assert opt.memory_report()["params"][0]["rank"] == full


def test_clip_threshold_and_large_gradients():
    # Gradients spanning 3 orders of magnitude, clip active at every step. (Entries of a float32
    # factorization are accurate relative to ||V||, not each to itself: see README, "Precision".)
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal((10, 6)).astype(np.float32)
    w = theta0.copy()
    hyper = dict(HYPER, clip_threshold=0.3)
    opt = anp.Adapprox([w], tol=0.0, max_rank=6, **hyper)
    ref = DenseAdapprox(theta0, **hyper)
    for _ in range(20):
        g = (rng.standard_normal((10, 6)) * 10.0 ** rng.integers(-1, 2, size=(10, 6))).astype(np.float32)
        opt.step([g])
        ref.step(g)
    assert close(w, ref.theta) and rel_err(w, ref.theta, theta0) < 1e-4


@pytest.mark.parametrize("shape", [(16, 9), (5, 30)])
def test_rank_one_gradients_match_at_rank_one(shape):
    # G_t = c_t (s_t * a)(r_t * b)^T with random signs: G_t^2 = c_t^2 (a^2)(b^2)^T, so V stays rank 1.
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.5, 2, shape[0]), rng.uniform(0.5, 2, shape[1])
    theta0 = rng.standard_normal(shape).astype(np.float32)
    w = theta0.copy()
    opt = anp.Adapprox([w], rank=1, **HYPER)  # default tol and max rank: AS-RSI must settle at 1
    ref = DenseAdapprox(theta0, **HYPER)
    for _ in range(20):
        c = rng.uniform(0.1, 3)
        g = (c * np.outer(rng.choice([-1, 1], shape[0]) * a, rng.choice([-1, 1], shape[1]) * b)).astype(np.float32)
        opt.step([g])
        ref.step(g)
    assert opt.memory_report()["params"][0]["rank"] == 1
    assert close(w, ref.theta) and rel_err(w, ref.theta, theta0) < 1e-4


def test_cosine_guidance_formula():
    # With guidance, the first-moment step is scaled by s = (1 + cos(M_t, Mhat_t)) / 2.
    rng = np.random.default_rng(3)
    theta0 = rng.standard_normal(20).astype(np.float32)
    w = theta0.copy()
    opt = anp.Adapprox([w], cosine_guidance=True, **HYPER)
    theta, v, m = theta0.astype(np.float64), np.zeros(20), np.zeros(20)
    lr, (b1, b2), eps, wd = HYPER["lr"], HYPER["betas"], HYPER["eps"], HYPER["weight_decay"]
    for _ in range(10):
        g = rng.standard_normal(20).astype(np.float32).astype(np.float64)
        opt.step([g.astype(np.float32)])
        v = b2 * v + (1 - b2) * g * g
        mhat = g / (np.sqrt(v) + eps)
        mhat /= max(1.0, np.sqrt(np.mean(mhat ** 2)))
        m = b1 * m + (1 - b1) * mhat
        s = 0.5 * (1 + m @ mhat / np.linalg.norm(m) / np.linalg.norm(mhat))
        theta = theta - lr * (s * m + wd * theta)
    assert close(w, theta) and rel_err(w, theta, theta0) < 1e-4


def test_maximize_is_negated_gradient():
    rng = np.random.default_rng(4)
    w1 = rng.standard_normal((6, 5)).astype(np.float32)
    w2 = w1.copy()
    o1, o2 = anp.Adapprox([w1], maximize=True, **HYPER), anp.Adapprox([w2], **HYPER)
    for _ in range(5):
        g = rng.standard_normal((6, 5)).astype(np.float32)
        o1.step([g])
        o2.step([-g])
    assert np.array_equal(w1, w2)


def test_wide_matrix_full_rank_matches_dense_formula():
    # 64 x 20000 at full rank: the transposed products take the column-split path.
    rng = np.random.default_rng(6)
    theta0 = rng.standard_normal((64, 20000)).astype(np.float32)
    w = theta0.copy()
    opt = anp.Adapprox([w], tol=0.0, max_rank=64, **HYPER)
    ref = DenseAdapprox(theta0, **HYPER)
    for _ in range(4):
        g = rng.standard_normal((64, 20000)).astype(np.float32)
        opt.step([g])
        ref.step(g)
    assert opt.memory_report()["params"][0]["rank"] == 64
    # float32 factors are accurate to about eps * ||V||_F per entry, i.e. eps * sqrt(m n) relative
    # (about 1e-4 here): looser than for small matrices, still far below the step size.
    assert close(w, ref.theta) and rel_err(w, ref.theta, theta0) < 1e-3


@pytest.mark.parametrize("shape", [(300, 40), (40, 3000)])
def test_results_do_not_depend_on_thread_count(shape):
    import adapprox

    def run(threads):
        adapprox.set_num_threads(threads)
        rng = np.random.default_rng(7)
        w = rng.standard_normal(shape).astype(np.float32)
        opt = anp.Adapprox([w], **HYPER)
        for _ in range(5):
            opt.step([rng.standard_normal(shape).astype(np.float32)])
        return w, opt.state_dict()["state"][0]

    n = adapprox.num_threads()
    try:
        (w1, s1), (w3, s3) = run(1), run(3)
    finally:
        adapprox.set_num_threads(n)
    assert np.array_equal(w1, w3) and s1["factor_q"].shape == s3["factor_q"].shape
    assert np.array_equal(s1["factor_q"], s3["factor_q"])

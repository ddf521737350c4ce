"""AdaGram against independent float64 NumPy references (tests/reference.py): the dense, exact
factor L_t at full rank (norm of full-matrix AdaGrad's step, L_t L_t^T = G_t), the KSL truncation
at low rank, the memory bound of the state, and convergence at every rank on least squares and
logistic regression. The table-wide checks are in test_battery.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import adapprox.numpy as anp
import adapprox.torch as at
from conftest import native_threads
from reference import (DenseAdagramFactor, DenseForgettingAdagram, DenseFullMatrixAdagrad, LowRankAdagram,
                       gram_gradient)


def gradients(n, steps, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((n, n)) / np.sqrt(n)  # correlated coordinates
    return [mix @ rng.standard_normal(n) for _ in range(steps)]


def factor_of(state, eps):
    """L = ((I - P Q^T) / sqrt(eps))^-1 from an exported state."""
    P, Q = state["factor_p"], state["factor_q"]
    return np.linalg.inv((np.eye(len(P)) - P @ Q.T) / np.sqrt(eps))


@pytest.mark.parametrize("rank", [12, 50], ids=["rank=n", "rank>n"])
def test_full_rank_is_exact_factor_and_full_matrix_norm(rank):
    n, eps, lr = 12, 1e-3, 0.5
    w, v = np.zeros(n), np.zeros(n)
    ours = anp.AdaGram([w], lr=lr, rank=rank, eps=eps)
    full = anp.FullMatrixAdagrad([v], lr=lr, eps=eps)
    dense = DenseAdagramFactor(n, eps)
    for t, g in enumerate(gradients(n, 30)):  # 30 steps > n: the KSL step runs at rank n from step 13
        before, before_full = w.copy(), v.copy()
        ours.step([g])
        full.step([g])
        step = (before - w) / lr
        np.testing.assert_allclose(step, dense.direction(g), rtol=1e-8, atol=1e-12, err_msg=f"step {t + 1}")
        # same norm as full-matrix AdaGrad's G^-1/2 g (a different direction)
        assert np.linalg.norm(step) == pytest.approx(np.linalg.norm((before_full - v) / lr), rel=1e-9)
        st = ours.state_dict()["state"][0]
        assert st["factor_p"].shape == (n, min(t + 1, n))
        L = factor_of(st, eps)
        np.testing.assert_allclose(L @ L.T, dense.G, rtol=1e-8, atol=1e-8 * np.abs(dense.G).max())
    assert not np.allclose(step / np.linalg.norm(step), (before_full - v) / np.linalg.norm(before_full - v))


@pytest.mark.parametrize("forget", [1.0, 0.8], ids=["no-forgetting", "forget=0.8"])
@pytest.mark.parametrize("rank", [1, 2, 4])
def test_low_rank_follows_the_ksl_reference(rank, forget):
    """rank < n: the KSL truncation; with forgetting, the discounted term forget P Q^T enters the
    growth and the truncation."""
    n, eps, lr = 10, 1e-2, 0.1
    w = np.zeros(n)
    ours = anp.AdaGram([w], lr=lr, rank=rank, eps=eps, forget=forget)
    ref = LowRankAdagram(n, eps, rank, forget)
    for t, g in enumerate(gradients(n, 25, seed=rank)):
        before = w.copy()
        ours.step([g])
        np.testing.assert_allclose((before - w) / lr, ref.direction(g), rtol=1e-9, atol=1e-12, err_msg=f"step {t + 1}")
        st = ours.state_dict()["state"][0]
        # P Q^T is the same matrix (the factors themselves depend on QR sign conventions)
        np.testing.assert_allclose(st["factor_p"] @ st["factor_q"].T, ref.W, atol=1e-9)


@pytest.mark.parametrize("forget", [0.0, 0.5, 0.9])
def test_forgetting_at_full_rank_is_the_dense_float64_recursion(forget):
    """rank >= n: the factors are exact, so every step equals the dense recursion on L^-1."""
    n, eps, lr = 8, 1e-2, 0.3
    w = np.zeros(n)
    ours = anp.AdaGram([w], lr=lr, rank=n, eps=eps, forget=forget)
    dense = DenseForgettingAdagram(n, eps, forget)
    plain = LowRankAdagram(n, eps, n)  # no forgetting: must differ once there is history
    for t, g in enumerate(gradients(n, 20, seed=3)):  # KSL steps from step 9 on
        before = w.copy()
        ours.step([g])
        want = dense.direction(g)
        np.testing.assert_allclose((before - w) / lr, want, rtol=1e-9, atol=1e-12, err_msg=f"step {t + 1}")
        other = plain.direction(g)
        if t >= 1:
            assert not np.allclose(want, other, rtol=1e-6)
        st = ours.state_dict()["state"][0]
        np.testing.assert_allclose((np.eye(n) - st["factor_p"] @ st["factor_q"].T) / np.sqrt(eps), dense.M,
                                   atol=1e-9 * np.abs(dense.M).max())


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_forgetting_converges_on_least_squares_where_plain_adagram_stalls(rank):
    """Isotropic least squares with f* = 0: the paper's AdaGram (forget = 1) stalls near 1e-2 in
    300 iterations at every rank; with forget = 0.9 it reaches f <= 1e-10."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 24))
    b = A @ rng.standard_normal(24)
    f = lambda x: 0.5 * np.sum((A @ x - b) ** 2) / len(b)  # noqa: E731
    final = {}
    for forget in (1.0, 0.9):
        x = np.zeros(24)
        opt = anp.AdaGram([x], lr=0.1, rank=rank, forget=forget)
        for _ in range(300):
            opt.step([A.T @ (A @ x - b) / len(b)])
        final[forget] = f(x)
    assert final[0.9] <= 1e-10, final
    assert final[1.0] > 1e-3, final


@pytest.mark.parametrize("forget", [-0.1, 1.5, float("nan")])
def test_bad_forget_is_named(forget):
    with pytest.raises(ValueError, match="forget"):
        at.AdaGram([torch.zeros(3, requires_grad=True)], forget=forget)


def test_weight_decay_maximize_and_lr_decay_enter_like_adagrad():
    n, eps = 6, 1e-2
    kw = dict(lr=0.2, rank=2, lr_decay=0.1, weight_decay=0.05, eps=eps, maximize=True)
    rng = np.random.default_rng(5)
    w = rng.standard_normal(n)
    theta = w.copy()
    ours = anp.AdaGram([w], **kw)
    ref = LowRankAdagram(n, eps, 2)
    for t in range(8):
        g = rng.standard_normal(n)
        theta = theta - 0.2 / (1 + t * 0.1) * ref.direction(gram_gradient(g, theta, 0.05, True))
        ours.step([g])
        np.testing.assert_allclose(w, theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_state_stays_within_its_memory_bound(rank):
    shapes = [(40,), (5, 6), (2,), ()]
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    opt = at.AdaGram(params, rank=rank)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    report = opt.memory_report()
    for p, entry in zip(params, report["params"]):
        k = min(rank, p.numel())
        assert entry["rank"] == k
        assert entry["state_bytes"] == 2 * 8 * p.numel() * k  # P and Q, float64, n x k
        st = opt.state[p]
        assert st["factor_p"].shape == st["factor_q"].shape == (p.numel(), k)
        assert st["factor_p"].dtype == st["factor_q"].dtype == torch.float64
    assert report["total_bytes"] == sum(16 * p.numel() * min(rank, p.numel()) for p in params)


def least_squares(seed=0, m=200, n=24):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) @ np.diag(np.logspace(0, -1, n)) @ np.linalg.qr(rng.standard_normal((n, n)))[0]
    y = A @ rng.standard_normal(n) + 0.01 * rng.standard_normal(m)
    best = np.linalg.lstsq(A, y, rcond=None)[0]
    loss = lambda w: 0.5 * np.mean((A @ w - y) ** 2)  # noqa: E731
    return loss, (lambda w: A.T @ (A @ w - y) / m), loss(best)


def logistic(seed=0, m=400, n=24):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) @ np.diag(np.logspace(0, -1, n))
    y = (A @ rng.standard_normal(n) + 0.5 * rng.standard_normal(m) > 0).astype(float)
    loss = lambda w: np.mean(np.logaddexp(0, A @ w) - y * (A @ w))  # noqa: E731
    grad = lambda w: A.T @ (1 / (1 + np.exp(-(A @ w))) - y) / m  # noqa: E731
    w = np.zeros(n)
    for _ in range(30):  # Newton: the optimum
        pr = 1 / (1 + np.exp(-(A @ w)))
        w -= np.linalg.solve(A.T @ (A * (pr * (1 - pr))[:, None]) / m, grad(w))
    return loss, grad, loss(w)


# (problem, lr, eps, steps, required fraction of the initial excess loss)
PROBLEMS = {"least-squares": (least_squares, 0.3, 0.1, 300, 1e-2), "logistic": (logistic, 1.0, 1e-2, 300, 0.1)}


@pytest.mark.parametrize("rank", [1, 2, 5, 24])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_converges_at_every_rank(problem, rank):
    make, lr, eps, steps, frac = PROBLEMS[problem]
    loss, grad, best = make()
    w = np.zeros(24)
    opt = anp.AdaGram([w], lr=lr, rank=rank, eps=eps)
    start = loss(w) - best
    for _ in range(steps):
        opt.step([grad(w)])
    assert loss(w) - best < frac * start, f"excess loss {start:.3g} -> {loss(w) - best:.3g}"


def test_state_of_a_higher_rank_is_refused_untouched():
    w = np.ones(5)
    opt = anp.AdaGram([w], rank=3)
    for g in gradients(5, 4):
        opt.step([g])
    saved = opt.state_dict()
    low = anp.AdaGram([w.copy()], rank=2)
    low.load_state_dict({"state": saved["state"]})  # the rank-3 state, this optimizer's rank=2
    before = low.params[0].copy()
    with pytest.raises(ValueError, match=r"params\[0\].*rank 3.*rank=2"):
        low.step([np.ones(5)])
    assert np.array_equal(low.params[0], before) and low.state[0]["factor_p"].shape[1] == 3
    assert low.state[0]["step"] == 4
    higher = anp.AdaGram([w.copy()], rank=4)  # a lower-rank state simply grows
    higher.load_state_dict({"state": saved["state"]})
    higher.step([np.ones(5)])
    assert higher.state[0]["factor_p"].shape[1] == 4


@pytest.mark.parametrize("rank, error", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_rank_is_named(rank, error):  # the other hyperparameters: test_full_matrix_adagrad.py
    with pytest.raises(error, match="rank"):
        at.AdaGram([torch.zeros(2, requires_grad=True)], rank=rank)
    with pytest.raises(error, match="rank"):
        anp.AdaGram([np.zeros(2)], rank=rank)


def test_full_matrix_reference_is_consistent_with_the_dense_factor():
    """Sanity of the two references against each other: |L_t^-1 g| == |G_t^-1/2 g|."""
    n, eps = 5, 1e-2
    full, dense = DenseFullMatrixAdagrad(n, eps=eps), DenseAdagramFactor(n, eps)
    for g in gradients(n, 8):
        assert np.linalg.norm(dense.direction(g)) == pytest.approx(np.linalg.norm(full.direction(g, np.zeros(n))))


@pytest.mark.parametrize("name", ["AdaGram", "FullMatrixAdagrad"])
def test_results_do_not_depend_on_thread_count(name):
    rng = np.random.default_rng(4)
    shapes = [(30, 20), (3, 5, 4), (50,), (), (7,)]
    gs = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(5)]
    outs = []
    for threads in (1, 3):
        with native_threads(threads):
            ws = [np.array(np.ones(s, np.float32) * 0.5) for s in shapes]
            opt = getattr(anp, name)(ws, **({"rank": 3} if name == "AdaGram" else {}))
            for g in gs:
                opt.step([np.array(x) for x in g])
            outs.append(ws)
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


def test_large_parameter_takes_the_blocked_path_exactly_and_thread_independently():
    """n = 20000 >= 2 x 8192 rows: the KSL's QRs run as tall-skinny QRs over row blocks and its
    products by row blocks on the pool; still the reference's numbers, with 1 thread or 3."""
    n, rank, eps, lr = 20000, 3, 1e-2, 0.1
    rng = np.random.default_rng(7)
    base = rng.standard_normal((4, n))  # gradients in a few shared directions, plus noise
    grads = [rng.standard_normal(4) @ base + 0.1 * rng.standard_normal(n) for _ in range(6)]
    ref = LowRankAdagram(n, eps, rank)
    expected = [ref.direction(g) for g in grads]
    finals = []
    for threads in (1, 3):
        with native_threads(threads):
            w = np.zeros(n)
            opt = anp.AdaGram([w], lr=lr, rank=rank, eps=eps)
            for t, (g, d) in enumerate(zip(grads, expected)):
                prev = w.copy()
                opt.step([g])
                np.testing.assert_allclose((prev - w) / lr, d, rtol=1e-8, atol=1e-12, err_msg=f"step {t + 1}")
            finals.append(w)
    assert np.array_equal(finals[0], finals[1])

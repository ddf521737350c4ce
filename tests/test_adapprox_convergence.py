"""Adapprox trains at every rank (the clamped-reconstruction failure mode must not come back)."""
import numpy as np
import pytest

import adapprox.numpy as anp

RANKS = [1, 2, 4, 8, 16, 24, 32]


def least_squares(seed=0, n=256, d=64, k=32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w_true = rng.standard_normal((d, k))
    y = x @ w_true + 0.01 * rng.standard_normal((n, k))
    return x, y


def ls_loss_grad(w, x, y):
    r = x @ w - y
    return float(np.mean(r ** 2)), (2.0 / r.size) * (x.T @ r)


@pytest.mark.parametrize("rank", RANKS)
def test_least_squares_converges_at_every_rank(rank):
    x, y = least_squares()
    w = np.zeros((64, 32), np.float32)
    opt = anp.Adapprox([w], lr=1e-2, rank=rank, min_rank=rank, max_rank=rank, tol=0.0)
    start, _ = ls_loss_grad(w, x, y)
    for _ in range(300):
        loss, g = ls_loss_grad(w.astype(np.float64), x, y)
        opt.step([g.astype(np.float32)])
    loss, _ = ls_loss_grad(w.astype(np.float64), x, y)
    assert opt.memory_report()["params"][0]["rank"] == rank
    assert loss < 0.01 * start, (rank, start, loss)


def test_adaptive_rank_converges():
    x, y = least_squares(seed=1)
    w = np.zeros((64, 32), np.float32)
    opt = anp.Adapprox([w], lr=1e-2)  # defaults: rank 1..8, tol 1e-2
    start, _ = ls_loss_grad(w, x, y)
    for _ in range(300):
        _, g = ls_loss_grad(w.astype(np.float64), x, y)
        opt.step([g.astype(np.float32)])
    loss, _ = ls_loss_grad(w.astype(np.float64), x, y)
    assert loss < 0.01 * start


def softmax_xent(w, b, x, labels):
    z = x @ w + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.mean(np.log(p[np.arange(n), labels] + 1e-12))
    p[np.arange(n), labels] -= 1
    return loss, x.T @ p / n, p.mean(axis=0), p


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_multinomial_logistic_regression(rank):
    rng = np.random.default_rng(5)
    centers = 3 * rng.standard_normal((10, 40))
    labels = rng.integers(0, 10, 600)
    x = centers[labels] + rng.standard_normal((600, 40))
    w, b = np.zeros((40, 10), np.float32), np.zeros(10, np.float32)
    opt = anp.Adapprox([w, b], lr=1e-2, rank=rank, min_rank=rank, max_rank=rank, tol=0.0)
    start = softmax_xent(w, b, x, labels)[0]
    for _ in range(200):
        _, gw, gb, _ = softmax_xent(w.astype(np.float64), b.astype(np.float64), x, labels)
        opt.step([gw.astype(np.float32), gb.astype(np.float32)])
    loss, _, _, p = softmax_xent(w.astype(np.float64), b.astype(np.float64), x, labels)
    acc = np.mean(np.argmax(x @ w + b, axis=1) == labels)
    assert loss < 0.1 * start and acc > 0.97, (loss, acc)


def test_small_mlp_reaches_adamw_loss():
    """Stated tolerance: after 400 steps at the same lr and weight decay, Adapprox's training MSE is
    within 1e-3 (absolute) or 25% of torch AdamW's, from an initial MSE of about 1."""
    torch = pytest.importorskip("torch")
    import adapprox.torch as atorch

    def run(make_opt):
        torch.manual_seed(0)
        x = torch.randn(512, 16)
        y = torch.sin(x[:, :4].sum(1, keepdim=True)) + 0.5 * x[:, 4:5] ** 2
        model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                    torch.nn.Tanh(), torch.nn.Linear(64, 1))
        opt = make_opt(model.parameters())
        start = torch.nn.functional.mse_loss(model(x), y).item()
        for _ in range(400):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        return start, torch.nn.functional.mse_loss(model(x), y).item()

    start, adamw = run(lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=1e-2))
    _, ours = run(lambda p: atorch.Adapprox(p, lr=3e-3, weight_decay=1e-2))
    assert start > 0.5
    assert ours < max(1.25 * adamw, adamw + 1e-3), (ours, adamw)

"""PureTorchAdapprox: a straightforward pure-PyTorch Adapprox, the peer the native core is measured against.

Same math as ``adapprox.torch.Adapprox`` (no bias correction); for each matrix parameter G (m x n,
N-D viewed as (shape[0], -1))::

    V     = b2 Q U^T + (1 - b2) G^2               # materialised dense
    den   = b2 |Q U^T| + (1 - b2) G^2              # old factors
    Mhat  = G / (sqrt(den) + eps);  Mhat /= max(1, RMS(Mhat) / d)
    M     = b1 M + (1 - b1) Mhat                   # M = Mhat when b1 == 0
    p    -= lr (M + wd p)
    Q, U  = randomized subspace iteration of V     # rank in [min_rank, max_rank], doubled until tol

1-D parameters keep a dense second moment. The sketch is Gaussian with its own generator, so the
factors are not bit-identical to the native ones (which use a counter-based RNG).
"""
from __future__ import annotations

import torch


def _qr_q(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(a, mode="reduced").Q


def low_rank_factor(v, rank, min_rank, max_rank, tol, oversample, power_iters, generator):
    """Q (m x r), U (n x r) with Q U^T ~ v, r the smallest rank in [min_rank, max_rank] with
    relative Frobenius error <= tol; the sketch is widened (rank doubled) while tol is out of reach."""
    m, n = v.shape
    full = min(m, n)
    max_rank = min(full, max_rank if max_rank is not None else max(1, full // 4))
    min_rank = min(min_rank, full)
    max_rank = max(max_rank, min_rank)
    k = min(max(rank, min_rank), max_rank)
    v_sq = v.square().sum()
    while True:
        w = min(full, k + oversample)
        omega = torch.randn(n, w, generator=generator, dtype=v.dtype).to(v.device)  # CPU generator, any device
        q = _qr_q(v @ omega)
        for _ in range(power_iters):
            q = _qr_q(v @ _qr_q(v.T @ q))
        b = q.T @ v                                     # w x n
        w_left, s, _ = torch.linalg.svd(b, full_matrices=False)
        cap = min(w, max_rank)
        err = ((v_sq - torch.cumsum(s.square(), 0)).clamp_min(0) / v_sq.clamp_min(1e-30)).sqrt()[:cap]
        ok = (err <= tol) & (torch.arange(1, cap + 1, device=v.device) >= min_rank)
        if bool(ok.any()):
            r = int(ok.nonzero()[0]) + 1
        elif cap < max_rank and w < full:
            k = min(2 * k, max_rank)
            continue
        else:
            r = cap
        q_new = q @ w_left[:, :r]
        return q_new, v.T @ q_new


class PureTorchAdapprox(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0,
                 rank=1, min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1, seed=0):
        defaults = dict(lr=lr, betas=betas, eps=eps, clip_threshold=clip_threshold, weight_decay=weight_decay,
                        rank=rank, min_rank=min_rank, max_rank=max_rank, tol=tol, oversample=oversample,
                        power_iters=power_iters)
        super().__init__(params, defaults)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                g = p.grad.float()
                if p.dim() >= 2:
                    g = g.reshape(p.shape[0], -1)
                    g_sq = (1 - b2) * g.square()
                    if "q" in state:
                        low = state["q"] @ state["u"].T
                        v = b2 * low + g_sq
                        den = b2 * low.abs() + g_sq
                    else:
                        v = den = g_sq
                    state["q"], state["u"] = low_rank_factor(
                        v, state.get("rank", group["rank"]), group["min_rank"], group["max_rank"], group["tol"],
                        group["oversample"], group["power_iters"], self.generator)
                    state["rank"] = state["q"].shape[1]
                else:
                    v = state.setdefault("v", torch.zeros_like(g))
                    v.mul_(b2).add_(g.square(), alpha=1 - b2)
                    den = v
                mhat = g / (den.sqrt() + group["eps"])
                rms = mhat.square().mean().sqrt()
                mhat.div_((rms / group["clip_threshold"]).clamp_min(1.0))
                if b1 > 0:
                    m = state.setdefault("m", torch.zeros_like(mhat))
                    m.mul_(b1).add_(mhat, alpha=1 - b1)
                else:
                    m = mhat
                update = m.view(p.shape)
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * p
                p.add_(update.to(p.dtype), alpha=-group["lr"])
        return loss

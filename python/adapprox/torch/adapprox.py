"""adapprox.torch.Adapprox: a torch.optim.Optimizer over the native Adapprox step."""
from __future__ import annotations

from .. import _adapprox_state as S
from ._native import NativeOptimizer
from .._args import documented


@documented("adapprox", "torch")
class Adapprox(NativeOptimizer):
    r"""Adapprox: Adam with a low-rank second moment refreshed by AS-RSI (Zhao et al. 2024).

    For each matrix parameter ``G`` (m x n; N-D parameters are viewed as (shape[0], rest))::

        V_t   = b2 Q U^T + (1 - b2) G^2                 # implicit, never stored
        Q, U  = AS-RSI(V_t)                              # rank in [min_rank, max_rank] meeting tol
        Mhat  = G / (sqrt(b2 |Q_{t-1} U_{t-1}^T| + (1 - b2) G^2) + eps)
        Mhat /= max(1, RMS(Mhat) / clip_threshold)
        M     = b1 M + (1 - b1) Mhat                     # no M is kept when b1 == 0
        p    -= lr * (M + weight_decay * p)

    1-D parameters keep a dense second moment. No bias correction (as in the paper). ``max_rank``
    None means ``max(1, min(m, n) // 4)``. Factors are float32 for every parameter dtype; bf16 and
    fp16 parameters are updated through float32 math and rounded once. State
    (``opt.state[p]``, ordinary tensors): ``step`` (0-d), float32 ``factor_q`` (m x k) and
    ``factor_u`` (n x k), replaced by new tensors when the rank k changes, ``exp_avg`` (b1 > 0) and,
    for 0-D/1-D parameters, ``exp_avg_sq``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0,
                 rank=1, min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1,
                 cosine_guidance=False, seed=0, *, maximize=False, warm_start=True, state_precision="fp32", stochastic_rounding=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, clip_threshold=clip_threshold,
                        weight_decay=weight_decay, rank=rank, min_rank=min_rank, max_rank=max_rank, tol=tol,
                        oversample=oversample, power_iters=power_iters, cosine_guidance=cosine_guidance,
                        seed=seed, maximize=maximize, warm_start=warm_start)
        S.check_hyper(defaults)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        for group in self.param_groups:
            S.check_hyper(group)

    algorithm = "adapprox"
    shard_rows = True  # FSDP2 row shards: statistics all-reduced over ranks (exact)

    def _hyper(self, group):
        S.check_hyper(group)  # a group edited since construction (max_rank=0, ...) is refused here
        return S.spec_hyper(group)

    def _describe(self, param, st):
        rank = int(st["factor_q"].shape[1]) if "factor_q" in st else 0
        return dict(rank=rank, factored=param.dim() >= 2 and param.numel() > 0)

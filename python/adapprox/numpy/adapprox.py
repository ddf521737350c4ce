"""adapprox.numpy.Adapprox: the native Adapprox step on NumPy arrays, in place."""
from __future__ import annotations

import numpy as np

from .. import _adapprox_state as S
from ._native import NativeOptimizer
from .._args import documented


@documented("adapprox", "numpy")
class Adapprox(NativeOptimizer):
    """Adapprox over NumPy arrays (same math and defaults as :class:`adapprox.torch.Adapprox`).

    ``params`` is a sequence of writable, C-contiguous float32/float64/float16 arrays (any
    DLPack-capable CPU array works); ``step(grads)`` updates them **in place** and never copies
    or casts them. Pass ``None`` for a gradient to skip that array this step.

    >>> import numpy as np, adapprox.numpy as anp
    >>> w = np.zeros((8, 4), np.float32)
    >>> opt = anp.Adapprox([w], lr=1e-2)
    >>> opt.step([np.ones_like(w)])
    >>> bool((w < 0).all())
    True
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0,
                 rank=1, min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1,
                 cosine_guidance=False, seed=0, maximize=False, warm_start=True, *, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, betas=tuple(betas), eps=eps, clip_threshold=clip_threshold,
                                      weight_decay=weight_decay, rank=rank, min_rank=min_rank, max_rank=max_rank,
                                      tol=tol, oversample=oversample, power_iters=power_iters,
                                      cosine_guidance=cosine_guidance, seed=seed, maximize=maximize,
                                      warm_start=warm_start))

    algorithm = "adapprox"

    def _check(self, hyper):
        S.check_hyper(hyper)

    def _hyper(self, hyper):
        S.check_hyper(hyper)  # a group edited since construction (max_rank=0, ...) is refused here
        return S.spec_hyper(hyper)

    def _describe(self, param, st):
        shape = np.shape(param)
        return dict(rank=int(st["factor_q"].shape[1]) if "factor_q" in st else 0,
                    factored=len(shape) >= 2 and int(np.prod(shape)) > 0)

"""adapprox.torch.AdaGram: low-rank full-matrix AdaGrad (Matveeva, Katrutsa, Frolov 2025) over the native step."""
from __future__ import annotations

from ._gram import GramOptimizer
from .._args import documented


@documented("adagram", "torch")
class AdaGram(GramOptimizer):
    r"""AdaGram: full-matrix AdaGrad through a factor of G kept low-rank (arXiv 2508.21106).

    Per parameter, flattened to ``n`` elements, ``G_t = eps I + sum g g^T`` is never formed: the
    state holds the inverse of a factor ``L_t L_t^T = G_t`` as ``L^-1 = (I - P Q^T) / sqrt(eps)``
    with ``P, Q`` of ``n x k``, ``k <= rank``. At step ``t``::

        g    = -g if maximize;  g = g + weight_decay * p       # L2, as torch.optim.Adagrad
        P    = forget * P                                       # L^-1 <- forget L^-1 + (1 - forget) I / sqrt(eps)
        gbar = (g - P (Q^T g)) / sqrt(eps);  s = |gbar|^2;  r = sqrt(1 + s)
        clr  = lr / (1 + (t - 1) * lr_decay)
        p    = p - clr * gbar / r                               # L_t^-1 g: |.| = |G_t^-1/2 g| < 1
        b    = 1 / (r (1 + r))                                   # L_t^-1 = (I - b gbar gbar^T) L_{t-1}^-1
        P, Q = [P, sqrt(b) gbar], [Q, sqrt(b) (gbar - Q P^T gbar)]   # exact rank-one growth

    When ``k`` would exceed ``min(rank, n)``, one projector-splitting step (Lubich and Oseledets;
    K, then S backward, then L) brings ``P Q^T`` back to that rank; with ``rank >= n`` the state
    is exact. O(n rank^2) time and ``2 n rank`` float64 numbers per parameter.

    ``eps`` is more than a safeguard here: directions the rank-``rank`` term does not hold are
    preconditioned by ``1 / sqrt(eps)``, so an SGD-like step ``lr / sqrt(eps) * g`` is taken along
    them while ``|g|^2 << eps``. The default ``eps=1e-2`` (with ``lr=0.1``) suits gradients of
    order 1; scale ``eps`` with the square of the gradients. State (``state_dict()``): ``step``,
    ``factor_p``, ``factor_q`` (float64, ``n x k``); math is float64 for every parameter dtype
    (bf16/fp16 parameters are stepped as float32 copies and rounded once). CPU only.
    """

    algorithm = "adagram"

    def __init__(self, params, lr=1e-1, rank=1, lr_decay=0.0, weight_decay=0.0, eps=1e-2, forget=1.0, *,
                 maximize=False):
        defaults = dict(lr=lr, rank=rank, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, forget=forget,
                        maximize=maximize)
        super().__init__(params, defaults)

"""adapprox.torch.FullMatrixAdagrad: full-matrix AdaGrad (exact G^-1/2 g) over the native step."""
from __future__ import annotations

from ._gram import GramOptimizer
from .._args import documented


@documented("fullmatrixadagrad", "torch")
class FullMatrixAdagrad(GramOptimizer):
    r"""Full-matrix AdaGrad (Duchi, Hazan and Singer 2011), exact, for small parameters.

    Per parameter, flattened to a vector of ``n`` elements, at step ``t`` (1, 2, ...)::

        g   = -g if maximize;  g = g + weight_decay * p       # L2, as torch.optim.Adagrad
        S   = S + g g^T                                        # state "sum", n x n float64
        G   = eps I + S = V diag(lambda) V^T                   # symmetric eigendecomposition
        clr = lr / (1 + (t - 1) * lr_decay)
        p   = p - clr * V diag(lambda^-1/2) V^T g              # G^-1/2 g, |G^-1/2 g| < 1

    ``eps`` sits inside the square root (``G = eps I + sum g g^T``, as in the AdaGrad paper; the
    eigenvalues are clamped at ``eps``, their exact lower bound, against rounding). The step
    ``G^-1/2 g`` always has norm below 1, so ``lr`` bounds the length of the whole parameter's
    step (hence the default 0.1 rather than Adagrad's per-coordinate 1e-2).

    Cost: O(n^2) float64 state and an O(n^3) eigendecomposition per parameter per step;
    parameters of more than ``adapprox._core.FULL_MATRIX_MAX_NUMEL`` (4096) elements are refused
    with a ValueError (use :class:`AdaGram`). Math and state are float64 for every parameter
    dtype; bf16/fp16 parameters are stepped as float32 copies and rounded once. Parameters run
    side by side on the native thread pool. CPU only.
    """

    algorithm = "fullmatrixadagrad"

    def __init__(self, params, lr=1e-1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

"""adapprox.numpy.FullMatrixAdagrad: full-matrix AdaGrad on NumPy arrays, in place."""
from __future__ import annotations

from ._gram import GramOptimizer
from .._args import documented


@documented("fullmatrixadagrad", "numpy")
class FullMatrixAdagrad(GramOptimizer):
    """Full-matrix AdaGrad over NumPy arrays: same math, defaults and size limit as
    :class:`adapprox.torch.FullMatrixAdagrad` (``p -= clr * (eps I + sum g g^T)^-1/2 g`` per
    flattened array). ``step(grads)`` updates the arrays **in place**; ``None`` skips one.

    >>> import numpy as np, adapprox.numpy as anp
    >>> w = np.zeros(3)
    >>> opt = anp.FullMatrixAdagrad([w], lr=0.5)
    >>> opt.step([np.array([3.0, 0.0, 4.0])])
    >>> bool(np.allclose(w, [-0.3, 0.0, -0.4]))
    True
    """

    algorithm = "fullmatrixadagrad"

    def __init__(self, params, lr=1e-1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      maximize=maximize))

"""adapprox.numpy.AdaGram: low-rank full-matrix AdaGrad on NumPy arrays, in place."""
from __future__ import annotations

from ._gram import GramOptimizer
from .._args import documented


@documented("adagram", "numpy")
class AdaGram(GramOptimizer):
    """AdaGram over NumPy arrays: same math and defaults as :class:`adapprox.torch.AdaGram`
    (``p -= clr * L_t^-1 g`` with ``L_t^-1 = (I - P Q^T) / sqrt(eps)`` kept at rank ``rank``).
    ``step(grads)`` updates the arrays **in place**; ``None`` skips one.

    >>> import numpy as np, adapprox.numpy as anp
    >>> w = np.zeros(3)
    >>> opt = anp.AdaGram([w], lr=0.5, eps=1e-8)
    >>> opt.step([np.array([3.0, 0.0, 4.0])])
    >>> bool(np.allclose(w, [-0.3, 0.0, -0.4]))
    True
    """

    algorithm = "adagram"

    def __init__(self, params, lr=1e-1, rank=1, lr_decay=0.0, weight_decay=0.0, eps=1e-2, forget=1.0, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, rank=rank, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      forget=forget, maximize=maximize))

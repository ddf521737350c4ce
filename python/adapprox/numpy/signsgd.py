"""adapprox.numpy.SignSGD: sign descent on NumPy arrays, in place (see adapprox.torch.SignSGD)."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("signsgd", "numpy")
class SignSGD(ElementwiseOptimizer):
    """``p -= lr * (sign(g or m) + weight_decay * p)``; ``m = b m + (1 - b) g`` when momentum b > 0."""

    algorithm = "signsgd"

    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0, maximize=False, *, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, momentum=momentum, weight_decay=weight_decay, maximize=maximize))

    def _hyper(self, h):
        return dict(lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"],
                    maximize=float(bool(h["maximize"])))

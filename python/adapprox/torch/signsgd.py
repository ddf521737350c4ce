"""adapprox.torch.SignSGD: sign descent (Signum with momentum); no torch.optim counterpart."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("signsgd", "torch")
class SignSGD(ElementwiseOptimizer):
    r"""SignSGD / Signum (Bernstein et al. 2018) with decoupled weight decay.

    Without momentum: ``p -= lr * (sign(g) + weight_decay * p)``.
    With ``momentum = b > 0``: ``m = b m + (1 - b) g``, then ``p -= lr * (sign(m) + weight_decay * p)``.
    ``sign(0) = 0``; ``maximize`` negates ``g``. State: ``momentum_buffer`` when momentum > 0.
    """

    algorithm = "signsgd"

    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0, *, maximize=False, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, maximize=maximize,
                                        state_precision=state_precision, stochastic_rounding=stochastic_rounding))
        self._check_groups()

    def _hyper(self, group):
        return dict(lr=group["lr"], momentum=group["momentum"], weight_decay=group["weight_decay"],
                    maximize=float(bool(group["maximize"])))

"""adapprox.numpy.SGD: SGD with momentum / Nesterov on NumPy arrays, in place (see adapprox.torch.SGD)."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("sgd", "numpy")
class SGD(ElementwiseOptimizer):
    """torch.optim.SGD's update; ``g`` negated when ``maximize``::

        g = g + weight_decay * p                         # when weight_decay != 0
        if momentum != 0:
            buf = g  (first step),  buf = momentum * buf + (1 - dampening) * g  (later steps)
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    """

    algorithm = "sgd"

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False, *, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _hyper(self, h):
        return dict(lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"], weight_decay=h["weight_decay"],
                    nesterov=float(bool(h["nesterov"])), maximize=float(bool(h["maximize"])))

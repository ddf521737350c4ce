"""adapprox.numpy.Adagrad: Adagrad on NumPy arrays, in place (see adapprox.torch.Adagrad)."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("adagrad", "numpy")
class Adagrad(ElementwiseOptimizer):
    """torch.optim.Adagrad's update at step t = 1, 2, ...; ``g`` negated when ``maximize``::

        g = g + weight_decay * p                         # when weight_decay != 0
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g                                # sum starts at initial_accumulator_value
        p = p - clr * g / (sqrt(sum) + eps)
    """

    algorithm = "adagrad"

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False, *, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _hyper(self, h):
        return dict(lr=h["lr"], lr_decay=h["lr_decay"], weight_decay=h["weight_decay"],
                    initial_accumulator_value=h["initial_accumulator_value"], eps=h["eps"],
                    maximize=float(bool(h["maximize"])))

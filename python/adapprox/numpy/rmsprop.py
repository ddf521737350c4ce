"""adapprox.numpy.RMSprop: RMSprop on NumPy arrays, in place (see adapprox.torch.RMSprop)."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("rmsprop", "numpy")
class RMSprop(ElementwiseOptimizer):
    """torch.optim.RMSprop's update; ``g`` negated when ``maximize``, all state starting at zero::

        g = g + weight_decay * p                         # when weight_decay != 0
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg**2) + eps
        otherwise: avg = sqrt(square_avg) + eps
        momentum > 0: momentum_buffer = momentum * momentum_buffer + g / avg;  p = p - lr * momentum_buffer
        otherwise:    p = p - lr * g / avg
    """

    algorithm = "rmsprop"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False, *, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _hyper(self, h):
        return dict(lr=h["lr"], alpha=h["alpha"], eps=h["eps"], weight_decay=h["weight_decay"],
                    momentum=h["momentum"], centered=float(bool(h["centered"])),
                    maximize=float(bool(h["maximize"])))

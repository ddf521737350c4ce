"""adapprox.numpy.NAdam: NAdam on NumPy arrays, in place (see adapprox.torch.NAdam)."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("nadam", "numpy")
class NAdam(ElementwiseOptimizer):
    """NAdam with torch.optim.NAdam's arguments and update; ``step(grads)`` updates ``params`` in place.

    At step ``t`` (``g`` is negated first when ``maximize``)::

        if weight_decay != 0:
            if decoupled_weight_decay:  p = p * (1 - lr * weight_decay)
            else:                       g = g + weight_decay * p
        mu_t       = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next    = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = mu_product * mu_t                  # per-parameter scalar, starts at 1
        m = lerp(m, g, 1 - beta1)                       # = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g * g
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p + (-lr (1 - mu_t) / (1 - mu_product)) * g / d
        p = p + (-lr mu_next / (1 - mu_product * mu_next)) * m / d

    ``mu_product`` is kept in double precision here (torch rounds it to its default dtype, float32,
    so float64 results differ from torch.optim.NAdam at the ~1e-7 relative level; adapprox.torch.NAdam
    reproduces torch's rounding). float64 arrays are stepped in float64, others in float32.
    State: ``step``, ``exp_avg``, ``exp_avg_sq`` and the number ``mu_product``.
    """

    algorithm = "nadam"

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, maximize=False, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _hyper(self, h):
        beta1, beta2 = h["betas"]
        return dict(lr=float(h["lr"]), beta1=float(beta1), beta2=float(beta2), eps=float(h["eps"]),
                    weight_decay=float(h["weight_decay"]), momentum_decay=float(h["momentum_decay"]),
                    decoupled_weight_decay=float(bool(h["decoupled_weight_decay"])),
                    maximize=float(bool(h["maximize"])))

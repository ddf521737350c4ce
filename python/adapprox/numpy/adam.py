"""adapprox.numpy.Adam / AdamW: Adam on NumPy arrays, in place (see adapprox.torch.Adam)."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("adam", "numpy")
class Adam(ElementwiseOptimizer):
    """Adam with torch.optim.Adam's arguments and update; ``step(grads)`` updates ``params`` in place.

    At step ``t`` (``g`` is negated first when ``maximize``)::

        if weight_decay != 0:
            if decoupled_weight_decay:  p = p * (1 - lr * weight_decay)       # AdamW
            else:                       g = g + weight_decay * p              # L2
        m = lerp(m, g, 1 - beta1)               # = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g * g
        if amsgrad: v_max = max(v_max, v)       # and v_max replaces v below
        p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    float64 arrays are stepped in float64, others in float32 (state likewise). State:
    ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
    """

    algorithm = "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, dict(state_precision=state_precision, stochastic_rounding=stochastic_rounding,
                                      lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def _hyper(self, h):
        beta1, beta2 = h["betas"]
        out = dict(lr=float(h["lr"]), beta1=float(beta1), beta2=float(beta2), eps=float(h["eps"]),
                   weight_decay=float(h["weight_decay"]), amsgrad=float(bool(h["amsgrad"])),
                   maximize=float(bool(h["maximize"])))
        if self.algorithm == "adam":
            out["decoupled_weight_decay"] = float(bool(h.get("decoupled_weight_decay", False)))
        return out


@documented("adamw", "numpy")
class AdamW(Adam):
    """AdamW (decoupled weight decay, default 1e-2) with torch.optim.AdamW's arguments and update.

    At step ``t`` (``g`` is negated first when ``maximize``)::

        p = p * (1 - lr * weight_decay)         # skipped when weight_decay == 0
        m = lerp(m, g, 1 - beta1)               # = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g * g
        if amsgrad: v_max = max(v_max, v)       # and v_max replaces v below
        p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    algorithm = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True, state_precision=state_precision,
                         stochastic_rounding=stochastic_rounding)

"""adapprox.torch.NAdam: a drop-in for torch.optim.NAdam over the native fused step."""
from __future__ import annotations

import torch

from ._elementwise import ElementwiseOptimizer
from .adam import _scalar, check_native_flags
from .._args import documented


@documented("nadam", "torch")
class NAdam(ElementwiseOptimizer):
    r"""NAdam (Dozat 2016), a drop-in for ``torch.optim.NAdam`` (torch 2.13): same arguments,
    defaults and update, computed by one fused native pass per parameter.

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

    As in torch, ``mu_product`` is held in the default dtype's precision (torch keeps it in a scalar
    tensor of ``torch.get_default_dtype()``: it is rounded to float32 after each product unless the
    default dtype is float64), so float32 and float64 parameters track ``torch.optim.NAdam`` to
    rounding. bf16/fp16 parameters are stepped with float32 math and state and rounded once.
    State (``state_dict()``): ``step``, ``exp_avg``, ``exp_avg_sq`` (float64 for float64 parameters,
    float32 otherwise) and the number ``mu_product``.

    ``foreach`` (and ``fused``, which torch's NAdam lacks) are accepted and ignored: the native step
    is always fused. ``capturable=True`` and ``differentiable=True`` raise ValueError (not supported).
    """

    algorithm = "nadam"

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, state_precision="fp32", stochastic_rounding=False):
        check_native_flags(type(self).__name__, capturable, differentiable)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        self._check_groups()

    def _hyper(self, group):
        check_native_flags(type(self).__name__, group.get("capturable", False), group.get("differentiable", False))
        beta1, beta2 = group["betas"]
        return dict(lr=_scalar(group["lr"]), beta1=_scalar(beta1), beta2=_scalar(beta2), eps=float(group["eps"]),
                    weight_decay=float(group["weight_decay"]), momentum_decay=float(group["momentum_decay"]),
                    decoupled_weight_decay=float(bool(group["decoupled_weight_decay"])),
                    maximize=float(bool(group["maximize"])))

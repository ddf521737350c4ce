"""adapprox.torch.RMSprop: drop-in for torch.optim.RMSprop (torch 2.13) over the native fused step."""
from __future__ import annotations

import torch

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("rmsprop", "torch")
class RMSprop(ElementwiseOptimizer):
    r"""RMSprop (plain, centered, with momentum), as torch.optim.RMSprop.

    Per element, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                         # when weight_decay != 0 (L2)
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        if centered:
            grad_avg = lerp(grad_avg, g, 1 - alpha)      # grad_avg + (1 - alpha) (g - grad_avg)
            avg = sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = sqrt(square_avg) + eps
        if momentum > 0:
            momentum_buffer = momentum * momentum_buffer + g / avg
            p = p - lr * momentum_buffer
        else:
            p = p - lr * g / avg

    All state starts at zero. Same arguments, defaults and validation as torch.optim.RMSprop.
    State: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0), ``step``.
    float64 parameters are stepped in float64; bf16/fp16 parameters through float32 math and
    float32 state, rounded once. ``foreach`` is accepted and ignored (the native step is always
    one fused pass); ``capturable=True`` and ``differentiable=True`` raise.
    """

    algorithm = "rmsprop"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *, state_precision="fp32", stochastic_rounding=False):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        self._check_groups()

    def _hyper(self, group):
        for flag in ("capturable", "differentiable"):
            if group.get(flag):
                raise ValueError(f"{flag}=True is not supported: the native RMSprop step is a fused CPU pass "
                                 "(no CUDA graphs, no autograd through the step)")
        return dict(lr=float(group["lr"]), alpha=float(group["alpha"]), eps=float(group["eps"]),
                    weight_decay=float(group["weight_decay"]), momentum=float(group["momentum"]),
                    centered=float(bool(group["centered"])), maximize=float(bool(group["maximize"])))

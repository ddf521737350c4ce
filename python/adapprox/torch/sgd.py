"""adapprox.torch.SGD: drop-in for torch.optim.SGD (torch 2.13) over the native fused step."""
from __future__ import annotations

import torch

from ._elementwise import ElementwiseOptimizer
from .._args import documented


@documented("sgd", "torch")
class SGD(ElementwiseOptimizer):
    r"""Stochastic gradient descent with momentum, dampening and Nesterov, as torch.optim.SGD.

    Per element, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                         # when weight_decay != 0 (L2)
        if momentum != 0:
            buf = g                                      # first step: a copy, no dampening
            buf = momentum * buf + (1 - dampening) * g   # later steps
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g

    Same arguments, defaults and validation as torch.optim.SGD; ``nesterov`` requires
    ``momentum > 0`` and ``dampening == 0``. State: ``momentum_buffer`` when momentum != 0 (plus
    ``step``). float64 parameters are stepped in float64; bf16/fp16 parameters through float32
    math and a float32 ``momentum_buffer``, rounded once. ``foreach`` and ``fused`` are accepted
    and ignored: the native step is always one fused pass. ``differentiable=True`` raises.
    """

    algorithm = "sgd"

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, state_precision="fp32", stochastic_rounding=False):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        self._check_groups()

    def _hyper(self, group):
        if group.get("differentiable"):
            raise ValueError("differentiable=True is not supported: the native SGD step does not record autograd")
        return dict(lr=float(group["lr"]), momentum=float(group["momentum"]), dampening=float(group["dampening"]),
                    weight_decay=float(group["weight_decay"]), nesterov=float(bool(group["nesterov"])),
                    maximize=float(bool(group["maximize"])))

"""adapprox.torch.Adagrad: drop-in for torch.optim.Adagrad (torch 2.13) over the native fused step."""
from __future__ import annotations

import torch

from ._elementwise import ElementwiseOptimizer
from ._native import _scalar_dtype
from .._args import documented


@documented("adagrad", "torch")
class Adagrad(ElementwiseOptimizer):
    r"""Adagrad with learning-rate decay, as torch.optim.Adagrad (dense gradients).

    At step ``t`` (1, 2, ...), per element, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                         # when weight_decay != 0 (L2)
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g                                # sum starts at initial_accumulator_value
        p = p - clr * g / (sqrt(sum) + eps)

    Same arguments, defaults and validation as torch.optim.Adagrad. State: ``sum`` and ``step``,
    created on a parameter's first step (torch creates them in the constructor; the values seen
    by the update are the same). ``initial_accumulator_value`` is read from the parameter's group.
    float64 parameters are stepped in float64; bf16/fp16 parameters through float32 math and a
    float32 ``sum``, rounded once. ``foreach`` and ``fused`` are accepted and ignored (the native
    step is always one fused pass); ``differentiable=True`` raises. Sparse gradients are rejected.
    """

    algorithm = "adagrad"

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None, state_precision="fp32", stochastic_rounding=False):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        self._check_groups()
        # As torch: the state exists from construction, `sum` filled with the constructor's
        # initial_accumulator_value (float32 for bf16/fp16 parameters, complex for complex ones).
        for group in self.param_groups:
            for p in group["params"]:
                dtype = p.dtype if p.dtype in (torch.float64, torch.float32) or p.is_complex() else torch.float32
                self.state[p]["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
                init = complex(initial_accumulator_value, initial_accumulator_value) if p.is_complex() \
                    else initial_accumulator_value  # torch fills both parts of a complex sum
                self.state[p]["sum"] = torch.full_like(p, init, dtype=dtype,
                                                       memory_format=torch.preserve_format)

    def _hyper(self, group):
        if group.get("differentiable"):
            raise ValueError("differentiable=True is not supported: the native Adagrad step does not record "
                             "autograd")
        return dict(lr=float(group["lr"]), lr_decay=float(group["lr_decay"]),
                    weight_decay=float(group["weight_decay"]),
                    initial_accumulator_value=float(group["initial_accumulator_value"]), eps=float(group["eps"]),
                    maximize=float(bool(group["maximize"])))

"""adapprox.torch.Adam / AdamW: drop-ins for torch.optim.Adam / AdamW over the native fused step."""
from __future__ import annotations

from ._elementwise import ElementwiseOptimizer
from .._args import documented


def _scalar(x):
    """A float from a float or a 1-element tensor (torch accepts tensor lr and betas)."""
    return float(x.item()) if hasattr(x, "item") else float(x)


def check_native_flags(name, capturable, differentiable):
    """capturable / differentiable change torch's semantics in ways the native CPU step does not offer."""
    if capturable:
        raise ValueError(f"{name}: capturable=True is not supported (the native step runs on CPU tensors and "
                         "cannot be captured in a CUDA graph); use capturable=False")
    if differentiable:
        raise ValueError(f"{name}: differentiable=True is not supported (the native step is not tracked by "
                         "autograd); use differentiable=False")


@documented("adam", "torch")
class Adam(ElementwiseOptimizer):
    r"""Adam (Kingma & Ba 2015), a drop-in for ``torch.optim.Adam`` (torch 2.13): same arguments,
    defaults and update, computed by one fused native pass per parameter.

    At step ``t`` (``g`` is negated first when ``maximize``)::

        if weight_decay != 0:
            if decoupled_weight_decay:  p = p * (1 - lr * weight_decay)       # AdamW
            else:                       g = g + weight_decay * p              # L2
        m = lerp(m, g, 1 - beta1)               # = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g * g
        if amsgrad: v_max = max(v_max, v)       # and v_max replaces v below
        p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The scalar factors are formed in double precision and the elementwise operations follow torch's
    order, so float32 and float64 parameters track ``torch.optim.Adam`` to rounding. bf16/fp16
    parameters are stepped with float32 math and state and rounded once (torch keeps their state in
    the parameter dtype). State (``state_dict()``): ``step``, ``exp_avg``, ``exp_avg_sq`` and, with
    amsgrad, ``max_exp_avg_sq`` (float64 for float64 parameters, float32 otherwise).

    ``foreach`` and ``fused`` are accepted and ignored: the native step is always fused.
    ``capturable=True`` and ``differentiable=True`` raise ValueError (not supported). ``lr`` and
    ``betas`` may be floats or 1-element tensors (read as floats at each step).
    """

    algorithm = "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, state_precision="fp32", stochastic_rounding=False):
        check_native_flags(type(self).__name__, capturable, differentiable)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        self._check_groups()

    def _hyper(self, group):
        check_native_flags(type(self).__name__, group.get("capturable", False), group.get("differentiable", False))
        beta1, beta2 = group["betas"]
        h = dict(lr=_scalar(group["lr"]), beta1=_scalar(beta1), beta2=_scalar(beta2), eps=float(group["eps"]),
                 weight_decay=float(group["weight_decay"]), amsgrad=float(bool(group["amsgrad"])),
                 maximize=float(bool(group["maximize"])))
        if self.algorithm == "adam":
            h["decoupled_weight_decay"] = float(bool(group.get("decoupled_weight_decay", False)))
        return h


@documented("adamw", "torch")
class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter 2019), a drop-in for ``torch.optim.AdamW`` (torch 2.13): Adam with
    decoupled weight decay, ``weight_decay`` defaulting to 1e-2.

    At step ``t`` (``g`` is negated first when ``maximize``)::

        p = p * (1 - lr * weight_decay)         # skipped when weight_decay == 0
        m = lerp(m, g, 1 - beta1)               # = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g * g
        if amsgrad: v_max = max(v_max, v)       # and v_max replaces v below
        p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State, dtypes and the accepted-but-ignored ``foreach`` / ``fused`` are as in :class:`Adam`;
    ``capturable=True`` and ``differentiable=True`` raise ValueError.
    """

    algorithm = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None, state_precision="fp32", stochastic_rounding=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, state_precision=state_precision,
                         stochastic_rounding=stochastic_rounding)

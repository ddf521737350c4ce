"""adapprox.torch.Adafactor: a torch.optim.Optimizer over the native Adafactor step (two modes)."""
from __future__ import annotations

import torch

from .. import _adafactor_state as S
from ._native import NativeOptimizer
from .._args import documented


@documented("adafactor", "torch")
class Adafactor(NativeOptimizer):
    r"""Adafactor (Shazeer and Stern 2018) on the native core, in two documented modes.

    **mode="torch" (the default)** reproduces ``torch.optim.Adafactor`` step for step and takes
    exactly its arguments and defaults (``lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
    weight_decay=0.0, foreach=None, maximize=False``)::

        rho_t   = min(lr, 1/sqrt(t));   alpha_t = max(eps2, RMS(p_{t-1})) * rho_t
        p      *= 1 - lr * weight_decay
        R = lerp(R, mean_last(g^2), t^beta2_decay); C likewise over dim -2    (>= 2-D)
        Vhat    = R C / max(mean(R), eps1)         (or V = lerp(V, g^2, t^beta2_decay) for 0-D/1-D)
        U       = g / sqrt(max(Vhat, eps1^2));  p -= alpha_t / max(1, RMS(U)/d) * U

    ``eps1=None`` is the machine epsilon of the (first) parameter's dtype, as in torch.

    **mode="paper"** is the paper's algorithm (Algorithms 4/5 with relative step size and update
    clipping); ``eps1`` sits inside the averages instead of in the denominator::

        rho_t   = min(lr, 1/sqrt(t))   with lr=None meaning the paper's 1e-2
                  (relative_step=False: rho_t = lr)
        alpha_t = max(eps2, RMS(p_{t-1})) * rho_t     (scale_parameter=False: alpha_t = rho_t)
        beta2hat_t = 1 - t^beta2_decay                (decay_rate -0.8: 1 - t^-0.8)
        R = beta2hat R + (1 - beta2hat) mean_last(g^2 + eps1); C likewise; Vhat = R C / mean(R)
        U = g / sqrt(Vhat);  Uhat = U / max(1, RMS(U)/d)
        s = alpha_t Uhat;    with beta1: m = beta1 m + (1 - beta1) s, s = m   (no bias correction)
        p = p - alpha_t * weight_decay * p - s

    In paper mode ``eps=(None, 1e-3)`` means ``eps1=1e-30, eps2=1e-3``; the paper's names
    ``decay_rate``, ``eps1`` and ``eps2`` are accepted as aliases of ``beta2_decay``, ``eps[0]``
    and ``eps[1]``. Weight decay is decoupled and scaled by the actual step size ``alpha_t``
    (the paper has none; this is what Hugging Face's Adafactor does). ``beta1=None`` keeps no
    first moment (the paper's memory-saving setting).

    Why torch is the default: the class has torch's name and signature, so code written for
    ``torch.optim.Adafactor`` must behave the same when it switches import (drop-in
    replacement, state_dicts interchangeable). The two modes differ only in details: where eps1
    enters (torch: a floor in the denominator; paper: added to g^2 in the averages), lr (torch:
    cap of rho_t and weight-decay factor ``1 - lr*wd``; paper: cap of rho_t, decay by alpha_t),
    and the first moment (paper only). Both clip the update with ``d``.

    Factoring: parameters with >= 2 dimensions keep ``row_var`` (shape[:-1] + (1,)) and
    ``col_var`` (shape[:-2] + (1, n)), batched over the leading dimensions, as torch does;
    0-D/1-D parameters keep a dense ``variance``. State is float64 for float64 parameters and
    float32 otherwise (bf16/fp16 parameters are stepped through float32 and rounded once).
    ``state_dict()`` holds torch's names and shapes (``step``, ``row_var``, ``col_var``,
    ``variance``, plus ``exp_avg`` with beta1), so it loads into ``torch.optim.Adafactor`` and
    back. ``foreach`` is accepted and ignored (the native step is multithreaded). CPU only.
    """

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False, mode="torch", beta1=None, relative_step=True,
                 scale_parameter=True, decay_rate=None, eps1=None, eps2=None, state_precision="fp32",
                 stochastic_rounding=False):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        defaults = S.make_defaults(lr, beta2_decay, eps, d, weight_decay, foreach, maximize, mode, beta1,
                                   relative_step, scale_parameter, decay_rate, eps1, eps2)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                                 stochastic_rounding=stochastic_rounding))
        for group in self.param_groups:
            S.check_hyper(group)

    algorithm = "adafactor"
    shard_rows = True  # FSDP2 row shards: statistics all-reduced over ranks (exact)

    def _hyper(self, group):
        return S.spec_hyper(group)

    def _describe(self, param, st):
        return dict(factored=param.dim() >= 2)

"""Adafactor pieces shared by the PyTorch and NumPy front ends: hyperparameters (both modes),
and their spec-string keys (the registry's)."""
from __future__ import annotations

from . import _core

MODES = ("torch", "paper")
PAPER_EPS1 = 1e-30  # the paper's eps1, used in paper mode when eps[0] is None
PAPER_MAX_RHO = 1e-2  # the paper's cap of the relative step, min(1e-2, 1/sqrt(t))

# torch.optim.Adafactor's arguments and defaults, then ours.
DEFAULTS = dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, foreach=None,
                maximize=False, mode="torch", beta1=None, relative_step=True, scale_parameter=True)


def make_defaults(lr, beta2_decay, eps, d, weight_decay, foreach, maximize, mode, beta1, relative_step,
                  scale_parameter, decay_rate=None, eps1=None, eps2=None) -> dict:
    """The group defaults, with the paper's names ``decay_rate``, ``eps1``, ``eps2`` accepted as
    aliases of ``beta2_decay``, ``eps[0]`` and ``eps[1]`` (giving both, differently, is an error)."""
    if not (isinstance(eps, (tuple, list)) and len(eps) == 2):
        raise ValueError(f"eps must be a pair (eps1, eps2), got {eps!r}")
    eps = tuple(eps)

    def alias(name, value, canonical, canonical_name, default):
        if value is None:
            return canonical
        if canonical != default and canonical != value:
            raise ValueError(f"{name}={value!r} contradicts {canonical_name}={canonical!r}; give one of them")
        return value

    beta2_decay = alias("decay_rate", decay_rate, beta2_decay, "beta2_decay", DEFAULTS["beta2_decay"])
    eps = (alias("eps1", eps1, eps[0], "eps[0]", None), alias("eps2", eps2, eps[1], "eps[1]", DEFAULTS["eps"][1]))
    h = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, foreach=foreach,
             maximize=maximize, mode=mode, beta1=beta1, relative_step=relative_step,
             scale_parameter=scale_parameter)
    check_hyper(h)
    return h


def check_hyper(h: dict) -> None:
    """Reject bad hyperparameters up front, naming the argument (the core checks the ranges)."""
    _core.check_hyper("adafactor", spec_hyper(h))


def _number(x):
    return float(x.item()) if hasattr(x, "item") else float(x)


def native_hyper(h: dict) -> dict:
    """A parameter group (ours, or one loaded from torch.optim.Adafactor, which lacks our keys)
    as the core's dict, with each mode's meaning of None resolved."""
    mode = h.get("mode", "torch")
    if mode not in MODES:
        raise ValueError(f"mode must be 'torch' or 'paper', got {mode!r}")
    paper = mode == "paper"
    eps = h["eps"]
    if not (isinstance(eps, (tuple, list)) and len(eps) == 2):
        raise ValueError(f"eps must be a pair (eps1, eps2), got {eps!r}")
    eps1, eps2 = eps
    if eps2 is None:
        raise ValueError("eps[1] (eps2) must be a number, got None")
    beta1 = h.get("beta1")
    relative_step = bool(h.get("relative_step", True))
    scale_parameter = bool(h.get("scale_parameter", True))
    lr = h["lr"]
    if not paper:
        if beta1 is not None:
            raise ValueError("beta1 is only available with mode='paper' (torch.optim.Adafactor has no first moment)")
        if not relative_step or not scale_parameter:
            raise ValueError("relative_step and scale_parameter are options of mode='paper' only")
        if lr is None:
            raise ValueError("lr must be a number in torch mode (lr=None means the relative step of mode='paper')")
    else:
        if lr is None:
            if not relative_step:
                raise ValueError("lr is required with relative_step=False")
            lr = PAPER_MAX_RHO
        if eps1 is None:
            eps1 = PAPER_EPS1
    return dict(mode=mode, lr=_number(lr), beta2_decay=float(h["beta2_decay"]),
                eps1=None if eps1 is None else float(eps1), eps2=float(eps2), d=float(h["d"]),
                weight_decay=float(h["weight_decay"]), beta1=0.0 if beta1 is None else float(beta1),
                relative_step=relative_step, scale_parameter=scale_parameter, maximize=bool(h["maximize"]))


def spec_hyper(h: dict) -> dict:
    """A parameter group as the C++ API's spec keys (``Optimizer::defaults("adafactor")``): numbers
    only, mode 0 = torch and 1 = paper, eps1=None as eps1_auto=1; stored by save_native_state()."""
    n = native_hyper(h)
    auto = n["eps1"] is None
    return dict(mode=float(n["mode"] == "paper"), lr=n["lr"], beta2_decay=n["beta2_decay"],
                eps1=0.0 if auto else n["eps1"], eps1_auto=float(auto), eps2=n["eps2"], d=n["d"],
                weight_decay=n["weight_decay"], beta1=n["beta1"], relative_step=float(n["relative_step"]),
                scale_parameter=float(n["scale_parameter"]), maximize=float(n["maximize"]))

"""Adapprox pieces shared by the PyTorch and NumPy front ends: hyperparameters and their
spec-string keys (the registry's)."""
from __future__ import annotations

from . import _core

DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0, rank=1,
                min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1, cosine_guidance=False,
                seed=0, maximize=False, warm_start=True)


def check_hyper(h: dict) -> None:
    """Reject bad hyperparameters up front, naming the argument."""
    betas = h["betas"]
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for name in ("rank", "min_rank", "oversample", "power_iters", "seed"):
        if isinstance(h[name], bool) or int(h[name]) != h[name]:
            raise TypeError(f"{name} must be an integer, got {h[name]!r}")
    if h["max_rank"] is not None and (int(h["max_rank"]) != h["max_rank"] or h["max_rank"] < 1):
        raise ValueError(f"max_rank must be None or an integer >= 1, got {h['max_rank']!r}")
    if h["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {h['seed']}")
    # Everything else (ranges of lr, betas, eps, ...) is checked by the core with the same names.
    _core.check_hyper("adapprox", spec_hyper(h))


def native_hyper(h: dict) -> dict:
    beta1, beta2 = h["betas"]
    return dict(lr=float(h["lr"]), beta1=float(beta1), beta2=float(beta2), eps=float(h["eps"]),
                clip_threshold=float(h["clip_threshold"]), weight_decay=float(h["weight_decay"]),
                rank=int(h["rank"]), min_rank=int(h["min_rank"]),
                max_rank=None if h["max_rank"] is None else int(h["max_rank"]), tol=float(h["tol"]),
                oversample=int(h["oversample"]), power_iters=int(h["power_iters"]), seed=int(h["seed"]),
                cosine_guidance=bool(h["cosine_guidance"]), maximize=bool(h["maximize"]),
                warm_start=bool(h.get("warm_start", True)))


def spec_hyper(h: dict) -> dict:
    """A group as the registry's keys (numbers only; max_rank None is 0)."""
    n = native_hyper(h)
    n["max_rank"] = 0 if n["max_rank"] is None else n["max_rank"]
    return {k: float(v) for k, v in n.items()}

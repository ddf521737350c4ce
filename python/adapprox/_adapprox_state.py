"""Adapprox pieces shared by the PyTorch and NumPy front ends: hyperparameters, state
export/import, and memory accounting. The state itself lives in C++ (``_core.AdapproxState``)."""
from __future__ import annotations

import numpy as np

from . import _core

DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0, rank=1,
                min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1, cosine_guidance=False,
                seed=0, maximize=False)


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
    _core.check_adapprox_hyper(native_hyper(h))


def native_hyper(h: dict) -> dict:
    beta1, beta2 = h["betas"]
    return dict(lr=float(h["lr"]), beta1=float(beta1), beta2=float(beta2), eps=float(h["eps"]),
                clip_threshold=float(h["clip_threshold"]), weight_decay=float(h["weight_decay"]),
                rank=int(h["rank"]), min_rank=int(h["min_rank"]),
                max_rank=None if h["max_rank"] is None else int(h["max_rank"]), tol=float(h["tol"]),
                oversample=int(h["oversample"]), power_iters=int(h["power_iters"]), seed=int(h["seed"]),
                cosine_guidance=bool(h["cosine_guidance"]), maximize=bool(h["maximize"]))


def export_state(native) -> dict:
    """A plain dict of float32 NumPy copies: step, rank, factor_q/factor_u or exp_avg_sq, exp_avg."""
    out = {"step": int(native.step), "rank": int(native.rank)}
    out.update(native.buffers())
    return out


def import_state(shape, saved: dict, to_numpy=np.asarray):
    """Build a native state for a parameter of `shape` from export_state's dict (validated)."""
    native = _core.AdapproxState(list(shape))
    buffers = {k: np.ascontiguousarray(to_numpy(v), dtype=np.float32)
               for k, v in saved.items() if k in ("factor_q", "factor_u", "exp_avg_sq", "exp_avg")}
    native.load(int(saved.get("step", 0)), int(saved.get("rank", 0)), buffers)
    return native

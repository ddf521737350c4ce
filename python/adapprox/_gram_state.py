"""Pieces of FullMatrixAdagrad and AdaGram shared by the PyTorch and NumPy front ends:
hyperparameters (the state is the fronts' own float64 buffers: ``sum`` (n, n), ``factor_p`` and
``factor_q`` (n, k))."""
from __future__ import annotations

import numpy as np

from . import _core

FULL_DEFAULTS = dict(lr=1e-1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
ADAGRAM_DEFAULTS = dict(lr=1e-1, rank=1, lr_decay=0.0, weight_decay=0.0, eps=1e-2, forget=1.0, maximize=False)


def _number(x):
    return float(x.item()) if hasattr(x, "item") else float(x)


def native_hyper(h: dict) -> dict:
    """A parameter group as the core's dict (AdaGram's when it has a rank)."""
    out = dict(lr=_number(h["lr"]), lr_decay=float(h["lr_decay"]), weight_decay=float(h["weight_decay"]),
               eps=float(h["eps"]), maximize=bool(h["maximize"]))
    if "rank" in h:
        rank = h["rank"]
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
            raise TypeError(f"rank must be an integer, got {rank!r}")
        out["rank"] = int(rank)
        out["forget"] = _number(h.get("forget", 1.0))
    return out


def check_hyper(h: dict) -> None:
    """Reject bad hyperparameters up front, naming the argument (the core checks the ranges)."""
    n = native_hyper(h)
    _core.check_hyper("adagram" if "rank" in n else "fullmatrixadagrad", spec_hyper(h))


def spec_hyper(h: dict) -> dict:
    """A group as the C++ API's spec keys (numbers only), stored by save_native_state()."""
    return {k: float(v) for k, v in native_hyper(h).items()}

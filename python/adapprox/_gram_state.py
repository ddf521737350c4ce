"""Pieces of FullMatrixAdagrad and AdaGram shared by the PyTorch and NumPy front ends:
hyperparameters and state export/import. The states live in C++ (``_core.FullMatrixAdagradState``,
``_core.AdagramState``); both are float64 for every parameter dtype."""
from __future__ import annotations

import numpy as np

from . import _core

FULL_DEFAULTS = dict(lr=1e-1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
ADAGRAM_DEFAULTS = dict(lr=1e-1, rank=1, lr_decay=0.0, weight_decay=0.0, eps=1e-2, maximize=False)
BUFFERS = {"fullmatrixadagrad": ("sum",), "adagram": ("factor_p", "factor_q")}


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
    return out


def check_hyper(h: dict) -> None:
    """Reject bad hyperparameters up front, naming the argument (the core checks the ranges)."""
    n = native_hyper(h)
    (_core.check_adagram_hyper if "rank" in n else _core.check_full_matrix_adagrad_hyper)(n)


def spec_hyper(h: dict) -> dict:
    """A group as the C++ API's spec keys (numbers only), stored by save_native_state()."""
    return {k: float(v) for k, v in native_hyper(h).items()}


def step(name: str, states, params, grads, h: dict):
    """One native group step of optimizer `name` ("adagram" or "fullmatrixadagrad")."""
    fn = _core.adagram_step if name == "adagram" else _core.full_matrix_adagrad_step
    return fn(states, params, grads, native_hyper(h))


def describe(native) -> dict:
    """memory_report's extra fields: AdaGram's current rank k."""
    return dict(rank=native.rank) if isinstance(native, _core.AdagramState) else {}


def export_state(native) -> dict:
    """{'step': int, 'sum' (n, n) | 'factor_p', 'factor_q' (n, k)}: float64 NumPy copies."""
    out = {"step": int(native.step)}
    out.update(native.buffers())
    return out


def import_state(name: str, shape, saved: dict, to_numpy=np.asarray):
    """A validated native state of optimizer `name` for a parameter of `shape` from export_state's dict."""
    native = (_core.AdagramState if name == "adagram" else _core.FullMatrixAdagradState)(list(shape))
    unknown = set(saved) - {"step", *BUFFERS[name]}
    if unknown:
        raise ValueError(f"unknown {name} state entries {sorted(unknown)}")
    buffers = {k: np.ascontiguousarray(to_numpy(v), dtype=np.float64) for k, v in saved.items() if k != "step"}
    step = saved.get("step", 0)
    if isinstance(step, bool) or int(step) != step:
        raise ValueError(f"step must be a whole number, got {step!r}")
    native.load(int(step), buffers)
    return native

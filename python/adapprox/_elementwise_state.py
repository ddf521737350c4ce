"""State export/import of the elementwise optimizers, shared by the torch and NumPy fronts."""
from __future__ import annotations

import numpy as np

from . import _core


def export_state(native) -> dict:
    """{'step': int, <buffer>: array (param shape, float32 or float64), <scalar>: float}."""
    out = {"step": int(native.step)}
    out.update(native.buffers())
    out.update({k: float(v) for k, v in native.scalars.items()})
    return out


def import_state(shape, float64: bool, saved: dict):
    """A validated native state from export_state's dict: arrays are buffers, numbers are scalars."""
    native = _core.ElementwiseState(list(shape), bool(float64))
    buffers = {k: np.asarray(v) for k, v in saved.items() if k != "step" and isinstance(v, np.ndarray)}
    scalars = {k: float(v) for k, v in saved.items() if k != "step" and not isinstance(v, np.ndarray)}
    native.load(int(saved.get("step", 0)), buffers, scalars)
    return native

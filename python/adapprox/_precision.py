"""state_precision and stochastic_rounding: the group keys every front shares, mapped onto the
registry's numbers (adapprox/quantized_state.hpp), and conversion of array state between
precisions.

    state_precision="fp32"  dense moments in float32 (float64 for float64 parameters)
    state_precision="bf16"  dense moments in bf16
    state_precision="8bit"  dense moments as 8-bit codes, one float32 absmax per 256 elements
    (second moments round stochastically; first moments to nearest, stochastically where nearest
    would keep the old value: cpp/src/math/quantize.hpp)
    stochastic_rounding=True  bf16 parameters are written with stochastic rounding
"""
from __future__ import annotations

import functools

import numpy as np

from . import _core

PRECISIONS = {"fp32": 0, "bf16": 1, "8bit": 2}
NAMES = {v: k for k, v in PRECISIONS.items()}


@functools.lru_cache(maxsize=None)
def _keys(algorithm: str) -> frozenset:
    return frozenset(p["name"] for p in _core.hyper_params(algorithm))


def precision_hyper(algorithm: str, group) -> dict:
    """The registry's state_precision / stochastic_rounding of a group (or hyper dict), for the
    optimizers that have them; ValueError naming the key for a value it does not know."""
    keys, out = _keys(algorithm), {}
    if "state_precision" in keys:
        v = group.get("state_precision", "fp32")
        if v not in PRECISIONS:
            raise ValueError(f"state_precision must be one of {sorted(PRECISIONS)}, got {v!r}")
        out["state_precision"] = float(PRECISIONS[v])
    if "stochastic_rounding" in keys:
        v = group.get("stochastic_rounding", False)
        if not isinstance(v, (bool, int, np.bool_)) or v not in (0, 1):
            raise ValueError(f"stochastic_rounding must be True or False, got {v!r}")
        out["stochastic_rounding"] = float(bool(v))
    return out


def with_precision(hyper_fn):
    """Wraps a front's group -> registry mapping so that it carries the two shared keys."""
    @functools.wraps(hyper_fn)
    def wrapped(self, group):
        h = hyper_fn(self, group)
        h.update(precision_hyper(self.algorithm, group))
        return h
    wrapped._with_precision = True
    return wrapped


def needs_conversion(schema, state: dict, dtype_of) -> bool:
    """Whether a dense moment of `state` is held at another precision than the schema's
    (``dtype_of(array) -> registry dtype name``)."""
    for s in schema:
        if s["moment"] and s["name"] in state and dtype_of(state[s["name"]]) != s["dtype"]:
            return True
    return False

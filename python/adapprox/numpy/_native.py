"""NativeOptimizer for NumPy: a list of arrays updated in place by ``step(grads)``."""
from __future__ import annotations

import math

import numpy as np


class NativeOptimizer:
    """Subclasses implement _native_step, _export, _import and _check(hyper)."""

    def __init__(self, params, hyper: dict):
        self.params = list(params)
        self._check(hyper)
        self.hyper = dict(hyper)
        self.states = [None] * len(self.params)

    @property
    def lr(self):
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value):
        self.hyper["lr"] = value

    def step(self, grads):
        """Apply one update in place for every ``grads[i]`` that is not None."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"grads: expected {len(self.params)} gradients (one per parameter), got {len(grads)}")
        self._check(self.hyper)
        idx = [i for i, g in enumerate(grads) if g is not None]
        try:
            states = self._native_step([self.states[i] for i in idx], [self.params[i] for i in idx],
                                       [grads[i] for i in idx], idx)
        except (ValueError, TypeError) as e:
            # The core names positions within this call; map them back to the caller's indices.
            msg = str(e)
            for pos in reversed(range(len(idx))):
                msg = msg.replace(f"params[{pos}]", f"params[{idx[pos]}]").replace(f"grads[{pos}]",
                                                                                  f"grads[{idx[pos]}]")
            raise type(e)(msg) from None
        for i, st in zip(idx, states):
            self.states[i] = st

    def state_dict(self):
        """{'hyper': dict, 'state': {index: {'step': int, <buffers>: arrays, ...}}}."""
        return {"hyper": dict(self.hyper),
                "state": {i: self._export(st) for i, st in enumerate(self.states) if st is not None}}

    def load_state_dict(self, state_dict):
        natives = {}
        for i, saved in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"state refers to parameter {i}, but there are {len(self.params)}")
            natives[i] = self._import(self.params[i], saved)
        hyper = dict(state_dict.get("hyper", self.hyper))
        self._check(hyper)
        self.hyper = hyper
        self.states = [natives.get(i) for i in range(len(self.params))]

    def save_native_state(self) -> bytes:
        """All state as bytes in the C ABI's format (``adx_state_load`` reads it)."""
        from .. import _core
        return _core.encode_state(self._algorithm_name(), self._spec_hyper(self.hyper), self.states)

    def load_native_state(self, data: bytes) -> None:
        """Load state written by ``adx_state_save`` or :meth:`save_native_state`, parameter by
        parameter in order; hyperparameters stay this optimizer's."""
        from .. import _core
        name, _, states = _core.decode_state(data)
        if name != self._algorithm_name():
            raise ValueError(f"state was saved by '{name}', this optimizer is '{self._algorithm_name()}'")
        if len(states) != len(self.params):
            raise ValueError(f"state holds {len(states)} parameters, this optimizer has {len(self.params)}")
        for p, st in zip(self.params, states):
            if st is not None and tuple(st.shape) != tuple(np.shape(p)):
                raise ValueError(f"saved state of shape {tuple(st.shape)} does not fit a parameter of shape {np.shape(p)}")
        self.states = list(states)

    def memory_report(self):
        """Same layout as the torch optimizers' memory_report."""
        params, total, adamw = [], 0, 0
        for p, st in zip(self.params, self.states):
            shape = tuple(np.shape(p))
            nbytes = st.state_bytes if st is not None else 0
            total += nbytes
            adamw += 2 * math.prod(shape) * np.asarray(p).itemsize
            params.append(dict(shape=shape, state_bytes=nbytes, **self._describe(p, st)))
        return dict(total_bytes=total, adamw_bytes=adamw, params=params)

    def _describe(self, param, native) -> dict:
        return {}

"""ElementwiseOptimizer for NumPy: base of the NumPy front of the elementwise family."""
from __future__ import annotations

import numpy as np

from .. import _core
from .. import _elementwise_state as E
from ._native import NativeOptimizer


class ElementwiseOptimizer(NativeOptimizer):
    """Subclasses set ``algorithm`` and ``_hyper(hyper) -> core hyperparameters``."""

    algorithm: str = ""

    def _hyper(self, hyper: dict) -> dict:
        raise NotImplementedError

    def _algorithm_name(self):
        return self.algorithm

    def _spec_hyper(self, hyper):
        return self._hyper(hyper)

    def _check(self, hyper):
        _core.elementwise_validate(self.algorithm, self._hyper(hyper))

    def _native_step(self, states, params, grads, indices):
        return _core.elementwise_step(self.algorithm, states, params, grads, self._hyper(self.hyper))

    def _export(self, native):
        return E.export_state(native)

    def _import(self, param, saved):
        return E.import_state(np.shape(param), np.asarray(param).dtype == np.float64, saved)

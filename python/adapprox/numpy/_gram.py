"""GramOptimizer: the NumPy front of FullMatrixAdagrad and AdaGram (see _gram_state.py)."""
from __future__ import annotations

import numpy as np

from .. import _gram_state as S
from ._native import NativeOptimizer


class GramOptimizer(NativeOptimizer):
    algorithm = ""  # "fullmatrixadagrad" or "adagram"

    def _check(self, hyper):
        S.check_hyper(hyper)

    def _native_step(self, states, params, grads, indices):
        return S.step(self.algorithm, states, params, grads, self.hyper)

    def _export(self, native):
        return S.export_state(native)

    def _import(self, param, saved):
        return S.import_state(self.algorithm, np.shape(param), saved)

    def _algorithm_name(self):
        return self.algorithm

    def _spec_hyper(self, hyper):
        return S.spec_hyper(hyper)

    def _describe(self, param, native):
        return S.describe(native) if native is not None else ({"rank": 0} if self.algorithm == "adagram" else {})

"""GramOptimizer: the torch front of FullMatrixAdagrad and AdaGram (see _gram_state.py)."""
from __future__ import annotations

from .. import _gram_state as S
from ._native import NativeOptimizer


class GramOptimizer(NativeOptimizer):
    algorithm = ""  # "fullmatrixadagrad" or "adagram"

    def __init__(self, params, defaults):
        S.check_hyper(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            S.check_hyper(group)

    def _native_step(self, states, params, grads, indices, group):
        return S.step(self.algorithm, states, params, grads, group)

    def _export(self, native):
        return S.export_state(native)

    def _import(self, param, saved):
        return S.import_state(self.algorithm, param.shape, saved)

    def _algorithm_name(self):
        return self.algorithm

    def _spec_hyper(self, group):
        return S.spec_hyper(group)

    def _describe(self, param, native):
        return S.describe(native) if native is not None else ({"rank": 0} if self.algorithm == "adagram" else {})

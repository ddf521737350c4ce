"""GramOptimizer: the NumPy front of FullMatrixAdagrad and AdaGram (see _gram_state.py)."""
from __future__ import annotations

from .. import _gram_state as S
from ._native import NativeOptimizer


class GramOptimizer(NativeOptimizer):
    algorithm = ""  # "fullmatrixadagrad" or "adagram"

    def _check(self, hyper):
        S.check_hyper(hyper)

    def _hyper(self, hyper):
        return S.spec_hyper(hyper)

    def _describe(self, param, st):
        if self.algorithm != "adagram":
            return {}
        return {"rank": int(st["factor_p"].shape[1]) if "factor_p" in st else 0}

"""GramOptimizer: the torch front of FullMatrixAdagrad and AdaGram (see _gram_state.py)."""
from __future__ import annotations

from .. import _gram_state as S
from ._native import NativeOptimizer


class GramOptimizer(NativeOptimizer):
    algorithm = ""  # "fullmatrixadagrad" or "adagram"
    # Sharded (FSDP2) parameters are gathered and stepped whole on every rank, state replicated:
    # the Gram statistics span the whole flattened parameter.
    shard_gather = True

    def __init__(self, params, defaults):
        S.check_hyper(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            S.check_hyper(group)

    def _hyper(self, group):
        return S.spec_hyper(group)

    def _describe(self, param, st):
        if self.algorithm != "adagram":
            return {}
        return {"rank": int(st["factor_p"].shape[1]) if "factor_p" in st else 0}

"""ElementwiseOptimizer: base of the torch front of the native elementwise family (Adam, SGD, ...)."""
from __future__ import annotations

import torch

from .. import _core
from .. import _elementwise_state as E
from ._native import NativeOptimizer


class ElementwiseOptimizer(NativeOptimizer):
    """Subclasses set ``algorithm`` (the core's name) and map a param group to core hyperparameters."""

    algorithm: str = ""

    def _hyper(self, group) -> dict:
        raise NotImplementedError

    def _check_groups(self):
        for group in self.param_groups:
            _core.elementwise_validate(self.algorithm, self._hyper(group))

    def _algorithm_name(self):
        return self.algorithm

    def _spec_hyper(self, group):
        return self._hyper(group)

    def _native_step(self, states, params, grads, indices, group):
        return _core.elementwise_step(self.algorithm, states, params, grads, self._hyper(group))

    def _export(self, native):
        return E.export_state(native)

    def _import(self, param, saved):
        return E.import_state(param.shape, param.dtype == torch.float64, saved)

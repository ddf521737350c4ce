"""ElementwiseOptimizer for NumPy: base of the NumPy front of the elementwise family."""
from __future__ import annotations

from ._native import NativeOptimizer


class ElementwiseOptimizer(NativeOptimizer):
    """Subclasses set ``algorithm`` and ``_hyper(hyper) -> registry hyperparameters``."""

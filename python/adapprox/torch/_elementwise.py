"""ElementwiseOptimizer: base of the torch front of the native elementwise family (Adam, SGD, ...)."""
from __future__ import annotations

from ._native import NativeOptimizer


class ElementwiseOptimizer(NativeOptimizer):
    """Subclasses set ``algorithm`` (the registry's name) and map a param group to its
    hyperparameters (``_hyper``). Each element's update uses only its own state, so a sharded
    DTensor parameter (FSDP2) is stepped shard by shard with state sharded alike."""

    shard_local = True

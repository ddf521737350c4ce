"""adapprox: memory-efficient adaptive optimizers with a native C++ core.

* :func:`as_rsi` -- randomized low-rank approximation with adaptive rank (AS-RSI).
* :mod:`adapprox.torch` -- ``torch.optim``-style optimizers (``adapprox.torch.Adapprox``).
* :mod:`adapprox.numpy` -- the same optimizers updating NumPy arrays in place.
"""
from ._core import num_threads, set_num_threads
from ._rsi import as_rsi

__version__ = "0.1.0"
__all__ = ["as_rsi", "num_threads", "set_num_threads", "__version__"]

"""adapprox: memory-efficient adaptive optimizers with a native C++ core.

* :func:`as_rsi` -- randomized low-rank approximation with adaptive rank (AS-RSI).
* :func:`phase_times` -- where the factored steps' time goes (sketch, products, QR, ...).
* :mod:`adapprox.torch` -- ``torch.optim``-style optimizers (``adapprox.torch.Adapprox``).
* :mod:`adapprox.numpy` -- the same optimizers updating NumPy arrays in place.
"""
from ._core import __version__, isa, num_threads, set_num_threads  # the version: pyproject.toml's
from ._phase_times import PhaseTimes, phase_times
from ._rsi import as_rsi

__all__ = ["as_rsi", "isa", "num_threads", "phase_times", "PhaseTimes", "set_num_threads", "__version__"]

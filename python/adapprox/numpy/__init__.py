"""The adapprox optimizers for NumPy: each updates a list of arrays in place, ``opt.step(grads)``."""
from .adapprox import Adapprox
from .signsgd import SignSGD

__all__ = ["Adapprox", "SignSGD"]

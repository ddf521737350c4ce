"""``torch.optim``-style optimizers backed by the adapprox native core (CPU tensors)."""
from .adapprox import Adapprox
from .signsgd import SignSGD

__all__ = ["Adapprox", "SignSGD"]

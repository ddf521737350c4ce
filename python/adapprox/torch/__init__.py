"""``torch.optim``-style optimizers backed by the adapprox native core (CPU tensors)."""
from .adapprox import Adapprox

__all__ = ["Adapprox"]

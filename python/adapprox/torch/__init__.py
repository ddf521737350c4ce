"""``torch.optim``-style optimizers backed by the adapprox native core (CPU tensors)."""
from .adapprox import Adapprox
from .signsgd import SignSGD
from .adam import Adam, AdamW
from .nadam import NAdam
from .sgd import SGD
from .rmsprop import RMSprop
from .adagrad import Adagrad
from .adafactor import Adafactor
from .full_matrix_adagrad import FullMatrixAdagrad
from .adagram import AdaGram
from ._distributed import fit_state_to_checkpoint, set_collective_timeout

__all__ = ["Adapprox", "SignSGD", "Adam", "AdamW", "NAdam", "SGD", "RMSprop", "Adagrad", "Adafactor", "FullMatrixAdagrad",
           "AdaGram", "set_collective_timeout", "fit_state_to_checkpoint"]

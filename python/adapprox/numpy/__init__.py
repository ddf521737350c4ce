"""The adapprox optimizers for NumPy: each updates a list of arrays in place, ``opt.step(grads)``."""
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

__all__ = ["Adapprox", "SignSGD", "Adam", "AdamW", "NAdam", "SGD", "RMSprop", "Adagrad", "Adafactor", "FullMatrixAdagrad",
           "AdaGram"]

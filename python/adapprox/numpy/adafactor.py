"""adapprox.numpy.Adafactor: the native Adafactor step (torch or paper mode) on NumPy arrays, in place."""
from __future__ import annotations

import numpy as np

from .. import _adafactor_state as S
from ._native import NativeOptimizer
from .._args import documented


@documented("adafactor", "numpy")
class Adafactor(NativeOptimizer):
    """Adafactor over NumPy arrays: same modes, math and defaults as :class:`adapprox.torch.Adafactor`
    (``mode="torch"``, the default, follows ``torch.optim.Adafactor``; ``mode="paper"`` is Shazeer
    and Stern's algorithm with relative step, ``eps1=1e-30`` inside the averages and update clipping).

    ``params`` is a sequence of writable, C-contiguous float16/bfloat16/float32/float64 arrays (any
    DLPack-capable CPU array works); ``step(grads)`` updates them **in place**. Pass ``None`` for
    a gradient to skip that array this step.

    >>> import numpy as np, adapprox.numpy as anp
    >>> w = np.ones((4, 3))
    >>> opt = anp.Adafactor([w], mode="paper")
    >>> opt.step([np.ones_like(w)])
    >>> bool(np.allclose(w, 0.99))
    True
    """

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 maximize=False, mode="torch", beta1=None, relative_step=True, scale_parameter=True,
                 decay_rate=None, eps1=None, eps2=None, foreach=None, state_precision="fp32",
                 stochastic_rounding=False):
        defaults = S.make_defaults(lr, beta2_decay, eps, d, weight_decay, foreach, maximize, mode, beta1,
                                   relative_step, scale_parameter, decay_rate, eps1, eps2)
        super().__init__(params, dict(defaults, state_precision=state_precision,
                                      stochastic_rounding=stochastic_rounding))

    algorithm = "adafactor"

    def _check(self, hyper):
        S.check_hyper(hyper)

    def _hyper(self, hyper):
        return S.spec_hyper(hyper)

    def _describe(self, param, st):
        return dict(factored=len(np.shape(param)) >= 2)

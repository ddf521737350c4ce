"""adapprox.numpy.FullMatrixAdagrad: full-matrix AdaGrad on NumPy arrays, in place."""
from __future__ import annotations

import numpy as np

from .. import _core
from .. import _gram_state as S
from ._native import NativeOptimizer


class FullMatrixAdagrad(NativeOptimizer):
    """Full-matrix AdaGrad over NumPy arrays: same math, defaults and size limit as
    :class:`adapprox.torch.FullMatrixAdagrad` (``p -= clr * (eps I + sum g g^T)^-1/2 g`` per
    flattened array). ``step(grads)`` updates the arrays **in place**; ``None`` skips one.

    >>> import numpy as np, adapprox.numpy as anp
    >>> w = np.zeros(3)
    >>> opt = anp.FullMatrixAdagrad([w], lr=0.5)
    >>> opt.step([np.array([3.0, 0.0, 4.0])])
    >>> bool(np.allclose(w, [-0.3, 0.0, -0.4]))
    True
    """

    def __init__(self, params, lr=1e-1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      maximize=maximize))

    def _check(self, hyper):
        S.check_hyper(hyper)

    def _native_step(self, states, params, grads, indices):
        return _core.full_matrix_adagrad_step(states, params, grads, S.native_hyper(self.hyper))

    def _export(self, native):
        return S.export_state(native)

    def _import(self, param, saved):
        return S.import_state("fullmatrixadagrad", np.shape(param), saved)

    def _algorithm_name(self):
        return "fullmatrixadagrad"

    def _spec_hyper(self, hyper):
        return S.spec_hyper(hyper)

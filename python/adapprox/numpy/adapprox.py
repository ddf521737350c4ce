"""adapprox.numpy.Adapprox: the native Adapprox step on NumPy arrays, in place."""
from __future__ import annotations

import numpy as np

from .. import _adapprox_state as S
from .. import _core


class Adapprox:
    """Adapprox over NumPy arrays (same math and defaults as :class:`adapprox.torch.Adapprox`).

    ``params`` is a sequence of writable, C-contiguous float32/float64/float16 arrays (any
    DLPack-capable CPU array works); ``step(grads)`` updates them **in place** and never copies
    or casts them. Pass ``None`` for a gradient to skip that array this step.

    >>> import numpy as np, adapprox.numpy as anp
    >>> w = np.zeros((8, 4), np.float32)
    >>> opt = anp.Adapprox([w], lr=1e-2)
    >>> opt.step([np.ones_like(w)])
    >>> bool((w < 0).all())
    True
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0,
                 rank=1, min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1,
                 cosine_guidance=False, seed=0, maximize=False):
        self.params = list(params)
        self.hyper = dict(lr=lr, betas=tuple(betas), eps=eps, clip_threshold=clip_threshold,
                          weight_decay=weight_decay, rank=rank, min_rank=min_rank, max_rank=max_rank, tol=tol,
                          oversample=oversample, power_iters=power_iters, cosine_guidance=cosine_guidance,
                          seed=seed, maximize=maximize)
        S.check_hyper(self.hyper)
        self.states = [None] * len(self.params)

    @property
    def lr(self):
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value):
        self.hyper["lr"] = value

    def step(self, grads):
        """Apply one update: ``params[i] -= lr * (...)`` in place for every ``grads[i]`` not None."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"grads: expected {len(self.params)} gradients (one per parameter), got {len(grads)}")
        S.check_hyper(self.hyper)
        idx = [i for i, g in enumerate(grads) if g is not None]
        try:
            states = _core.adapprox_step([self.states[i] for i in idx], [self.params[i] for i in idx], [grads[i] for i in idx], idx,
                                S.native_hyper(self.hyper))
        except (ValueError, TypeError) as e:
            # The core names positions within this call; map them back to the caller's indices.
            msg = str(e)
            for pos in reversed(range(len(idx))):
                msg = msg.replace(f"params[{pos}]", f"params[{idx[pos]}]").replace(f"grads[{pos}]",
                                                                                  f"grads[{idx[pos]}]")
            raise type(e)(msg) from None
        for i, st in zip(idx, states):
            self.states[i] = st

    def state_dict(self):
        """{'hyper': dict, 'state': {index: {step, rank, factor_q, factor_u | exp_avg_sq, exp_avg}}}."""
        return {"hyper": dict(self.hyper),
                "state": {i: S.export_state(st) for i, st in enumerate(self.states) if st is not None}}

    def load_state_dict(self, state_dict):
        natives = {}
        for i, saved in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"state refers to parameter {i}, but there are {len(self.params)}")
            natives[i] = S.import_state(np.shape(self.params[i]), saved)
        hyper = dict(state_dict.get("hyper", self.hyper))
        S.check_hyper(hyper)
        self.hyper = hyper
        self.states = [natives.get(i) for i in range(len(self.params))]

    def memory_report(self):
        """Same layout as :meth:`adapprox.torch.Adapprox.memory_report`."""
        return S.memory_report((tuple(np.shape(p)), np.asarray(p).itemsize, st)
                               for p, st in zip(self.params, self.states))

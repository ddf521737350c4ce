"""adapprox.torch.Adapprox: a torch.optim.Optimizer over the native Adapprox step."""
from __future__ import annotations

from itertools import chain

import torch

from .. import _adapprox_state as S
from .. import _core


class Adapprox(torch.optim.Optimizer):
    r"""Adapprox: Adam with a low-rank second moment refreshed by AS-RSI (Zhao et al. 2024).

    For each matrix parameter ``G`` (m x n; N-D parameters are viewed as (shape[0], rest))::

        V_t   = b2 Q U^T + (1 - b2) G^2                 # implicit, never stored
        Q, U  = AS-RSI(V_t)                              # rank in [min_rank, max_rank] meeting tol
        Mhat  = G / (sqrt(b2 |Q_{t-1} U_{t-1}^T| + (1 - b2) G^2) + eps)
        Mhat /= max(1, RMS(Mhat) / clip_threshold)
        M     = b1 M + (1 - b1) Mhat                     # no M is kept when b1 == 0
        p    -= lr * (M + weight_decay * p)

    1-D parameters keep a dense second moment. No bias correction (as in the paper). ``max_rank``
    None means ``max(1, min(m, n) // 4)``. Factors are float32 for every parameter dtype; bf16 and
    fp16 parameters are updated through float32 math and rounded once. The optimizer state lives
    in the native core; ``state_dict()`` exports float32 tensors ``factor_q`` (m x k), ``factor_u``
    (n x k), ``exp_avg`` and ``exp_avg_sq`` (1-D), plus ``step`` and ``rank``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0,
                 rank=1, min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1,
                 cosine_guidance=False, seed=0, *, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, clip_threshold=clip_threshold,
                        weight_decay=weight_decay, rank=rank, min_rank=min_rank, max_rank=max_rank, tol=tol,
                        oversample=oversample, power_iters=power_iters, cosine_guidance=cosine_guidance,
                        seed=seed, maximize=maximize)
        S.check_hyper(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            S.check_hyper(group)

    @torch.no_grad()
    def step(self, closure=None):
        """Performs one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = 0
        for gi, group in enumerate(self.param_groups):
            states, params, grads, indices, owners = [], [], [], [], []
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.is_sparse:
                        raise TypeError(f"param_groups[{gi}]: Adapprox does not support sparse gradients")
                    states.append(self.state[p].get("native") if p in self.state else None)
                    owners.append(p)
                    params.append(p.detach())
                    grads.append(p.grad.detach())
                    indices.append(index)
                index += 1
            if not states:
                continue
            try:
                used = _core.adapprox_step(states, params, grads, indices, S.native_hyper(group))
            except (ValueError, TypeError) as e:
                raise type(e)(f"param_groups[{gi}] {e}") from None
            for p, native in zip(owners, used):  # only a step that ran creates state
                self.state[p]["native"] = native
        return loss

    def memory_report(self):
        """{'total_bytes', 'adamw_bytes', 'params': [{'shape', 'rank', 'factored', 'state_bytes'}]}."""
        entries = []
        for group in self.param_groups:
            for p in group["params"]:
                native = self.state[p].get("native") if p in self.state else None
                entries.append((tuple(p.shape), p.element_size(), native))
        return S.memory_report(entries)

    def state_dict(self):
        sd = super().state_dict()
        sd["state"] = {k: {n: (torch.from_numpy(a) if hasattr(a, "dtype") else a)
                           for n, a in S.export_state(v["native"]).items()}
                       for k, v in sd["state"].items() if "native" in v}
        return sd

    def load_state_dict(self, state_dict):
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        saved_ids = list(chain.from_iterable(g["params"] for g in saved_groups))
        params = list(chain.from_iterable(g["params"] for g in self.param_groups))
        if len(saved_ids) != len(params):
            raise ValueError("loaded state dict contains a different number of parameters")
        id_map = dict(zip(saved_ids, params))
        # Build (and validate) every native state before anything changes.
        natives = {}
        for k, saved in state_dict["state"].items():
            if k not in id_map:
                raise ValueError(f"loaded state refers to unknown parameter index {k}")
            p = id_map[k]
            to_np = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t  # noqa: E731
            natives[p] = S.import_state(p.shape, saved, to_np)
        rest = dict(state_dict)
        rest["state"] = {}
        super().load_state_dict(rest)  # param_groups (hyperparameters) only; factors stay float32
        for p, native in natives.items():
            self.state[p]["native"] = native

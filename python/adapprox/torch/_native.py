"""NativeOptimizer: the torch.optim.Optimizer plumbing shared by every adapprox optimizer.

Per-parameter state is a native object (``self.state[p]["native"]``); one native call steps a
whole parameter group. Subclasses say how to call the core and how to export/import state.
"""
from __future__ import annotations

from itertools import chain

import torch
from torch.utils.dlpack import to_dlpack


def _as_dlpack(t: torch.Tensor):
    """What the core imports for `t`: a DLPack capsule for a CPU tensor (to_dlpack is a single C
    call, about 10x cheaper than the ``__dlpack__`` protocol, which matters with many small
    tensors), else the detached tensor, so the core reports where it lives."""
    return to_dlpack(t) if t.device.type == "cpu" else t.detach()


class NativeOptimizer(torch.optim.Optimizer):
    def _native_step(self, states, params, grads, indices, group):
        """Run the core on one group; returns the state objects used (new ones for None)."""
        raise NotImplementedError

    def _export(self, native) -> dict:
        """Native state -> {name: NumPy array or number}."""
        raise NotImplementedError

    def _import(self, param, saved: dict):
        """{name: array or number} -> a validated native state for `param`."""
        raise NotImplementedError

    def _algorithm_name(self) -> str:
        """The optimizer's name in spec strings and the state byte format ("adapprox", "adam", ...)."""
        raise NotImplementedError

    def _spec_hyper(self, group) -> dict:
        """A group's hyperparameters under their spec-string keys."""
        raise NotImplementedError

    def _describe(self, param, native) -> dict:
        """Extra memory_report fields for one parameter (e.g. rank)."""
        return {}

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
                        raise TypeError(f"param_groups[{gi}]: {type(self).__name__} does not support sparse gradients")
                    states.append(self.state[p].get("native") if p in self.state else None)
                    params.append(_as_dlpack(p))
                    grads.append(_as_dlpack(p.grad))
                    indices.append(index)
                    owners.append(p)
                index += 1
            if not states:
                continue
            try:
                used = self._native_step(states, params, grads, indices, group)
            except (ValueError, TypeError) as e:
                raise type(e)(f"param_groups[{gi}] {e}") from None
            for p, native in zip(owners, used):  # only a step that ran creates state
                self.state[p]["native"] = native
        return loss

    def memory_report(self):
        """{'total_bytes', 'adamw_bytes', 'params': [{'shape', 'state_bytes', ...}]}; AdamW's figure
        is exp_avg + exp_avg_sq in the parameter dtype (scalar step counters left out on both sides)."""
        params, total, adamw = [], 0, 0
        for group in self.param_groups:
            for p in group["params"]:
                native = self.state[p].get("native") if p in self.state else None
                nbytes = native.state_bytes if native is not None else 0
                total += nbytes
                adamw += 2 * p.numel() * p.element_size()
                params.append(dict(shape=tuple(p.shape), state_bytes=nbytes, **self._describe(p, native)))
        return dict(total_bytes=total, adamw_bytes=adamw, params=params)

    def state_dict(self):
        sd = super().state_dict()
        sd["state"] = {k: {n: (torch.from_numpy(a) if hasattr(a, "dtype") else a)
                           for n, a in self._export(v["native"]).items()}
                       for k, v in sd["state"].items() if "native" in v}
        return sd

    def save_native_state(self) -> bytes:
        """All state as bytes in the C ABI's format (``adx_state_load`` reads it). The
        hyperparameters stored are those of the first parameter group."""
        from .. import _core
        states = [self.state[p].get("native") if p in self.state else None
                  for g in self.param_groups for p in g["params"]]
        return _core.encode_state(self._algorithm_name(), self._spec_hyper(self.param_groups[0]), states)

    def load_native_state(self, data: bytes) -> None:
        """Load state written by ``adx_state_save`` or :meth:`save_native_state`, parameter by
        parameter in order. Hyperparameters stay those of this optimizer's groups."""
        from .. import _core
        name, _, states = _core.decode_state(data)
        if name != self._algorithm_name():
            raise ValueError(f"state was saved by '{name}', this optimizer is '{self._algorithm_name()}'")
        params = [p for g in self.param_groups for p in g["params"]]
        if len(states) != len(params):
            raise ValueError(f"state holds {len(states)} parameters, this optimizer has {len(params)}")
        for p, st in zip(params, states):
            if st is not None and tuple(st.shape) != tuple(p.shape):
                raise ValueError(f"saved state of shape {tuple(st.shape)} does not fit a parameter of shape {tuple(p.shape)}")
        for p, st in zip(params, states):
            if st is None:
                self.state[p].pop("native", None)
            else:
                self.state[p]["native"] = st

    def load_state_dict(self, state_dict):
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        saved_ids = list(chain.from_iterable(g["params"] for g in saved_groups))
        params = list(chain.from_iterable(g["params"] for g in self.param_groups))
        if len(saved_ids) != len(params):
            raise ValueError("loaded state dict contains a different number of parameters")
        id_map = dict(zip(saved_ids, params))
        natives = {}  # build and validate every native state before anything changes
        for k, saved in state_dict["state"].items():
            if k not in id_map:
                raise ValueError(f"loaded state refers to unknown parameter index {k}")
            p = id_map[k]
            natives[p] = self._import(p, {n: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v)
                                          for n, v in saved.items()})
        rest = dict(state_dict)
        rest["state"] = {}
        super().load_state_dict(rest)  # hyperparameters only: native state keeps its own dtypes
        for p, native in natives.items():
            self.state[p]["native"] = native

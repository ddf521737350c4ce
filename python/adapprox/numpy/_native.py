"""NativeOptimizer for NumPy: a list of arrays updated in place by ``step(grads)``, with the
state in NumPy arrays on ``opt.state`` ({index: {name: array}}), named and shaped by the core's
registry as in the torch front."""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from .._load_rule import group_from_spec
from .._lock import drop_lock, serialised
from .._precision import with_precision

_REAL = {np.dtype(np.complex64): np.float32, np.dtype(np.complex128): np.float64}


def _real_view(a):
    """A complex NumPy array as its float view (torch's view_as_real, flattened last axis)."""
    if isinstance(a, np.ndarray) and a.dtype in _REAL:
        return a.view(_REAL[a.dtype])
    return a


def _cuda_stream(array):
    """The stream a step on CUDA arrays runs on: CuPy's current stream for CuPy arrays, else None
    (the legacy default stream)."""
    dev = getattr(array, "__dlpack_device__", None)
    if dev is None or dev()[0] != 2:
        return None
    if type(array).__module__.startswith("cupy"):
        import cupy
        return cupy.cuda.get_current_stream().ptr
    return None


def _refuse_immutable(params):
    """JAX arrays are immutable, but JAX exports their buffers through DLPack without a read-only
    flag: stepping one in place would change it, and every alias of it, behind JAX's back."""
    for i, p in enumerate(params):
        if type(p).__module__.split(".")[0] in ("jax", "jaxlib"):
            raise TypeError(f"params[{i}] is a JAX array ({type(p).__name__}); JAX arrays are immutable and this "
                            "front updates parameters in place. Use adapprox.jax (optax-style transforms), or pass "
                            "NumPy/CuPy arrays")


class NativeOptimizer:
    """Subclasses set ``algorithm`` and ``_hyper(hyper)`` (the registry's keys)."""

    algorithm: str = ""

    def __init__(self, params, hyper: dict):
        self.params = list(params)
        _refuse_immutable(self.params)
        self._check(hyper)
        self.hyper = dict(hyper)
        self.state = {}

    def __getstate__(self):
        return drop_lock(dict(self.__dict__))

    def _hyper(self, hyper: dict) -> dict:
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        hyper = cls.__dict__.get("_hyper")
        if hyper is not None and not getattr(hyper, "_with_precision", False):
            cls._hyper = with_precision(hyper)  # state_precision / stochastic_rounding, where kept

    def _check(self, hyper):
        if hyper.get("state_precision") == "bf16":  # NumPy has no bfloat16 of its own to export through DLPack
            raise ValueError("state_precision 'bf16' is not offered by the NumPy front (NumPy has no bfloat16 dtype "
                             "that DLPack can carry); use '8bit' or 'fp32', or the torch front")
        _core.check_hyper(self.algorithm, self._hyper(hyper))

    @property
    def lr(self):
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value):
        self.hyper["lr"] = value

    def _new_state(self, p, schema):
        arr = p if isinstance(p, np.ndarray) else None
        out = {}
        for spec in schema:
            if spec["resized"]:
                continue
            dtype = np.dtype(spec["dtype"])
            if spec["name"] == "step":
                out["step"] = np.zeros((), np.float64)
            elif spec["like_param"]:
                out[spec["name"]] = (np.zeros_like(arr) if arr is not None and arr.dtype in _REAL
                                     else np.zeros_like(_real_view(arr), dtype=dtype) if arr is not None
                                     else np.zeros(spec["shape"], dtype))
            elif not spec["shape"]:  # 0-d scalars (NAdam's mu_product) in float64
                out[spec["name"]] = np.zeros((), np.float64)
            else:
                out[spec["name"]] = np.zeros(spec["shape"], dtype)
            if spec["fill"] and spec["name"] != "step":
                _real_view(out[spec["name"]])[...] = spec["fill"]  # every real number, as torch's complex fill
        return out

    @serialised
    def step(self, grads):
        """Apply one update in place for every ``grads[i]`` that is not None."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"grads: expected {len(self.params)} gradients (one per parameter), got {len(grads)}")
        hyper = self._hyper(self.hyper)
        plist, glist, slist, fresh, idx, owners = [], [], [], [], [], []
        for i, g in enumerate(grads):
            if g is None:
                continue
            p = self.params[i]
            if isinstance(p, np.ndarray) and p.dtype in _REAL and hyper.get("state_precision", 0):
                raise ValueError(f"params[{i}]: state_precision other than 'fp32' is not offered for complex "
                                 f"parameters (got {p.dtype})")
            if isinstance(p, np.ndarray) and p.dtype in _REAL and not _core.supports_complex(self.algorithm):
                raise TypeError(f"params[{i}]: {type(self).__name__} does not support complex parameters")
            pr, gr = _real_view(p), _real_view(g)
            shape, dtype = _core.tensor_info(pr, f"params[{i}]")
            schema = _core.schema(self.algorithm, hyper, list(shape), dtype)
            st = self.state.get(i)
            is_new = not st
            if is_new:
                st = self._new_state(p, schema)
            bufs = []
            for spec in schema:
                t = st.get(spec["name"])
                if t is None and not spec["resized"]:
                    raise ValueError(f"params[{i}]: state '{spec['name']}' is missing")
                bufs.append(None if t is None else _real_view(t))
            plist.append(pr)
            glist.append(gr)
            slist.append(bufs)
            fresh.append(is_new)
            idx.append(i)
            owners.append((i, schema, st, is_new))
        if not plist:
            return
        try:
            replaced, stopped = _core.step(self.algorithm, [(hyper, plist, glist, slist, fresh, idx)],
                                           _cuda_stream(plist[0]))
        except (ValueError, TypeError) as e:
            # The core names positions within this call; map them back to the caller's indices.
            msg = str(e)
            for pos in reversed(range(len(idx))):
                msg = msg.replace(f"params[{pos}]", f"params[{idx[pos]}]").replace(f"grads[{pos}]",
                                                                                  f"grads[{idx[pos]}]")
            raise type(e)(msg) from None
        # A signal (Ctrl-C) may stop the step between parameters: those stepped in full keep
        # their new state, the others are untouched; then its exception is raised.
        done = stopped[0] if stopped else None
        for slot, (i, schema, st, is_new) in enumerate(owners):
            if is_new and (done is None or done[slot]):
                self.state[i] = st
        for slot, k, capsule in replaced:
            i, schema = owners[slot][0], owners[slot][1]
            self.state[i][schema[k]["name"]] = np.from_dlpack(_Capsule(capsule))
        if stopped:
            raise stopped[1]

    @serialised
    def state_dict(self):
        """{'hyper': dict, 'state': {index: {name: array}}} (copies)."""
        return {"hyper": dict(self.hyper),
                "state": {i: {k: np.array(v, copy=True) for k, v in st.items()} for i, st in self.state.items()}}

    @serialised
    def load_state_dict(self, state_dict):
        state = {}
        for i, saved in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"state refers to parameter {i}, but there are {len(self.params)}")
            state[i] = {k: np.array(v, copy=True) for k, v in saved.items() if k != "rank"}
            if "step" in state[i]:
                state[i]["step"] = np.asarray(state[i]["step"], np.float64).reshape(())
            if "mu_product" in state[i]:
                state[i]["mu_product"] = np.asarray(state[i]["mu_product"], np.float64).reshape(())
        hyper = dict(state_dict.get("hyper", self.hyper))
        self._check(hyper)
        self._conform(state, hyper)
        self.hyper = hyper
        self.state = state

    def _conform(self, state, hyper):
        """Checks loaded state against each parameter's schema (every buffer present, fixed shapes
        right) and converts buffers to the dtype the state keeps (as torch casts); raises
        ValueError naming the parameter and buffer."""
        for i, st in state.items():  # buffers in the dtype this parameter's state keeps (as torch casts)
            p = _real_view(self.params[i])
            shape, dtype = _core.tensor_info(p, f"params[{i}]")
            for spec in _core.schema(self.algorithm, self._hyper(hyper), list(shape), dtype):
                a = st.get(spec["name"])
                if a is None and not spec["resized"]:
                    raise ValueError(f"params[{i}]: state '{spec['name']}' is required ({self.algorithm} keeps "
                                     f"{[s['name'] for s in _core.schema(self.algorithm, self._hyper(hyper), list(shape), dtype)]})")
                if a is None or spec["name"] == "step" or spec["resized"] or a.dtype in _REAL:
                    continue
                if tuple(a.shape) != tuple(spec["shape"]):
                    raise ValueError(f"params[{i}]: state '{spec['name']}' has shape {tuple(a.shape)}, expected "
                                     f"{tuple(spec['shape'])}")
                if spec["shape"] or spec["like_param"]:
                    st[spec["name"]] = a.astype(spec["dtype"], copy=False)

    @serialised
    def save_native_state(self) -> bytes:
        """All state as bytes in the C ABI's format (``adx_state_load`` reads it)."""
        states = []
        for i, p in enumerate(self.params):
            st = self.state.get(i)
            if not st:
                states.append(None)
                continue
            bufs = {k: np.ascontiguousarray(_real_view(v)) for k, v in st.items() if k != "step"}
            states.append((tuple(np.shape(_real_view(p))), int(st["step"]) if "step" in st else 0, bufs))
        return _core.encode_state(self.algorithm, _core.check_hyper(self.algorithm, self._hyper(self.hyper)), states)

    @serialised
    def load_native_state(self, data: bytes, *, keep_hyperparameters: bool = False) -> None:
        """Load state written by ``adx_state_save`` or :meth:`save_native_state`, parameter by
        parameter in order. The saved hyperparameters replace this optimizer's (as
        ``adx_state_load`` and torch's ``load_state_dict`` do) unless ``keep_hyperparameters``;
        the state must fit whichever apply. Checked whole before anything changes."""
        name, saved_hyper, states = _core.decode_state(data, len(self.params))
        if name != self.algorithm:
            raise ValueError(f"state was saved by '{name}', this optimizer is '{self.algorithm}'")
        if len(states) != len(self.params):
            raise ValueError(f"state holds {len(states)} parameters, this optimizer has {len(self.params)}")
        hyper = self.hyper if keep_hyperparameters else group_from_spec(self.algorithm, self.hyper, saved_hyper,
                                                                         self._hyper)
        new = {}
        for i, (p, st) in enumerate(zip(self.params, states)):
            if st is None:
                continue
            shape, step, bufs = st
            if tuple(shape) != tuple(np.shape(p)):
                raise ValueError(f"params[{i}]: saved state of shape {tuple(shape)} does not fit a parameter of "
                                 f"shape {tuple(np.shape(p))}")
            entry = {}  # in schema order, as a stepped state
            pr = _real_view(p)
            shape_, dtype = _core.tensor_info(pr, f"params[{i}]")
            # Moments saved at another state_precision are converted to this one's.
            bufs = _core.conform_state(self.algorithm, self._hyper(hyper), list(shape_), dtype, bufs, step)
            for spec in _core.schema(self.algorithm, self._hyper(hyper), list(shape_), dtype):
                if spec["name"] == "step":
                    entry["step"] = np.asarray(float(step), np.float64).reshape(())
                elif spec["name"] in bufs:
                    entry[spec["name"]] = bufs[spec["name"]]
            extra = sorted(k for k in bufs if k not in entry)
            if extra:  # state of other hyperparameters (a first moment this optimizer does not keep)
                raise ValueError(f"params[{i}]: saved state holds {extra}, which {self.algorithm} with these "
                                 f"hyperparameters does not keep")
            new[i] = entry
        self._conform(new, hyper)
        self.hyper = dict(hyper)
        self.state = new

    def memory_report(self):
        """Same layout as the torch optimizers' memory_report."""
        params, total, adamw, kinds = [], 0, 0, {}
        for i, p in enumerate(self.params):
            shape = tuple(np.shape(p))
            st = self.state.get(i, {})
            per = {k: v.nbytes for k, v in st.items() if k != "step"}
            nbytes = sum(per.values())
            for k, b in per.items():
                kinds[k] = kinds.get(k, 0) + b
            total += nbytes
            adamw += 2 * math.prod(shape) * np.asarray(p).itemsize
            params.append(dict(shape=shape, state_bytes=nbytes, buffers=per, **self._describe(p, st)))
        return dict(total_bytes=total, adamw_bytes=adamw, buffers=kinds, params=params)

    def _describe(self, param, st) -> dict:
        return {}


class _Capsule:
    """A DLPack capsule from the core wrapped for np.from_dlpack (which wants __dlpack__)."""

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **kwargs):
        return self._capsule

    def __dlpack_device__(self):
        return (1, 0)

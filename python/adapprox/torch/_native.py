"""NativeOptimizer: the torch.optim.Optimizer front shared by every adapprox optimizer.

State is ordinary torch tensors in ``self.state[p]``, named and shaped by the core's registry
(torch's names wherever torch has the optimizer); one native call validates and steps every
parameter group. state_dict, load_state_dict, hooks, deepcopy and pickle are torch's own.
"""
from __future__ import annotations

import inspect

import torch
from torch.utils.dlpack import from_dlpack, to_dlpack

from .. import _core
from .._load_rule import group_from_spec
from .._lock import drop_lock, serialised
from .._precision import needs_conversion, with_precision
from . import _distributed

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "uint8": torch.uint8}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _to_numpy(t):
    """A CPU NumPy copy of a state tensor in C order (bf16 as its uint16 bits)."""
    t = _local(t).detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view("uint16").copy()
    return t.contiguous().numpy().copy()


def _from_numpy(a):
    """A tensor from a state array (uint16 arrays are bf16 bits)."""
    import numpy as np
    if a.dtype == np.uint16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def _dtensor_type():
    """torch.distributed.tensor.DTensor where torch has it, else None (imported once, lazily)."""
    global _DTENSOR
    if _DTENSOR is False:
        try:
            from torch.distributed.tensor import DTensor
        except ImportError:  # a torch built without distributed support
            DTensor = None
        _DTENSOR = DTensor
    return _DTENSOR


_DTENSOR = False


def _local(t):
    """The local shard of a DTensor (the same memory, so in-place updates reach it), else t."""
    dt = _dtensor_type()
    return t.to_local() if dt is not None and isinstance(t, dt) else t


def _scalar_dtype():
    """The dtype torch gives scalar state such as ``step`` (float64 under a float64 default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class NativeOptimizer(torch.optim.Optimizer):
    """Subclasses set ``algorithm`` (the registry's name) and map a param group to the core's
    hyperparameters in ``_hyper``."""

    algorithm: str = ""
    # Whether each element's update depends only on that element's own state (the elementwise
    # family): such an optimizer steps the local shard of a sharded DTensor parameter as it is.
    # The factored ones (whose statistics span the whole matrix) take sharded parameters only
    # where they implement exact statistics over shards.
    shard_local: bool = False
    # Whether the core computes this optimizer's statistics over the whole matrix for parameters
    # split by rows over ranks (FSDP2's Shard(0)), all-reducing what spans the rows.
    shard_rows: bool = False
    # Whether a sharded parameter is stepped whole instead: every rank gathers the parameter and
    # its gradient, steps the same whole tensor with replicated state, and keeps its own shard
    # (AdaGram, FullMatrixAdagrad: whole-parameter Gram statistics).
    shard_gather: bool = False

    def _hyper(self, group) -> dict:
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        hyper = cls.__dict__.get("_hyper")
        if hyper is not None and not getattr(hyper, "_with_precision", False):
            cls._hyper = with_precision(hyper)  # state_precision / stochastic_rounding, where kept

    def _conform_precision(self, hyper, p, st, schema):
        """A copy of `st` whose dense moments held at another precision than `hyper` asks for
        (state loaded from an optimizer with another state_precision) are converted: float32 is
        encoded to 8-bit codes or bf16, 8-bit codes and bf16 decoded. None when they already fit
        (the check of every step; nothing is copied then)."""
        if p.is_complex():  # (complex state stays complex: no other precision is offered for it)
            return None
        if not needs_conversion(schema, st, lambda t: _NAMES.get(t.dtype) if torch.is_tensor(t) else None):
            return None
        dt = _dtensor_type()
        if dt is not None and isinstance(p, dt):
            raise ValueError(f"{type(self).__name__}: the state of a DTensor parameter is held at another "
                             "state_precision than its group's; converting sharded state is not offered, so load it "
                             "with the state_precision it was saved with")
        st = dict(st)
        names = {s["name"]: s for s in schema}
        bufs = {}
        for s in schema:  # every buffer in C order, as the byte format and the 8-bit blocks have it
            if s["moment"] and torch.is_tensor(st.get(s["name"])):
                bufs[s["name"]] = _to_numpy(st[s["name"]]).reshape(-1)
                a = st.get(s["name"] + "_absmax")
                if torch.is_tensor(a):
                    bufs[s["name"] + "_absmax"] = _to_numpy(a.float()).reshape(-1)
        step = int(st["step"].item()) if torch.is_tensor(st.get("step")) else 0
        out = _core.conform_state(self.algorithm, hyper, [p.numel()], _NAMES[p.dtype], bufs, step)
        for k in bufs:
            if k not in out or k not in names:
                st.pop(k, None)  # the absmax of codes that were decoded
        for k, a in out.items():
            spec = names.get(k)
            if spec is None:
                continue
            src = _from_numpy(a).reshape(-1)
            if spec["like_param"]:  # the parameter's layout, filled in C order
                t = torch.empty_like(p, dtype=src.dtype, memory_format=torch.preserve_format)
                t.copy_(src.view(p.shape))
            else:
                t = src.reshape(spec["shape"]).to(p.device)
            st[k] = t
        return st

    def _check_groups(self):
        for group in self.param_groups:
            _core.check_hyper(self.algorithm, self._hyper(group))

    def _schema(self, hyper, p_real):
        return self._plan(self._plans(hyper), hyper, p_real)[0]

    def _plans(self, hyper):
        """The plan cache of one set of hyperparameters (looked up once per group and step)."""
        return self.__dict__.setdefault("_schema_cache", {}).setdefault(tuple(hyper.items()), {})

    def _plan(self, plans, hyper, p_real):
        """(schema, the state names it allows, [(name, resized, dtype the schema keeps or None)]),
        cached per (hyperparameters, shape, dtype): the per-step work for a parameter whose
        state is already right is a few dict lookups."""
        key = (p_real.shape, p_real.dtype)
        plan = plans.get(key)
        if plan is None:
            schema = _core.schema(self.algorithm, hyper, list(p_real.shape), _NAMES[p_real.dtype])
            names = frozenset(s["name"] for s in schema) | {"step"}
            specs = [(s["name"], s["resized"], _DTYPES[s["dtype"]] if (s["like_param"] or s["shape"]) else None)
                     for s in schema]
            plan = plans[key] = (schema, names, specs)
        return plan

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_schema_cache", None)
        state.pop("_last_comm", None)
        return drop_lock(state)

    def __setstate__(self, state):
        # The constructor's own keys (torch's __setstate__ adds "differentiable" to every optimizer).
        own = {k: v for k, v in (state.get("defaults") or getattr(self, "defaults", {})).items()
               if k != "differentiable" or "differentiable" in inspect.signature(type(self).__init__).parameters}
        super().__setstate__(state)
        for group in self.param_groups:  # keys added to the optimizer since the state was saved
            for k, v in own.items():
                group.setdefault(k, v)
        for p, st in self.state.items():  # older formats: Python numbers where tensors are now
            if not isinstance(p, torch.Tensor) or not isinstance(st, dict):
                continue
            for k in ("step", "mu_product"):
                if k in st and not torch.is_tensor(st[k]):
                    st[k] = torch.tensor(float(st[k]), dtype=_scalar_dtype())
            st.pop("rank", None)  # implied by the factors' shapes

    @staticmethod
    def _schema_dtype(t, spec, p):
        """`t` in the dtype the schema keeps. torch.optim.Optimizer.load_state_dict casts floating
        state to the parameter's dtype (bf16 for bf16 parameters, as torch keeps it); such a
        tensor is widened once here, and the widened copy replaces it in the state after the step."""
        if t.is_complex() or not t.is_floating_point():
            return t
        want = _DTYPES[spec["dtype"]] if (spec["like_param"] or spec["shape"]) else t.dtype
        if t.dtype != want and not (p.is_complex() and spec["like_param"]):
            return t.to(want)
        return t

    def _new_state(self, spec, p, p_real):
        """A state buffer for the first step of `p`, as the schema describes it."""
        dtype = _DTYPES[spec["dtype"]]
        if spec["name"] == "step":
            return torch.tensor(0.0, dtype=_scalar_dtype())
        if spec["like_param"]:
            if p.is_complex():  # torch keeps complex state for complex parameters
                return torch.zeros_like(p, memory_format=torch.preserve_format)
            t = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
        elif not spec["shape"]:
            t = torch.tensor(float(spec["fill"]), dtype=_scalar_dtype())
            return t
        else:
            t = torch.zeros(spec["shape"], dtype=dtype)
        if spec["fill"]:
            t.fill_(spec["fill"])
        return t

    @torch.no_grad()
    @serialised
    def step(self, closure=None):
        """Performs one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        complex_ok = None
        groups, owners = [], []  # owners: (param, schema, state tensors, write back, by rows) per slot
        comm_cache = {}  # one communicator per device mesh
        gathered = []  # (slot, parameter, its whole copy) of the parameters stepped whole
        index = 0
        state = self.state
        for gi, group in enumerate(self.param_groups):
            hyper = self._hyper(group)
            plans = self._plans(hyper)
            params, grads, states, fresh, indices, comms = [], [], [], [], [], []
            for p in group["params"]:
                index += 1
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise TypeError(f"param_groups[{gi}] params[{index - 1}]: {type(self).__name__} does not "
                                    "support sparse gradients")
                p_real, g_real = p, g
                dt = _dtensor_type()
                sharded = dt is not None and isinstance(p, dt)
                by_rows = False  # one row shard of a matrix whose statistics span every rank
                whole = None  # a sharded parameter stepped whole (shard_gather)
                if sharded:  # FSDP2 / DTensor: the core steps the local shard, state follows it
                    mode = self._check_dtensor(gi, index - 1, p, g, dt)
                    by_rows = mode == "rows"
                    if mode == "gather":  # all-gathers: every rank, in parameter order
                        whole, g_real = p.full_tensor(), g.full_tensor()
                        p_real = whole
                    else:
                        p_real, g_real = p.to_local(), g.to_local()
                if p_real.is_complex():
                    if complex_ok is None:
                        complex_ok = _core.supports_complex(self.algorithm)
                    if not complex_ok:
                        raise TypeError(f"param_groups[{gi}] params[{index - 1}]: {type(self).__name__} does not "
                                        f"support complex parameters (got {p.dtype}); the elementwise optimizers do")
                    p_real, g_real = torch.view_as_real(p_real), torch.view_as_real(g_real)
                schema, names, specs = self._plan(plans, hyper, p if by_rows else p_real)  # the whole shape
                st = state.get(p)
                is_new = not st
                converted = False
                if not is_new:  # moments of another state_precision: converted copies, kept if the step succeeds
                    conformed = self._conform_precision(hyper, p, st, schema)
                    if conformed is not None:
                        st, converted = conformed, True
                if not is_new and not st.keys() <= names:
                    self._refuse_foreign(gi, index - 1, st, names)
                if p.is_complex() and hyper.get("state_precision", 0):
                    raise ValueError(f"param_groups[{gi}] params[{index - 1}]: state_precision other than 'fp32' is "
                                     f"not offered for complex parameters (got {p.dtype})")
                tensors, write_back = [], is_new or converted
                for (name, resized, want), spec in zip(specs, schema):
                    if is_new:
                        if resized:
                            t = None
                        elif by_rows and spec["shape"] and not spec["like_param"]:
                            t = _distributed.new_state(spec, p, want)
                        else:
                            t = self._new_state(spec, p if whole is None else whole, p_real)
                    else:
                        t = st.get(name)
                        if t is None:
                            if not resized:
                                raise KeyError(f"param_groups[{gi}] params[{index - 1}]: state '{name}' is missing "
                                               f"(the state holds {sorted(st)}; {type(self).__name__} needs "
                                               f"{[s['name'] for s in schema]})")
                        elif not isinstance(t, torch.Tensor):
                            raise TypeError(f"param_groups[{gi}] params[{index - 1}]: state '{name}' must be a "
                                            f"tensor, got {type(t).__name__}")
                        elif want is not None and t.dtype != want and name != "step":
                            t = self._schema_dtype(t, spec, p)
                            write_back = True
                    tensors.append(t)
                local = [None if t is None else _local(t) for t in tensors] if sharded else tensors
                if p_real.is_cpu:  # to_dlpack: one C call per tensor
                    params.append(to_dlpack(p_real))
                    grads.append(to_dlpack(g_real))
                    if not p.is_complex():  # real parameter: real state
                        states.append([None if t is None else to_dlpack(t) for t in local])
                    else:
                        states.append([None if t is None else to_dlpack(torch.view_as_real(t) if t.is_complex() else t)
                                       for t in local])
                else:  # the core reports where they live
                    params.append(p_real.detach())
                    grads.append(g_real.detach())
                    states.append([None if t is None else t.detach() for t in local])
                fresh.append(is_new)
                indices.append(index - 1)
                comms.append(_distributed.communicator(p, comm_cache) if by_rows else None)
                if whole is not None:
                    gathered.append((len(owners), p, whole))
                owners.append((p, schema, tensors, write_back, by_rows))
            if params:
                groups.append((hyper, params, grads, states, fresh, indices, comms))
        if not groups:
            return loss
        stream = None  # CUDA parameters: the step is queued on torch's current stream of their device
        first = groups[0][1][0]
        if torch.is_tensor(first) and first.is_cuda:  # CPU tensors arrive as DLPack capsules
            stream = torch.cuda.current_stream(first.device).cuda_stream
        replaced, stopped = _core.step(self.algorithm, groups, stream)
        # A signal (Ctrl-C) may stop the step between parameters: those stepped in full keep
        # their new state, the others are untouched; then its exception is raised.
        done = stopped[0] if stopped else None
        for slot, p, whole in gathered:  # each rank keeps its shard of the whole step
            if done is None or done[slot]:
                p.to_local().copy_(_distributed.shard_of(whole, p))
        for slot, (p, schema, tensors, write_back, _) in enumerate(owners):
            if not write_back or (done is not None and not done[slot]):
                continue
            for spec, t in zip(schema, tensors):
                if t is not None:  # a schema without buffers (SGD without momentum) leaves no entry
                    state[p][spec["name"]] = t
            if p in state:  # (a lookup would create an entry: torch's state is a defaultdict)
                kept = {spec["name"] for spec in schema}
                for k in [k for k in state[p] if k.endswith("_absmax") and k not in kept]:
                    del state[p][k]  # the absmax of 8-bit moments converted to another precision
        for slot, k, capsule in replaced:
            p, schema, by_rows = owners[slot][0], owners[slot][1], owners[slot][4]
            t = from_dlpack(capsule)
            state[p][schema[k]["name"]] = _distributed.wrap(t, schema[k], p) if by_rows else t
        self._last_comm = dict(collectives=sum(c.calls for c in comm_cache.values()),
                               bytes=sum(c.bytes for c in comm_cache.values()))
        if stopped:
            raise stopped[1]
        return loss

    def last_step_communication(self) -> dict:
        """{'collectives', 'bytes'}: the all-reduces this process's last step ran for row-sharded
        parameters (FSDP2) and the bytes they summed (zero without any)."""
        return dict(self.__dict__.get("_last_comm") or dict(collectives=0, bytes=0))

    def _check_dtensor(self, gi, index, p, g, dt):
        """A DTensor parameter: its gradient sharded alike; sharded placements for optimizers
        that step shards locally (elementwise family), row shards (Shard(0) on a 1-D mesh) for
        those whose statistics are all-reduced over rows ("rows"), any placement for those that
        step whole parameters ("gather"). None: the local tensor is stepped as it is."""
        where = f"param_groups[{gi}] params[{index}]"
        if not isinstance(g, dt) or g.placements != p.placements or g.device_mesh != p.device_mesh:
            raise ValueError(f"{where}: a DTensor parameter needs a DTensor gradient with the same mesh and "
                             f"placements (parameter {p.placements}, gradient "
                             f"{getattr(g, 'placements', type(g).__name__)})")
        if self.shard_local or all(pl.is_replicate() for pl in p.placements):
            return None
        if self.shard_gather:
            return "gather"
        if self.shard_rows and _distributed.row_sharded(p):
            if not p.device_mesh.device_type == "cpu":
                raise NotImplementedError(f"{where}: {type(self).__name__} steps row-sharded parameters on the CPU "
                                          f"only in this release (this one is on {p.device_mesh.device_type})")
            return "rows"
        if self.shard_rows:
            raise NotImplementedError(
                f"{where}: {type(self).__name__} computes its statistics over row shards (Shard(0) on a 1-D device "
                f"mesh, FSDP2's layout); this parameter is {p.placements} on a {p.device_mesh.ndim}-D mesh")
        raise NotImplementedError(
            f"{where}: {type(self).__name__} keeps statistics over the whole matrix; stepping a sharded "
            f"DTensor ({p.placements}) would need them all-reduced across ranks, which this release does "
            "not do for it. Use it with DDP or replicated parameters; under FSDP2 use Adapprox, Adafactor or "
            "an elementwise optimizer")

    def _refuse_foreign(self, gi, index, st, names):
        """State tensors the schema does not name mean another optimizer's state (other entries,
        such as a user's own notes, are left alone)."""
        foreign = sorted(k for k, v in st.items() if k not in names and isinstance(v, torch.Tensor))
        if not foreign:
            return
        raise ValueError(f"param_groups[{gi}] params[{index}]: state {foreign} is not {type(self).__name__}'s (it "
                         f"keeps {sorted(names - {'step'})}); was a state_dict of another optimizer loaded?")

    @serialised
    def state_dict(self):
        """torch's state_dict, taken while no step of this optimizer runs."""
        return super().state_dict()

    @serialised
    def load_state_dict(self, state_dict):
        """torch's load_state_dict. torch.optim.Optimizer casts every floating state tensor to its
        parameter's dtype; where the schema keeps another dtype (float32 moments of bf16
        parameters, Adapprox's float32 factors, AdaGram's float64 factors) the saved tensor itself
        is restored afterwards (when it is what torch cast), so a resume stays exact."""
        saved = state_dict.get("state", {}) if isinstance(state_dict, dict) else {}
        super().load_state_dict(state_dict)
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            orig, st = saved.get(i), self.state.get(p)
            if not isinstance(orig, dict) or not isinstance(st, dict):
                continue
            for k, t in st.items():
                o = orig.get(k)
                if (torch.is_tensor(o) and torch.is_tensor(t) and o.dtype != t.dtype
                        and (o.is_floating_point() or o.dtype == torch.uint8)  # (torch casts 8-bit codes too)
                        and o.shape == t.shape and torch.equal(o.to(t.dtype), t)):
                    st[k] = o.detach().clone().to(p.device)
        for group in self.param_groups:  # torch's bf16 state of bf16 parameters: float32 from now on
            hyper = self._hyper(group)
            for p in group["params"]:
                st = self.state.get(p)
                if not st or p.is_complex():
                    continue
                schema = self._schema(hyper, p)
                conformed = self._conform_precision(hyper, p, st, schema)
                if conformed is not None:
                    st = self.state[p] = conformed
                for spec in schema:
                    t = st.get(spec["name"])
                    if torch.is_tensor(t) and spec["name"] != "step":
                        st[spec["name"]] = self._schema_dtype(t, spec, p)
                    if torch.is_tensor(t) and not spec["shape"] and not spec["like_param"] and not t.is_cpu:
                        st[spec["name"]] = st[spec["name"]].cpu()  # scalar state (mu_product) lives on the host

    def memory_report(self):
        """{'total_bytes', 'adamw_bytes', 'buffers', 'params': [{'shape', 'state_bytes', 'buffers', ...}]}:
        the bytes of every state tensor but the scalar ``step`` held by this process (a DTensor's
        local shard), in all and per buffer name (``{'exp_avg': ..., 'exp_avg_absmax': ...}``);
        AdamW's figure is exp_avg + exp_avg_sq in the parameter dtype."""
        params, total, adamw, kinds = [], 0, 0, {}
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p, {})
                per = {k: _local(t).numel() * t.element_size() for k, t in st.items()
                       if torch.is_tensor(t) and k != "step"}
                nbytes = sum(per.values())
                for k, b in per.items():
                    kinds[k] = kinds.get(k, 0) + b
                total += nbytes
                adamw += 2 * _local(p).numel() * p.element_size()
                params.append(dict(shape=tuple(p.shape), state_bytes=nbytes, buffers=per, **self._describe(p, st)))
        return dict(total_bytes=total, adamw_bytes=adamw, buffers=kinds, params=params)

    def _describe(self, p, st) -> dict:
        """Extra memory_report fields for one parameter (e.g. rank)."""
        return {}

    def _spec_hyper(self, group) -> dict:
        return _core.check_hyper(self.algorithm, self._hyper(group))

    @serialised
    def save_native_state(self) -> bytes:
        """All state as bytes in the C ABI's format (``adx_state_load`` reads it). The
        hyperparameters stored are those of the first parameter group."""
        states = []
        for g in self.param_groups:
            for p in g["params"]:
                st = self.state.get(p)
                if not st:
                    states.append(None)
                    continue
                bufs = {k: _to_numpy(torch.view_as_real(t) if t.is_complex() else t)
                        for k, t in st.items() if torch.is_tensor(t) and k != "step"}
                step = int(st["step"].item()) if "step" in st else 0
                shape = tuple(torch.view_as_real(p).shape) if p.is_complex() else tuple(p.shape)
                states.append((shape, step, bufs))
        return _core.encode_state(self.algorithm, self._spec_hyper(self.param_groups[0]), states)

    @serialised
    def load_native_state(self, data: bytes, *, keep_hyperparameters: bool = False) -> None:
        """Load state written by ``adx_state_save`` or :meth:`save_native_state`, parameter by
        parameter in order. The saved hyperparameters replace those of the groups (as
        ``adx_state_load`` and ``load_state_dict`` do), unless ``keep_hyperparameters``. The
        bytes hold one set: groups that differ among themselves are refused unless
        ``keep_hyperparameters`` (``state_dict()`` keeps each group's). Every state is checked
        against its parameter before anything changes."""
        params = [p for g in self.param_groups for p in g["params"]]
        name, saved_hyper, states = _core.decode_state(data, len(params))
        if name != self.algorithm:
            raise ValueError(f"state was saved by '{name}', this optimizer is '{self.algorithm}'")
        if len(states) != len(params):
            raise ValueError(f"state holds {len(states)} parameters, this optimizer has {len(params)}")
        groups = None
        if not keep_hyperparameters:
            specs = [self._spec_hyper(g) for g in self.param_groups]
            if any(s != specs[0] for s in specs[1:]):
                raise ValueError(f"this optimizer's {len(specs)} parameter groups have different hyperparameters, "
                                 "and native state holds one set; pass keep_hyperparameters=True to keep the groups' "
                                 "own (or use state_dict()/load_state_dict(), which keep one set per group)")
            groups = [group_from_spec(self.algorithm, {k: v for k, v in g.items() if k != "params"}, saved_hyper,
                                      self._hyper) for g in self.param_groups]
        # The hyperparameters each parameter will step with: its group's, restored or kept.
        hypers = [self._spec_hyper(g) for g in (groups if groups is not None else self.param_groups)]
        owner = [gi for gi, g in enumerate(self.param_groups) for _ in g["params"]]
        new = {}
        for i, (p, st) in enumerate(zip(params, states)):
            if st is None:
                continue
            shape, step, bufs = st
            if tuple(shape) != tuple(p.shape):
                raise ValueError(f"params[{i}]: saved state of shape {tuple(shape)} does not fit a parameter of "
                                 f"shape {tuple(p.shape)}")
            hyper = hypers[owner[i]]
            p_real = torch.view_as_real(p) if p.is_complex() else p
            # Moments saved at another state_precision are converted to this one's.
            bufs = _core.conform_state(self.algorithm, hyper, list(p_real.shape), _NAMES[p_real.dtype], bufs, step)
            schema = self._plan(self._plans(hyper), hyper, p_real)[0]
            wanted = {s["name"] for s in schema if s["name"] != "step"}
            required = {s["name"] for s in schema if s["name"] != "step" and not s["resized"]}
            extra, missing = sorted(set(bufs) - wanted), sorted(required - set(bufs))
            if extra or missing:  # state of other hyperparameters (AMSGrad's maximum, a first moment)
                raise ValueError(f"params[{i}]: saved state holds {sorted(bufs)}, but {self.algorithm} with these "
                                 f"hyperparameters keeps {sorted(wanted)}")
            entry = {"step": torch.tensor(float(step), dtype=_scalar_dtype())}
            for k, a in bufs.items():
                entry[k] = _from_numpy(a)
            if self.algorithm == "sgd":
                entry.pop("step")
            new[p] = entry
        for p in params:
            self.state.pop(p, None)
        for p, entry in new.items():
            self.state[p] = entry
        if groups is not None:
            for group, restored in zip(self.param_groups, groups):
                group.update(restored)

"""The machinery of adapprox.jax: one XLA FFI custom call steps every parameter of a pytree with
the native kernels, on buffers XLA aliases from operands to results (python/bindings/bind_jax.cpp
says what it takes).

JAX's shapes are static, so a factor whose rank the step chooses (Adapprox's ``factor_q``,
``factor_u``) is held at a fixed capacity, ``(rows, cap)``, with ``cap`` the largest rank the
step may pick, beside an int32 ``<name>_cols`` holding the rank in use; columns past it are zero.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _core
from .._precision import PRECISIONS

TARGET = "adapprox_step"
_registered = False


def _register():
    global _registered
    if not _registered:
        jax.ffi.register_ffi_target(TARGET, _core.xla_ffi_step_handler(), platform="cpu")
        _registered = True


class NativeState(NamedTuple):
    """State of an adapprox.jax transformation: ``count`` (int32, steps taken) and, per parameter
    leaf in ``jax.tree_util`` order, a dict of its state arrays as the native step names them
    (``exp_avg``, ``exp_avg_sq``, ``factor_q`` at capacity and ``factor_q_cols``, ...)."""
    count: jax.Array
    buffers: tuple


class NativeTransformation(NamedTuple):
    """An optax-style gradient transformation (``init``, ``update``) whose update runs the native
    step, plus ``step(params, grads, state) -> (new_params, new_state)``, the same step returning
    the new parameters themselves: jitted with ``donate_argnums=(0, 2)`` it updates the donated
    buffers in place, with no copy."""
    init: Callable
    update: Callable
    step: Callable


def rank_capacity(algorithm: str, hyper: dict, shape) -> int:
    """The largest rank the step can give a factor of a parameter of ``shape`` (viewed as
    (shape[0], rest)): max_rank (0 = max(1, min(m, n) // 4)), at most min(m, n), at least
    min(min_rank, min(m, n))."""
    m = int(shape[0])
    n = int(np.prod(shape[1:], dtype=np.int64))
    full = min(m, n)
    cap = int(hyper["max_rank"]) if hyper.get("max_rank") else _core.default_max_rank(m, n)
    cap = min(full, cap)
    return max(cap, min(int(hyper["min_rank"]), full))


def _schema(algorithm, hyper, leaf):
    dtype = jnp.dtype(leaf.dtype).name
    return _core.schema(algorithm, hyper, list(leaf.shape), dtype)


def _init_leaf(algorithm, hyper, leaf) -> dict:
    out = {}
    for spec in _schema(algorithm, hyper, leaf):
        dtype = jnp.dtype(spec["dtype"])
        if spec["resized"]:
            cap = rank_capacity(algorithm, hyper, leaf.shape)
            out[spec["name"]] = jnp.zeros((spec["shape"][0], cap), dtype)
            out[spec["name"] + "_cols"] = jnp.zeros((), jnp.int32)
        else:
            shape = leaf.shape if spec["like_param"] else tuple(spec["shape"])
            out[spec["name"]] = jnp.full(shape, spec["fill"], dtype)
    return out


def _operands(algorithm, hyper, leaves, grads, buffers):
    """The call's operands after lr and count, its result types, and which operand each result
    aliases."""
    operands, results, aliases = [], [], {}

    def add(x, result=True):
        operands.append(x)
        if result:
            aliases[len(operands) + 1] = len(results)  # operands 0 and 1 are lr and count
            results.append(jax.ShapeDtypeStruct(x.shape, x.dtype))

    for i, (p, g, st) in enumerate(zip(leaves, grads, buffers)):
        if g is None:
            raise ValueError(f"grads[{i}] is None: every parameter leaf needs a gradient")
        add(p)
        add(g, result=False)
        for spec in _schema(algorithm, hyper, p):
            add(st[spec["name"]])
            if spec["resized"]:
                add(st[spec["name"] + "_cols"])
    return operands, results, aliases


def _unpack(algorithm, hyper, leaves, outs):
    new_leaves, new_buffers = [], []
    it = iter(outs)
    for p in leaves:
        new_leaves.append(next(it))
        st = {}
        for spec in _schema(algorithm, hyper, p):
            st[spec["name"]] = next(it)
            if spec["resized"]:
                st[spec["name"] + "_cols"] = next(it)
        new_buffers.append(st)
    return new_leaves, tuple(new_buffers)


def make_transformation(algorithm: str, learning_rate: Any, hyper: dict) -> NativeTransformation:
    """The transformation of ``algorithm`` with the C++ API's spec keys ``hyper`` (checked now,
    completed with the defaults) and a learning rate that is a number or an optax schedule of
    the step count."""
    if algorithm not in ("adam", "adamw", "nadam", "rmsprop", "adagrad", "sgd", "signsgd", "adafactor", "adapprox"):
        raise ValueError(f"adapprox.jax has no {algorithm!r}")
    if "lr" in hyper:
        raise TypeError("pass the learning rate as learning_rate")
    hyper = {k: v for k, v in hyper.items() if v is not None}  # None: the C++ API's default for the key
    if isinstance(hyper.get("state_precision"), str):  # "fp32" / "bf16" / "8bit", as in the other fronts
        if hyper["state_precision"] not in PRECISIONS:
            raise ValueError(f"state_precision must be one of {sorted(PRECISIONS)}, got {hyper['state_precision']!r}")
        hyper["state_precision"] = PRECISIONS[hyper["state_precision"]]
    lr0 = 0.0 if callable(learning_rate) else float(learning_rate)
    full = dict(_core.check_hyper(algorithm, dict(hyper, lr=lr0)))  # ValueError naming a bad key
    # A constant lr travels as a float64 attribute (the other fronts' exact value); a schedule's
    # value as a float32 operand, computed by JAX each step.
    attrs = {k: np.float64(v) for k, v in sorted(full.items()) if k != "lr" or not callable(learning_rate)}

    def init(params):
        leaves = jax.tree_util.tree_leaves(params)
        return NativeState(count=jnp.zeros((), jnp.int32),
                           buffers=tuple(_init_leaf(algorithm, full, p) for p in leaves))

    def step(params, grads, state):
        _register()
        leaves, treedef = jax.tree_util.tree_flatten(params)
        grad_leaves = treedef.flatten_up_to(grads)
        if len(state.buffers) != len(leaves):
            raise ValueError(f"state holds {len(state.buffers)} parameters, params has {len(leaves)}")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        lr = jnp.asarray(lr, jnp.float32).reshape(())
        operands, results, aliases = _operands(algorithm, full, leaves, grad_leaves, state.buffers)
        call = jax.ffi.ffi_call(TARGET, results, input_output_aliases=aliases)
        outs = call(lr, state.count, *operands, algorithm=algorithm, **attrs)
        new_leaves, buffers = _unpack(algorithm, full, leaves, outs)
        return treedef.unflatten(new_leaves), NativeState(count=state.count + 1, buffers=buffers)

    def update(grads, state, params=None):
        if params is None:
            raise ValueError(f"adapprox.jax.{algorithm}: update needs params (the native step computes the new "
                             "parameters; updates are their difference)")
        new_params, new_state = step(params, grads, state)
        return jax.tree_util.tree_map(lambda new, old: new - old, new_params, params), new_state

    return NativeTransformation(init, update, step)


def memory_report(state: NativeState, params) -> dict:
    """{'total_bytes', 'adamw_bytes', 'buffers', 'params': [{'shape', 'state_bytes', 'buffers', 'rank', 'capacity'}]}:
    the bytes of every state array but ``step`` and the column counts, factors counted at their
    fixed capacity (what JAX holds), against AdamW's two moments in the parameters' dtype."""
    leaves = jax.tree_util.tree_leaves(params)
    rows, total, adamw, kinds = [], 0, 0, {}
    for p, st in zip(leaves, state.buffers):
        per = {k: int(np.prod(a.shape)) * jnp.dtype(a.dtype).itemsize
               for k, a in st.items() if k != "step" and not k.endswith("_cols")}
        nbytes = sum(per.values())
        for k, b in per.items():
            kinds[k] = kinds.get(k, 0) + b
        total += nbytes
        adamw += 2 * int(np.prod(p.shape)) * jnp.dtype(p.dtype).itemsize
        row = dict(shape=tuple(p.shape), state_bytes=nbytes, buffers=per)
        if "factor_q" in st:
            row.update(rank=int(st["factor_q_cols"]), capacity=int(st["factor_q"].shape[1]))
        rows.append(row)
    return dict(total_bytes=total, adamw_bytes=adamw, buffers=kinds, params=rows)

"""Parity with torch.optim driven by torch's own optimizer database (``optim_db``).

For Adam, AdamW, NAdam, RMSprop, Adagrad, SGD and Adafactor, every CPU ``OptimizerInput`` torch
tests its own optimizers with (``optim_inputs_func(device="cpu")`` crossed with the global flags
``fused`` / ``differentiable`` / ``foreach`` that the optimizer supports on CPU, exactly as torch's
``_get_optim_inputs_including_global_cliquey_kwargs`` builds them) is run through
``torch.optim.X(**kwargs)`` and ``adapprox.torch.X(**kwargs)`` side by side: float64 parameters of
several shapes (1-D, 2-D, 3-D, and one that never has a gradient) in two parameter groups, the
same gradients for 30 steps. The parameters must agree to 1e-10 after every step and the
state_dicts must have the same keys, shapes, dtypes and values.

Inputs with ``differentiable=True`` are refused by ours with a ValueError (documented in the
README: the native step is not recorded by autograd), and so is ``capturable=True``.
"""
import copy
import sys
import types
import unittest

import pytest
import torch


def _optim_db():
    """torch's optim_db and its input builder. torch.testing._internal imports ``expecttest``,
    which only torch's own test suite installs; a stand-in is enough for the optimizer database."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        stub = types.ModuleType("expecttest")
        stub.TestCase = unittest.TestCase
        stub.ACCEPT = False
        sys.modules["expecttest"] = stub
    from torch.testing._internal.common_optimizers import (
        _get_optim_inputs_including_global_cliquey_kwargs, optim_db)
    return optim_db, _get_optim_inputs_including_global_cliquey_kwargs


OPTIM_DB, ALL_INPUTS = _optim_db()

import adapprox.torch as at  # noqa: E402  (after the stand-in, so nothing else sees it first)

NAMES = ["Adam", "AdamW", "NAdam", "RMSprop", "Adagrad", "SGD", "Adafactor"]
INFOS = {info.optim_cls.__name__: info for info in OPTIM_DB if info.optim_cls.__name__ in NAMES}
# param_groups keys ours may carry beyond torch's: only documented ones (README, "Adafactor":
# mode, beta1, relative_step, scale_parameter; decay_rate / eps1 / eps2 are aliases, not keys).
EXTRA_GROUP_KEYS = {"Adafactor": {"mode", "beta1", "relative_step", "scale_parameter"}}
STEPS = 30
TOL = dict(rtol=1e-10, atol=1e-10)
SHAPES = [(5, 4), (4,), (2, 3, 4), (3,)]
NO_GRAD = 3  # index of the parameter that never gets a gradient


def _slug(desc):
    return desc.replace(" & ", "+").replace(", ", "+").replace("/ ", "").replace(" ", "_")


def _inputs():
    run, refused = [], []
    for name in NAMES:
        for oi in ALL_INPUTS("cpu", torch.float64, INFOS[name]):
            case = pytest.param(name, oi, id=f"{name}-{_slug(oi.desc)}")
            (refused if oi.kwargs.get("differentiable", False) else run).append(case)
    return run, refused


RUN_INPUTS, DIFFERENTIABLE_INPUTS = _inputs()


def test_optim_db_inputs_found():
    """The database is read as expected: every optimizer contributes inputs, some differentiable."""
    for name in NAMES:
        assert any(p.values[0] == name for p in RUN_INPUTS), name
    assert {p.values[0] for p in DIFFERENTIABLE_INPUTS} == {"Adam", "AdamW", "NAdam", "RMSprop", "Adagrad", "SGD"}


def make_params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in SHAPES]


def param_groups(params, spec):
    """The optimizer's first argument: two groups without overrides for params=None, else the
    input's own params (none of the CPU inputs of these optimizers sets any today)."""
    if spec is not None:
        pytest.fail(f"optim_db input with explicit params {spec!r}: extend the harness to map them")
    return [{"params": params[:2]}, {"params": params[2:]}]


def gradient(t, i, shape):
    gen = torch.Generator().manual_seed(1000 * t + i)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def set_grads(params, t):
    for i, p in enumerate(params):
        p.grad = None if i == NO_GRAD else gradient(t, i, p.shape)


def build(cls, oi, params):
    # deepcopy: tensor lr / betas must not be shared between the two optimizers
    return cls(param_groups(params, oi.params), **copy.deepcopy(oi.kwargs))


def _values_equal(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_values_equal, a, b))
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def assert_state_dicts_match(name, ours, ref):
    assert set(ours) == set(ref), f"state_dict keys: ours {sorted(ours)}, torch {sorted(ref)}"
    assert sorted(ours["state"]) == sorted(ref["state"]), (
        f"parameters with state: ours {sorted(ours['state'])}, torch {sorted(ref['state'])}"
        + (" (torch.optim.Adagrad creates step=0 and sum for every parameter in its constructor, "
           "including one that never gets a gradient)" if name == "Adagrad" else ""))
    for k, r in ref["state"].items():
        o = ours["state"][k]
        assert set(o) == set(r), f"state[{k}] keys: ours {sorted(o)}, torch {sorted(r)}"
        for n, b in r.items():
            a = o[n]
            where = f"state[{k}][{n!r}]"
            assert isinstance(a, torch.Tensor), f"{where}: ours is {type(a).__name__}, torch has a tensor"
            assert a.shape == b.shape, f"{where}: shape {tuple(a.shape)} vs torch {tuple(b.shape)}"
            assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} vs torch {b.dtype}"
            torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"{where}: {m}")
    assert len(ours["param_groups"]) == len(ref["param_groups"])
    # ours: state_precision and stochastic_rounding (README, Smaller state) on every optimizer with dense moments
    extra_allowed = EXTRA_GROUP_KEYS.get(name, set()) | {"state_precision", "stochastic_rounding"}
    for i, (og, rg) in enumerate(zip(ours["param_groups"], ref["param_groups"])):
        missing = set(rg) - set(og)
        extra = set(og) - set(rg) - extra_allowed
        assert not missing and not extra, f"param_groups[{i}]: missing {sorted(missing)}, extra {sorted(extra)}"
        for key, rv in rg.items():
            assert _values_equal(og[key], rv), f"param_groups[{i}][{key!r}]: ours {og[key]!r}, torch {rv!r}"


_RUNS = {}


def run_side_by_side(name, oi):
    """Both optimizers over STEPS steps (once per input, shared by the two tests below):
    (ours, torch) parameter snapshots after every step and the final state_dicts."""
    key = (name, oi.desc)
    if key not in _RUNS:
        ref_params, our_params = make_params(), make_params()
        ref = build(getattr(torch.optim, name), oi, ref_params)
        ours = build(getattr(at, name), oi, our_params)
        history = []
        for t in range(STEPS):
            set_grads(ref_params, t)
            set_grads(our_params, t)
            ref.step()
            ours.step()
            history.append(([p.detach().clone() for p in our_params], [p.detach().clone() for p in ref_params]))
        _RUNS[key] = history, ours, ref
    return _RUNS[key]


@pytest.mark.parametrize("name, oi", RUN_INPUTS)
def test_params_match_torch(name, oi):
    history, _, _ = run_side_by_side(name, oi)
    for t, (ours, ref) in enumerate(history):
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert a.dtype == torch.float64
            torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"step {t + 1}, param {i} {tuple(b.shape)}: {m}")


@pytest.mark.parametrize("name, oi", RUN_INPUTS)
def test_state_dict_matches_torch(name, oi):
    _, ours, ref = run_side_by_side(name, oi)
    assert_state_dicts_match(name, ours.state_dict(), ref.state_dict())


@pytest.mark.parametrize("name, oi", DIFFERENTIABLE_INPUTS)
def test_differentiable_refused(name, oi):
    """differentiable=True is refused with a ValueError naming the flag (at construction, or at the
    latest at the first step, which then changes nothing)."""
    params = make_params()
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match="differentiable"):
        opt = build(getattr(at, name), oi, params)
        set_grads(params, 0)
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)


CAPTURABLE = [n for n in NAMES if INFOS[n].has_capturable_arg]


def test_capturable_names():
    assert CAPTURABLE == ["Adam", "AdamW", "NAdam", "RMSprop"]


@pytest.mark.parametrize("name", CAPTURABLE)
def test_capturable_refused(name):
    """capturable=True (CUDA graphs) is refused with a ValueError naming the flag."""
    params = make_params()
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match="capturable"):
        opt = getattr(at, name)(param_groups(params, None), capturable=True)
        set_grads(params, 0)
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)

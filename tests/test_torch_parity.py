"""Every optimizer that torch.optim also has, against torch.optim itself (torch 2.13, the
independent reference), from one table.

``ROWS`` has one row per optimizer: its configurations (each run step by step against torch in
float64 and float32 over several shapes, parameters compared after every step and the whole state
at the end), the arguments torch rejects, the compatibility flags it accepts or refuses, a bad
group edit, and the settings of the low-precision training run. Every test below runs over the
whole table; what only one optimizer has (NAdam's mu_product dtype, Adagrad's sparse gradients,
Adam's tensor hyperparameters) follows at the end. torch's own optim_db is run in test_optim_db.py.
"""
from __future__ import annotations

import copy
import inspect
import io
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import adapprox.numpy as anp
import adapprox.torch as at
from parity import data, rel_err

SHAPES = [(1,), (7, 13), (4097,), (3, 4, 5), (130, 257)]  # the last one spans several chunks
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
STEPS = 50


@dataclass(frozen=True)
class Row:
    name: str                         # the class in adapprox.torch, adapprox.numpy and torch.optim
    cases: dict                       # configuration name -> constructor kwargs
    full: str                         # the case with the most state (round trips, loading)
    rejected: list                    # (kwargs, name the message must contain); torch rejects them too
    bad_edit: tuple                   # (group key, value, name in the message) refused at step time
    train: dict                       # kwargs of the low-precision training run
    ignored: tuple = ("foreach",)     # torch flags accepted and ignored
    refused: tuple = ("differentiable",)  # torch flags refused with ValueError when True
    extra_args: frozenset = frozenset()   # our constructor arguments torch's lacks
    group_kw: dict = field(default_factory=dict)  # overrides for the second group


ADAM_REJECTED = [(dict(lr=-1.0), "lr"), (dict(eps=-1.0), "eps"), (dict(betas=(1.0, 0.9)), "beta1"),
                 (dict(betas=(0.9, -0.1)), "beta2"), (dict(weight_decay=-0.1), "weight_decay")]

ROWS = [
    Row("Adam",
        cases={"defaults": dict(),
               "l2": dict(lr=1e-2, weight_decay=0.1),
               "amsgrad": dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
               "maximize": dict(lr=1e-2, weight_decay=0.1, maximize=True),
               "decoupled": dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
               "betas_eps": dict(lr=3e-3, betas=(0.6, 0.95), eps=1e-6, weight_decay=0.05, amsgrad=True,
                                 maximize=True)},
        full="amsgrad", rejected=ADAM_REJECTED, bad_edit=("betas", (0.9, 1.5), "beta2"),
        train=dict(lr=3e-2, weight_decay=1e-4, amsgrad=True),
        ignored=("foreach", "fused"), refused=("capturable", "differentiable"),
        group_kw=dict(lr=3e-3, amsgrad=True, weight_decay=0.2)),
    Row("AdamW",
        cases={"defaults": dict(),
               "wd": dict(lr=1e-2, weight_decay=0.1),
               "amsgrad": dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
               "maximize": dict(lr=1e-2, weight_decay=0.1, maximize=True),
               "no_wd": dict(lr=1e-2, weight_decay=0.0, amsgrad=True)},
        full="amsgrad", rejected=ADAM_REJECTED, bad_edit=("eps", -1.0, "eps"),
        train=dict(lr=3e-2, weight_decay=1e-4, amsgrad=True),
        ignored=("foreach", "fused"), refused=("capturable", "differentiable"),
        group_kw=dict(lr=3e-3, amsgrad=True)),
    Row("NAdam",
        cases={"defaults": dict(),
               "l2": dict(lr=1e-2, weight_decay=0.1),
               "decoupled": dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
               "momentum_decay": dict(lr=1e-2, weight_decay=0.1, momentum_decay=0.05),
               "maximize": dict(lr=1e-2, weight_decay=0.1, maximize=True),
               "betas_eps": dict(lr=3e-3, betas=(0.6, 0.95), eps=1e-6, weight_decay=0.05, momentum_decay=0.0,
                                 decoupled_weight_decay=True, maximize=True)},
        full="momentum_decay",
        rejected=ADAM_REJECTED + [(dict(momentum_decay=-1.0), "momentum_decay")],
        bad_edit=("momentum_decay", -1.0, "momentum_decay"), train=dict(lr=3e-2, weight_decay=1e-4),
        ignored=("foreach", "fused"), refused=("capturable", "differentiable"),
        extra_args=frozenset({"fused"}), group_kw=dict(decoupled_weight_decay=True, weight_decay=0.2)),
    Row("RMSprop",
        cases={"defaults": dict(),
               "plain": dict(lr=1e-2, weight_decay=0.1),
               "centered": dict(lr=1e-2, weight_decay=0.1, centered=True),
               "momentum": dict(lr=1e-2, weight_decay=0.1, momentum=0.9),
               "centered_momentum": dict(lr=1e-2, weight_decay=0.1, momentum=0.9, centered=True),
               "low_alpha_centered": dict(lr=1e-2, alpha=0.3, eps=1e-3, weight_decay=0.1, centered=True),  # lerp's other branch
               "maximize": dict(lr=1e-2, weight_decay=0.1, momentum=0.5, maximize=True)},
        full="centered_momentum",
        rejected=[(dict(lr=-1.0), "lr"), (dict(alpha=-0.5), "alpha"), (dict(eps=-1e-8), "eps"),
                  (dict(momentum=-0.1), "momentum"), (dict(weight_decay=-1e-3), "weight_decay")],
        bad_edit=("alpha", -1.0, "alpha"), train=dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=1e-4),
        refused=("capturable", "differentiable"), group_kw=dict(centered=True, momentum=0.5)),
    Row("Adagrad",
        cases={"defaults": dict(),
               "plain": dict(lr=0.1, weight_decay=0.1),
               "lr_decay": dict(lr=0.1, lr_decay=0.05, weight_decay=0.1),
               "initial_accumulator_value": dict(lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1),
               "all": dict(lr=0.1, lr_decay=0.02, initial_accumulator_value=0.2, eps=0.1, weight_decay=0.1),
               "maximize": dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True)},
        full="all",
        rejected=[(dict(lr=-1.0), "lr"), (dict(lr_decay=-0.1), "lr_decay"), (dict(weight_decay=-1e-3), "weight_decay"),
                  (dict(initial_accumulator_value=-1.0), "initial_accumulator_value"), (dict(eps=-1e-10), "eps")],
        bad_edit=("lr_decay", -1.0, "lr_decay"), train=dict(lr=0.5, lr_decay=1e-3, initial_accumulator_value=0.1, weight_decay=1e-4),
        ignored=("foreach", "fused"), group_kw=dict(lr=0.05, lr_decay=0.01)),
    Row("SGD",
        cases={"defaults": dict(),
               "plain": dict(lr=0.05, weight_decay=0.1),
               "momentum": dict(lr=0.05, momentum=0.9, weight_decay=0.1),
               "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
               "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1),
               "maximize": dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True)},
        full="nesterov",
        rejected=[(dict(lr=-1.0), "lr"), (dict(momentum=-0.1), "momentum"), (dict(weight_decay=-1e-3), "weight_decay"),
                  (dict(nesterov=True), "momentum"), (dict(nesterov=True, momentum=0.9, dampening=0.1), "dampening")],
        bad_edit=("dampening", 0.5, "dampening"),  # refused with nesterov (the full case)
        train=dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
        ignored=("foreach", "fused"), group_kw=dict(momentum=0.5, nesterov=True)),
]
BY_NAME = {r.name: r for r in ROWS}
CASES = [(r, c) for r in ROWS for c in r.cases]


def ids(rows):
    return [r.name for r in rows]


def pair(row, kw, shape, dtype, steps=STEPS, seed=0):
    """(ours, ref, our optimizer, torch's single-tensor optimizer, gradients)."""
    p0, grads = data(shape, dtype, steps, seed)
    ours, ref = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    return ours, ref, getattr(at, row.name)([ours], **kw), getattr(torch.optim, row.name)([ref], foreach=False, **kw), grads


def step_both(ours, ref, opt_ours, opt_ref, g):
    ours.grad, ref.grad = g.clone(), g.clone()
    opt_ours.step()
    opt_ref.step()


def assert_same_state(opt_ours, opt_ref, dtype):
    """Same state keys, shapes, dtypes and values as torch (step exactly)."""
    pairs = [pp for go, gr in zip(opt_ours.param_groups, opt_ref.param_groups) for pp in zip(go["params"], gr["params"])]
    for ps, pr in pairs:
        so, sr = opt_ours.state[ps], opt_ref.state[pr]
        assert set(so) == set(sr), (set(so), set(sr))
        for k, want in sr.items():
            got = so[k]
            assert got.shape == want.shape and got.dtype == want.dtype, (k, got, want)
            if k == "step":
                assert float(got) == float(want)
            elif want.numel():
                assert rel_err(got, want) < TOL[dtype], k


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("row, case", CASES, ids=[f"{r.name}-{c}" for r, c in CASES])
def test_matches_torch_every_step(row, case, shape, dtype):
    ours, ref, opt_ours, opt_ref, grads = pair(row, row.cases[case], shape, dtype)
    for t, g in enumerate(grads):
        step_both(ours, ref, opt_ours, opt_ref, g)
        assert ours.dtype == dtype
        err = rel_err(ours.detach(), ref.detach())
        assert err < TOL[dtype], f"step {t + 1}: relative error {err:.3g}"
    assert_same_state(opt_ours, opt_ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_schedulers_groups_and_missing_gradients(row, dtype):
    """Two groups (the second with its own options), StepLR on both, a direct lr edit, a parameter
    without a gradient on some steps (skipped: its state does not advance) and an empty one."""
    p0, grads = data((7, 13), dtype, 60, seed=1)
    q0, qgrads = data((4097,), dtype, 60, seed=2)
    made = []
    for cls in (getattr(at, row.name), getattr(torch.optim, row.name)):
        p, q = p0.clone().requires_grad_(), q0.clone().requires_grad_()
        e = torch.zeros(0, dtype=dtype, requires_grad=True)
        opt = cls([dict(params=[p, e]), dict(params=[q], **row.group_kw)], **row.cases[row.full])
        made.append((p, q, e, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)))
    for t in range(60):
        for p, q, e, opt, sched in made:
            p.grad, e.grad = grads[t].clone(), torch.zeros(0, dtype=dtype)
            q.grad = qgrads[t].clone() if t % 3 else None
            opt.step()
            sched.step()
            if t == 30:
                opt.param_groups[1]["lr"] = 0.02
        (p, q, *_), (pr, qr, *_) = made
        assert rel_err(p.detach(), pr.detach()) < TOL[dtype]
        assert rel_err(q.detach(), qr.detach()) < TOL[dtype]
    ours, ref = made[0][3], made[1][3]
    assert [g["lr"] for g in ours.param_groups] == [g["lr"] for g in ref.param_groups]
    assert_same_state(ours, ref, dtype)


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_state_dict_round_trip_is_bitwise(row):
    kw = row.cases[row.full]
    p0, grads = data((7, 13), torch.float32, 40)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    opt_a = getattr(at, row.name)([a], **kw)
    for g in grads[:15]:
        a.grad = g.clone()
        opt_a.step()
    buf = io.BytesIO()
    torch.save(opt_a.state_dict(), buf)
    buf.seek(0)
    with torch.no_grad():
        b.copy_(a)
    opt_b = getattr(at, row.name)([b])  # the hyperparameters come from the state dict
    opt_b.load_state_dict(torch.load(buf))
    for g in grads[15:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        assert torch.equal(a, b)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_loads_torch_state_dict_mid_run(row):
    ours, ref, opt_ours, opt_ref, grads = pair(row, row.cases[row.full], (4097,), torch.float64)
    for g in grads[:10]:
        ref.grad = g.clone()
        opt_ref.step()
    with torch.no_grad():
        ours.copy_(ref)
    opt_ours.load_state_dict(copy.deepcopy(opt_ref.state_dict()))
    for g in grads[10:]:
        step_both(ours, ref, opt_ours, opt_ref, g)
        assert rel_err(ours.detach(), ref.detach()) < 1e-10


# Rounding to nearest is off by at most half an ulp: 2^-8 (bf16) or 2^-11 (fp16) relative, and for
# fp16's subnormals (below 2^-14) half the subnormal spacing, 2^-25, absolute.
@pytest.mark.parametrize("dtype, rtol, atol", [(torch.bfloat16, 2.0 ** -8, 0.0), (torch.float16, 2.0 ** -11, 2.0 ** -25)],
                         ids=["bf16", "f16"])
@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_low_precision_params(row, dtype, rtol, atol):
    """bf16/fp16 parameters keep their dtype, train, keep float32 state, and one step is torch's
    float32 step from the same point rounded once to the parameter's dtype."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(64, 33, generator=gen)
    w = torch.zeros(64, 33, dtype=dtype, requires_grad=True)
    opt = getattr(at, row.name)([w], **row.train)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = 0.5 * ((w.float() - target) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert w.dtype == dtype
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    assert all(v.dtype == torch.float32 for k, v in opt.state[w].items() if k != "step")
    p0, (g,) = data((4097,), torch.float32, 1)
    w, w32 = p0.to(dtype).requires_grad_(), p0.to(dtype).float().requires_grad_()
    opt, opt32 = getattr(at, row.name)([w], **row.train), getattr(torch.optim, row.name)([w32], **row.train)
    w.grad, w32.grad = g.to(dtype), g.to(dtype).float()
    opt.step()
    opt32.step()
    assert w.dtype == dtype and torch.allclose(w.float(), w32, rtol=rtol, atol=atol)


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_signature_and_defaults_match_torch(row):
    ours = inspect.signature(getattr(at, row.name)).parameters
    ref = inspect.signature(getattr(torch.optim, row.name)).parameters
    for name, p in ref.items():
        assert ours[name].kind == p.kind and ours[name].default == p.default, name
    # ours: state_precision and stochastic_rounding (README, Smaller state), keyword-only, off by default
    precision = {"state_precision": "fp32", "stochastic_rounding": False}
    assert set(ours) - set(ref) == row.extra_args | set(precision)
    assert all(ours[k].kind == inspect.Parameter.KEYWORD_ONLY and ours[k].default == v for k, v in precision.items())
    w = torch.zeros(3, requires_grad=True)
    g_ours, g_ref = getattr(at, row.name)([w]).param_groups[0], getattr(torch.optim, row.name)([w]).param_groups[0]
    assert set(g_ours) == set(g_ref) | set(precision)
    assert all(g_ours[k] == g_ref[k] for k in g_ref if k != "params")
    assert all(g_ours[k] == v for k, v in precision.items())


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_compatibility_flags(row):
    w = torch.zeros(3, requires_grad=True)
    for flag in row.ignored:
        for value in (True, False):
            getattr(at, row.name)([w], **{flag: value})
    for flag in row.refused:
        with pytest.raises(ValueError, match=flag):
            getattr(at, row.name)([w], **{flag: True})
        opt = getattr(at, row.name)([w])  # set on a group later: refused at step, nothing written
        opt.param_groups[0][flag] = True
        w.grad = torch.ones(3)
        with pytest.raises(ValueError, match=flag):
            opt.step()
        assert torch.equal(w.detach(), torch.zeros(3))


@pytest.mark.parametrize("row, kw, name", [(r, kw, n) for r in ROWS for kw, n in r.rejected],
                         ids=[f"{r.name}-{n}" for r in ROWS for _, n in r.rejected])
def test_rejects_what_torch_rejects(row, kw, name):
    with pytest.raises(ValueError):
        getattr(torch.optim, row.name)([torch.zeros(3, requires_grad=True)], **kw)
    with pytest.raises(ValueError, match=name):
        getattr(at, row.name)([torch.zeros(3, requires_grad=True)], **kw)
    with pytest.raises(ValueError, match=name):
        getattr(anp, row.name)([np.zeros(3)], **kw)


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_bad_group_edit_is_refused_at_step(row):
    p = torch.zeros(3, requires_grad=True)
    opt = getattr(at, row.name)([p], **row.cases[row.full])
    p.grad = torch.ones(3)
    opt.step()
    before, before_p = copy.deepcopy(opt.state_dict()), p.detach().clone()
    key, value, name = row.bad_edit
    opt.param_groups[0][key] = value
    with pytest.raises(ValueError, match=name):
        opt.step()
    after = opt.state_dict()
    assert torch.equal(p.detach(), before_p) and set(after["state"][0]) == set(before["state"][0])
    for k, v in before["state"][0].items():
        assert torch.equal(torch.as_tensor(after["state"][0][k]), torch.as_tensor(v)), k


def test_closure_returns_loss():
    for row in ROWS:
        w = torch.ones(3, requires_grad=True)
        opt = getattr(at, row.name)([w], **row.cases[row.full])

        def closure():
            opt.zero_grad()
            loss = (w ** 2).sum()
            loss.backward()
            return loss

        assert opt.step(closure).item() == pytest.approx(3.0), row.name
        assert (w < 1).all(), row.name


# ---- NumPy front ----

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("row, case", CASES, ids=[f"{r.name}-{c}" for r, c in CASES])
def test_numpy_matches_torch(row, case, dtype):
    kw = row.cases[case]
    old = torch.get_default_dtype()
    if row.name == "NAdam":  # NumPy keeps mu_product in float64; torch does under a float64 default dtype
        torch.set_default_dtype(torch.float64)
    try:
        _, ref, _, opt_ref, grads = pair(row, kw, (3, 4, 5), dtype)
        w = ref.detach().numpy().copy()
        opt = getattr(anp, row.name)([w], **kw)
        lr = kw.get("lr", opt_ref.param_groups[0]["lr"])
        for t, g in enumerate(grads):
            if t == STEPS // 2:  # an lr change mid-run
                opt.lr = lr / 2
                opt_ref.param_groups[0]["lr"] = lr / 2
            ref.grad = g.clone()
            opt_ref.step()
            opt.step([g.numpy()])
            assert w.dtype == ref.detach().numpy().dtype
            assert rel_err(w, ref.detach()) < TOL[dtype], t
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_numpy_state_dict_round_trip(row):
    p0, grads = data((7, 13), torch.float64, STEPS)
    w = p0.numpy().copy()
    opt = getattr(anp, row.name)([w], **row.cases[row.full])
    for g in grads[:25]:
        opt.step([g.numpy()])
    sd = copy.deepcopy(opt.state_dict())
    w2 = w.copy()
    opt2 = getattr(anp, row.name)([w2])
    opt2.load_state_dict(sd)
    for g in grads[25:]:
        opt.step([g.numpy()])
        opt2.step([g.numpy()])
        assert np.array_equal(w, w2)


# ---- what one optimizer has ----

@pytest.mark.parametrize("case", ["l2", "decoupled"])
def test_nadam_mu_product_under_float64_default_dtype(case):
    """torch keeps mu_product in the default dtype: under float64 it is no longer rounded to float32."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours, ref, opt_ours, opt_ref, grads = pair(BY_NAME["NAdam"], BY_NAME["NAdam"].cases[case], (7, 13),
                                                   torch.float64)
        for g in grads:
            step_both(ours, ref, opt_ours, opt_ref, g)
            assert rel_err(ours.detach(), ref.detach()) < 1e-10
        assert opt_ours.state[ours]["mu_product"].dtype == torch.float64
        assert float(opt_ours.state[ours]["mu_product"]) == float(opt_ref.state[ref]["mu_product"])
    finally:
        torch.set_default_dtype(old)


def test_adagrad_refuses_sparse_gradients():
    p = torch.zeros(3, requires_grad=True)
    opt = at.Adagrad([p])
    p.grad = torch.ones(3).to_sparse()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(3))


def test_adam_tensor_lr_and_betas():
    """1-element tensor lr / betas are read as floats each step (the same as passing those floats);
    torch does its scalar math in the tensors' float32, hence the looser bound against it."""
    p0, grads = data((7, 13), torch.float64, steps=10)
    a, b, c = (p0.clone().requires_grad_() for _ in range(3))
    lr, b1, b2 = torch.tensor(1e-2), torch.tensor(0.8), torch.tensor(0.99)
    oa = at.Adam([a], lr=lr, betas=(b1, b2))
    ob = torch.optim.Adam([b], lr=lr, betas=(b1, b2))
    oc = at.Adam([c], lr=lr.item(), betas=(b1.item(), b2.item()))
    for g in grads:
        a.grad, b.grad, c.grad = g.clone(), g.clone(), g.clone()
        oa.step()
        ob.step()
        oc.step()
        assert torch.equal(a, c)
        assert rel_err(a.detach(), b.detach()) < 1e-6


def test_adam_nan_gradient_propagates_like_torch():
    a, b = torch.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)
    oa, ob = at.Adam([a], amsgrad=True), torch.optim.Adam([b], amsgrad=True)
    g = torch.tensor([1.0, float("nan"), -2.0, 0.0])
    for _ in range(3):
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.allclose(a[~a.isnan()], b[~b.isnan()])

"""adapprox Adagrad against torch.optim.Adagrad (torch 2.13) as the independent reference."""
import copy
import inspect
import io

import numpy as np
import pytest
import torch

import adapprox.numpy as anp
import adapprox.torch as atorch
from parity import data, make_pair, rel_err, step_both

SHAPES = [(1,), (7, 13), (4097,), (3, 4, 5), (130, 257)]  # the last one spans several chunks
CASES = {
    "plain": dict(lr=0.1, weight_decay=0.1),
    "lr_decay": dict(lr=0.1, lr_decay=0.05, weight_decay=0.1),
    "initial_accumulator_value": dict(lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1),
    "all": dict(lr=0.1, lr_decay=0.02, initial_accumulator_value=0.2, eps=0.1, weight_decay=0.1),
    "maximize": dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True),
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def pair(shape, dtype, kwargs, steps=50, seed=0):
    return make_pair(torch.optim.Adagrad, atorch.Adagrad, shape, dtype, kwargs, steps, seed)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_every_step(shape, case, dtype):
    ref, ours, opt_ref, opt_ours, grads = pair(shape, dtype, CASES[case])
    for t, g in enumerate(grads):
        step_both(ref, ours, opt_ref, opt_ours, g)
        assert ours.dtype == dtype
        err = rel_err(ours, ref)
        assert err < TOL[dtype], f"step {t + 1}: relative error {err:.3g}"
    state = opt_ours.state_dict()["state"][0]  # same state names and values as torch
    assert set(state) == set(opt_ref.state[ref]) == {"step", "sum"}
    assert int(state["step"]) == int(opt_ref.state[ref]["step"]) == len(grads)
    assert state["sum"].dtype == dtype and rel_err(state["sum"], opt_ref.state[ref]["sum"]) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lr_scheduler_and_param_groups(dtype):
    p0, grads = data((7, 13), dtype, 60, seed=1)
    q0, _ = data((4097,), dtype, 1, seed=2)
    ref = [p0.clone().requires_grad_(), q0.clone().requires_grad_()]
    ours = [p0.clone().requires_grad_(), q0.clone().requires_grad_()]
    groups = lambda ps: [dict(params=[ps[0]]), dict(params=[ps[1]], lr_decay=0.1, eps=1e-3)]  # noqa: E731
    kw = dict(lr=0.1, lr_decay=0.01, weight_decay=0.01)
    opt_ref, opt_ours = torch.optim.Adagrad(groups(ref), foreach=False, **kw), atorch.Adagrad(groups(ours), **kw)
    sch_ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt_ref, T_max=60)
    sch_ours = torch.optim.lr_scheduler.CosineAnnealingLR(opt_ours, T_max=60)
    gen = torch.Generator().manual_seed(3)
    for t, g in enumerate(grads):
        h = torch.randn(q0.shape, generator=gen, dtype=torch.float64).to(dtype)
        for ps in (ref, ours):
            ps[0].grad, ps[1].grad = g.clone(), h.clone()
        opt_ref.step()
        opt_ours.step()
        sch_ref.step()
        sch_ours.step()
        if t == 30:  # a direct edit through param_groups
            for opt in (opt_ref, opt_ours):
                opt.param_groups[1]["lr"] = 0.3
        for a, b in zip(ours, ref):
            assert rel_err(a, b) < TOL[dtype]
    assert opt_ours.param_groups[0]["lr"] == opt_ref.param_groups[0]["lr"] < 0.1


@pytest.mark.parametrize("case", ["plain", "all"])
def test_state_dict_round_trip_is_bitwise(case):
    p0, grads = data((7, 13), torch.float32, 40)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    opt_a = atorch.Adagrad([a], **CASES[case])
    for g in grads[:15]:
        a.grad = g.clone()
        opt_a.step()
    buf = io.BytesIO()
    torch.save(opt_a.state_dict(), buf)
    buf.seek(0)
    with torch.no_grad():
        b.copy_(a)
    opt_b = atorch.Adagrad([b], lr=1.0, initial_accumulator_value=9.0)  # hyperparameters come from the state dict
    opt_b.load_state_dict(torch.load(buf))
    for g in grads[15:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        assert torch.equal(a, b)
    assert opt_b.state_dict()["state"][0]["step"] == 40


def test_loads_torch_state_dict_mid_run():
    ref, ours, opt_ref, opt_ours, grads = pair((4097,), torch.float64, CASES["all"])
    for g in grads[:10]:
        ref.grad = g.clone()
        opt_ref.step()
    with torch.no_grad():
        ours.copy_(ref)
    opt_ours.load_state_dict(copy.deepcopy(opt_ref.state_dict()))
    for g in grads[10:]:
        step_both(ref, ours, opt_ref, opt_ours, g)
        assert rel_err(ours, ref) < 1e-10


def test_bf16_keeps_dtype_and_trains():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(64, 33, generator=gen)
    w = torch.zeros(64, 33, dtype=torch.bfloat16, requires_grad=True)
    kw = dict(lr=0.5, lr_decay=1e-3, initial_accumulator_value=0.1, weight_decay=1e-4)
    opt = atorch.Adagrad([w], **kw)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = 0.5 * ((w.float() - target) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert w.dtype == torch.bfloat16
    assert losses[-1] < 0.01 * losses[0]
    assert opt.state_dict()["state"][0]["sum"].dtype == torch.float32
    # One step from the same point is torch's float32 step rounded once to bf16 (within one bf16 ulp).
    p0, (g,) = data((4097,), torch.float32, 1)
    w, w32 = p0.to(torch.bfloat16).requires_grad_(), p0.to(torch.bfloat16).float().requires_grad_()
    opt, opt32 = atorch.Adagrad([w], **kw), torch.optim.Adagrad([w32], **kw)
    w.grad, w32.grad = g.to(torch.bfloat16), g.to(torch.bfloat16).float()
    opt.step()
    opt32.step()
    assert w.dtype == torch.bfloat16 and torch.allclose(w.float(), w32, rtol=2.0 ** -8, atol=0)


def test_signature_matches_torch():
    ours, ref = inspect.signature(atorch.Adagrad.__init__), inspect.signature(torch.optim.Adagrad.__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
           [(p.name, p.kind, p.default) for p in ref.parameters.values()]


def test_defaults_and_ignored_flags():
    p = torch.zeros(3, requires_grad=True)
    opt = atorch.Adagrad([p], foreach=True, fused=True)
    g = opt.param_groups[0]
    assert (g["lr"], g["lr_decay"], g["weight_decay"], g["initial_accumulator_value"], g["eps"], g["maximize"]) == \
           (1e-2, 0, 0, 0, 1e-10, False)
    p.grad = torch.full((3,), 2.0)
    opt.step()
    assert torch.allclose(p, torch.full((3,), -1e-2 * 2 / (2 + 1e-10)))


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1.0), "lr"),
    (dict(lr_decay=-0.1), "lr_decay"),
    (dict(weight_decay=-1e-3), "weight_decay"),
    (dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (dict(eps=-1e-10), "eps"),
])
def test_rejects_what_torch_rejects(kwargs, name):
    with pytest.raises(ValueError):
        torch.optim.Adagrad([torch.zeros(3, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        atorch.Adagrad([torch.zeros(3, requires_grad=True)], **kwargs)


def test_rejects_differentiable_and_sparse():
    with pytest.raises(ValueError, match="differentiable"):
        atorch.Adagrad([torch.zeros(3, requires_grad=True)], differentiable=True)
    p = torch.zeros(3, requires_grad=True)
    opt = atorch.Adagrad([p])
    p.grad = torch.ones(3).to_sparse()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_matches_torch(case):
    ref, _, opt_ref, _, grads = pair((3, 4, 5), torch.float64, CASES[case])
    w = ref.detach().numpy().copy()
    opt = anp.Adagrad([w], **CASES[case])
    for g in grads:
        ref.grad = g.clone()
        opt_ref.step()
        opt.step([g.numpy()])
        assert np.abs(w - ref.detach().numpy()).max() / np.abs(ref.detach().numpy()).max() < 1e-10

"""adapprox SGD against torch.optim.SGD (torch 2.13) as the independent reference."""
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
    "plain": dict(lr=0.05, weight_decay=0.1),
    "momentum": dict(lr=0.05, momentum=0.9, weight_decay=0.1),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1),
    "maximize": dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True),
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def pair(shape, dtype, kwargs, steps=50, seed=0):
    return make_pair(torch.optim.SGD, atorch.SGD, shape, dtype, kwargs, steps, seed)


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
    if "momentum" in CASES[case]:  # same state names and values as torch
        want = opt_ref.state[ref]["momentum_buffer"]
        got = opt_ours.state_dict()["state"][0]["momentum_buffer"]
        assert got.dtype == dtype and got.shape == want.shape
        assert rel_err(got, want) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lr_scheduler_and_param_groups(dtype):
    p0, grads = data((7, 13), dtype, 60, seed=1)
    q0, _ = data((4097,), dtype, 1, seed=2)
    ref = [p0.clone().requires_grad_(), q0.clone().requires_grad_()]
    ours = [p0.clone().requires_grad_(), q0.clone().requires_grad_()]
    groups = lambda ps: [dict(params=[ps[0]]), dict(params=[ps[1]], momentum=0.5, nesterov=True)]  # noqa: E731
    kw = dict(lr=0.05, momentum=0.9, weight_decay=0.01)
    opt_ref, opt_ours = torch.optim.SGD(groups(ref), foreach=False, **kw), atorch.SGD(groups(ours), **kw)
    sch_ref = torch.optim.lr_scheduler.StepLR(opt_ref, step_size=7, gamma=0.5)
    sch_ours = torch.optim.lr_scheduler.StepLR(opt_ours, step_size=7, gamma=0.5)
    gen = torch.Generator().manual_seed(3)
    for t, g in enumerate(grads):
        h = torch.randn(q0.shape, generator=gen, dtype=torch.float64).to(dtype)
        for ps, g_, h_ in ((ref, g, h), (ours, g, h)):
            ps[0].grad, ps[1].grad = g_.clone(), h_.clone()
        opt_ref.step()
        opt_ours.step()
        sch_ref.step()
        sch_ours.step()
        if t == 30:  # a direct edit through param_groups
            for opt in (opt_ref, opt_ours):
                opt.param_groups[1]["lr"] = 0.2
        for a, b in zip(ours, ref):
            assert rel_err(a, b) < TOL[dtype]
    assert opt_ours.param_groups[0]["lr"] == opt_ref.param_groups[0]["lr"] < 0.05


@pytest.mark.parametrize("case", ["plain", "momentum", "nesterov"])
def test_state_dict_round_trip_is_bitwise(case):
    p0, grads = data((7, 13), torch.float32, 40)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    opt_a = atorch.SGD([a], **CASES[case])
    for g in grads[:15]:
        a.grad = g.clone()
        opt_a.step()
    buf = io.BytesIO()
    torch.save(opt_a.state_dict(), buf)
    buf.seek(0)
    with torch.no_grad():
        b.copy_(a)
    opt_b = atorch.SGD([b], lr=1.0)  # hyperparameters come from the state dict
    opt_b.load_state_dict(torch.load(buf))
    for g in grads[15:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
        assert torch.equal(a, b)
    assert opt_b.param_groups[0]["lr"] == CASES[case]["lr"]


def test_loads_torch_state_dict_mid_run():
    ref, ours, opt_ref, opt_ours, grads = pair((4097,), torch.float64, CASES["momentum"])
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
    w32 = torch.zeros(64, 33, requires_grad=True)  # torch in float32 as the yardstick
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    opt, opt32 = atorch.SGD([w], **kw), torch.optim.SGD([w32], **kw)
    losses = []
    for _ in range(100):
        for x, o in ((w, opt), (w32, opt32)):
            o.zero_grad()
            loss = 0.5 * ((x.float() - target) ** 2).sum()
            loss.backward()
            o.step()
            if x is w:
                losses.append(loss.item())
        assert w.dtype == torch.bfloat16
    assert losses[-1] < 1e-3 * losses[0]
    assert (w.float() - w32).abs().max() < 2e-2
    assert opt.state_dict()["state"][0]["momentum_buffer"].dtype == torch.float32


def test_signature_matches_torch():
    ours, ref = inspect.signature(atorch.SGD.__init__), inspect.signature(torch.optim.SGD.__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
           [(p.name, p.kind, p.default) for p in ref.parameters.values()]


def test_defaults_and_ignored_flags():
    p = torch.zeros(3, requires_grad=True)
    opt = atorch.SGD([p], foreach=True, fused=True)
    g = opt.param_groups[0]
    assert (g["lr"], g["momentum"], g["dampening"], g["weight_decay"], g["nesterov"], g["maximize"]) == \
           (1e-3, 0, 0, 0, False, False)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(p, torch.full((3,), -1e-3))


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=-1.0), "lr"),
    (dict(momentum=-0.1), "momentum"),
    (dict(weight_decay=-1e-3), "weight_decay"),
    (dict(nesterov=True), "momentum"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "dampening"),
])
def test_rejects_what_torch_rejects(kwargs, name):
    with pytest.raises(ValueError):
        torch.optim.SGD([torch.zeros(3, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        atorch.SGD([torch.zeros(3, requires_grad=True)], **kwargs)


def test_rejects_differentiable():
    with pytest.raises(ValueError, match="differentiable"):
        atorch.SGD([torch.zeros(3, requires_grad=True)], differentiable=True)
    opt = atorch.SGD([torch.zeros(3, requires_grad=True)])
    opt.add_param_group(dict(params=[torch.ones(2, requires_grad=True)], differentiable=True))
    opt.param_groups[1]["params"][0].grad = torch.ones(2)
    with pytest.raises(ValueError, match="differentiable"):
        opt.step()


def test_bad_group_edit_is_rejected_at_step():
    p = torch.zeros(3, requires_grad=True)
    opt = atorch.SGD([p], lr=0.1, momentum=0.9)
    opt.param_groups[0]["nesterov"] = True
    opt.param_groups[0]["dampening"] = 0.5
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="dampening"):
        opt.step()
    assert torch.equal(p, torch.zeros(3))


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_matches_torch(case):
    ref, _, opt_ref, _, grads = pair((3, 4, 5), torch.float64, CASES[case])
    w = ref.detach().numpy().copy()
    opt = anp.SGD([w], **CASES[case])
    for g in grads:
        ref.grad = g.clone()
        opt_ref.step()
        opt.step([g.numpy()])
        assert np.abs(w - ref.detach().numpy()).max() / np.abs(ref.detach().numpy()).max() < 1e-10

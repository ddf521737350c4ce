"""NAdam (adapprox.torch and adapprox.numpy) against torch.optim.NAdam, step by step."""
import copy
import inspect

import numpy as np
import pytest
import torch

import adapprox.numpy as anp
import adapprox.torch as at

SHAPES = [(1,), (7, 13), (4097,), (3, 4, 5)]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
STEPS = 50


def rel_err(ours, ref):
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def make_data(shape, dtype, steps=STEPS, seed=0):
    g = torch.Generator().manual_seed(seed)
    p0 = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    grads = [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(steps)]
    return p0, grads


def check_parity(shape, dtype, kw, steps=STEPS, schedule=None):
    p0, grads = make_data(shape, dtype, steps)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    oa, ob = at.NAdam([a], **kw), torch.optim.NAdam([b], **kw)
    for t, g in enumerate(grads):
        if schedule is not None:
            for o in (oa, ob):
                o.param_groups[0]["lr"] = schedule(t)
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
        assert a.dtype == dtype
        err = rel_err(a.detach(), b.detach())
        assert err < TOL[dtype], f"step {t + 1}: relative error {err:.3e}"
    return oa, ob


CONFIGS = {
    "l2": dict(lr=1e-2, weight_decay=0.1),
    "decoupled": dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    "momentum_decay": dict(lr=1e-2, weight_decay=0.1, momentum_decay=0.05),
    "maximize": dict(lr=1e-2, weight_decay=0.1, maximize=True),
    "defaults": dict(),
    "betas_eps": dict(lr=3e-3, betas=(0.6, 0.95), eps=1e-6, weight_decay=0.05, momentum_decay=0.0,
                      decoupled_weight_decay=True, maximize=True),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_nadam_matches_torch(config, shape, dtype):
    check_parity(shape, dtype, CONFIGS[config])


@pytest.mark.parametrize("config", ["l2", "decoupled"])
def test_float64_default_dtype(config):
    # torch keeps mu_product in the default dtype: under float64 it is no longer rounded to float32.
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        oa, ob = check_parity((7, 13), torch.float64, CONFIGS[config])
    finally:
        torch.set_default_dtype(old)
    p = oa.param_groups[0]["params"][0]
    q = ob.param_groups[0]["params"][0]
    assert oa.state_dict()["state"][0]["mu_product"] == ob.state[q]["mu_product"].item()
    assert p.shape == q.shape


def test_mu_product_matches_torch_state():
    oa, ob = check_parity((3, 4, 5), torch.float32, CONFIGS["momentum_decay"])
    q = ob.param_groups[0]["params"][0]
    sd = oa.state_dict()["state"][0]
    assert sd["mu_product"] == ob.state[q]["mu_product"].item()
    assert sd["step"] == STEPS
    assert set(sd) == {"step", "mu_product", "exp_avg", "exp_avg_sq"}
    assert torch.allclose(sd["exp_avg"], ob.state[q]["exp_avg"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_lr_changed_between_steps(dtype):
    sched = lambda t: 1e-2 * (0.5 if t % 7 == 3 else 1.0) * (1 + t) / STEPS  # noqa: E731
    check_parity((4097,), dtype, dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True), schedule=sched)


def test_torch_lr_scheduler():
    p0, grads = make_data((7, 13), torch.float32)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    oa, ob = at.NAdam([a], lr=1e-2, weight_decay=0.1), torch.optim.NAdam([b], lr=1e-2, weight_decay=0.1)
    sa = torch.optim.lr_scheduler.StepLR(oa, step_size=10, gamma=0.5)
    sb = torch.optim.lr_scheduler.StepLR(ob, step_size=10, gamma=0.5)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
        sa.step()
        sb.step()
        assert oa.param_groups[0]["lr"] == ob.param_groups[0]["lr"]
        assert rel_err(a.detach(), b.detach()) < TOL[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_state_dict_round_trip_mid_run(dtype):
    kw = dict(lr=1e-2, weight_decay=0.1, momentum_decay=0.02)
    shapes = [(7, 13), (3, 4, 5)]
    data = [make_data(s, dtype, seed=i) for i, s in enumerate(shapes)]
    a = [d[0].clone().requires_grad_() for d in data]
    b = [d[0].clone().requires_grad_() for d in data]
    oa, ob = at.NAdam(a, **kw), torch.optim.NAdam(b, **kw)
    half = STEPS // 2
    for t in range(half):
        for x, y, d in zip(a, b, data):
            x.grad, y.grad = d[1][t].clone(), d[1][t].clone()
        oa.step()
        ob.step()
    sd = copy.deepcopy(oa.state_dict())
    st = sd["state"][0]  # torch's layout: 0-d float32 tensors (float64 under a float64 default dtype)
    assert st["step"].dim() == 0 and st["step"].item() == half and st["mu_product"].dim() == 0
    c = [x.detach().clone().requires_grad_() for x in a]
    oc = at.NAdam(c)  # hyperparameters come from the state dict
    oc.load_state_dict(sd)
    assert oc.param_groups[0]["momentum_decay"] == 0.02
    for t in range(half, STEPS):
        for x, y, z, d in zip(a, b, c, data):
            x.grad, y.grad, z.grad = d[1][t].clone(), d[1][t].clone(), d[1][t].clone()
        oa.step()
        ob.step()
        oc.step()
        for x, y, z in zip(a, b, c):
            assert torch.equal(x, z)  # bitwise identical continuation
            assert rel_err(x.detach(), y.detach()) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_low_precision_params_keep_dtype_and_train(dtype):
    torch.manual_seed(0)
    target = torch.randn(64, 33)
    w = torch.zeros(64, 33, dtype=dtype, requires_grad=True)
    opt = at.NAdam([w], lr=3e-2, weight_decay=1e-4, decoupled_weight_decay=True)
    loss0 = None
    for _ in range(200):
        opt.zero_grad()
        loss = ((w.float() - target) ** 2).mean()
        loss.backward()
        opt.step()
        loss0 = loss0 if loss0 is not None else loss.item()
        assert w.dtype == dtype
    assert loss.item() < 0.05 * loss0
    assert opt.state_dict()["state"][0]["exp_avg_sq"].dtype == torch.float32


def test_signature_matches_torch():
    ours = inspect.signature(at.NAdam).parameters
    ref = inspect.signature(torch.optim.NAdam).parameters
    for name, p in ref.items():
        assert ours[name].kind == p.kind, name
        assert ours[name].default == p.default, name
    assert set(ours) - set(ref) == {"fused"}  # accepted and ignored, as for Adam
    w = torch.zeros(3, requires_grad=True)
    g_ours, g_ref = at.NAdam([w]).param_groups[0], torch.optim.NAdam([w]).param_groups[0]
    assert set(g_ours) == set(g_ref)
    assert all(g_ours[k] == g_ref[k] for k in g_ref if k != "params")


def test_ignored_and_rejected_flags():
    w = torch.zeros(3, requires_grad=True)
    at.NAdam([w], foreach=True)
    at.NAdam([w], fused=True)
    for kw in (dict(capturable=True), dict(differentiable=True)):
        with pytest.raises(ValueError, match="not supported"):
            at.NAdam([w], **kw)


@pytest.mark.parametrize("kw, key", [(dict(lr=-1.0), "lr"), (dict(eps=-1.0), "eps"), (dict(betas=(1.0, 0.9)), "beta1"),
                                     (dict(betas=(0.9, 1.5)), "beta2"), (dict(weight_decay=-0.1), "weight_decay"),
                                     (dict(momentum_decay=-1.0), "momentum_decay")])
def test_invalid_hyperparameters(kw, key):
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=key):
        at.NAdam([w], **kw)
    with pytest.raises(ValueError):
        torch.optim.NAdam([w], **kw)
    with pytest.raises(ValueError, match=key):
        anp.NAdam([np.zeros(3)], **kw)


# ---- NumPy front ----

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", ["l2", "decoupled", "momentum_decay", "maximize"])
def test_numpy_matches_torch(config, shape, dtype):
    # NumPy keeps mu_product in float64; torch rounds it to float32 unless its default dtype is float64.
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    kw = CONFIGS[config]
    p0, grads = make_data(shape, tdtype)
    w = p0.numpy().copy()
    ref = p0.clone().requires_grad_()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        opt, oref = anp.NAdam([w], **kw), torch.optim.NAdam([ref], **kw)
        for g in grads:
            opt.step([g.numpy()])
            ref.grad = g.clone()
            oref.step()
            assert w.dtype == dtype
            assert rel_err(w, ref.detach()) < TOL[tdtype]
    finally:
        torch.set_default_dtype(old)


def test_numpy_state_dict_round_trip():
    p0, grads = make_data((4097,), torch.float32)
    w = p0.numpy().copy()
    opt = anp.NAdam([w], lr=1e-2, weight_decay=0.1)
    for g in grads[:25]:
        opt.step([g.numpy()])
    sd = copy.deepcopy(opt.state_dict())
    assert set(sd["state"][0]) == {"step", "mu_product", "exp_avg", "exp_avg_sq"}
    w2 = w.copy()
    opt2 = anp.NAdam([w2])
    opt2.load_state_dict(sd)
    for g in grads[25:]:
        opt.step([g.numpy()])
        opt2.step([g.numpy()])
        assert np.array_equal(w, w2)

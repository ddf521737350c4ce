"""Adam / AdamW (adapprox.torch and adapprox.numpy) against torch.optim.Adam / AdamW, step by step."""
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


def check_parity(ours_cls, ref_cls, shape, dtype, kw, steps=STEPS, schedule=None):
    """Steps both optimizers on the same gradients; compares the parameters after every step."""
    p0, grads = make_data(shape, dtype, steps)
    a = p0.clone().requires_grad_()
    b = p0.clone().requires_grad_()
    oa, ob = ours_cls([a], **kw), ref_cls([b], **kw)
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


ADAM_CONFIGS = {
    "l2": dict(lr=1e-2, weight_decay=0.1),
    "amsgrad": dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
    "maximize": dict(lr=1e-2, weight_decay=0.1, maximize=True),
    "decoupled": dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    "betas_eps": dict(lr=3e-3, betas=(0.6, 0.95), eps=1e-6, weight_decay=0.05, amsgrad=True, maximize=True),
}
ADAMW_CONFIGS = {
    "wd": dict(lr=1e-2, weight_decay=0.1),
    "default_wd": dict(lr=1e-2),
    "amsgrad": dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
    "maximize": dict(lr=1e-2, weight_decay=0.1, maximize=True),
    "no_wd": dict(lr=1e-2, weight_decay=0.0, amsgrad=True),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", list(ADAM_CONFIGS))
def test_adam_matches_torch(config, shape, dtype):
    check_parity(at.Adam, torch.optim.Adam, shape, dtype, ADAM_CONFIGS[config])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", list(ADAMW_CONFIGS))
def test_adamw_matches_torch(config, shape, dtype):
    check_parity(at.AdamW, torch.optim.AdamW, shape, dtype, ADAMW_CONFIGS[config])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_lr_changed_between_steps(cls, dtype):
    sched = lambda t: 1e-2 * (0.5 if t % 7 == 3 else 1.0) * (1 + t) / STEPS  # noqa: E731
    check_parity(getattr(at, cls), getattr(torch.optim, cls), (7, 13), dtype,
                 dict(lr=1e-2, weight_decay=0.1, amsgrad=True), schedule=sched)


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_torch_lr_scheduler(cls):
    p0, grads = make_data((4097,), torch.float32)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    oa, ob = getattr(at, cls)([a], lr=1e-2, weight_decay=0.1), getattr(torch.optim, cls)([b], lr=1e-2, weight_decay=0.1)
    sa = torch.optim.lr_scheduler.CosineAnnealingLR(oa, T_max=STEPS)
    sb = torch.optim.lr_scheduler.CosineAnnealingLR(ob, T_max=STEPS)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
        sa.step()
        sb.step()
        assert oa.param_groups[0]["lr"] == ob.param_groups[0]["lr"]
        assert rel_err(a.detach(), b.detach()) < TOL[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cls, kw", [("Adam", dict(amsgrad=True, weight_decay=0.1)),
                                     ("AdamW", dict(amsgrad=True, maximize=True)),
                                     ("Adam", dict(decoupled_weight_decay=True, weight_decay=0.1))])
def test_state_dict_round_trip_mid_run(cls, kw, dtype):
    shapes = [(7, 13), (3, 4, 5)]
    data = [make_data(s, dtype, seed=i) for i, s in enumerate(shapes)]
    a = [d[0].clone().requires_grad_() for d in data]
    b = [d[0].clone().requires_grad_() for d in data]
    oa = getattr(at, cls)(a, lr=1e-2, **kw)
    ob = getattr(torch.optim, cls)(b, lr=1e-2, **kw)
    half = STEPS // 2
    for t in range(half):
        for x, y, d in zip(a, b, data):
            x.grad, y.grad = d[1][t].clone(), d[1][t].clone()
        oa.step()
        ob.step()
    sd = copy.deepcopy(oa.state_dict())
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if kw.get("amsgrad") else set())
    assert sd["state"][0]["step"] == half
    c = [x.detach().clone().requires_grad_() for x in a]
    oc = getattr(at, cls)(c, lr=0.5)  # hyperparameters come from the state dict
    oc.load_state_dict(sd)
    for t in range(half, STEPS):
        for x, y, z, d in zip(a, b, c, data):
            x.grad, y.grad, z.grad = d[1][t].clone(), d[1][t].clone(), d[1][t].clone()
        oa.step()
        ob.step()
        oc.step()
        for x, y, z in zip(a, b, c):
            assert torch.equal(x, z)  # bitwise identical continuation
            assert rel_err(x.detach(), y.detach()) < TOL[dtype]
    for x, y in zip(oa.state_dict()["state"].values(), oc.state_dict()["state"].values()):
        for k in x:
            assert torch.equal(torch.as_tensor(x[k]), torch.as_tensor(y[k]))


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_low_precision_params_keep_dtype_and_train(cls, dtype):
    torch.manual_seed(0)
    target = torch.randn(64, 33)
    w = torch.zeros(64, 33, dtype=dtype, requires_grad=True)
    opt = getattr(at, cls)([w], lr=3e-2, weight_decay=1e-4, amsgrad=True)
    loss0 = None
    for _ in range(200):
        opt.zero_grad()
        loss = ((w.float() - target) ** 2).mean()
        loss.backward()
        opt.step()
        loss0 = loss0 if loss0 is not None else loss.item()
        assert w.dtype == dtype and w.grad.dtype == dtype
    assert loss.item() < 0.05 * loss0
    sd = opt.state_dict()["state"][0]
    assert sd["exp_avg"].dtype == torch.float32 and sd["exp_avg"].shape == w.shape


def test_bf16_tracks_float32_math():
    # bf16 parameters: float32 math and state, rounded once per step; compare with torch on a float32 copy
    # stepped on the same (bf16-rounded) parameters each step.
    p0, grads = make_data((4097,), torch.bfloat16, steps=10)
    w = p0.clone()
    opt = at.AdamW([w], lr=1e-2)
    ref = p0.float().clone()
    oref = torch.optim.AdamW([ref], lr=1e-2)
    for g in grads:
        w.grad, ref.grad = g.clone(), g.float()
        opt.step()
        oref.step()
        assert w.dtype == torch.bfloat16
        assert rel_err(w.float(), ref) < 2e-2


def test_multiple_groups_and_missing_grads():
    p0, grads = make_data((7, 13), torch.float64)
    q0, qgrads = make_data((5,), torch.float64, seed=1)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    x, y = q0.clone().requires_grad_(), q0.clone().requires_grad_()
    ea, eb = torch.zeros(0, requires_grad=True, dtype=torch.float64), torch.zeros(0, requires_grad=True,
                                                                                dtype=torch.float64)
    groups = lambda p, q, e: [dict(params=[p, e]), dict(params=[q], lr=3e-3, amsgrad=True, weight_decay=0.2)]  # noqa
    oa = at.Adam(groups(a, x, ea), lr=1e-2, weight_decay=0.1)
    ob = torch.optim.Adam(groups(b, y, eb), lr=1e-2, weight_decay=0.1)
    for t in range(STEPS):
        a.grad, b.grad = grads[t].clone(), grads[t].clone()
        ea.grad, eb.grad = torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        if t % 3:  # x has no gradient on some steps: it is skipped (its step count does not advance)
            x.grad, y.grad = qgrads[t].clone(), qgrads[t].clone()
        else:
            x.grad = y.grad = None
        oa.step()
        ob.step()
        assert rel_err(a.detach(), b.detach()) < 1e-10
        assert rel_err(x.detach(), y.detach()) < 1e-10


def test_closure_returns_loss():
    w = torch.ones(3, requires_grad=True)
    opt = at.Adam([w])

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(3.0)
    assert (w < 1).all()


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_signature_matches_torch(cls):
    ours = inspect.signature(getattr(at, cls)).parameters
    ref = inspect.signature(getattr(torch.optim, cls)).parameters
    assert list(ours) == list(ref)
    for name, p in ref.items():
        assert ours[name].kind == p.kind, name
        assert ours[name].default == p.default, name


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_param_groups_match_torch(cls):
    w = torch.zeros(3, requires_grad=True)
    ours = getattr(at, cls)([w]).param_groups[0]
    ref = getattr(torch.optim, cls)([w]).param_groups[0]
    assert set(ours) == set(ref)
    for k in ref:
        if k != "params":
            assert ours[k] == ref[k], k


def test_ignored_and_rejected_flags():
    w = torch.zeros(3, requires_grad=True)
    for kw in (dict(foreach=True), dict(foreach=False), dict(fused=True), dict(fused=False)):
        at.Adam([w], **kw)
        at.AdamW([w], **kw)
    for kw in (dict(capturable=True), dict(differentiable=True)):
        with pytest.raises(ValueError, match="not supported"):
            at.Adam([w], **kw)
        with pytest.raises(ValueError, match="not supported"):
            at.AdamW([w], **kw)
    opt = at.Adam([w])
    opt.param_groups[0]["capturable"] = True
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match="capturable"):
        opt.step()


@pytest.mark.parametrize("kw, key", [(dict(lr=-1.0), "lr"), (dict(eps=-1.0), "eps"), (dict(betas=(1.0, 0.9)), "beta1"),
                                     (dict(betas=(0.9, -0.1)), "beta2"), (dict(weight_decay=-0.1), "weight_decay")])
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_invalid_hyperparameters(cls, kw, key):
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=key):
        getattr(at, cls)([w], **kw)
    with pytest.raises(ValueError):
        getattr(torch.optim, cls)([w], **kw)  # torch rejects the same values
    with pytest.raises(ValueError, match=key):
        getattr(anp, cls)([np.zeros(3)], **kw)


def test_tensor_lr_and_betas():
    # 1-element tensor lr / betas are read as floats each step (the same as passing those floats);
    # torch instead does its scalar math in the tensors' float32, hence the looser bound against it.
    p0, grads = make_data((7, 13), torch.float64, steps=10)
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


def test_nan_gradient_propagates_like_torch():
    a, b = torch.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)
    oa, ob = at.Adam([a], amsgrad=True), torch.optim.Adam([b], amsgrad=True)
    g = torch.tensor([1.0, float("nan"), -2.0, 0.0])
    for _ in range(3):
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.allclose(a[~a.isnan()], b[~b.isnan()])


# ---- NumPy front ----

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cls, kw", [("Adam", ADAM_CONFIGS["amsgrad"]), ("Adam", ADAM_CONFIGS["maximize"]),
                                     ("Adam", ADAM_CONFIGS["decoupled"]), ("AdamW", ADAMW_CONFIGS["amsgrad"])])
def test_numpy_matches_torch(cls, kw, shape, dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    p0, grads = make_data(shape, tdtype)
    w = p0.numpy().copy()
    ref = p0.clone().requires_grad_()
    opt = getattr(anp, cls)([w], **kw)
    oref = getattr(torch.optim, cls)([ref], **kw)
    for t, g in enumerate(grads):
        if t == STEPS // 2:  # an lr change mid-run
            opt.lr = kw["lr"] / 2
            oref.param_groups[0]["lr"] = kw["lr"] / 2
        opt.step([g.numpy()])
        ref.grad = g.clone()
        oref.step()
        assert w.dtype == dtype
        assert rel_err(w, ref.detach()) < TOL[tdtype]


def test_numpy_state_dict_round_trip():
    p0, grads = make_data((7, 13), torch.float64)
    w = p0.numpy().copy()
    opt = anp.AdamW([w], lr=1e-2, amsgrad=True)
    for g in grads[:25]:
        opt.step([g.numpy()])
    sd = copy.deepcopy(opt.state_dict())
    w2 = w.copy()
    opt2 = anp.AdamW([w2])
    opt2.load_state_dict(sd)
    for g in grads[25:]:
        opt.step([g.numpy()])
        opt2.step([g.numpy()])
        assert np.array_equal(w, w2)

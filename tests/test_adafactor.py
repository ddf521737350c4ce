"""Adafactor: torch mode against torch.optim.Adafactor, paper mode against an independent float64
NumPy implementation of Shazeer and Stern (2018), the seed's worked example, state round trips."""
import copy
import zlib

import numpy as np
import pytest
import torch

import adapprox
import adapprox.numpy as anp
import adapprox.torch as at

SHAPES = [(1,), (7, 13), (4097,), (3, 4, 5)]
STEPS = 60


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


class PaperAdafactor:
    """The paper's Algorithms 4/5 (relative step, update clipping, optional beta1 on the scaled step)
    in float64, written with the paper's sums R = (G^2 + eps1) 1_m, C = 1_n^T (G^2 + eps1),
    Vhat = R C / (1_n^T R); leading dimensions are batched, the last two factored."""

    def __init__(self, theta, lr=None, beta1=None, eps1=1e-30, eps2=1e-3, d=1.0, decay_rate=-0.8,
                 weight_decay=0.0):
        self.theta = np.array(theta, dtype=np.float64)
        self.lr, self.beta1, self.eps1, self.eps2, self.d = lr, beta1, eps1, eps2, d
        self.decay_rate, self.wd = decay_rate, weight_decay
        self.t = 0
        self.R = self.C = self.V = self.m = None
        self.last = {}

    def step(self, g):
        g = np.asarray(g, dtype=np.float64)
        self.t += 1
        t = self.t
        rho = min(1e-2 if self.lr is None else self.lr, 1.0 / np.sqrt(t))
        alpha = max(self.eps2, rms(self.theta)) * rho
        b2 = 1.0 - t ** self.decay_rate
        g2 = g * g + self.eps1
        if g.ndim >= 2:
            if self.R is None:
                self.R = np.zeros(g.shape[:-1])
                self.C = np.zeros(g.shape[:-2] + g.shape[-1:])
            self.R = b2 * self.R + (1 - b2) * g2.sum(axis=-1)
            self.C = b2 * self.C + (1 - b2) * g2.sum(axis=-2)
            V = self.R[..., :, None] * self.C[..., None, :] / self.R.sum(axis=-1)[..., None, None]
        else:
            if self.V is None:
                self.V = np.zeros(g.shape)
            self.V = b2 * self.V + (1 - b2) * g2
            V = self.V
        U = g / np.sqrt(V)
        Uhat = U / max(1.0, rms(U) / self.d)
        s = alpha * Uhat
        if self.beta1 is not None:
            if self.m is None:
                self.m = np.zeros(g.shape)
            self.m = self.beta1 * self.m + (1 - self.beta1) * s
            s = self.m
        self.theta = self.theta - alpha * self.wd * self.theta - s
        self.last = dict(rho=rho, alpha=alpha, rms_u=rms(U), U=U, Uhat=Uhat)
        return self.theta


def seed_of(*key):
    return zlib.crc32(repr(key).encode())


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# ---------------------------------------------------------------------------------------------
# torch mode == torch.optim.Adafactor

VARIANTS = {
    "plain": dict(),
    "weight_decay": dict(lr=3e-2, weight_decay=0.2),
    "maximize": dict(maximize=True),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_mode_matches_torch_adafactor(shape, dtype, tol, variant):
    kw = VARIANTS[variant]
    gen = torch.Generator().manual_seed(seed_of(shape, variant))
    ref = torch.randn(shape, dtype=dtype, generator=gen)
    mine = ref.clone()
    opt_ref = torch.optim.Adafactor([ref], **kw)
    opt = at.Adafactor([mine], **kw)
    worst = 0.0
    for t in range(STEPS):
        # gradients whose scale drifts over 3 orders of magnitude: clipping is active at times
        g = torch.randn(shape, dtype=dtype, generator=gen) * 10.0 ** (2 * np.sin(t / 7))
        ref.grad, mine.grad = g.clone(), g.clone()
        opt_ref.step()
        opt.step()
        err = rel(mine.numpy(), ref.numpy())
        worst = max(worst, err)
        assert err < tol, (t, err)
    sd, sd_ref = opt.state_dict()["state"][0], opt_ref.state_dict()["state"][0]
    for name in ("row_var", "col_var", "variance"):
        assert (name in sd) == (name in sd_ref)
        if name in sd:
            assert sd[name].shape == sd_ref[name].shape and sd[name].dtype == dtype
            assert rel(sd[name].numpy(), sd_ref[name].numpy()) < tol * 10
    assert int(sd["step"]) == int(sd_ref["step"].item()) == STEPS


def test_torch_mode_many_params_and_big_param_threads():
    # one group mixing 0-D, 1-D, N-D and a big (multithreaded) parameter; per-group eps1 resolution
    shapes = [(), (5,), (300, 257), (2, 3, 4, 5), (64, 1), (1, 64)]
    gen = torch.Generator().manual_seed(3)
    refs = [torch.randn(s, dtype=torch.float64, generator=gen) for s in shapes]
    mine = [r.clone() for r in refs]
    opt_ref = torch.optim.Adafactor(refs, lr=2e-2, weight_decay=0.01)
    opt = at.Adafactor(mine, lr=2e-2, weight_decay=0.01)
    for t in range(20):
        for r, p in zip(refs, mine):
            g = torch.randn(r.shape, dtype=torch.float64, generator=gen)
            r.grad, p.grad = g.clone(), g.clone()
        opt_ref.step()
        opt.step()
    for r, p in zip(refs, mine):
        assert rel(p.numpy(), r.numpy()) < 1e-10


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(4)
    shapes = [(300, 257), (4, 50, 70), (1000,), (9, 11)]
    gs = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(5)]
    outs = []
    before = adapprox.num_threads()
    try:
        for threads in (1, 3):
            adapprox.set_num_threads(threads)
            ws = [np.ones(s, np.float32) * 0.5 for s in shapes]
            opt = anp.Adafactor(ws, mode="paper", beta1=0.9)
            for g in gs:
                opt.step(g)
            outs.append(ws)
    finally:
        adapprox.set_num_threads(before)
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# paper mode == the paper's algorithm (float64 NumPy reference above)

@pytest.mark.parametrize("shape", SHAPES + [(2, 1, 6), (300, 257)], ids=str)
@pytest.mark.parametrize("beta1", [None, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_paper_mode_matches_reference(shape, beta1, weight_decay):
    rng = np.random.default_rng(seed_of(shape, beta1, weight_decay))
    theta0 = rng.standard_normal(shape)
    w = theta0.copy()
    opt = anp.Adafactor([w], mode="paper", beta1=beta1, weight_decay=weight_decay)
    ref = PaperAdafactor(theta0, beta1=beta1, weight_decay=weight_decay)
    steps = 15 if np.prod(shape) > 10**4 and len(shape) > 1 else STEPS
    for t in range(steps):
        g = rng.standard_normal(shape) * 10.0 ** (2 * np.sin(t / 7))
        opt.step([g])
        ref.step(g)
        assert rel(w, ref.theta) < 1e-10, t
        # stricter: relative to the distance travelled
        assert np.linalg.norm(w - ref.theta) <= 1e-9 * np.linalg.norm(ref.theta - theta0) + 1e-300, t


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_paper_mode_float32_and_torch_front(shape):
    rng = np.random.default_rng(5)
    theta0 = rng.standard_normal(shape)
    p = torch.tensor(theta0, dtype=torch.float32)
    opt = at.Adafactor([p], lr=None, mode="paper", beta1=0.8, decay_rate=-0.8, eps1=1e-30, eps2=1e-3, d=1.0)
    ref = PaperAdafactor(theta0, beta1=0.8)
    for t in range(STEPS):
        g = rng.standard_normal(shape)
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        ref.step(g.astype(np.float32))
        assert rel(p.numpy(), ref.theta) < 1e-5, t


def test_paper_mode_options():
    # fixed step (relative_step=False), no parameter scaling, custom d and eps
    rng = np.random.default_rng(6)
    theta0 = rng.standard_normal((6, 5))
    w = theta0.copy()
    opt = anp.Adafactor([w], mode="paper", lr=3e-3, relative_step=False, scale_parameter=False, d=0.5,
                        eps=(1e-20, 1e-2))
    th = theta0.copy()
    R = C = None
    for t in range(1, 11):
        g = rng.standard_normal((6, 5))
        opt.step([g])
        w2 = t ** -0.8
        g2 = g * g + 1e-20
        R = g2.mean(1) if R is None else (1 - w2) * R + w2 * g2.mean(1)
        C = g2.mean(0) if C is None else (1 - w2) * C + w2 * g2.mean(0)
        U = g / np.sqrt(np.outer(R, C) / R.mean())
        th = th - 3e-3 * U / max(1.0, rms(U) / 0.5)
        assert rel(w, th) < 1e-12


# ---------------------------------------------------------------------------------------------
# the seed's worked example (first paper-mode step on a 3x3 matrix)

G1 = np.array([[0.3, -0.2, 0.4], [-0.5, 0.6, -0.1], [0.2, -0.4, 0.3]])
SEED_DELTA = np.array([[-0.00778098, 0.00427308, -0.0125423],
                       [0.00886924, -0.00876729, 0.00214448],
                       [-0.00518732, 0.00854616, -0.00940675]])


@pytest.mark.parametrize("x0", ["constant", "random"])
def test_seed_worked_example(x0):
    rng = np.random.default_rng(7)
    X0 = np.full((3, 3), 0.806) if x0 == "constant" else rng.standard_normal((3, 3))
    X0 *= 0.806 / rms(X0)
    assert abs(rms(X0) - 0.806) < 1e-15
    ref = PaperAdafactor(X0)
    ref.step(G1)
    assert ref.last["rho"] == 1e-2
    assert abs(ref.last["alpha"] - 0.00806) < 1e-15
    assert abs(ref.last["rms_u"] - 1.02547) < 5e-6  # > d = 1: the update is clipped
    assert np.abs(ref.theta - X0 - SEED_DELTA).max() < 1e-6
    for dtype in (np.float64, np.float32):
        X = X0.astype(dtype)
        opt = anp.Adafactor([X], mode="paper")  # lr=None: relative step; eps1=1e-30, eps2=1e-3, d=1
        opt.step([G1.astype(dtype)])
        assert np.abs((X - X0) - SEED_DELTA).max() < 1e-6
        st = opt.state_dict()["state"][0]
        # step 1: beta2hat = 0, so R and C are the plain row/column means of G^2 (+ eps1)
        assert np.allclose(st["row_var"].ravel(), (G1 ** 2).mean(1), rtol=1e-6)
        assert np.allclose(st["col_var"].ravel(), (G1 ** 2).mean(0), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# state, dtypes, bad input

@pytest.mark.parametrize("mode,extra", [("torch", dict(weight_decay=0.1)), ("paper", dict(beta1=0.9))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_state_dict_round_trip_is_bitwise(mode, extra, dtype):
    gen = torch.Generator().manual_seed(8)
    shapes = [(6, 7), (11,), (2, 3, 4)]
    params = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    grads = [[torch.randn(s, generator=gen).to(dtype) for s in shapes] for _ in range(20)]
    opt = at.Adafactor(params, mode=mode, **extra)

    def run(opt, params, gs):
        for gl in gs:
            for p, g in zip(params, gl):
                p.grad = g.clone()
            opt.step()

    run(opt, params, grads[:10])
    saved = copy.deepcopy(opt.state_dict())
    saved_params = [p.clone() for p in params]
    run(opt, params, grads[10:])

    params2 = [p.clone() for p in saved_params]
    opt2 = at.Adafactor(params2, mode=mode, **extra)
    opt2.load_state_dict(saved)
    run(opt2, params2, grads[10:])
    for a, b in zip(params, params2):
        assert a.dtype == dtype and torch.equal(a, b)
    if mode == "paper":
        assert "exp_avg" in saved["state"][0]


def test_numpy_state_round_trip():
    rng = np.random.default_rng(9)
    w = rng.standard_normal((5, 4))
    gs = [rng.standard_normal((5, 4)) for _ in range(10)]
    opt = anp.Adafactor([w], mode="paper", beta1=0.5)
    for g in gs[:5]:
        opt.step([g])
    saved, w_saved = copy.deepcopy(opt.state_dict()), w.copy()
    for g in gs[5:]:
        opt.step([g])
    w2 = w_saved.copy()
    opt2 = anp.Adafactor([w2])
    opt2.load_state_dict(saved)
    assert opt2.hyper["mode"] == "paper"
    for g in gs[5:]:
        opt2.step([g])
    assert np.array_equal(w, w2)


def test_state_dict_interchangeable_with_torch_adafactor():
    gen = torch.Generator().manual_seed(10)
    shapes = [(4, 9), (7,), (2, 3, 5)]
    ref = [torch.randn(s, dtype=torch.float64, generator=gen) for s in shapes]
    mine = [p.clone() for p in ref]
    opt_ref = torch.optim.Adafactor(ref, weight_decay=0.05)
    opt = at.Adafactor(mine, weight_decay=0.05)

    def feed():
        for r, p in zip(ref, mine):
            g = torch.randn(r.shape, dtype=torch.float64, generator=gen)
            r.grad, p.grad = g.clone(), g.clone()

    for _ in range(5):
        feed()
        opt_ref.step()
        opt.step()
    # swap the states: torch continues from ours, ours from torch's
    sd_ref, sd = copy.deepcopy(opt_ref.state_dict()), copy.deepcopy(opt.state_dict())
    opt_ref.load_state_dict(sd)
    opt.load_state_dict(sd_ref)
    for _ in range(5):
        feed()
        opt_ref.step()
        opt.step()
    for r, p in zip(ref, mine):
        assert rel(p.numpy(), r.numpy()) < 1e-10


@pytest.mark.parametrize("mode", ["torch", "paper"])
def test_bf16_keeps_dtype_and_trains(mode):
    gen = torch.Generator().manual_seed(11)
    target = torch.randn(16, 8, generator=gen)
    # not zeros: the relative step is scaled by max(eps2, RMS(w)), so zero weights would crawl
    w = torch.randn(16, 8, generator=gen).to(torch.bfloat16).requires_grad_()
    b = torch.randn(8, generator=gen).to(torch.bfloat16).requires_grad_()
    opt = at.Adafactor([w, b], lr=5e-2 if mode == "torch" else None, mode=mode)

    def loss_fn():
        return ((w.float() + b.float() - target) ** 2).mean()

    first = loss_fn().item()
    for _ in range(300):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert w.dtype == torch.bfloat16 and b.dtype == torch.bfloat16
    assert loss_fn().item() < 0.3 * first
    st = opt.state_dict()["state"]
    assert st[0]["row_var"].dtype == torch.float32 and st[0]["row_var"].shape == (16, 1)
    assert st[0]["col_var"].shape == (1, 8) and st[1]["variance"].shape == (8,)


def test_bad_input_is_refused_before_anything_is_written():
    w1, w2 = np.ones((4, 3), np.float32), np.ones(5, np.float32)
    opt = anp.Adafactor([w1, w2], mode="paper", beta1=0.9)
    opt.step([np.ones((4, 3), np.float32), np.ones(5, np.float32)])
    before = (w1.copy(), w2.copy(), copy.deepcopy(opt.state_dict()))

    def unchanged():
        assert np.array_equal(w1, before[0]) and np.array_equal(w2, before[1])
        sd = opt.state_dict()["state"]
        for i in (0, 1):
            assert sd[i]["step"] == before[2]["state"][i]["step"] == 1
            for k, v in before[2]["state"][i].items():
                assert np.array_equal(sd[i][k], v)

    g1 = np.full((4, 3), 2.0, np.float32)
    bad = [
        (TypeError, [g1, np.ones(5, np.float64)]),            # dtype mismatch in the second
        (ValueError, [g1, np.ones(6, np.float32)]),           # shape mismatch
        ((TypeError, ValueError), [g1, np.ones(10, np.float32)[::2]]),  # not contiguous
        ((TypeError, ValueError), [g1, np.ones(5, np.int32)]),           # integer dtype
    ]
    for exc, grads in bad:
        with pytest.raises(exc):
            opt.step(grads)
        unchanged()
    ro = np.ones(5, np.float32)
    ro.flags.writeable = False
    opt_ro = anp.Adafactor([np.ones((4, 3), np.float32), ro])
    with pytest.raises((TypeError, ValueError), match="params\\[1\\]"):
        opt_ro.step([g1, np.ones(5, np.float32)])
    # a float32 state stepped with a float64 parameter
    opt32 = anp.Adafactor([np.ones((4, 3), np.float32)])
    opt32.step([g1])
    opt32.params[0] = np.ones((4, 3))
    with pytest.raises(ValueError, match="must be float64"):
        opt32.step([g1.astype(np.float64)])
    assert np.array_equal(opt32.params[0], np.ones((4, 3)))
    # loading converts saved buffers to the parameter's state dtype (as torch does)
    opt64 = anp.Adafactor([np.ones((4, 3))], mode="paper", beta1=0.9)
    opt64.load_state_dict({"hyper": opt.hyper, "state": {0: opt.state_dict()["state"][0]}})
    assert opt64.state_dict()["state"][0]["row_var"].dtype == np.float64
    with pytest.raises(ValueError, match="row_var"):
        opt64.load_state_dict({"hyper": opt.hyper, "state": {0: {"step": 3, "row_var": np.ones(5)}}})
    with pytest.raises(ValueError, match="required"):
        opt64.load_state_dict({"hyper": opt.hyper, "state": {0: {"step": 3}}})


def test_hyperparameters_are_checked():
    p = [torch.zeros(3, 2, requires_grad=True)]
    for kw, match in [(dict(lr=-1.0), "lr"), (dict(beta2_decay=0.5), "beta2_decay"),
                      (dict(eps=(-1.0, 1e-3)), "eps1"), (dict(eps=(None, -1.0)), "eps2"),
                      (dict(d=0.5), "d"), (dict(weight_decay=-1.0), "weight_decay"),
                      (dict(beta1=0.9), "beta1"), (dict(mode="adam"), "mode"),
                      (dict(mode="paper", beta1=1.0), "beta1"), (dict(mode="paper", d=0.0), "d"),
                      (dict(mode="paper", lr=None, relative_step=False), "lr"),
                      (dict(lr=None), "lr"), (dict(eps1=1e-5, eps=(1e-6, 1e-3)), "eps1")]:
        with pytest.raises(ValueError, match=match):
            at.Adafactor(p, **kw)
    at.Adafactor(p, mode="paper", d=0.5)  # paper mode allows d < 1
    opt = at.Adafactor(p, foreach=True, maximize=False)  # torch's arguments are all accepted
    assert opt.defaults["lr"] == 1e-2 and opt.defaults["eps"] == (None, 1e-3) and opt.defaults["mode"] == "torch"


def test_defaults_match_torch_signature():
    import inspect
    mine = inspect.signature(at.Adafactor).parameters
    theirs = inspect.signature(torch.optim.Adafactor).parameters
    for name, par in theirs.items():
        assert name in mine and mine[name].default == par.default and mine[name].kind == par.kind, name

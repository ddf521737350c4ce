"""Low-precision state (cpp/src/quantized_state.cpp): 8-bit blockwise moments and bf16 moments
(state_precision), stochastic rounding of bf16 parameters, conversion between precisions and
resuming. The codes are checked against a float64 reference written from the format's
definition, the optimizers against torch.optim and the float32-state runs."""
import copy

import numpy as np
import pytest
import torch

import adapprox.numpy as AN
import adapprox.torch as AT
from adapprox import _core
from conftest import ROOT, native_threads

BLOCK = 256


def raw_code(i, mantissa):
    """raw(i) of the format (bias 15, subnormals), in float64."""
    if i < (1 << mantissa):
        return i * 2.0 ** (1 - 15 - mantissa)
    e, f = i >> mantissa, i & ((1 << mantissa) - 1)
    return 2.0 ** (e - 15) * (1 + f / 2 ** mantissa)


SIGNED = np.array([raw_code(i, 3) for i in range(128)]) / raw_code(127, 3)  # |value| of 7-bit codes
UNSIGNED = np.array([raw_code(i, 4) for i in range(256)]) / raw_code(255, 4)  # sqrt(value) of 8-bit codes


def decode(codes, absmax, kind):
    """float64 values of 8-bit codes (C order, blocks of 256) from the format's definition."""
    a = np.repeat(absmax.astype(np.float64), BLOCK)[:codes.size]
    c = codes.reshape(-1).astype(np.int64)
    if kind == "signed":
        return np.where(c & 128, -1.0, 1.0) * SIGNED[c & 127] * a
    return UNSIGNED[c] ** 2 * a


def encode(x, kind, step=0):
    """(codes, absmax) of float32 moments through the core's conversion (keyed by `step`)."""
    name = "exp_avg" if kind == "signed" else "exp_avg_sq"
    hyper = dict(state_precision=2.0)
    other = "exp_avg_sq" if kind == "signed" else "exp_avg"
    bufs = {name: x.astype(np.float32), other: np.zeros_like(x, np.float32)}
    out = _core.conform_state("adam", hyper, [x.size], "float32", bufs, step)
    return out[name], out[name + "_absmax"]


def neighbours(x, table, absmax):
    """The two codes' values around |x| in `table` scaled by absmax (float64)."""
    t = table * absmax
    hi = np.searchsorted(t, x, side="left").clip(0, len(t) - 1)
    lo = (hi - 1).clip(0)
    return t[lo], t[hi]


@pytest.mark.parametrize("kind", ["signed", "nonnegative"])
def test_codes_match_the_format(kind):
    rng = np.random.default_rng(1)
    n = 3 * BLOCK + 77  # a partial last block
    scale = np.exp(rng.uniform(-20, 2, n))  # magnitudes over ~10 decades
    x = (rng.standard_normal(n) * scale) if kind == "signed" else scale ** 2
    x = x.astype(np.float32)
    codes, absmax = encode(x, kind)
    assert codes.dtype == np.uint8 and absmax.dtype == np.float32 and absmax.size == 4
    for b in range(4):  # the absmax of each block, exactly
        assert absmax[b] == np.abs(x[b * BLOCK:(b + 1) * BLOCK]).max()
    got = decode(codes, absmax, kind)
    xs = x.astype(np.float64)
    a = np.repeat(absmax.astype(np.float64), BLOCK)[:n]
    for i in range(n):  # each element rounds to one of its two neighbouring codes
        if kind == "signed":
            lo, hi = neighbours(abs(xs[i]), SIGNED, a[i])
            want = sorted((np.sign(xs[i]) * lo, np.sign(xs[i]) * hi))
        else:
            lo, hi = neighbours(np.sqrt(xs[i]), UNSIGNED, np.sqrt(a[i]))
            want = sorted((lo * lo, hi * hi))
        tol = 1e-6 * max(abs(xs[i]), 1e-30)
        assert want[0] - tol <= got[i] <= want[1] + tol, (i, xs[i], got[i], want)
        if kind == "signed":
            assert got[i] == 0 or np.sign(got[i]) == np.sign(xs[i])


def test_second_moments_stay_accurate_near_zero():
    """The square-root code keeps 4 mantissa bits down to 2^-28 of the block's absmax (and
    subnormal steps below): v at 1e-8 of the absmax decodes within one code's spacing, where a
    linear or bitsandbytes-style dynamic code of v itself (smallest nonzero ~1e-7) gives 0."""
    v = np.full(BLOCK, 1e-8, np.float32)
    v[0] = 1.0
    codes, absmax = encode(v, "nonnegative")
    got = decode(codes, absmax, "nonnegative")[1:]
    assert np.all(got > 0)
    assert np.abs(got / 1e-8 - 1).max() < 2 * 2.0 ** -4 + 1e-3  # (1 + 2^-4)^2 - 1 at most


def test_second_moments_round_without_bias_first_moments_to_nearest():
    """Second moments round stochastically: over many keys the decoded values average to the
    stored ones (rounding to nearest would keep a fixed error of up to half a code). First
    moments round to the nearest code, whatever the key."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0.2, 0.9, BLOCK).astype(np.float32)
    x[0] = 1.0
    runs = np.stack([decode(*encode(x, "nonnegative", step=s), "nonnegative") for s in range(400)])
    spread = runs.std(axis=0).max()
    assert spread > 0  # it is random
    err = np.abs(runs.mean(axis=0) - x)
    assert err.max() < 5 * spread / np.sqrt(400) + 1e-7
    assert np.array_equal(decode(*encode(x, "nonnegative", step=7), "nonnegative"), runs[7])  # reproducible
    y = x.copy()
    y[1::2] *= -1
    got = decode(*encode(y, "signed", step=1), "signed")
    assert np.array_equal(got, decode(*encode(y, "signed", step=2), "signed"))
    a = np.abs(y).max()
    for i in range(BLOCK):
        lo, hi = neighbours(abs(float(y[i])), SIGNED, a)
        nearest = lo if abs(y[i]) - lo <= hi - abs(y[i]) else hi
        assert abs(abs(got[i]) - nearest) <= 1e-6 * a or abs(abs(y[i]) - lo - (hi - abs(y[i]))) < 1e-6 * a


def _regression(seed=0, n=2048, d=48, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w_true = torch.randn(d, 8, generator=g)
    Y = X @ w_true + 0.1 * torch.randn(n, 8, generator=g)
    return X, Y


def _train(opt_factory, steps=150, seed=0, dtype=torch.float32):
    X, Y = _regression(seed)
    torch.manual_seed(seed)
    w = torch.zeros(48, 8, dtype=dtype, requires_grad=True)
    b = torch.zeros(8, dtype=dtype, requires_grad=True)
    opt = opt_factory([w, b])
    for i in range(steps):
        sl = slice((i * 64) % 2048, (i * 64) % 2048 + 64)
        loss = ((X[sl].to(dtype) @ w + b - Y[sl].to(dtype)).float() ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        full = ((X.to(dtype) @ w + b - Y.to(dtype)).float() ** 2).mean().item()
    return full, opt, (w, b)


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
def test_adamw_low_precision_tracks_torch(prec):
    ref, ropt, (rw, _) = _train(lambda ps: torch.optim.AdamW(ps, lr=3e-2))
    got, opt, (w, _) = _train(lambda ps: AT.AdamW(ps, lr=3e-2, state_precision=prec))
    start = _train(lambda ps: torch.optim.SGD(ps, lr=0.0), steps=1)[0]
    assert got < 0.2 * start  # it trains
    assert abs(got - ref) < 0.05 * ref + 2e-3 * start


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
def test_moments_track_float32_moments(prec, monkeypatch):
    """The same gradient sequence into torch.optim.AdamW and the low-precision one: the moments it
    holds, decoded, stay close to torch's float32 ones (no drift from lost decays or additions).
    The setting of `python -m bench moments`, 200 steps."""
    monkeypatch.syspath_prepend(str(ROOT))  # the repository's bench package
    from bench.moments import held_moments
    st, rst, _, _ = held_moments(prec, 200)
    # measured: bf16 0.6% / 3.2%, 8-bit 5.6% / 8.6% (relative Frobenius error of m / v after 200 steps)
    for k, limit in (("exp_avg", 0.02 if prec == "bf16" else 0.15), ("exp_avg_sq", 0.06 if prec == "bf16" else 0.15)):
        assert st[k].dtype == torch.float32
        rel = ((st[k] - rst[k]).norm() / rst[k].norm()).item()
        assert rel < limit, (k, rel)
        bias = ((st[k] - rst[k]).sum() / rst[k].abs().sum()).item()
        assert abs(bias) < limit / 4, (k, bias)  # unbiased rounding: no drift


def test_8bit_state_is_a_quarter():
    _, opt, _ = _train(lambda ps: AT.AdamW(ps, lr=1e-2, state_precision="8bit"), steps=2)
    rep = opt.memory_report()
    n = 48 * 8 + 8
    assert rep["buffers"]["exp_avg"] == n and rep["buffers"]["exp_avg_sq"] == n
    assert rep["buffers"]["exp_avg_absmax"] == 4 * (2 + 1)  # 2 blocks of the matrix, 1 of the bias
    assert rep["total_bytes"] == sum(rep["buffers"].values())
    assert sum(p["state_bytes"] for p in rep["params"]) == rep["total_bytes"]


@pytest.mark.parametrize("name", ["Adam", "NAdam", "RMSprop", "Adagrad", "SGD", "SignSGD"])
def test_every_elementwise_optimizer_trains_in_8bit(name):
    kw = dict(Adam=dict(lr=3e-2, amsgrad=True), NAdam=dict(lr=3e-2), RMSprop=dict(lr=1e-2, momentum=0.5),
              Adagrad=dict(lr=0.3, initial_accumulator_value=0.1), SGD=dict(lr=1e-2, momentum=0.9),
              SignSGD=dict(lr=1e-2, momentum=0.9))[name]
    torch_cls = getattr(torch.optim, name, None)
    f32, _, _ = _train(lambda ps: getattr(AT, name)(ps, **kw))
    q8, opt, _ = _train(lambda ps: getattr(AT, name)(ps, state_precision="8bit", **kw))
    assert any(t.dtype == torch.uint8 for st in opt.state.values() for t in st.values())
    start = _train(lambda ps: torch.optim.SGD(ps, lr=0.0), steps=1)[0]
    assert abs(q8 - f32) < 0.1 * f32 + 1e-3 * start, (q8, f32, start)
    if torch_cls is not None:
        ref, _, _ = _train(lambda ps: torch_cls(ps, **kw))
        assert abs(f32 - ref) < 1e-3 * ref + 1e-6


def test_adagrad_8bit_starts_from_its_initial_value():
    """Adagrad's sum starts at initial_accumulator_value: the 8-bit first step decodes it exactly."""
    p = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    r = p.detach().clone().requires_grad_()
    g = torch.tensor([0.5, 0.25, -1.0])
    o = AT.Adagrad([p], lr=0.1, initial_accumulator_value=0.4, state_precision="8bit")
    ro = torch.optim.Adagrad([r], lr=0.1, initial_accumulator_value=0.4)
    p.grad, r.grad = g.clone(), g.clone()
    o.step()
    ro.step()
    torch.testing.assert_close(p, r, rtol=0, atol=1e-6)


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
def test_adapprox_low_precision_tracks_float32_state(prec):
    for guided in (False, True):
        f32, _, _ = _train(lambda ps: AT.Adapprox(ps, lr=3e-2, cosine_guidance=guided))
        low, opt, (w, b) = _train(lambda ps: AT.Adapprox(ps, lr=3e-2, cosine_guidance=guided, state_precision=prec))
        assert abs(low - f32) < 0.05 * f32, (guided, low, f32)
        want = torch.bfloat16 if prec == "bf16" else torch.uint8
        assert opt.state[w]["exp_avg"].dtype == want and opt.state[b]["exp_avg_sq"].dtype == want
        assert opt.state[w]["factor_q"].dtype == torch.float32  # the factors stay float32


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
@pytest.mark.parametrize("cls", ["AdamW", "Adapprox"])
def test_resume_is_bit_for_bit(prec, cls):
    """state_dict and native bytes carry the codes and their absmax exactly: a resumed run and
    the uninterrupted one agree bit for bit; so does the NumPy front fed the same gradients."""
    make = lambda ps: getattr(AT, cls)(ps, lr=1e-2, state_precision=prec)  # noqa: E731
    X, Y = _regression(3)
    ws = [torch.zeros(48, 8, requires_grad=True)]
    opt = make(ws)

    def run(o, w, lo, hi):
        for i in range(lo, hi):
            sl = slice(i * 64, i * 64 + 64)
            o.zero_grad()
            ((X[sl] @ w[0] - Y[sl]) ** 2).mean().backward()
            o.step()

    run(opt, ws, 0, 5)
    sd = copy.deepcopy(opt.state_dict())
    raw = opt.save_native_state()
    w_mid = ws[0].detach().clone()
    run(opt, ws, 5, 10)
    for how in ("state_dict", "native"):
        w2 = [w_mid.clone().requires_grad_()]
        o2 = make(w2)
        if how == "state_dict":
            o2.load_state_dict(sd)
        else:
            o2.load_native_state(raw)
        run(o2, w2, 5, 10)
        assert torch.equal(w2[0], ws[0]), how
        for k, t in opt.state[ws[0]].items():
            assert torch.equal(o2.state[w2[0]][k], t), (how, k)


def test_numpy_front_equals_torch_front_in_8bit():
    rng = np.random.default_rng(4)
    p = rng.standard_normal((40, 33)).astype(np.float32)
    t = torch.tensor(p.copy(), requires_grad=True)
    on = AN.AdamW([p], lr=1e-2, state_precision="8bit")
    ot = AT.AdamW([t], lr=1e-2, state_precision="8bit")
    for _ in range(4):
        g = rng.standard_normal((40, 33)).astype(np.float32)
        on.step([g])
        t.grad = torch.tensor(g)
        ot.step()
    assert np.array_equal(p, t.detach().numpy())
    assert np.array_equal(on.state[0]["exp_avg"], ot.state[t]["exp_avg"].numpy())


def test_loading_converts_between_precisions():
    """float32 state into an 8-bit optimizer is encoded; 8-bit state into a float32 optimizer is
    decoded to exactly the values the codes stand for."""
    _, o32, (w, b) = _train(lambda ps: AT.AdamW(ps, lr=1e-2), steps=5)
    o8 = AT.AdamW([w, b], lr=1e-2, state_precision="8bit")
    sd = o32.state_dict()
    for g in sd["param_groups"]:
        g["state_precision"] = "8bit"
    o8.load_state_dict(sd)
    st = o8.state[w]
    assert st["exp_avg"].dtype == torch.uint8 and st["exp_avg_absmax"].shape == (2,)
    dec = decode(st["exp_avg"].numpy(), st["exp_avg_absmax"].numpy(), "signed").reshape(48, 8)
    ref = o32.state[w]["exp_avg"].double().numpy()
    assert np.abs(dec - ref).max() <= np.abs(ref).max() * 2.0 ** -3
    # and back: 8-bit -> float32 gives the decoded values (to float32 rounding)
    o_back = AT.AdamW([w, b], lr=1e-2)
    sd8 = o8.state_dict()
    for g in sd8["param_groups"]:
        g["state_precision"] = "fp32"
    o_back.load_state_dict(sd8)
    assert set(o_back.state[w]) == {"step", "exp_avg", "exp_avg_sq"}
    np.testing.assert_allclose(o_back.state[w]["exp_avg"].numpy(), dec, rtol=1e-6, atol=0)
    o_back.step()  # and it steps


def test_bf16_parameters_with_stochastic_rounding():
    """Updates of 1e-4 on bf16 parameters at 1.0 (a bf16 ulp there is 2^-7): rounding to nearest
    loses every one; stochastic rounding keeps them on average, reproducibly and independently of
    the thread count."""
    def run(sr, threads=2):
        p = torch.ones(4096, dtype=torch.bfloat16, requires_grad=True)
        o = AT.SGD([p], lr=1e-4, stochastic_rounding=sr)
        with native_threads(threads):
            for _ in range(100):
                p.grad = torch.ones_like(p)
                o.step()
        return p.detach()

    nearest = run(False)
    assert torch.all(nearest == 1.0)
    sr = run(True)
    assert abs(sr.float().mean().item() - (1 - 100 * 1e-4)) < 1e-3
    assert torch.equal(sr, run(True, threads=1))
    # Adapprox writes bf16 parameters through its own path
    p = torch.ones(64, 64, dtype=torch.bfloat16, requires_grad=True)
    o = AT.Adapprox([p], lr=1e-4, betas=(0.0, 0.999), stochastic_rounding=True)
    for _ in range(20):
        p.grad = torch.ones_like(p)
        o.step()
    assert p.float().mean().item() < 1 - 1e-3  # Adam-like steps of ~lr each, kept on average


def test_refusals_name_the_argument_and_change_nothing():
    with pytest.raises(ValueError, match="centered=True needs state_precision fp32"):
        AT.RMSprop([torch.zeros(3, requires_grad=True)], centered=True, state_precision="8bit")
    with pytest.raises(ValueError, match="state_precision"):
        AT.AdamW([torch.zeros(3, requires_grad=True)], state_precision="int8")
    with pytest.raises(ValueError, match="stochastic_rounding"):
        AT.AdamW([torch.zeros(3, requires_grad=True)], stochastic_rounding="yes")
    with pytest.raises(ValueError, match="state_precision 'bf16'"):
        AN.AdamW([np.zeros(3, np.float32)], state_precision="bf16")
    # float64 parameters keep float64 moments
    p64 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    o = AT.AdamW([p64], state_precision="8bit")
    p64.grad = torch.ones_like(p64)
    with pytest.raises(ValueError, match="state_precision 8bit needs float32"):
        o.step()
    assert not o.state[p64] and torch.equal(p64, torch.zeros(3, dtype=torch.float64))
    # 8-bit blocks follow C order: other layouts are refused, bf16 moments take any layout
    pc = torch.zeros(2, 3, 4, 4).to(memory_format=torch.channels_last).requires_grad_()
    pc.grad = torch.ones_like(pc)
    with pytest.raises(ValueError, match="C-contiguous"):
        AT.AdamW([pc], state_precision="8bit").step()
    AT.AdamW([pc], state_precision="bf16").step()
    pz = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    pz.grad = torch.ones_like(pz)
    with pytest.raises(ValueError, match="complex"):
        AT.AdamW([pz], state_precision="8bit").step()
    with pytest.raises(ValueError, match="complex"):
        AN.AdamW([np.zeros(3, np.complex64)], state_precision="8bit").step([np.ones(3, np.complex64)])
    # a step refused for one parameter leaves another's 8-bit state untouched
    good = torch.ones(300, requires_grad=True)
    o = AT.AdamW([good, p64], state_precision="8bit")
    good.grad = torch.ones_like(good)
    with pytest.raises(ValueError):
        o.step()
    assert torch.equal(good, torch.ones(300)) and not o.state[good]


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
@pytest.mark.parametrize("mode", ["torch", "paper"])
def test_adafactor_low_precision(prec, mode):
    """Adafactor's unfactored variance and (paper mode) first moment: the float32-state run within
    a few percent, and a bit-for-bit resume from state_dict."""
    paper = dict(beta1=0.9, lr=3e-2, relative_step=False, scale_parameter=False)  # (from zeros: no RMS(p) scaling)
    kw = dict(mode=mode, state_precision=prec, **(paper if mode == "paper" else dict(lr=3e-2)))
    f32, _, _ = _train(lambda ps: AT.Adafactor(ps, **dict(kw, state_precision="fp32")))
    low, opt, (w, b) = _train(lambda ps: AT.Adafactor(ps, **kw))
    start = _train(lambda ps: torch.optim.SGD(ps, lr=0.0), steps=1)[0]
    assert abs(low - f32) < 0.05 * f32 + 2e-3 * start, (low, f32)
    if mode == "paper":
        assert low < 0.5 * start  # it trains (torch mode scales its steps by RMS(p), which starts at 0 here)
    want = torch.bfloat16 if prec == "bf16" else torch.uint8
    assert opt.state[b]["variance"].dtype == want
    if mode == "paper":
        assert opt.state[w]["exp_avg"].dtype == want and opt.state[w]["row_var"].dtype == torch.float32
    sd = copy.deepcopy(opt.state_dict())
    w2, b2 = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    o2 = AT.Adafactor([w2, b2], **kw)
    o2.load_state_dict(sd)
    g = torch.Generator().manual_seed(9)
    for _ in range(3):
        gw, gb = torch.randn(48, 8, generator=g), torch.randn(8, generator=g)
        w.grad, b.grad, w2.grad, b2.grad = gw, gb, gw.clone(), gb.clone()
        opt.step()
        o2.step()
    assert torch.equal(w, w2) and torch.equal(b, b2)


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
@pytest.mark.parametrize("name", ["adamw", "adapprox", "adafactor"])
def test_jax_equals_torch_in_low_precision(name, prec):
    """adapprox.jax with state_precision: the same codes and parameters as the torch front, bit for
    bit, under jit with the 8-bit codes and bf16 moments as JAX arrays."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import adapprox.jax as AJ
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((40, 33)).astype(np.float32), rng.standard_normal(33).astype(np.float32)
    grads = [(rng.standard_normal((40, 33)).astype(np.float32), rng.standard_normal(33).astype(np.float32))
             for _ in range(4)]
    jkw, tkw = {"adamw": ({}, {}), "adapprox": (dict(rank=2), dict(rank=2)),
                "adafactor": (dict(mode=1, beta1=0.9), dict(mode="paper", beta1=0.9))}[name]
    tx = getattr(AJ, name)(learning_rate=1e-2, state_precision=prec, **jkw)
    params = {"b": jnp.asarray(b0), "w": jnp.asarray(w0)}
    state = tx.init(params)
    step = jax.jit(tx.step)
    tb, tw = torch.tensor(b0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt = {"adamw": AT.AdamW, "adapprox": AT.Adapprox, "adafactor": AT.Adafactor}[name](
        [tb, tw], lr=1e-2, state_precision=prec, **tkw)
    for gw, gb in grads:
        params, state = step(params, {"b": jnp.asarray(gb), "w": jnp.asarray(gw)}, state)
        tw.grad, tb.grad = torch.tensor(gw), torch.tensor(gb)
        opt.step()
    assert np.array_equal(np.asarray(params["w"]), tw.detach().numpy())
    assert np.array_equal(np.asarray(params["b"]), tb.detach().numpy())
    code = state.buffers[1]["exp_avg"]
    assert str(code.dtype) == ("uint8" if prec == "8bit" else "bfloat16")
    if prec == "8bit":
        assert np.array_equal(np.asarray(code), opt.state[tw]["exp_avg"].numpy())
    with pytest.raises(ValueError, match="state_precision"):
        getattr(AJ, name)(state_precision="4bit")


def test_a_non_finite_entry_poisons_its_block_only():
    """The policy of README's Non-finite gradients: the NaN entry shows at once; from the next
    step its block of 256 (whose absmax is NaN) does, and no other block."""
    p = torch.zeros(600, requires_grad=True)
    opt = AT.AdamW([p], lr=1e-2, state_precision="8bit")
    g = torch.ones(600)
    g[3] = float("nan")
    p.grad = g
    opt.step()
    assert torch.isnan(p).nonzero().flatten().tolist() == [3]
    assert torch.isnan(opt.state[p]["exp_avg_absmax"]).tolist() == [True, False, False]
    p.grad = torch.ones(600)
    opt.step()
    assert torch.isnan(p[:256]).all() and not torch.isnan(p[256:]).any()


@pytest.mark.parametrize("prec", ["bf16", "8bit"])
def test_first_moments_follow_small_steady_changes(prec):
    """beta1 = 0.99 and a steady gradient far below the block's largest: each step moves m by less
    than half a code, which plain rounding to nearest would lose for ever (m stuck at 0.4 while
    the gradient is 1.1). The first moment must follow torch's float32 one."""
    n = 512
    p, r = torch.zeros(n, requires_grad=True), torch.zeros(n, requires_grad=True)
    opt = AT.Adam([p], lr=1e-4, betas=(0.99, 0.999), state_precision=prec)
    ref = torch.optim.Adam([r], lr=1e-4, betas=(0.99, 0.999))
    for step in range(1500):
        g = torch.full((n,), 0.4 if step < 700 else 1.1)
        g[0] = g[256] = 3.0  # each block's absmax
        p.grad, r.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    full = AT.Adam([torch.zeros(n, requires_grad=True)])
    sd = opt.state_dict()
    sd["param_groups"][0]["state_precision"] = "fp32"
    full.load_state_dict(sd)
    m, mr = next(iter(full.state.values()))["exp_avg"], ref.state[r]["exp_avg"]
    rel = ((m[1:256] - mr[1:256]).abs() / mr[1:256]).mean().item()
    assert rel < 0.03, rel
    assert abs((m[1:256].mean() / mr[1:256].mean()).item() - 1) < 0.01


@pytest.mark.parametrize("cls", ["AdamW", "Adapprox", "Adafactor"])
def test_low_precision_steps_do_not_depend_on_the_thread_count(cls):
    """Blocks are owned whole by one chunk and the rounding bits depend on (parameter, step,
    buffer, element) only: 1 and 3 threads give the same bits. Shapes whose rows straddle blocks."""
    kw = dict(mode="paper", beta1=0.9, lr=1e-2) if cls == "Adafactor" else dict(lr=1e-2)
    runs = []
    for threads in (1, 3):
        g = torch.Generator().manual_seed(3)
        ps = [torch.randn(300, 70, generator=g).requires_grad_(), torch.randn(1000, generator=g).requires_grad_()]
        opt = getattr(AT, cls)(ps, state_precision="8bit", **kw)
        with native_threads(threads):
            for _ in range(4):
                for p in ps:
                    p.grad = torch.randn(p.shape, generator=g)
                opt.step()
        runs.append([p.detach().clone() for p in ps] + [t.clone() for st in opt.state.values() for t in st.values()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_converting_keeps_each_element_in_its_place():
    """fp32 state of a channels_last parameter loaded into a bf16-state optimizer: each moment
    lands at its own (logical) position, in the parameter's layout."""
    p = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last).requires_grad_()
    opt = AT.AdamW([p], lr=1e-2)
    for _ in range(3):
        p.grad = torch.randn(p.shape).to(memory_format=torch.channels_last)
        opt.step()
    sd = opt.state_dict()
    sd["param_groups"][0]["state_precision"] = "bf16"
    low = AT.AdamW([p], lr=1e-2, state_precision="bf16")
    low.load_state_dict(sd)
    p.grad = torch.zeros_like(p)
    low.step()  # (load_state_dict converted the saved float32 moments to bf16)
    got, want = low.state[p]["exp_avg"], opt.state[p]["exp_avg"] * 0.9  # one more step of g = 0
    assert got.dtype == torch.bfloat16 and got.stride() == p.stride()
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-6)

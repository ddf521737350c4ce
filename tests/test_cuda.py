"""The CUDA backend on a GPU: every CUDA path against the CPU path of the same build (the same
per-element math, contraction off on both sides), the torch.optim family against torch on
CUDA, streams, layouts, dtypes and refusals. Without a GPU (or in a build without the CUDA
backend) every test here skips; with ADAPPROX_EXPECT_GPU=1 they fail instead (tools/gpu_check.sh
sets it)."""
from __future__ import annotations

import os

import pytest
import torch

import adapprox.torch as at
from adapprox import _core

EXPECT_GPU = os.environ.get("ADAPPROX_EXPECT_GPU") == "1"


def _missing():
    if not _core.cuda_built():
        return "this build of adapprox has no CUDA backend"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


@pytest.fixture(autouse=True)
def _gpu():
    why = _missing()
    if why:
        if EXPECT_GPU:
            pytest.fail(f"ADAPPROX_EXPECT_GPU=1 but {why}")
        pytest.skip(why)


def test_skip_switch():
    """Runs only where a GPU is present (else the fixture skipped or failed it)."""
    assert torch.cuda.device_count() >= 1


ELEMENTWISE = [
    ("Adam", dict(weight_decay=0.1)),
    ("Adam", dict(amsgrad=True, maximize=True)),
    ("Adam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(weight_decay=0.05)),
    ("AdamW", dict(amsgrad=True)),
    ("NAdam", dict(weight_decay=0.1)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("RMSprop", dict(momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict()),
    ("Adagrad", dict(lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(momentum=0.9, dampening=0.5)),
    ("SGD", dict()),
    ("SignSGD", dict(momentum=0.9, weight_decay=0.1)),
    ("SignSGD", dict()),
]
# Many parameters (more than one launch holds) and one that spans several chunks.
SHAPES = [(3, 70001), (257, 129), (4, 3, 5, 5)] + [(7, 11)] * 60 + [(1,), ()]


def _params(dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in SHAPES]
    grads = [[torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in SHAPES] for _ in range(3)]
    return [torch.nn.Parameter(p.to(device)) for p in ps], [[x.to(device) for x in gs] for gs in grads]


def _run(name, kw, dtype, device):
    ps, grads = _params(dtype, device)
    opt = getattr(at, name)(ps, lr=0.01, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = g
        opt.step()
    torch.cuda.synchronize()
    return ps, opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name,kw", ELEMENTWISE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ELEMENTWISE)])
def test_elementwise_cuda_is_the_cpu_path_bitwise(name, kw, dtype):
    cpu_ps, cpu_opt = _run(name, kw, dtype, "cpu")
    gpu_ps, gpu_opt = _run(name, kw, dtype, "cuda")
    for i, (a, b) in enumerate(zip(cpu_ps, gpu_ps)):
        diff = (a.detach().double() - b.detach().cpu().double()).abs().max().item() if a.numel() else 0.0
        assert torch.equal(a.detach(), b.detach().cpu()), f"params[{i}] {tuple(a.shape)}: max |diff| {diff:.3g}"
        sa, sb = cpu_opt.state.get(a, {}), gpu_opt.state.get(b, {})
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k].cpu()), (i, k)
            if k in ("step", "mu_product"):
                assert sb[k].is_cpu, f"scalar state '{k}' must stay on the host"
            else:
                assert sb[k].device == b.device


TORCH_TWINS = [("Adam", dict(weight_decay=0.1)), ("AdamW", dict(amsgrad=True)), ("NAdam", dict()),
               ("RMSprop", dict(momentum=0.9, centered=True)), ("Adagrad", dict()), ("SGD", dict(momentum=0.9))]


@pytest.mark.parametrize("name,kw", TORCH_TWINS, ids=[n for n, _ in TORCH_TWINS])
def test_matches_torch_optim_on_cuda(name, kw):
    ps, grads = _params(torch.float32, "cuda")
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    mine, theirs = getattr(at, name)(ps, lr=0.01, **kw), getattr(torch.optim, name)(ref, lr=0.01, foreach=False, **kw)
    for gs in grads:
        for p, r, g in zip(ps, ref, gs):
            p.grad, r.grad = g, g.clone()
        mine.step()
        theirs.step()
    for p, r in zip(ps, ref):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=1e-5, atol=1e-6)


def test_runs_on_the_current_stream():
    ps, grads = _params(torch.float32, "cuda")
    opt = at.AdamW(ps, lr=0.01)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g
            opt.step()
    side.synchronize()
    ref_ps, _ = _run("AdamW", {}, torch.float32, "cuda")
    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(ps, ref_ps))


def test_channels_last_on_cuda():
    w = torch.nn.Parameter(torch.randn(8, 3, 5, 5, device="cuda").to(memory_format=torch.channels_last))
    w.grad = torch.randn_like(w)
    ref = torch.nn.Parameter(w.detach().cpu().contiguous(memory_format=torch.channels_last))
    ref.grad = w.grad.cpu()
    at.Adam([w], lr=0.1).step()
    at.Adam([ref], lr=0.1).step()
    assert w.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(w.detach().cpu(), ref.detach())


def test_one_device_per_step_and_cpu_only_optimizers_refuse():
    a = torch.nn.Parameter(torch.ones(4, device="cuda"))
    b = torch.nn.Parameter(torch.ones(4))
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    opt = at.Adam([a, b])
    with pytest.raises(ValueError, match="one device"):
        opt.step()
    assert torch.equal(a.detach().cpu(), torch.ones(4)) and not opt.state
    w = torch.nn.Parameter(torch.ones(8, 8, device="cuda"))
    w.grad = torch.ones_like(w)
    with pytest.raises(ValueError, match="CPU only"):
        at.AdaGram([w], rank=2).step()


def test_short_for_compute_sanitizer():
    """A small step of every elementwise optimizer (tools/gpu_check.sh runs this under memcheck)."""
    for name, kw in ELEMENTWISE:
        p = torch.nn.Parameter(torch.randn(5, 3, device="cuda"))
        p.grad = torch.randn_like(p)
        getattr(at, name)([p], lr=0.01, **kw).step()
    for kw in ADAFACTOR:
        for shape in [(40, 30), (17,)]:
            p = torch.nn.Parameter(torch.randn(shape, device="cuda"))
            p.grad = torch.randn_like(p)
            at.Adafactor([p], **kw).step()
    p = torch.nn.Parameter(torch.randn(64, 48, device="cuda"))
    p.grad = torch.randn_like(p)
    at.Adapprox([p], rank=2, max_rank=8).step()
    torch.cuda.synchronize()


ADAFACTOR = [dict(), dict(weight_decay=0.1, maximize=True), dict(mode="paper", beta1=0.9, weight_decay=0.01),
             dict(mode="paper", relative_step=False, scale_parameter=False, lr=1e-2)]
ADAFACTOR_SHAPES = [(300, 200), (3, 40, 70), (2, 3, 4, 5), (1000,), (), (1, 9000)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kw", ADAFACTOR, ids=[str(i) for i in range(len(ADAFACTOR))])
def test_adafactor_cuda_matches_the_cpu_path(kw, dtype):
    g = torch.Generator().manual_seed(1)
    init = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in ADAFACTOR_SHAPES]
    grads = [[torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in ADAFACTOR_SHAPES] for _ in range(4)]
    runs = {}
    for device in ("cpu", "cuda"):
        ps = [torch.nn.Parameter(p.clone().to(device)) for p in init]
        opt = at.Adafactor(ps, **kw)
        for gs in grads:
            for p, x in zip(ps, gs):
                p.grad = x.to(device)
            opt.step()
        runs[device] = (ps, opt)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    if dtype == torch.bfloat16:
        tol = dict(rtol=1e-2, atol=1e-2)  # one bf16 rounding apart where sums differ in their last bits
    (cp, co), (gp, go) = runs["cpu"], runs["cuda"]
    for a, b in zip(cp, gp):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), **tol)
        for k in co.state[a]:
            torch.testing.assert_close(go.state[b][k].cpu(), co.state[a][k], **tol)


def test_adafactor_matches_torch_on_cuda():
    g = torch.Generator().manual_seed(2)
    shapes = [(256, 384), (384,), (4, 8, 16)]
    ps = [torch.nn.Parameter(torch.randn(s, generator=g).cuda()) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    mine, theirs = at.Adafactor(ps, lr=0.01, weight_decay=0.1), torch.optim.Adafactor(ref, lr=0.01, weight_decay=0.1)
    for _ in range(3):
        for p, r in zip(ps, ref):
            p.grad = torch.randn(p.shape, generator=g).cuda()
            r.grad = p.grad.clone()
        mine.step()
        theirs.step()
    for p, r in zip(ps, ref):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=1e-5, atol=1e-6)


def test_adafactor_on_cuda_refuses_channels_last():
    w = torch.nn.Parameter(torch.randn(8, 3, 5, 5, device="cuda").to(memory_format=torch.channels_last))
    w.grad = torch.randn_like(w)
    before = w.detach().clone()
    with pytest.raises(ValueError, match="C-contiguous"):
        at.Adafactor([w]).step()
    assert torch.equal(w.detach(), before)


def _low_rank_grads(m, n, rank, steps, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g) / rank for _ in range(steps)]


@pytest.mark.parametrize("kw", [dict(), dict(betas=(0.0, 0.999)), dict(betas=(0.9, 0.999), cosine_guidance=True),
                                dict(weight_decay=0.1, maximize=True)], ids=["default", "b1=0", "guided", "wd"])
def test_adapprox_cuda_matches_the_cpu_path_where_the_factorization_is_exact(kw):
    """Gradients of rank 2 (G∘G of rank <= 3): both paths recover V exactly at the same rank, so
    they agree to float32 rounding (the sketches differ in their last bits: CUDA's log and cos)."""
    shapes = [(96, 80), (40, 3, 4), (50,)]
    grads = [_low_rank_grads(s[0], int(torch.tensor(s[1:]).prod()) if len(s) > 1 else 1, 2, 5, i) for i, s in
             enumerate(shapes)]
    runs = {}
    for device in ("cpu", "cuda"):
        g0 = torch.Generator().manual_seed(9)
        ps = [torch.nn.Parameter(torch.randn(s, generator=g0).to(device)) for s in shapes]
        opt = at.Adapprox(ps, lr=0.01, rank=1, max_rank=8, tol=1e-3, **kw)
        for t in range(5):
            for p, gs in zip(ps, grads):
                p.grad = gs[t].reshape(p.shape).to(device)
            opt.step()
        runs[device] = (ps, opt)
    (cp, co), (gp, go) = runs["cpu"], runs["cuda"]
    for a, b in zip(cp, gp):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), rtol=1e-4, atol=1e-5)
        sa, sb = co.state[a], go.state[b]
        if "factor_q" in sa:
            assert sa["factor_q"].shape == sb["factor_q"].shape, "the ranks chosen differ"
            assert sb["factor_q"].is_cuda and sb["factor_u"].is_cuda
            va = sa["factor_q"] @ sa["factor_u"].T
            vb = (sb["factor_q"] @ sb["factor_u"].T).cpu()
            torch.testing.assert_close(vb, va, rtol=1e-4, atol=1e-6 * va.abs().max().item())


def test_adapprox_cuda_rank_grows_and_refuses_bf16():
    p = torch.nn.Parameter(torch.randn(300, 200, device="cuda"))
    opt = at.Adapprox([p], lr=1e-3, tol=1e-3, max_rank=32)
    for _ in range(3):
        p.grad = torch.randn_like(p)
        opt.step()
    assert opt.state[p]["factor_q"].shape[1] > 1 and opt.state[p]["factor_q"].is_cuda
    assert torch.isfinite(p).all()
    w = torch.nn.Parameter(torch.randn(30, 20, device="cuda", dtype=torch.bfloat16))
    w.grad = torch.randn_like(w)
    with pytest.raises(ValueError, match="float32"):
        at.Adapprox([w]).step()


def _cuda_lib():
    import ctypes
    path = os.environ.get("ADAPPROX_LIB")
    if not path:
        if EXPECT_GPU:
            pytest.fail("ADAPPROX_EXPECT_GPU=1 but ADAPPROX_LIB (the CUDA build's libadapprox.so) is not set")
        pytest.skip("ADAPPROX_LIB is not set (tools/gpu_check.sh sets it to the CUDA build's libadapprox.so)")
    lib = ctypes.CDLL(path)
    lib.adx_last_error.restype = ctypes.c_char_p
    lib.adx_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.adx_step_on_stream.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                       ctypes.c_double, ctypes.c_void_p]
    lib.adx_destroy.argtypes = [ctypes.c_void_p]
    lib.adx_state_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    lib.adx_state_save.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    return lib


def test_c_abi_steps_cuda_tensors_on_a_stream():
    import ctypes
    from test_c_abi_interop import DLTensor
    lib = _cuda_lib()
    keep = []

    def dl(t):
        shape = (ctypes.c_int64 * t.dim())(*t.shape)
        keep.append(shape)
        d = DLTensor()
        d.data, d.ndim, d.code, d.bits, d.lanes, d.shape = t.data_ptr(), t.dim(), 2, 32, 1, shape
        d.device_type, d.device_id = (2, t.device.index) if t.is_cuda else (1, 0)
        return d

    def run(device, spec="adagrad:lr=0.1,initial_accumulator_value=0.5"):
        h = ctypes.c_void_p()
        assert lib.adx_create(spec.encode(), ctypes.byref(h)) == 0, lib.adx_last_error()
        g = torch.Generator().manual_seed(3)
        ps = [torch.randn(s, generator=g).to(device) for s in [(64, 33), (7,)]]
        for _ in range(3):
            gs = [torch.randn(p.shape, generator=g).to(device) for p in ps]
            stream = torch.cuda.current_stream().cuda_stream if device == "cuda" else None
            st = lib.adx_step_on_stream(h, (DLTensor * 2)(*map(dl, ps)), (DLTensor * 2)(*map(dl, gs)), 2, -1.0, stream)
            assert st == 0, lib.adx_last_error()
        torch.cuda.synchronize()
        size = ctypes.c_size_t()
        assert lib.adx_state_size(h, ctypes.byref(size)) == 0
        buf, written = ctypes.create_string_buffer(size.value), ctypes.c_size_t()
        assert lib.adx_state_save(h, buf, size, ctypes.byref(written)) == 0
        lib.adx_destroy(h)
        return [p.cpu() for p in ps], buf.raw[: written.value]

    cpu_ps, cpu_state = run("cpu")
    gpu_ps, gpu_state = run("cuda")
    assert all(torch.equal(a, b) for a, b in zip(cpu_ps, gpu_ps))
    assert cpu_state == gpu_state  # device state copied back byte for byte

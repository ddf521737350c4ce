"""The elementwise engine steps a whole parameter group in one parallel job: the group's tensors are
laid end to end and cut into chunks, so cuts fall inside tensors and small tensors share a chunk.
These tests check that this changes nothing: a group of odd-sized tensors (about 114k elements, so
several chunks, cuts inside tensors) matches torch.optim's single-tensor path step by step, results
do not depend on the thread count, bf16 parameters are rounded exactly as torch rounds, and the torch
front's fast DLPack path (capsules from ``torch.utils.dlpack.to_dlpack``) behaves like the protocol.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.dlpack import to_dlpack

import adapprox
import adapprox.torch as at
from adapprox import _core

from parity import rel_err

SHAPES = [(1,), (7, 13), (40001,), (4097,), (3, 70001), (3,), (16,), (17, 1)]
STEPS = 10
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}

CONFIGS = {
    "Adam": dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
    "AdamW": dict(lr=1e-2, weight_decay=0.1),
    "NAdam": dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    "RMSprop": dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1),
    "Adagrad": dict(lr=1e-1, lr_decay=1e-3, weight_decay=0.1),
    "SGD": dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1),
}


def group(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def run(opt_cls, params, grads, **kw):
    ps = [p.clone().requires_grad_() for p in params]
    opt = opt_cls(ps, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in ps]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_group_matches_torch_single_tensor(name, dtype):
    params, grads = group(dtype)
    ours = run(getattr(at, name), params, grads, **CONFIGS[name])
    ref = run(getattr(torch.optim, name), params, grads, foreach=False, **CONFIGS[name])
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert rel_err(a, b) < TOL[dtype], f"tensor {i} of shape {SHAPES[i]}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_group_result_independent_of_threads(dtype):
    params, grads = group(dtype, seed=1)
    before = adapprox.num_threads()
    try:
        results = []
        for threads in (1, 3):
            adapprox.set_num_threads(threads)
            results.append(run(at.AdamW, params, grads, lr=1e-2, weight_decay=0.1))
    finally:
        adapprox.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_bf16_rounding_matches_torch():
    """SGD with lr 1 computes p - g in float32 exactly; the bf16 result must be torch's rounding of
    it (nearest, ties to even; inf stays inf; NaN stays NaN), for a whole group at once."""
    gen = torch.Generator().manual_seed(3)
    p32 = torch.randn(50000, generator=gen) * 10.0 ** torch.randint(-3, 4, (50000,), generator=gen)
    g32 = torch.randn(50000, generator=gen) * 1e-2
    # exact ties: p = m 2^E (m in [0.5, 1), 8 significant bits) plus half its ulp, 2^(E - 9)
    p32[:1000] = p32[:1000].bfloat16().float()
    g32[:1000] = -torch.sign(p32[:1000]) * torch.ldexp(torch.ones(1000), torch.frexp(p32[:1000]).exponent - 9)
    g32[:500] *= 3  # 1.5 ulp: ties too, rounding the other way
    p32[1000:1004] = torch.tensor([float("inf"), float("-inf"), float("nan"), 3.0e38])
    g32[1000:1004] = torch.tensor([0.0, 0.0, 0.0, -3.0e38])  # the last overflows to inf
    p, g = p32.bfloat16(), g32.bfloat16()
    exact = p.float() - g.float()
    # all ties but the few that 1.5 ulp carries into the next binade
    assert int(((exact[:1000].view(torch.int32) & 0xFFFF) == 0x8000).sum()) >= 990
    expected = exact.bfloat16()
    parts = [slice(0, 1), slice(1, 20000), slice(20000, 50000)]
    ours = [p[s].clone().requires_grad_() for s in parts]
    opt = at.SGD(ours, lr=1.0)
    for t, s in zip(ours, parts):
        t.grad = g[s].clone()
    opt.step()
    got = torch.cat([t.detach() for t in ours])
    assert got.dtype == torch.bfloat16
    same = (got.view(torch.int16) == expected.view(torch.int16)) | (got.isnan() & expected.isnan())
    assert bool(same.all()), f"{int((~same).sum())} elements rounded differently"


def test_dlpack_capsule_is_accepted_once():
    p = torch.ones(5, dtype=torch.float32)
    g = torch.full((5,), 2.0)
    cap_p, cap_g = to_dlpack(p), to_dlpack(g)
    _core.step("sgd", [({"lr": 0.5}, [cap_p], [cap_g], [[]], [True], [0])])
    assert torch.equal(p, torch.zeros(5))  # updated in place through the capsule
    with pytest.raises(TypeError, match=r"params\[0\].*capsule"):
        _core.step("sgd", [({"lr": 0.5}, [cap_p], [to_dlpack(g)], [[]], [False], [0])])
    assert torch.equal(p, torch.zeros(5))


def test_torch_front_rejects_bad_grad_like_the_protocol():
    """The capsule path keeps the protocol's checks: a gradient laid out unlike its parameter is
    refused, nothing moves."""
    p = torch.nn.Parameter(torch.ones(4, 4))
    p.grad = torch.ones(4, 8)[:, ::2]
    opt = at.Adam([p], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\]: the gradient's strides"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(4, 4)) and len(opt.state) == 0

"""Results do not depend on the instruction set: every optimizer, stepped with ``ADAPPROX_ISA``
forcing baseline x86-64, AVX2 and AVX-512 (the levels this CPU has), leaves bitwise-identical
parameters and state. Each level runs in its own process (the level is read once per process);
the child prints one SHA-256 per configuration over the bytes of every parameter and state tensor.

The configurations take every path whose rounding could differ: the fused multiply-adds of SGD,
RMSprop and Adagrad (fused on purpose, at every level), vector tails (odd sizes), bf16 staging,
Adapprox's row kernels and its GEMM path (sketch width >= 12), cosine guidance, big parameters
stepped with every thread, Adafactor's lane sums, the Gram optimizers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from adapprox import _core

LEVELS = ["baseline", "avx2", "avx512"]
_RANK = {"baseline": 0, "avx2": 1, "avx512": 2}

CHILD = r"""
import hashlib, json, sys
import torch
import adapprox.torch as at
from adapprox import _core

CONFIGS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, weight_decay=0.01)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.01)),
    ("RMSprop", dict(lr=1e-2, alpha=0.3, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=1e-2)),
    ("NAdam", dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.01)),
    ("SignSGD", dict(lr=1e-2, momentum=0.9)),
    ("Adafactor", dict(lr=1e-2)),
    ("Adafactor", dict(lr=None, mode="paper", beta1=0.9)),
    ("Adapprox", dict(lr=1e-2, betas=(0.9, 0.999), weight_decay=0.01, cosine_guidance=True, seed=3)),
    ("Adapprox", dict(lr=1e-2, betas=(0.0, 0.999), rank=16, min_rank=16, max_rank=24, seed=5)),
    ("AdaGram", dict(lr=1e-2, rank=4)),
    ("FullMatrixAdagrad", dict(lr=1e-2)),
]
SHAPES = [(67, 45), (131,), (3, 5, 7), (300, 257)]

def digest(tensors):
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

out = {"isa": _core.isa(), "results": {}}
for name, kw in CONFIGS:
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        key = f"{name} {sorted(kw.items())} {dtype}"
        gen = torch.Generator().manual_seed(0)
        shapes = SHAPES if name != "FullMatrixAdagrad" else [(131,), (3, 5, 7), (9, 11)]  # n^3 per step
        params = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
        try:
            opt = getattr(at, name)(params, **kw)
            for _ in range(4):
                for p in params:
                    p.grad = torch.randn(p.shape, generator=gen).to(dtype)
                opt.step()
        except Exception as e:  # the same refusal at every level is a match too
            out["results"][key] = f"{type(e).__name__}: {e}"
            continue
        tensors = list(params)
        for p in params:
            st = opt.state[p]
            tensors += [st[k] for k in sorted(st) if torch.is_tensor(st[k])]
        out["results"][key] = digest(tensors)
print("RESULT " + json.dumps(out))
"""


def _run(level: str | None) -> dict:
    env = dict(os.environ)
    env.pop("ADAPPROX_ISA", None)
    if level is not None:
        env["ADAPPROX_ISA"] = level
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0][len("RESULT "):])


def test_every_isa_level_gives_bitwise_identical_results():
    detected = _core.isa()["detected"]
    levels = [lv for lv in LEVELS if _RANK[lv] <= _RANK[detected]]
    runs = {lv: _run(lv) for lv in levels}
    for lv, run in runs.items():
        assert run["isa"] == {"active": lv, "detected": detected}
    base = runs["baseline"]["results"]
    stepped = [k for k, v in base.items() if not v.startswith(("ValueError", "TypeError", "RuntimeError"))]
    # the table must really step something in every dtype, or the comparison proves nothing
    assert len(stepped) >= 30, base
    for lv in levels[1:]:
        other = runs[lv]["results"]
        diff = [k for k in base if base[k] != other[k]]
        assert not diff, f"{lv} differs from baseline in: {diff}"
    if len(levels) < len(LEVELS):
        pytest.skip(f"this CPU has {detected}: compared {levels} only")


def test_a_level_above_the_cpu_runs_at_the_cpu_best():
    run = _run("avx512")
    assert run["isa"]["active"] == run["isa"]["detected"]


def test_unknown_isa_setting_refuses_the_step_and_changes_nothing():
    code = r"""
import torch, adapprox.torch as at
p = torch.nn.Parameter(torch.ones(4)); p.grad = torch.ones(4)
opt = at.Adam([p], lr=0.1)
try:
    opt.step()
except ValueError as e:
    assert "ADAPPROX_ISA" in str(e) and "sse9" in str(e), str(e)
    assert torch.equal(p.detach(), torch.ones(4))
    assert all(len(s) == 0 or int(s["step"]) == 0 for s in opt.state.values())
    print("REFUSED")
"""
    env = dict(os.environ, ADAPPROX_ISA="sse9")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "REFUSED" in proc.stdout.splitlines()

"""Suite `memory`: Adapprox optimizer-state bytes vs AdamW on GPT-2 117M and 345M parameter shapes.

Measured, not estimated: real float32 parameters, one `adapprox.torch.Adapprox` step with the
rank forced (min_rank = max_rank = k per matrix; "max" is k = min(m, n) // 4, the default cap),
then `opt.memory_report()`. The analytic count, 4 bytes x ((m + n) k + [m n if b1 > 0]) per
matrix and 4 x n x (1 + [b1 > 0]) per vector, is printed beside it as a cross-check. AdamW =
exp_avg + exp_avg_sq in the parameter dtype. Embeddings are tied (wte counted once). Gradients
are small noise, one tensor per distinct shape.
"""
from __future__ import annotations

import argparse
import gc
import time

import torch

import adapprox
import adapprox.torch

from .common import gpt2_shapes, table, write_results

MODELS = {"117M": (12, 768), "345M": (24, 1024)}
# Paper (Zhao et al. 2024) savings vs AdamW: (rank 1, max rank) with b1 > 0, then with b1 = 0.
PAPER = {"117M": {(1, 0.9): 49.9, ("max", 0.9): 34.5, (1, 0.0): 99.9, ("max", 0.0): 84.5},
         "345M": {(1, 0.9): 49.9, ("max", 0.9): 33.8, (1, 0.0): 99.9, ("max", 0.0): 83.8}}


def forced_rank(shape, which):
    m, n = shape[0], int(torch.Size(shape[1:]).numel())
    return 1 if which == 1 else max(1, min(m, n) // 4)


def param_groups(params, shapes, which):
    """One group per matrix with min_rank = max_rank = rank = the forced rank; vectors in one group."""
    groups = [dict(params=[p], rank=k, min_rank=k, max_rank=k)
              for p, s in zip(params, shapes) if len(s) >= 2 for k in [forced_rank(s, which)]]
    vectors = [p for p, s in zip(params, shapes) if len(s) < 2]
    return groups + [dict(params=vectors)]


def moment_bytes(numel, precision):
    """Bytes of one dense moment: float32, bf16, or 8-bit codes with a float32 absmax per 256."""
    return {"fp32": 4 * numel, "bf16": 2 * numel, "8bit": numel + 4 * -(-numel // 256)}[precision]


def analytic_bytes(shapes, which, b1, precision="fp32"):
    total = 0
    for s in shapes:
        numel = int(torch.Size(s).numel())
        if len(s) >= 2:
            total += 4 * (s[0] + numel // s[0]) * forced_rank(s, which) + (moment_bytes(numel, precision) if b1 > 0 else 0)
        else:
            total += moment_bytes(numel, precision) * (2 if b1 > 0 else 1)
    return total


def measure(model, which, b1, params, shapes, precision="fp32"):
    opt = adapprox.torch.Adapprox(param_groups(params, shapes, which), betas=(b1, 0.999), state_precision=precision)
    t0 = time.perf_counter()
    opt.step()
    seconds = time.perf_counter() - t0
    rep = opt.memory_report()
    ranks = {r["rank"] for r in rep["params"] if r["factored"]}
    del opt
    gc.collect()
    total, adamw = rep["total_bytes"], rep["adamw_bytes"]
    return dict(model=model, rank="1" if which == 1 else "max", beta1=b1, state_precision=precision, ranks=sorted(ranks),
                state_bytes=total, adamw_bytes=adamw, analytic_bytes=analytic_bytes(shapes, which, b1, precision),
                savings_pct=100 * (1 - total / adamw), paper_pct=PAPER[model][(which, b1)] if precision == "fp32"
                else None, step_s=seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__)
    ap.add_argument("--models", default="117M,345M", help="comma-separated subset of " + ",".join(MODELS))
    args = ap.parse_args(argv)
    print(f"threads: adapprox {adapprox.num_threads()}, torch {torch.get_num_threads()}")

    rows, results = [], []
    for model in args.models.split(","):
        layers, width = MODELS[model]
        shapes = [s for _, s in gpt2_shapes(layers, width)]
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.empty(s).normal_(0, 0.02, generator=gen)) for s in shapes]
        grads = {}
        for p, s in zip(params, shapes):  # one gradient per distinct shape, shared
            if s not in grads:
                grads[s] = torch.randn(s, generator=gen) * 1e-3
            p.grad = grads[s]
        n_params = sum(p.numel() for p in params)
        print(f"GPT-2 {model}: {layers} layers, width {width}, {n_params / 1e6:.1f}M params ({len(shapes)} tensors)")
        for b1, precision in ((0.9, "fp32"), (0.0, "fp32"), (0.9, "8bit")):
            for which in (1, "max"):
                r = measure(model, which, b1, params, shapes, precision)
                r["n_params"] = n_params
                results.append(r)
                rows.append((model, r["rank"], ",".join(map(str, r["ranks"])), b1, precision,
                             f"{r['state_bytes'] / 2**20:.1f}", f"{r['adamw_bytes'] / 2**20:.1f}",
                             f"{100 * r['state_bytes'] / r['adamw_bytes']:.1f}%",
                             f"{r['savings_pct']:.1f}%", f"{r['paper_pct']:.1f}%" if r["paper_pct"] else "-",
                             "yes" if r["state_bytes"] == r["analytic_bytes"] else "NO", f"{r['step_s']:.1f}"))
                print(f"  rank {r['rank']}, b1 {b1}, {precision}: {r['savings_pct']:.1f}% saved, step {r['step_s']:.1f}s",
                      flush=True)
        del params, grads
        gc.collect()

    print(table(("model", "rank", "k", "b1", "state_precision", "state MiB", "AdamW MiB", "% of AdamW", "saved", "paper",
                 "=analytic", "step s"), rows))
    path = write_results("memory", dict(results=results))
    print(f"wrote {path}")

"""Suite `family`: CPU step time of the native optimizer family against torch.optim, in one run.

Same GPT-2-like parameter set as `step` (4 layers, width 256, vocab 50257: 52 tensors, 16.3M
parameters). Each native optimizer (``adapprox.torch.X``) is paired with torch.optim's fastest
CPU path for the same optimizer and hyperparameters: ``fused=True`` where torch has it (Adam,
AdamW, SGD, Adagrad), ``foreach=True`` otherwise (NAdam, RMSprop, Adafactor); a fused path that
fails falls back to foreach, and the path used is reported. Plus one bf16 pair: AdamW on bf16
parameters and gradients.

Every optimizer owns a copy of the parameters; all share one set of random gradients (seed 0, set
once, per dtype). Each repetition steps every optimizer once, round-robin with a rotating start,
and a repetition during which other processes used more than --max-other of the CPUs is dropped
and repeated (as in `step`). Reported: median, IQR and min per optimizer, the ratio torch/native
of medians per pair (> 1: native is faster), and, as a check that both did the same work, the
largest difference between the pair's parameters after the run (relative to the largest
parameter magnitude).
"""
from __future__ import annotations

import argparse

import torch

import adapprox
import adapprox.torch as at

from .common import gpt2_shapes, quartiles, round_robin, table, write_results

ADAM = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
NADAM = dict(lr=2e-3, betas=(0.9, 0.999), weight_decay=0.0, momentum_decay=4e-3)
RMSPROP = dict(lr=1e-2, alpha=0.99, eps=1e-8)
ADAGRAD = dict(lr=1e-2)
SGD = dict(lr=1e-3, momentum=0.9)
ADAFACTOR = dict(lr=1e-2)  # torch.optim.Adafactor's defaults; ours in mode="torch" (its default)

# (pair, native class, torch class, hyperparameters, parameter dtype, target of torch/native)
PAIRS = [
    ("Adam", at.Adam, torch.optim.Adam, ADAM, torch.float32, 1.0),
    ("AdamW", at.AdamW, torch.optim.AdamW, ADAMW, torch.float32, 1.0),
    ("NAdam", at.NAdam, torch.optim.NAdam, NADAM, torch.float32, 1.0),
    ("RMSprop", at.RMSprop, torch.optim.RMSprop, RMSPROP, torch.float32, None),
    ("Adagrad", at.Adagrad, torch.optim.Adagrad, ADAGRAD, torch.float32, None),
    ("SGD momentum", at.SGD, torch.optim.SGD, SGD, torch.float32, None),
    ("Adafactor", at.Adafactor, torch.optim.Adafactor, ADAFACTOR, torch.float32, 3.0),
    ("AdamW bf16", at.AdamW, torch.optim.AdamW, ADAMW, torch.bfloat16, None),
]

BF16_NOTE = ("adapprox steps bf16 parameters in float32 math with float32 state (unless state_precision says "
             "otherwise) and rounds the result to bf16 once per step (to nearest even here; stochastic_rounding=True "
             "rounds stochastically), weight decay included before that rounding. torch's fused AdamW keeps "
             "exp_avg/exp_avg_sq in bf16 (the parameter dtype).")

# Low-precision state against the same native optimizer with float32 state (state_precision):
# (pair whose native run is the float32 reference, state_precision, target of fp32/low-precision).
PRECISION = [("Adam", "8bit", 1.0), ("AdamW", "8bit", 1.0), ("AdamW", "bf16", None), ("NAdam", "8bit", 1.0),
             ("RMSprop", "8bit", 1.0), ("SGD momentum", "8bit", 1.0)]


def torch_fastest(cls, hyper, dtype):
    """The keyword of torch's fastest CPU path for `cls`: "fused" if fused=True works here, else "foreach"."""
    p = torch.nn.Parameter(torch.zeros(4, 4, dtype=dtype))
    p.grad = torch.ones(4, 4, dtype=dtype)
    try:
        cls([p], fused=True, **hyper).step()
        return "fused"
    except (RuntimeError, TypeError, ValueError):
        return "foreach"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench family", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch and adapprox threads (default 2)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--max-other", type=float, default=0.05, metavar="F",
                    help="a repetition counts only if other processes used at most this share of the CPUs")
    ap.add_argument("--max-time", type=float, default=600, metavar="S",
                    help="after S seconds of timing, accept repetitions however loaded (default 600)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    adapprox.set_num_threads(args.threads)
    shapes = gpt2_shapes(args.layers, args.width)
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(s, generator=gen) * 0.02 for _, s in shapes]
    grads = [torch.randn(s, generator=gen) * 1e-3 for _, s in shapes]
    grads_by_dtype = {torch.float32: grads, torch.bfloat16: [g.to(torch.bfloat16) for g in grads]}
    n_params = sum(v.numel() for v in values)

    runs, pairs = {}, {}
    for pair, native_cls, torch_cls, hyper, dtype, target in PAIRS:
        path = torch_fastest(torch_cls, hyper, dtype)
        names = (f"{pair}: adapprox", f"{pair}: torch {path}")
        makers = (lambda ps, c=native_cls, h=hyper: c(ps, **h),
                  lambda ps, c=torch_cls, h=hyper, k=path: c(ps, **{k: True}, **h))
        for name, make in zip(names, makers):
            params = [torch.nn.Parameter(v.to(dtype, copy=True)) for v in values]
            for p, g in zip(params, grads_by_dtype[dtype]):
                p.grad = g
            runs[name] = dict(opt=make(params), params=params)
        pairs[pair] = dict(native=names[0], torch=names[1], torch_path=path, dtype=str(dtype).replace("torch.", ""),
                           hyper=hyper, target=target)

    lowp = {}
    for pair, prec, target in PRECISION:
        native_cls, hyper, dtype = next((c, h, d) for p_, c, _, h, d, _ in PAIRS if p_ == pair)
        name = f"{pair} {prec} state: adapprox"
        params = [torch.nn.Parameter(v.to(dtype, copy=True)) for v in values]
        for p, g in zip(params, grads_by_dtype[dtype]):
            p.grad = g
        runs[name] = dict(opt=native_cls(params, state_precision=prec, **hyper), params=params)
        lowp[f"{pair} {prec}"] = dict(low=name, fp32=f"{pair}: adapprox", precision=prec, target=target)

    print(f"GPT-2-like: {args.layers} layers, width {args.width}, {n_params / 1e6:.2f}M params "
          f"({len(shapes)} tensors); threads: torch {torch.get_num_threads()}, adapprox {adapprox.num_threads()}; "
          f"{len(runs)} optimizers, {args.warmup} warm-up + {args.reps} timed repetitions, round-robin")
    times, cpu, reps, contended = round_robin({name: run["opt"].step for name, run in runs.items()},
                                              args.warmup, args.reps, args.max_other, args.max_time)

    summary = {}
    for name in runs:
        q1, med, q3 = quartiles(times[name])
        summary[name] = dict(median_ms=med * 1e3, q1_ms=q1 * 1e3, q3_ms=q3 * 1e3, iqr_ms=(q3 - q1) * 1e3,
                             min_ms=min(times[name]) * 1e3, times_ms=[t * 1e3 for t in times[name]],
                             cpu_per_wall=sum(cpu[name]) / sum(times[name]))
    print(table(("optimizer", "median ms", "IQR ms", "min ms", "cpu/wall"),
                [(n, f"{s['median_ms']:.1f}", f"{s['iqr_ms']:.1f}", f"{s['min_ms']:.1f}", f"{s['cpu_per_wall']:.2f}")
                 for n, s in summary.items()]))

    rows = []
    for pair, info in pairs.items():
        nat, tor = summary[info["native"]], summary[info["torch"]]
        a, b = runs[info["native"]]["params"], runs[info["torch"]]["params"]
        scale = max(x.detach().abs().max().item() for x in b)
        diff = max((x.detach().float() - y.detach().float()).abs().max().item() for x, y in zip(a, b)) / scale
        ratio = tor["median_ms"] / nat["median_ms"]
        target = info["target"]
        verdict = "none set" if target is None else f">= {target:g}: {'met' if ratio >= target else 'NOT met'}"
        info.update(native_ms=nat["median_ms"], torch_ms=tor["median_ms"], ratio=ratio, verdict=verdict,
                    max_param_diff=diff)
        rows.append((pair, info["dtype"], f"{nat['median_ms']:.1f}", f"torch {info['torch_path']}",
                     f"{tor['median_ms']:.1f}", f"{ratio:.2f}x", verdict, f"{diff:.1e}"))
    print(table(("pair", "dtype", "adapprox ms", "torch path", "torch ms", "torch/adapprox", "target",
                 "param diff"), rows))
    print("bf16:", BF16_NOTE)

    rows = []  # state_precision: the same native optimizer with float32 and with low-precision state
    for key, info in lowp.items():
        lo, hi = summary[info["low"]], summary[info["fp32"]]
        ratio = hi["median_ms"] / lo["median_ms"]
        target = info["target"]
        verdict = "none set" if target is None else f">= {target:g}: {'met' if ratio >= target else 'NOT met'}"
        a, b = runs[info["low"]]["params"], runs[info["fp32"]]["params"]
        scale = max(x.detach().abs().max().item() for x in b)
        diff = max((x.detach().float() - y.detach().float()).abs().max().item() for x, y in zip(a, b)) / scale
        info.update(low_ms=lo["median_ms"], fp32_ms=hi["median_ms"], ratio=ratio, verdict=verdict,
                    max_param_diff=diff)
        rows.append((key, f"{lo['median_ms']:.1f}", f"{hi['median_ms']:.1f}", f"{ratio:.2f}x", verdict, f"{diff:.1e}"))
    print(table(("state_precision", "low-precision ms", "fp32 state ms", "fp32/low", "target", "param diff"), rows))

    path = write_results("family", dict(
        config=dict(layers=args.layers, width=args.width, vocab=50257, ctx=1024, n_params=n_params,
                    n_tensors=len(shapes), warmup=args.warmup, reps=args.reps, threads=args.threads,
                    max_other=args.max_other, contended=contended),
        repetitions=reps, optimizers=summary, pairs=pairs, state_precision=lowp, bf16_note=BF16_NOTE))
    print(f"wrote {path}")

"""Suite `step`: optimizer step time on a small GPT-2-like parameter set (4 layers, width 256).

Every optimizer owns its own copy of the parameters; all share one set of random gradients
(fixed seed, set once). Each repetition steps every optimizer once, round-robin (the starting
one rotating). On a shared machine, a repetition during which other processes used more than
--max-other of the CPUs is dropped and repeated (torch's OpenMP kernels slow down many-fold
when a core is taken). Reported: median and IQR over the kept repetitions after warm-up.
"""
from __future__ import annotations

import argparse

import torch

import adapprox
import adapprox.torch

from .common import gpt2_shapes, quartiles, round_robin, table, write_results
from .pure_torch_adapprox import PureTorchAdapprox

HYPER = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)


def optimizer_factories(include_fused: bool):
    A, P = adapprox.torch.Adapprox, PureTorchAdapprox
    f = {
        "adapprox rank 1": lambda ps: A(ps, min_rank=1, max_rank=1, **HYPER),
        "adapprox rank 4": lambda ps: A(ps, rank=4, min_rank=4, max_rank=4, **HYPER),
        "adapprox default (adaptive)": lambda ps: A(ps, **HYPER),
        "pure-torch rank 1": lambda ps: P(ps, min_rank=1, max_rank=1, **HYPER),
        "pure-torch rank 4": lambda ps: P(ps, rank=4, min_rank=4, max_rank=4, **HYPER),
        "pure-torch default (adaptive)": lambda ps: P(ps, **HYPER),
        "AdamW foreach": lambda ps: torch.optim.AdamW(ps, foreach=True, **HYPER),
    }
    if include_fused:
        f["AdamW fused"] = lambda ps: torch.optim.AdamW(ps, fused=True, **HYPER)
    return f


def fused_adamw_works() -> bool:
    try:
        p = torch.nn.Parameter(torch.zeros(4, 4))
        p.grad = torch.ones(4, 4)
        torch.optim.AdamW([p], fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def wte_rank(opt, wte):
    st = opt.state.get(wte, {})
    if "native" in st:
        return st["native"].rank
    return st.get("rank", "-")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench step", description=__doc__)
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
    n_params = sum(v.numel() for v in values)

    fused = fused_adamw_works()
    runs = {}
    for name, make in optimizer_factories(fused).items():
        params = [torch.nn.Parameter(v.clone()) for v in values]
        for p, g in zip(params, grads):
            p.grad = g
        runs[name] = dict(opt=make(params), wte=params[0])

    print(f"GPT-2-like: {args.layers} layers, width {args.width}, {n_params / 1e6:.2f}M params "
          f"({len(shapes)} tensors); threads: torch {torch.get_num_threads()}, adapprox {adapprox.num_threads()}; "
          f"{args.warmup} warm-up + {args.reps} timed repetitions, round-robin")
    times, cpu, reps, contended = round_robin({name: run["opt"].step for name, run in runs.items()},
                                              args.warmup, args.reps, args.max_other, args.max_time)
    for name, run in runs.items():
        run["times"], run["cpu"] = times[name], cpu[name]

    rows, summary = [], {}
    for name, run in runs.items():
        q1, med, q3 = quartiles(run["times"])
        rank = wte_rank(run["opt"], run["wte"])
        summary[name] = dict(median_ms=med * 1e3, q1_ms=q1 * 1e3, q3_ms=q3 * 1e3, iqr_ms=(q3 - q1) * 1e3,
                             min_ms=min(run["times"]) * 1e3, times_ms=[t * 1e3 for t in run["times"]],
                             wte_rank=rank, cpu_per_wall=sum(run["cpu"]) / sum(run["times"]))
        rows.append((name, f"{med * 1e3:.1f}", f"{(q3 - q1) * 1e3:.1f}", f"{min(run['times']) * 1e3:.1f}",
                     f"{summary[name]['cpu_per_wall']:.2f}", rank))
    print(table(("optimizer", "median ms", "IQR ms", "min ms", "cpu/wall", "wte rank"), rows))

    med = {k: v["median_ms"] for k, v in summary.items()}
    ratios = {
        "pure/native rank 1 (target >= 5)": med["pure-torch rank 1"] / med["adapprox rank 1"],
        "pure/native rank 4 (target >= 5)": med["pure-torch rank 4"] / med["adapprox rank 4"],
        "pure/native default (adaptive)": med["pure-torch default (adaptive)"] / med["adapprox default (adaptive)"],
        "native rank 1 / AdamW foreach (target <= 2)": med["adapprox rank 1"] / med["AdamW foreach"],
    }
    if fused:
        ratios["native rank 1 / AdamW fused"] = med["adapprox rank 1"] / med["AdamW fused"]
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    path = write_results("step", dict(
        config=dict(layers=args.layers, width=args.width, vocab=50257, ctx=1024, n_params=n_params,
                    n_tensors=len(shapes), warmup=args.warmup, reps=args.reps, threads=args.threads,
                    hyper=HYPER, fused_adamw=fused, max_other=args.max_other, contended=contended),
        repetitions=reps,
        optimizers=summary, ratios=ratios))
    print(f"wrote {path}")

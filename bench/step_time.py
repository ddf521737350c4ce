"""Suite `step`: median optimizer step time and optimizer-state bytes for every optimizer of the
library and its peers, on GPT-2 parameter shapes, with the ratios computed within one run.

Models (tied embeddings, vocab 50257, context 1024): ``small`` = 4 layers, width 256 (52 tensors,
16.3M parameters; the CPU default), ``117M`` = 12 x 768 and ``345M`` = 24 x 1024 (the GPU
default, ``--device cuda``). Every optimizer owns its own copy of the parameters; all share one
set of random gradients (seed 0, set once). Each repetition steps every optimizer once,
round-robin with a rotating start. On a shared machine a repetition during which other processes
used more than --max-other of the CPUs is dropped and repeated (torch's OpenMP kernels slow down
many-fold when a core is taken). Reported: median, IQR and min over the kept repetitions, the
process CPU time / wall time, and the optimizer-state bytes after the run (adapprox:
``memory_report()``; torch and CAME: every non-scalar tensor in ``opt.state``).

Rows: the library (``adapprox.torch``: Adapprox at rank 1, rank 4 and its adaptive default,
Adafactor, Adam, AdamW, NAdam, RMSprop, Adagrad, SGD with momentum, SignSGD) and the peers:
torch.optim's fastest path for each of those (``fused=True`` where it runs here, else
``foreach=True``), ``torch.optim.AdamW`` foreach and fused, ``torch.optim.Adafactor``, the plain
PyTorch Adapprox of ``bench/pure_torch_adapprox.py`` at the same three ranks, and CAME
(``came-pytorch``) when installed. With --device cuda, a library row whose optimizer has no CUDA
step in this build (or a build without the CUDA backend) is skipped and listed with the reason.
"""
from __future__ import annotations

import argparse

import torch

import adapprox
import adapprox.torch as at

from . import common
from .common import (gpt2_shapes, pyplot, quartiles, resolve_device, round_robin, save_figure,
                     state_bytes, synchronize, table, write_results)
from .pure_torch_adapprox import PureTorchAdapprox

MODELS = {"tiny": (1, 32), "small": (4, 256), "117M": (12, 768), "345M": (24, 1024)}
HYPER = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)  # the Adapprox rows and the AdamW peers
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
NADAM = dict(lr=2e-3, betas=(0.9, 0.999), weight_decay=0.0, momentum_decay=4e-3)
RMSPROP = dict(lr=1e-2, alpha=0.99, eps=1e-8)
ADAGRAD = dict(lr=1e-2)
SGD = dict(lr=1e-3, momentum=0.9)
ADAFACTOR = dict(lr=1e-2)

# Native rows: (name, factory). Peers: (name, torch class or None, hyper) with the fastest path
# chosen at run time; or (name, factory) for the fixed ones.
NATIVE = [
    ("adapprox rank 1", lambda ps: at.Adapprox(ps, min_rank=1, max_rank=1, **HYPER)),
    ("adapprox rank 4", lambda ps: at.Adapprox(ps, rank=4, min_rank=4, max_rank=4, **HYPER)),
    ("adapprox default (adaptive)", lambda ps: at.Adapprox(ps, **HYPER)),
    ("adapprox default (fresh sketch)", lambda ps: at.Adapprox(ps, warm_start=False, **HYPER)),
    ("adapprox rank 1 (fresh sketch)", lambda ps: at.Adapprox(ps, min_rank=1, max_rank=1, warm_start=False, **HYPER)),
    ("adapprox Adafactor", lambda ps: at.Adafactor(ps, **ADAFACTOR)),
    ("adapprox Adam", lambda ps: at.Adam(ps, **ADAM)),
    ("adapprox AdamW", lambda ps: at.AdamW(ps, **HYPER)),
    ("adapprox NAdam", lambda ps: at.NAdam(ps, **NADAM)),
    ("adapprox RMSprop", lambda ps: at.RMSprop(ps, **RMSPROP)),
    ("adapprox Adagrad", lambda ps: at.Adagrad(ps, **ADAGRAD)),
    ("adapprox SGD momentum", lambda ps: at.SGD(ps, **SGD)),
    ("adapprox SignSGD momentum", lambda ps: at.SignSGD(ps, lr=1e-3, momentum=0.9)),
]
TORCH_FASTEST = [  # torch.optim's fastest path for the same optimizer and hyperparameters
    ("Adam", torch.optim.Adam, ADAM), ("NAdam", torch.optim.NAdam, NADAM),
    ("RMSprop", torch.optim.RMSprop, RMSPROP), ("Adagrad", torch.optim.Adagrad, ADAGRAD),
    ("SGD momentum", torch.optim.SGD, SGD),
]


def _came_factory():
    try:
        from came_pytorch import CAME
    except ImportError:
        return None
    return lambda ps: CAME(ps, lr=1e-3, betas=(0.9, 0.999, 0.9999), weight_decay=0.01)


def fastest_path(cls, hyper, device) -> str:
    p = torch.nn.Parameter(torch.zeros(4, 4, device=device))
    p.grad = torch.ones(4, 4, device=device)
    try:
        cls([p], fused=True, **hyper).step()
        return "fused"
    except (RuntimeError, TypeError, ValueError):
        return "foreach"


def native_refusal(make, device):
    """None when this native row steps tensors on `device`, else the reason it does not."""
    p = torch.nn.Parameter(torch.zeros(8, 8, device=device))
    p.grad = torch.ones(8, 8, device=device)
    try:
        make([p]).step()
        return None
    except (RuntimeError, TypeError, ValueError) as e:
        return f"the native core refuses {device.type} tensors here ({str(e).splitlines()[0][:160]})"


def optimizer_factories(device):
    """(factories: name -> factory, skipped: name -> reason, paths: torch row -> path)."""
    f, skipped, paths = {}, {}, {}
    for name, make in NATIVE:
        refusal = native_refusal(make, device)
        if refusal is None:
            f[name] = make
        else:
            skipped[name] = refusal
    f["pure-torch rank 1"] = lambda ps: PureTorchAdapprox(ps, min_rank=1, max_rank=1, **HYPER)
    f["pure-torch rank 4"] = lambda ps: PureTorchAdapprox(ps, rank=4, min_rank=4, max_rank=4, **HYPER)
    f["pure-torch default (adaptive)"] = lambda ps: PureTorchAdapprox(ps, **HYPER)
    f["torch AdamW foreach"] = lambda ps: torch.optim.AdamW(ps, foreach=True, **HYPER)
    if fastest_path(torch.optim.AdamW, HYPER, device) == "fused":
        f["torch AdamW fused"] = lambda ps: torch.optim.AdamW(ps, fused=True, **HYPER)
    else:
        skipped["torch AdamW fused"] = f"fused AdamW does not run on {device.type} in torch {torch.__version__}"
    f["torch Adafactor"] = lambda ps: torch.optim.Adafactor(ps, foreach=True, **ADAFACTOR)
    for name, cls, hyper in TORCH_FASTEST:
        path = fastest_path(cls, hyper, device)
        row = f"torch {name} {path}"
        paths[name] = row
        f[row] = lambda ps, c=cls, h=hyper, k=path: c(ps, **{k: True}, **h)
    came = _came_factory()
    if came is None:
        skipped["CAME"] = "came-pytorch is not installed"
    else:
        f["CAME"] = came
    return f, skipped, paths


# float32 bytes each step reads and writes per parameter (the memory-traffic floor of the row):
# parameter, gradient and every state buffer read, parameter and state written.
TRAFFIC = {"Adam": 28, "AdamW": 28, "NAdam": 28, "RMSprop": 20, "Adagrad": 20, "SGD momentum": 20,
           "SignSGD momentum": 20}


def copy_bandwidth(device, mib=1024):
    """Bytes per second of a device-to-device copy (read + write), best of 5."""
    a = torch.empty(mib * 2**18, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return 2 * a.numel() * 4 / best


def bandwidth_report(summary, n_params, device):
    """On CUDA: achieved bandwidth of the elementwise rows against the copy bandwidth."""
    if device.type != "cuda":
        return None
    copy = copy_bandwidth(device)
    out = {"copy_GBps": copy / 1e9}
    print(f"copy bandwidth {copy / 1e9:.0f} GB/s")
    for name, row in summary.items():
        kind = name.split(" ", 1)[1] if " " in name else name
        for key, nbytes in TRAFFIC.items():
            if kind.startswith(key) and (name.startswith("adapprox ") or name.startswith("torch ")):
                achieved = nbytes * n_params / (row["median_ms"] / 1e3)
                out[name] = dict(GBps=achieved / 1e9, of_copy=achieved / copy)
                print(f"{name}: {achieved / 1e9:.0f} GB/s, {100 * achieved / copy:.0f}% of copy ({nbytes} B/param)")
                break
    return out


def cuda_time_split(runs, device, steps=3):
    """On CUDA: the share of the native Adapprox rows' step time in products with V, orthonormalisation,
    the small eigenproblem and the update (adapprox._core.adapprox_cuda_profile; each phase waits for
    the GPU, so these steps run slower than the timed ones). None elsewhere."""
    from adapprox import _core
    if device.type != "cuda" or not hasattr(_core, "adapprox_cuda_profile"):
        return None
    out = {}
    for name, run in runs.items():
        if not name.startswith("adapprox ") or not isinstance(run["opt"], at.Adapprox):
            continue
        _core.adapprox_cuda_profile(True)
        for _ in range(steps):
            run["opt"].step()
        torch.cuda.synchronize()
        phases = _core.adapprox_cuda_profile(False)
        total = sum(phases.values()) or 1.0
        out[name] = {k: v / total for k, v in phases.items()}
        print(f"{name}: time split " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in phases.items()))
    return out


def ratio_specs(paths):
    """(label, numerator row, denominator row, target as (op, value) or None). Targets are the
    CPU step-time targets of the other issues: pure/native >= 5 at equal rank, native rank 1 within
    2x of AdamW foreach, torch/native >= 1 for the Adam family and >= 3 for Adafactor."""
    return [
        ("pure-torch / native Adapprox, rank 1", "pure-torch rank 1", "adapprox rank 1", (">=", 5)),
        ("pure-torch / native Adapprox, rank 4", "pure-torch rank 4", "adapprox rank 4", (">=", 5)),
        ("pure-torch / native Adapprox, default", "pure-torch default (adaptive)", "adapprox default (adaptive)", None),
        ("native Adapprox rank 1 / torch AdamW foreach", "adapprox rank 1", "torch AdamW foreach", ("<=", 2)),
        ("native Adapprox rank 1 / torch AdamW fused", "adapprox rank 1", "torch AdamW fused", None),
        ("CAME / native Adapprox rank 1", "CAME", "adapprox rank 1", None),
        ("torch / native Adam", paths.get("Adam"), "adapprox Adam", (">=", 1)),
        ("torch fused / native AdamW", "torch AdamW fused", "adapprox AdamW", (">=", 1)),
        ("torch / native NAdam", paths.get("NAdam"), "adapprox NAdam", (">=", 1)),
        ("torch / native RMSprop", paths.get("RMSprop"), "adapprox RMSprop", None),
        ("torch / native Adagrad", paths.get("Adagrad"), "adapprox Adagrad", None),
        ("torch / native SGD momentum", paths.get("SGD momentum"), "adapprox SGD momentum", None),
        ("torch / native Adafactor", "torch Adafactor", "adapprox Adafactor", (">=", 3)),
    ]


def plot(out, name):
    """One row of panels per model: median step time (log scale, IQR as error bar) and state bytes
    as a share of AdamW's, per optimizer. Returns the PNG path, or None without matplotlib."""
    plt = pyplot()
    if plt is None:
        print("plots skipped: matplotlib is not installed")
        return None
    models = out["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 0.22 * max(len(m["optimizers"]) for m in models.values())
                                                       * len(models) + 1.2), squeeze=False)
    for (model, m), (a, b) in zip(models.items(), axes):
        names = list(m["optimizers"])[::-1]
        ys = range(len(names))
        colours = ["tab:blue" if n.startswith("adapprox") else "tab:orange" for n in names]
        med = [m["optimizers"][n]["median_ms"] for n in names]
        err = [[m["optimizers"][n]["median_ms"] - m["optimizers"][n]["q1_ms"] for n in names],
               [m["optimizers"][n]["q3_ms"] - m["optimizers"][n]["median_ms"] for n in names]]
        a.barh(ys, med, xerr=err, color=colours)
        a.set_xscale("log")
        a.set_yticks(list(ys), names, fontsize=7)
        a.set_xlabel("median step time, ms (log; bar: IQR)", fontsize=8)
        a.set_title(f"GPT-2 {model} ({m['n_params'] / 1e6:.1f}M params), {out['config']['device']}", fontsize=9)
        a.grid(alpha=0.3, axis="x")
        b.barh(ys, [100 * m["optimizers"][n]["state_vs_adamw"] for n in names], color=colours)
        b.set_yticks(list(ys), [""] * len(names))
        b.set_xlabel("optimizer state, % of AdamW's", fontsize=8)
        b.set_title("blue: adapprox (native); orange: peers", fontsize=9)
        b.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(fig, name)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench step", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (refused when CUDA is unavailable)")
    ap.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(MODELS)
                    + " (default: small on cpu, 117M,345M on cuda)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch and adapprox threads (default 2)")
    ap.add_argument("--only", default=None, help="comma-separated subset of the rows (names as printed)")
    ap.add_argument("--max-other", type=float, default=0.05, metavar="F",
                    help="a repetition counts only if other processes used at most this share of the CPUs")
    ap.add_argument("--max-time", type=float, default=600, metavar="S",
                    help="after S seconds of timing, accept repetitions however loaded (default 600)")
    ap.add_argument("--out", default="step", help="results file name under bench/results (default step)")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from bench/results/<out>.json")
    args = ap.parse_args(argv)
    if args.replot:
        import json
        png = plot(json.loads((common.RESULTS_DIR / f"{args.out}.json").read_text()), args.out)
        print(f"wrote {png}" if png else "nothing written")
        return

    device = resolve_device(args.device)
    models = (args.models or ("small" if device.type == "cpu" else "117M,345M")).split(",")
    torch.set_num_threads(args.threads)
    adapprox.set_num_threads(args.threads)
    factories, skipped, paths = optimizer_factories(device)
    if args.only:
        keep = set(args.only.split(","))
        factories = {k: v for k, v in factories.items() if k in keep}
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")

    out = dict(config=dict(device=str(device), models=models, warmup=args.warmup, reps=args.reps,
                           threads=args.threads, max_other=args.max_other,
                           hyper=dict(adapprox_and_adamw=HYPER, adam=ADAM, nadam=NADAM, rmsprop=RMSPROP,
                                      adagrad=ADAGRAD, sgd=SGD, adafactor=ADAFACTOR)),
               skipped=skipped, models={})
    for model in models:
        layers, width = MODELS[model]
        shapes = gpt2_shapes(layers, width)
        gen = torch.Generator().manual_seed(0)
        values = [(torch.randn(s, generator=gen) * 0.02).to(device) for _, s in shapes]
        grads = [(torch.randn(s, generator=gen) * 1e-3).to(device) for _, s in shapes]
        n_params = sum(v.numel() for v in values)
        runs = {}
        for name, make in factories.items():
            params = [torch.nn.Parameter(v.clone()) for v in values]
            for p, g in zip(params, grads):
                p.grad = g
            runs[name] = dict(opt=make(params), wte=params[0])

        def timed(opt):
            def step():
                opt.step()
                synchronize(device)
            return step

        print(f"GPT-2 {model}: {layers} layers, width {width}, {n_params / 1e6:.2f}M params ({len(shapes)} tensors); "
              f"device {device}; threads: torch {torch.get_num_threads()}, adapprox {adapprox.num_threads()}; "
              f"{len(runs)} optimizers, {args.warmup} warm-up + {args.reps} timed repetitions, round-robin",
              flush=True)
        times, cpu, reps, contended = round_robin({n: timed(r["opt"]) for n, r in runs.items()},
                                                  args.warmup, args.reps, args.max_other, args.max_time)
        summary, rows = {}, []
        for name, run in runs.items():
            q1, med, q3 = quartiles(times[name])
            st = run["opt"].state.get(run["wte"], {})
            rank = st["native"].rank if "native" in st and hasattr(st["native"], "rank") else st.get("rank", "-")
            nbytes = state_bytes(run["opt"])
            summary[name] = dict(median_ms=med * 1e3, q1_ms=q1 * 1e3, q3_ms=q3 * 1e3, iqr_ms=(q3 - q1) * 1e3,
                                 min_ms=min(times[name]) * 1e3, times_ms=[t * 1e3 for t in times[name]],
                                 cpu_per_wall=sum(cpu[name]) / sum(times[name]), wte_rank=rank,
                                 state_bytes=nbytes, state_vs_adamw=nbytes / (8 * n_params))
            rows.append((name, f"{med * 1e3:.1f}", f"{(q3 - q1) * 1e3:.1f}", f"{min(times[name]) * 1e3:.1f}",
                         f"{summary[name]['cpu_per_wall']:.2f}", f"{nbytes / 2**20:.1f}",
                         f"{100 * nbytes / (8 * n_params):.1f}%", rank))
        print(table(("optimizer", "median ms", "IQR ms", "min ms", "cpu/wall", "state MiB", "vs AdamW", "wte rank"),
                    rows))
        ratios = {}
        for label, num, den, target in ratio_specs(paths):
            if num not in summary or den not in summary:
                continue
            value = summary[num]["median_ms"] / summary[den]["median_ms"]
            verdict = "none set"
            if target is not None:
                ok = value >= target[1] if target[0] == ">=" else value <= target[1]
                verdict = f"{target[0]} {target[1]}: {'met' if ok else 'NOT met'}"
            ratios[label] = dict(value=value, numerator=num, denominator=den, target=target, verdict=verdict)
            print(f"{label}: {value:.2f}x ({verdict})")
        split = cuda_time_split(runs, device)
        bandwidth = bandwidth_report(summary, n_params, device)
        out["models"][model] = dict(layers=layers, width=width, n_params=n_params, n_tensors=len(shapes),
                                    contended=contended, repetitions=reps, optimizers=summary, ratios=ratios,
                                    adapprox_cuda_split=split, bandwidth=bandwidth)
        del runs
    png = plot(out, args.out)
    out["plot"] = png.name if png else None
    path = write_results(args.out, out)
    print(f"wrote {path}" + (f" and {png}" if png else ""))

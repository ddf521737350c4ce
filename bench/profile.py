"""Suite `profile`: where an Adapprox step's time goes, fresh sketch against warm start.

The model and data are examples/demo.py's (a byte-level MLP on Python's own sources, 1.86M
parameters): real gradients, so the ranks settle as in training. AdamW, Adapprox with the
paper's fresh sketch (``warm_start=False``) and Adapprox warm-started (the default) are trained
side by side from the same weights on the same batches, round-robin one step each, so machine
noise hits all three alike. The native phase timers (``adapprox.phase_times``) split the
factored parameters' step: drawing the sketch, the products with V (passes over G), the
orthonormalisations, the small eigenproblem and rank rule, forming the new factors, the
elementwise update, and what is left. Phase totals are summed over threads (small matrices
step side by side), so they are reported per step and as shares of their own sum.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the demo: idle torch workers sleep

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import adapprox  # noqa: E402
import adapprox.torch as at  # noqa: E402

from .common import table, write_results  # noqa: E402

PHASES = ["sketch", "products", "orthonormalise", "eigen", "factors", "update"]


def _demo():
    path = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
    spec = importlib.util.spec_from_file_location("adapprox_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="profile", help="results file name under bench/results")
    args = ap.parse_args(argv)
    demo = _demo()
    torch.set_num_threads(args.threads)
    adapprox.set_num_threads(args.threads)
    torch.manual_seed(0)
    data, _ = demo.load_corpus()
    train = data[: int(0.9 * len(data))]
    init = demo.ByteMLP(32, 32, 512)
    batches = demo.make_batches(train, 32, 64, args.steps, 1)
    makers = {
        "AdamW (torch)": lambda ps: torch.optim.AdamW(ps, lr=3e-3, weight_decay=0.05),
        "Adapprox fresh sketch": lambda ps: at.Adapprox(ps, lr=3e-3, weight_decay=0.05, warm_start=False),
        "Adapprox warm start": lambda ps: at.Adapprox(ps, lr=3e-3, weight_decay=0.05),
    }
    runs = {}
    for name, make in makers.items():
        model = copy.deepcopy(init)
        runs[name] = dict(model=model, opt=make(model.parameters()), step_s=0.0,
                          phases={p: 0.0 for p in PHASES + ["factored_step"]}, other=0.0, calls={})
    for w in batches:
        for name, r in runs.items():
            loss = F.cross_entropy(r["model"](w[:, :-1]), w[:, -1])
            r["opt"].zero_grad(set_to_none=True)
            loss.backward()
            with adapprox.phase_times() as pt:
                t0 = time.perf_counter()
                r["opt"].step()
                r["step_s"] += time.perf_counter() - t0
            r["other"] += pt.other
            for p in r["phases"]:
                r["phases"][p] += pt.seconds[p]
                r["calls"][p] = r["calls"].get(p, 0) + pt.calls[p]
    n = args.steps
    base = runs["AdamW (torch)"]["step_s"]
    rows, results = [], {}
    for name, r in runs.items():
        ph, other = r["phases"], max(0.0, r["other"])
        ranks = [e["rank"] for e in r["opt"].memory_report()["params"] if e["factored"]] \
            if hasattr(r["opt"], "memory_report") else []
        rows.append([name, f"{r['step_s'] / n * 1e3:.2f}", f"{r['step_s'] / base:.2f}"]
                    + [f"{ph[p] / n * 1e3:.2f}" for p in PHASES] + [f"{other / n * 1e3:.2f}", str(ranks or "-")])
        results[name] = dict(step_ms=r["step_s"] / n * 1e3, vs_adamw=r["step_s"] / base,
                             phase_ms={p: ph[p] / n * 1e3 for p in PHASES + ["factored_step"]},
                             other_ms=other / n * 1e3, calls_per_step={p: c / n for p, c in r["calls"].items()},
                             ranks=ranks)
    print(f"profile: {n} steps of examples/demo.py's model, {args.threads} threads; ms per step "
          "(phases summed over threads)")
    print(table(["optimizer", "opt.step", "x AdamW"] + PHASES + ["other", "ranks"], rows))
    path = write_results(args.out, dict(steps=n, threads=args.threads, rows=results))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

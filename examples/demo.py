"""Train a small byte-level language model with torch.optim.AdamW and with adapprox.torch.Adapprox.

The training text is the source code of a few Python standard-library modules (it ships with
Python, so nothing is downloaded). Both optimizers start from the same initial weights and see
the same batches; the script prints the loss trajectories, the final validation loss and the
optimizer-state memory of each.

    python examples/demo.py            # full run, about a minute on 2 CPU cores
    python examples/demo.py --quick    # smoke test, about 10 seconds
    python examples/demo.py --steps 500
"""
from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import math
import os
import time

# Idle OpenMP threads should sleep, not spin: on a small shared machine torch's spinning workers
# otherwise compete with the native Adapprox thread pool (and anything else) for the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import adapprox.torch  # noqa: E402

MODULES = ["argparse", "inspect", "dataclasses", "functools", "typing", "json.decoder",
           "json.encoder", "textwrap", "string", "random", "enum", "pathlib"]


def load_corpus() -> tuple[torch.Tensor, list[str]]:
    texts, used = [], []
    for name in MODULES:
        try:
            texts.append(inspect.getsource(importlib.import_module(name)))
            used.append(name)
        except (ImportError, OSError, TypeError):
            pass  # a trimmed Python install may lack some sources
    if not texts:
        raise SystemExit("no standard-library sources found to train on")
    data = "\n\n".join(texts).encode("utf-8")
    return torch.tensor(list(data), dtype=torch.long), used


class ByteMLP(nn.Module):
    """Predict the next byte from the previous `context` bytes: embedding + 2 hidden layers."""

    def __init__(self, context: int, dim: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(256, dim)
        self.fc1 = nn.Linear(context * dim, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 256)

    def forward(self, x):
        h = self.embed(x).flatten(1)
        h = F.gelu(self.norm1(self.fc1(h)))
        h = F.gelu(self.norm2(self.fc2(h)))
        return self.head(h)


def make_batches(data, context, batch, steps, seed):
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(data) - context - 1, (steps, batch), generator=g)
    offs = torch.arange(context + 1)
    return [data[s[:, None] + offs] for s in starts]  # each (batch, context + 1)


@torch.no_grad()
def evaluate(model, val, context, n_windows=4096, batch=1024):
    stride = max(1, (len(val) - context - 1) // n_windows)
    starts = torch.arange(0, len(val) - context - 1, stride)[:n_windows]
    offs = torch.arange(context + 1)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        w = val[starts[i:i + batch, None] + offs]
        total += F.cross_entropy(model(w[:, :-1]), w[:, -1], reduction="sum").item()
        count += len(w)
    return total / count


def adamw_state_bytes(opt):
    return sum(t.numel() * t.element_size() for st in opt.state.values()
               for t in st.values() if torch.is_tensor(t) and t.dim() > 0)


def train(name, make_opt, init_model, batches, val, context, log_every):
    model = copy.deepcopy(init_model)
    opt = make_opt(model.parameters())
    steps = len(batches)
    curve, t0, step_time = [], time.perf_counter(), 0.0
    for i, w in enumerate(batches):
        lr_scale = min(1.0, (i + 1) / max(1, steps // 20))          # short warmup ...
        lr_scale *= 0.5 * (1 + math.cos(math.pi * i / steps)) * 0.9 + 0.1  # ... then cosine to 10%
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_scale
        loss = F.cross_entropy(model(w[:, :-1]), w[:, -1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ts = time.perf_counter()
        opt.step()
        step_time += time.perf_counter() - ts
        curve.append(loss.item())
    wall = time.perf_counter() - t0
    return dict(name=name, model=model, opt=opt, curve=curve, wall=wall, step_time=step_time,
                val=evaluate(model, val, context))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="training steps per optimizer")
    ap.add_argument("--quick", action="store_true", help="tiny run (~10 s) for a smoke test")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (both optimizers)")
    ap.add_argument("--weight-decay", type=float, default=0.05, help="decoupled weight decay (both)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    steps = args.steps if args.steps is not None else (100 if args.quick else 1200)
    context, dim, hidden = 32, 32, 512
    log_every = max(1, steps // 10)

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    data, used = load_corpus()
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    init_model = ByteMLP(context, dim, hidden)
    batches = make_batches(train_data, context, args.batch, steps, args.seed + 1)
    n_params = sum(p.numel() for p in init_model.parameters())

    print(f"Byte-level next-byte model (embedding {dim} x context {context} -> MLP {hidden}-{hidden} -> 256 bytes,"
          f" {n_params / 1e6:.2f}M params)")
    print(f"trained on the source of {len(used)} Python stdlib modules ({', '.join(used)}):")
    print(f"  {len(train_data) / 1e3:.0f} kB train / {len(val_data) / 1e3:.0f} kB held-out validation (last 10%),"
          f" {steps} steps x batch {args.batch}, same init and batches for both optimizers")
    print(f"  both: lr {args.lr:g} (5% warmup, cosine to 10%), decoupled weight decay {args.weight_decay:g},"
          f" betas (0.9, 0.999), eps 1e-8")
    print("  Adapprox: library defaults otherwise (clip 1.0, no bias correction, rank 1 adapting up to"
          " min(m,n)//4 at tol 1e-2)")
    print(f"  loss of a uniform guess: ln 256 = {math.log(256):.3f}\n")

    def with_base(opt):
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
        return opt

    runs = [
        train("AdamW", lambda p: with_base(torch.optim.AdamW(p, lr=args.lr, weight_decay=args.weight_decay)),
              init_model, batches, val_data, context, log_every),
        train("Adapprox", lambda p: with_base(adapprox.torch.Adapprox(p, lr=args.lr, weight_decay=args.weight_decay)),
              init_model, batches, val_data, context, log_every),
    ]

    print("train loss (mean over the last logging window)")
    print(f"{'step':>6}" + "".join(f"{r['name']:>12}" for r in runs))
    for end in range(log_every, steps + 1, log_every):
        print(f"{end:>6}" + "".join(f"{sum(r['curve'][end - log_every:end]) / log_every:>12.4f}" for r in runs))

    adamw_bytes = adamw_state_bytes(runs[0]["opt"])
    report = runs[1]["opt"].memory_report()
    mem = {"AdamW": adamw_bytes, "Adapprox": report["total_bytes"]}
    print(f"\n{'optimizer':<10}{'val loss':>10}{'state bytes':>14}{'vs AdamW':>10}{'time (s)':>10}{'opt.step (s)':>14}")
    for r in runs:
        print(f"{r['name']:<10}{r['val']:>10.4f}{mem[r['name']]:>14,}{mem[r['name']] / adamw_bytes:>10.3f}"
              f"{r['wall']:>10.1f}{r['step_time']:>14.1f}")

    print("\nAdapprox state per parameter (matrices hold rank-k factors Q (m x k), U (n x k) + first moment):")
    names = [n for n, _ in runs[1]["model"].named_parameters()]
    for n, e in zip(names, report["params"]):
        if e["factored"]:
            m, k = e["shape"][0], math.prod(e["shape"][1:])
            print(f"  {n:<14}{str(e['shape']):>14}  rank {e['rank']:>3} (max {max(1, min(m, k) // 4)})"
                  f"  {e['state_bytes']:>10,} B")
    dense = sum(e["state_bytes"] for e in report["params"] if not e["factored"])
    print(f"  1-D params (biases, norms) keep dense moments: {dense:,} B")
    factored = [e for e in report["params"] if e["factored"]]
    first = sum(4 * math.prod(e["shape"]) for e in factored)
    print(f"  of the {report['total_bytes']:,} B: first moment (dense, float32) {first:,} B,"
          f" second-moment factors {sum(e['state_bytes'] for e in factored) - first:,} B, 1-D {dense:,} B")


if __name__ == "__main__":
    main()

"""Suite `train`: a small GPT-style language model trained on the Python standard library's own
source files (byte-level, nothing downloaded), one run per optimizer, side by side.

Every optimizer starts from the same initial weights (seed), sees the same batches in the same
order (the window starts are drawn once from a seeded generator) and the same token budget
(steps x batch x context), under the same schedule: linear warm-up over the first 5% of the steps,
then cosine decay to 10% of the peak. No weight decay and no gradient clipping for anyone (the
update-clipping optimizers clip by their own rule). The held-out validation split is whole files
(every tenth file of the sorted list), so no validation text is seen in training.

Reported per optimizer: validation loss at every evaluation (against step and against the
optimizer-state bytes at that point), the final validation loss, optimizer-state bytes (the
largest seen during the run: adaptive ranks move), the mean optimizer step time, and for
Adapprox the rank every matrix settled at. Losses are deterministic for a fixed thread count;
wall times on a shared machine are not.

Learning rates: one peak lr per optimizer (`LR`), the best final validation loss of a sweep at
these settings (`--sweep F1,F2` runs every row at lr x each factor, `--lr NAME=A,B,...` one row at
exactly those lrs; the best run is kept and the table printed). The sweep behind `LR`, with every
loss, is in bench/README.md and bench/results/train_sweep*.json.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import math
import os
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch workers sleep instead of spinning

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import adapprox  # noqa: E402
import adapprox.torch  # noqa: E402

from .common import pyplot, resolve_device, save_figure, sig, state_bytes, synchronize, table, write_results  # noqa: E402
from .pure_torch_adapprox import PureTorchAdapprox  # noqa: E402

SIZES = {  # model and budget presets; every field can be overridden by its option
    "cpu": dict(layers=4, d_model=128, heads=4, ctx=128, batch=16, steps=500, val_windows=256, corpus_mb=4.0),
    "gpu": dict(layers=6, d_model=384, heads=6, ctx=256, batch=64, steps=3000, val_windows=1024, corpus_mb=16.0),
}

BETAS = (0.9, 0.999)
# Peak learning rates: the best final validation loss of a sweep at the default settings (x3 grid
# around a first guess, one more point where the best sat at an edge, x1.7 points between the
# best two for AdamW and Adapprox b1=0); the grid and every loss are in bench/README.md.
LR = {"AdamW": 1.7e-3, "AdamW b2=0.95": 1e-3, "Adafactor": 0.09, "Adapprox b1=0.9": 3e-3, "Adapprox b1=0": 1.7e-3,
      "CAME": 3.3333e-4}


# The rows run by default; "AdamW b2=0.95" (the betas of GPT practice) is on request (--optimizers):
# in the sweep it did no better than AdamW with torch's default betas.
DEFAULT = ("AdamW", "Adafactor", "Adapprox b1=0.9", "Adapprox b1=0", "CAME")


def _came():
    try:
        from came_pytorch import CAME
    except ImportError:
        return None
    return CAME


def optimizer_table(device):
    """name -> (factory(params, lr) or None, note). Native adapprox steps CPU tensors only: on a
    GPU the Adapprox rows run PureTorchAdapprox (same math, dense V) and say so."""
    native = device.type == "cpu"
    A = adapprox.torch.Adapprox if native else PureTorchAdapprox
    note = "" if native else " (pure-PyTorch Adapprox: the native core steps CPU tensors only)"
    came = _came()
    return {
        "AdamW": (lambda ps, lr: torch.optim.AdamW(ps, lr=lr, betas=BETAS, weight_decay=0.0), "torch.optim.AdamW"),
        "AdamW b2=0.95": (lambda ps, lr: torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.95), weight_decay=0.0),
                          "torch.optim.AdamW with the betas of GPT practice"),
        "Adafactor": (lambda ps, lr: torch.optim.Adafactor(ps, lr=lr), "torch.optim.Adafactor, defaults but lr"),
        "Adapprox b1=0.9": (lambda ps, lr: A(ps, lr=lr, betas=(0.9, BETAS[1])),
                            "adapprox.torch.Adapprox, defaults but lr" + note),
        "Adapprox b1=0": (lambda ps, lr: A(ps, lr=lr, betas=(0.0, BETAS[1])),
                          "adapprox.torch.Adapprox, b1 = 0, defaults but lr" + note),
        "CAME": ((lambda ps, lr: came(ps, lr=lr, betas=(0.9, 0.999, 0.9999))) if came else None,
                 "came_pytorch.CAME" if came else "skipped: came-pytorch is not installed"),
    }


# ----------------------------------------------------------------------------------------- data

def load_corpus(max_bytes: int):
    """Top-level .py files of the standard library, sorted by name, until max_bytes; every tenth
    file goes to the validation split. Returns (train, val) uint8 tensors and a description."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    train, val, used, total = [], [], 0, 0
    for i, f in enumerate(files):
        try:
            data = f.read_bytes()
        except OSError:
            continue
        (val if i % 10 == 9 else train).append(data)
        used += 1
        total += len(data)
        if total >= max_bytes and val:  # at least one validation file, whatever the budget
            break
    if not val or not train:
        raise SystemExit(f"too little standard-library source under {root} to build a corpus")
    tr, va = b"\n".join(train), b"\n".join(val)
    info = dict(stdlib=str(root), files=used, train_bytes=len(tr), val_bytes=len(va),
                sha256=hashlib.sha256(tr + b"\0" + va).hexdigest()[:16])
    as_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8).long()  # noqa: E731
    return as_tensor(tr), as_tensor(va), info


# ---------------------------------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    """GPT-2-style decoder: learned positions, pre-norm blocks, tied byte embedding/head (vocab 256)."""

    def __init__(self, layers, d, heads, ctx, vocab=256):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


def loss_of(model, windows):
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate(model, val, ctx, n_windows, device, batch=64):
    """Mean next-byte cross-entropy (nats) over n_windows fixed, evenly spaced validation windows."""
    starts = torch.linspace(0, len(val) - ctx - 2, n_windows).long()
    offs = torch.arange(ctx + 1)
    total = 0.0
    for i in range(0, n_windows, batch):
        w = val[starts[i:i + batch, None] + offs].to(device)
        total += loss_of(model, w).item() * len(w)
    return total / n_windows


def lr_scale(step, steps, warmup_frac=0.05, floor=0.1):
    warm = max(1, int(warmup_frac * steps))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def ranks_of(opt, names):
    """{parameter name: rank} for the factored matrices of an Adapprox optimizer."""
    if hasattr(opt, "memory_report"):
        rep = opt.memory_report()["params"]
        return {n: r["rank"] for n, r in zip(names, rep) if r.get("factored")}
    out = {}
    for n, p in zip(names, (p for g in opt.param_groups for p in g["params"])):
        if "rank" in opt.state.get(p, {}):
            out[n] = opt.state[p]["rank"]
    return out


def train_one(name, make, lr, init_model, train_data, val_data, starts, cfg, device, tag=""):
    model = copy.deepcopy(init_model).to(device)
    names = [n for n, _ in model.named_parameters()]
    opt = make(list(model.parameters()), lr)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    steps, ctx = cfg["steps"], cfg["ctx"]
    offs = torch.arange(ctx + 1)
    evals = sorted({min(steps, max(1, round(steps * k / cfg["evals"]))) for k in range(1, cfg["evals"] + 1)})
    curve, train_loss, peak_bytes, step_s, t0 = [], [], 0, 0.0, time.perf_counter()
    for step in range(steps):
        s = lr_scale(step, steps)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * s
        w = train_data[starts[step][:, None] + offs].to(device)
        loss = loss_of(model, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        synchronize(device)
        ts = time.perf_counter()
        opt.step()
        synchronize(device)
        step_s += time.perf_counter() - ts
        train_loss.append(loss.item())
        peak_bytes = max(peak_bytes, state_bytes(opt))
        if step + 1 in evals:
            val = evaluate(model, val_data, ctx, cfg["val_windows"], device)
            nb = state_bytes(opt)
            curve.append(dict(step=step + 1, tokens=(step + 1) * cfg["batch"] * ctx, val_loss=val,
                              state_bytes=nb, ranks=ranks_of(opt, names), wall_s=time.perf_counter() - t0))
            print(f"  [{name}{tag}] step {step + 1:5d}/{steps}  train {sum(train_loss[-20:]) / len(train_loss[-20:]):.4f}"
                  f"  val {val:.4f}  state {nb / 2**20:.2f} MiB  {time.perf_counter() - t0:.0f} s", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    return dict(lr=lr, final_val_loss=curve[-1]["val_loss"], peak_state_bytes=peak_bytes,
                final_state_bytes=curve[-1]["state_bytes"], adamw_equiv_bytes=2 * 4 * n_params,
                step_ms=1e3 * step_s / steps, wall_s=time.perf_counter() - t0, curve=curve,
                train_loss=[sig(x) for x in train_loss], final_ranks=curve[-1]["ranks"],
                matrix_shapes={n: list(p.shape) for n, p in model.named_parameters() if p.dim() >= 2})


def plot(results, adamw_bytes, title):
    plt = pyplot()
    if plt is None:
        print("plots skipped: matplotlib is not installed")
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in results.items():
        xs = [c["step"] for c in r["curve"]]
        line, = a.plot(xs, [c["val_loss"] for c in r["curve"]], marker=".", label=name)
        b.scatter([100 * r["peak_state_bytes"] / adamw_bytes], [r["final_val_loss"]], color=line.get_color(), label=name)
        b.annotate(name, (100 * r["peak_state_bytes"] / adamw_bytes, r["final_val_loss"]), fontsize=8,
                   xytext=(4, 4), textcoords="offset points")
    finals = [r["final_val_loss"] for r in results.values()]
    lo, hi = min(finals), max(finals)
    a.set_ylim(lo - 0.05, max(hi + 0.6, lo + 1.0))
    a.set_xlabel("step")
    a.set_ylabel("validation loss (nats/byte)")
    a.set_title("validation loss against step")
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    b.set_xlabel("optimizer state, % of AdamW's (peak over the run)")
    b.set_ylabel("final validation loss")
    b.set_title("final validation loss against state memory")
    b.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=SIZES, default="cpu", help="preset of model and budget (default cpu)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (refused when CUDA is unavailable)")
    for k, v in SIZES["cpu"].items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None, help=f"override the preset (cpu: {v})")
    ap.add_argument("--evals", type=int, default=10, help="validation evaluations per run (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch and adapprox threads (default 2)")
    ap.add_argument("--optimizers", default=None, help="comma-separated rows (default: " + ",".join(DEFAULT) + "; also: AdamW b2=0.95)")
    ap.add_argument("--lr", action="append", default=[], metavar="NAME=LR[,LR...]",
                    help="override one optimizer's lr; several values: run each (a sweep of that optimizer)")
    ap.add_argument("--sweep", default=None, metavar="F1,F2,...",
                    help="also run each optimizer at lr x each factor (e.g. 0.5,2); report the best")
    ap.add_argument("--out", default="train", help="results file name under bench/results (default train)")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    cfg = dict(SIZES[args.size])
    for k in cfg:
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    cfg["evals"] = args.evals
    torch.set_num_threads(args.threads)
    adapprox.set_num_threads(args.threads)
    lrs = dict(LR)
    grids = {}  # optimizers given several lrs by --lr NAME=A,B,...: exactly those are run
    for item in args.lr:
        k, v = item.rsplit("=", 1)
        values = [float(x) for x in v.split(",")]
        lrs[k] = values[0]
        if len(values) > 1:
            grids[k] = values
    table_ = optimizer_table(device)
    chosen = list(DEFAULT) if args.optimizers is None else [s.strip() for s in args.optimizers.split(",")]
    unknown = [n for n in chosen if n not in table_]
    if unknown:
        raise SystemExit(f"unknown optimizers {unknown}; choose from {list(table_)}")
    skipped = {n: table_[n][1] for n in chosen if table_[n][0] is None}

    train_data, val_data, corpus = load_corpus(int(cfg["corpus_mb"] * 2**20))
    torch.manual_seed(args.seed)
    init_model = GPT(cfg["layers"], cfg["d_model"], cfg["heads"], cfg["ctx"])
    n_params = sum(p.numel() for p in init_model.parameters())
    gen = torch.Generator().manual_seed(args.seed + 1)
    starts = torch.randint(0, len(train_data) - cfg["ctx"] - 1, (cfg["steps"], cfg["batch"]), generator=gen)
    tokens = cfg["steps"] * cfg["batch"] * cfg["ctx"]
    adamw_bytes = 2 * 4 * n_params
    print(f"GPT: {cfg['layers']} layers, d_model {cfg['d_model']}, {cfg['heads']} heads, context {cfg['ctx']}, "
          f"byte vocabulary, {n_params / 1e6:.2f}M params; device {device}, {args.threads} threads")
    print(f"corpus: {corpus['files']} stdlib files, {corpus['train_bytes'] / 1e6:.2f} MB train / "
          f"{corpus['val_bytes'] / 1e6:.2f} MB validation (whole files); budget {cfg['steps']} steps x {cfg['batch']} "
          f"x {cfg['ctx']} = {tokens / 1e6:.2f}M tokens ({tokens / corpus['train_bytes']:.2f} epochs)")
    for n, why in skipped.items():
        print(f"  {n}: {why}")

    factors = [1.0] + ([float(f) for f in args.sweep.split(",")] if args.sweep else [])
    results, sweep = {}, {}
    for name in chosen:
        make = table_[name][0]
        if make is None:
            continue
        runs = {}
        grid = grids.get(name, [lrs[name] * f for f in factors])
        for lr in grid:
            runs[lr] = train_one(name, make, lr, init_model, train_data, val_data, starts, cfg, device,
                                 tag="" if len(grid) == 1 else f" lr {lr:g}")
        best = min(runs, key=lambda k: runs[k]["final_val_loss"])
        results[name] = runs[best]
        results[name]["note"] = table_[name][1]
        if len(grid) > 1:
            sweep[name] = {f"{lr:g}": r["final_val_loss"] for lr, r in sorted(runs.items())}
            print(f"  [{name}] sweep: " + ", ".join(f"lr {k}: {v:.4f}" for k, v in sweep[name].items())
                  + f" -> best {best:g}" + ("  (AT THE EDGE of the grid)" if best in (min(runs), max(runs)) else ""))

    rows = []
    for name, r in results.items():
        ranks = sorted(set(r["final_ranks"].values()))
        rows.append((name, f"{r['lr']:g}", f"{r['final_val_loss']:.4f}", f"{r['peak_state_bytes'] / 2**10:.0f}",
                     f"{100 * r['peak_state_bytes'] / adamw_bytes:.1f}%", f"{r['step_ms']:.1f}",
                     ",".join(map(str, ranks)) if ranks else "-"))
    print(table(("optimizer", "lr", "final val loss", "state KiB", "% of AdamW", "step ms", "ranks"), rows))

    targets = {}
    if "AdamW" in results:
        aw = results["AdamW"]["final_val_loss"]
        aw_bytes = results["AdamW"]["peak_state_bytes"]
        others = {n: results[n]["final_val_loss"] for n in ("Adafactor", "CAME") if n in results}
        if "Adapprox b1=0.9" in results:
            r = results["Adapprox b1=0.9"]
            gap = r["final_val_loss"] / aw - 1
            saved = 1 - r["peak_state_bytes"] / aw_bytes
            targets["Adapprox b1=0.9 within 1% of AdamW"] = dict(value=gap, met=gap <= 0.01)
            targets["Adapprox b1=0.9 saves >= 1/3 of AdamW state"] = dict(value=saved, met=saved >= 1 / 3)
            for n, v in others.items():
                targets[f"Adapprox b1=0.9 below {n}"] = dict(value=r["final_val_loss"] - v,
                                                             met=r["final_val_loss"] < v)
        if "Adapprox b1=0" in results:
            r = results["Adapprox b1=0"]
            share = r["peak_state_bytes"] / aw_bytes
            targets["Adapprox b1=0 state < 15% of AdamW"] = dict(value=share, met=share < 0.15)
            if "Adafactor" in results:
                targets["Adapprox b1=0 below Adafactor"] = dict(
                    value=r["final_val_loss"] - others["Adafactor"], met=r["final_val_loss"] < others["Adafactor"])
    for k, v in targets.items():
        print(f"target {k}: {v['value']:+.4f} -> {'met' if v['met'] else 'NOT met'}")

    fig = plot(results, adamw_bytes, f"GPT {cfg['layers']}x{cfg['d_model']} ({n_params / 1e6:.2f}M params), "
                                     f"{tokens / 1e6:.2f}M tokens of stdlib source, device {device}")
    png = save_figure(fig, args.out) if fig is not None else None
    path = write_results(args.out, dict(
        config=dict(cfg, size=args.size, device=str(device), seed=args.seed, threads=args.threads, n_params=n_params,
                    tokens=tokens, betas=BETAS, schedule="linear warm-up 5%, cosine to 10%", weight_decay=0.0,
                    lr=lrs, sweep_factors=factors[1:] or None),
        corpus=corpus, skipped=skipped, optimizers=results, sweep=sweep or None, targets=targets,
        plot=png.name if png else None))
    print(f"wrote {path}" + (f" and {png}" if png else ""))

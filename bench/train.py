"""Suite `train`: a small GPT-style language model trained on the Python standard library's own
source files (byte-level, nothing downloaded), one row per optimizer, side by side, each row run
with several seeds.

Every optimizer sees, for a given seed, the same initial weights and the same batches in the same
order (seed s: weights from torch.manual_seed(s), window starts from a generator seeded 1000003 + s;
`--seeds N` runs seeds `--seed` .. `--seed`+N-1, default 3), the same token budget (steps x batch x
context) and the same schedule: linear warm-up over the first 5% of the steps, then cosine decay
to 10% of the peak. No weight decay. Gradient clipping, the same for everyone: the global gradient
norm is clipped to `--clip` (default 1.0; 0 turns it off) by torch.nn.utils.clip_grad_norm_ right
before every opt.step(), so every optimizer (and the AS-RSI quality log) gets the clipped
gradient; the update-clipping optimizers clip their updates by their own rule on top. The held-out
validation split is whole files (every tenth file of the sorted list), so no validation text is
seen in training.

Rows (defaults but lr unless said): torch.optim.AdamW; torch.optim.Adafactor; pytorch-optimizer's
AdaFactor with momentum b1 = 0.9 (relative_step=False so that it follows our lr and schedule;
skipped, and said so, when pytorch-optimizer is not installed); adapprox.torch.Adapprox at b1 = 0.9
and at b1 = 0, each with the warm-started sketch ("warm-start": warm_start=True, the default) and
with a fresh Gaussian sketch every step ("fresh-sketch": warm_start=False); CAME (came-pytorch,
when installed). Adapprox's own sketch seed is the run's seed.

Reported per row: the final validation loss as the mean over the seeds with its spread (min..max
and std) and every seed's loss; validation loss at every evaluation (against step and against the
optimizer-state bytes at that point); optimizer-state bytes (the largest seen during the run:
adaptive ranks move); the time of forward+backward+clip and of opt.step, measured separately
(time.perf_counter, the first step left out), and opt.step's share of the whole training step;
the pre-clip gradient norm and how often it was clipped; for Adapprox the rank every matrix
settled at, and with `--quality` (on by default) the AS-RSI quality log of bench/rsi_quality.py:
at every step the float64 relative error ||Q_t U_t^T - V_t||_F / ||V_t||_F of the new factors
against the matrix V_t = b2 Q_{t-1} U_{t-1}^T + (1 - b2) G_t**2 they approximate (max over the
matrices), the rank, and the share of steps where it exceeded tol with the rank below its cap
(should be 0); plotted per step with the tol line. Losses are deterministic for a fixed thread
count; wall times on a shared machine are not. `--size quick` (2 layers, width 64, 40 steps) runs
everything in seconds, to check that it works.

Learning rates: one peak lr per row (`LR`), the best final validation loss of a sweep at these
settings (`--sweep F1,F2` runs every row at lr x each factor, `--lr NAME=A,B,...` one row at
exactly those lrs; the best mean over the seeds is kept and the table printed). The sweep behind
`LR`, with every loss, is in bench/README.md and bench/results/train_sweep*.json.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import math
import os
import statistics
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch workers sleep instead of spinning

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import adapprox  # noqa: E402
import adapprox.torch  # noqa: E402

from . import rsi_quality  # noqa: E402
from .common import pyplot, resolve_device, save_figure, sig, state_bytes, synchronize, table, write_results  # noqa: E402
from .pure_torch_adapprox import PureTorchAdapprox  # noqa: E402

SIZES = {  # model and budget presets; every field can be overridden by its option
    "cpu": dict(layers=4, d_model=128, heads=4, ctx=128, batch=16, steps=500, val_windows=256, corpus_mb=4.0),
    "quick": dict(layers=2, d_model=64, heads=2, ctx=64, batch=8, steps=40, val_windows=64, corpus_mb=1.0),
    "gpu": dict(layers=6, d_model=384, heads=6, ctx=256, batch=64, steps=3000, val_windows=1024, corpus_mb=16.0),
}

BETAS = (0.9, 0.999)
A09, A09F, A0, A0F = ("Adapprox b1=0.9 warm-start", "Adapprox b1=0.9 fresh-sketch",
                      "Adapprox b1=0 warm-start", "Adapprox b1=0 fresh-sketch")
PEER = "AdaFactor b1=0.9 (pytorch-optimizer)"
# Low-precision state and parameters (on request, --optimizers): each row takes the lr of its
# float32 counterpart unchanged, so that the rows differ in precision only.
W8, A09_8 = "AdamW 8bit", "Adapprox b1=0.9 8bit"
BF16_SR, BF16_RN = "AdamW bf16-params stochastic", "AdamW bf16-params nearest"
# Rows whose model is trained in bf16 throughout (no float32 master weights).
PARAM_DTYPE = {BF16_SR: torch.bfloat16, BF16_RN: torch.bfloat16}
# Peak learning rates: the best final validation loss of a sweep at the default settings (x3 grid
# around a first guess, one more point where the best sat at an edge, x1.7 points between the
# best two for AdamW and Adapprox b1=0); the grid and every loss are in bench/README.md. Those
# sweeps ran one seed without gradient clipping and with the fresh sketch (before warm_start):
# both sketches of a b1 share the lr, so that the rows differ in the sketch only.
# PEER: swept at these settings (--clip 1), seed 0, one thread, --evals 1 (results/train_sweep_peer*.json):
# 1e-3: 2.164, 3e-3: 1.951, 5.2e-3: 1.885, 9e-3: 1.868, 1.5e-2: 2.434, 2.7e-2: 2.548 (a cliff above the best).
LR = {"AdamW": 1.7e-3, "AdamW b2=0.95": 1e-3, "Adafactor": 0.09, A09: 3e-3, A09F: 3e-3, A0: 1.7e-3, A0F: 1.7e-3,
      PEER: 9e-3, "CAME": 3.3333e-4}
LR.update({W8: LR["AdamW"], BF16_SR: LR["AdamW"], BF16_RN: LR["AdamW"], A09_8: LR[A09]})

# The rows run by default; "AdamW b2=0.95" (the betas of GPT practice) is on request (--optimizers):
# in the sweep it did no better than AdamW with torch's default betas.
DEFAULT = ("AdamW", "Adafactor", PEER, A09, A09F, A0, A0F, "CAME")


def _came():
    try:
        from came_pytorch import CAME
    except ImportError:
        return None
    return CAME


def _peer_adafactor(params, lr, seed):
    """pytorch-optimizer's AdaFactor with momentum, imported on its first use. relative_step=False:
    the lr (and so our schedule) is used as given; scale_parameter=True, its default, which in
    pytorch-optimizer 3.5.0 means *no* scaling of the lr by the parameter's RMS."""
    from pytorch_optimizer import AdaFactor
    return AdaFactor(params, lr=lr, betas=(0.9, BETAS[1]), relative_step=False, scale_parameter=True)


def optimizer_table(device):
    """name -> (factory(params, lr, seed) or None, note). Native adapprox steps CPU tensors only: on
    a GPU the fresh-sketch Adapprox rows run PureTorchAdapprox (same math, dense V, a fresh sketch
    every step) and say so; the warm-start rows are skipped there."""
    native = device.type == "cpu"
    A = adapprox.torch.Adapprox
    came, peer = _came(), importlib.util.find_spec("pytorch_optimizer") is not None
    rows = {
        "AdamW": (lambda ps, lr, s: torch.optim.AdamW(ps, lr=lr, betas=BETAS, weight_decay=0.0), "torch.optim.AdamW"),
        "AdamW b2=0.95": (lambda ps, lr, s: torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.95), weight_decay=0.0),
                          "torch.optim.AdamW with the betas of GPT practice"),
        "Adafactor": (lambda ps, lr, s: torch.optim.Adafactor(ps, lr=lr), "torch.optim.Adafactor, defaults but lr"),
        PEER: (_peer_adafactor if peer else None,
               "pytorch_optimizer.AdaFactor, betas (0.9, 0.999), relative_step=False (our lr and schedule), other "
               "arguments its defaults (decay_rate -0.8, update clip 1.0, bfloat16 momentum, no lr scaling by "
               "the parameter RMS)" if peer else
               "skipped: pytorch-optimizer is not installed (pip install pytorch-optimizer==3.5.0)"),
        "CAME": ((lambda ps, lr, s: came(ps, lr=lr, betas=(0.9, 0.999, 0.9999))) if came else None,
                 "came_pytorch.CAME" if came else "skipped: came-pytorch is not installed"),
    }
    AW = adapprox.torch.AdamW
    rows[W8] = (lambda ps, lr, s: AW(ps, lr=lr, betas=BETAS, weight_decay=0.0, state_precision="8bit"),
                "adapprox.torch.AdamW, state_precision='8bit' (8-bit moments, blocks of 256)")
    rows[BF16_SR] = (lambda ps, lr, s: AW(ps, lr=lr, betas=BETAS, weight_decay=0.0, stochastic_rounding=True),
                     "adapprox.torch.AdamW on a bf16 model (no float32 master weights), stochastic rounding")
    rows[BF16_RN] = (lambda ps, lr, s: AW(ps, lr=lr, betas=BETAS, weight_decay=0.0, stochastic_rounding=False),
                     "adapprox.torch.AdamW on a bf16 model (no float32 master weights), round to nearest")
    if native:
        rows[A09_8] = (lambda ps, lr, s: A(ps, lr=lr, betas=BETAS, seed=s, state_precision="8bit"),
                       "adapprox.torch.Adapprox, state_precision='8bit' (8-bit first moment), defaults but lr")
    else:
        rows[A09_8] = (None, "skipped: the native core steps CPU tensors only")
    for b1, warm, fresh in ((0.9, A09, A09F), (0.0, A0, A0F)):
        b = f", b1 = {b1:g}" if b1 != 0.9 else ""
        if native:
            rows[warm] = (lambda ps, lr, s, b1=b1: A(ps, lr=lr, betas=(b1, BETAS[1]), seed=s, warm_start=True),
                          f"adapprox.torch.Adapprox{b}, warm_start=True (the default), defaults but lr")
            rows[fresh] = (lambda ps, lr, s, b1=b1: A(ps, lr=lr, betas=(b1, BETAS[1]), seed=s, warm_start=False),
                           f"adapprox.torch.Adapprox{b}, warm_start=False (fresh sketch), defaults but lr")
        else:
            rows[warm] = (None, "skipped: the native core steps CPU tensors only and PureTorchAdapprox has no "
                                "warm start")
            rows[fresh] = (lambda ps, lr, s, b1=b1: PureTorchAdapprox(ps, lr=lr, betas=(b1, BETAS[1]), seed=s),
                           f"PureTorchAdapprox{b} (pure PyTorch, fresh sketch: the native core steps CPU tensors "
                           "only)")
    return rows


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
    logits = model(windows[:, :-1]).float()  # (a bf16 model: the loss in float32)
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


def seed_setup(seed, cfg, n_train):
    """(initial model, window starts) of one seed: the same for every row."""
    torch.manual_seed(seed)
    init_model = GPT(cfg["layers"], cfg["d_model"], cfg["heads"], cfg["ctx"])
    gen = torch.Generator().manual_seed(1000003 + seed)
    starts = torch.randint(0, n_train - cfg["ctx"] - 1, (cfg["steps"], cfg["batch"]), generator=gen)
    return init_model, starts


def train_one(name, make, lr, seed, setup, data, cfg, device, clip, quality, tag=""):
    """One run of one row at one lr and seed."""
    init_model, starts = setup
    train_data, val_data = data
    model = copy.deepcopy(init_model).to(device=device, dtype=PARAM_DTYPE.get(name, torch.float32))
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    opt = make(params, lr, seed)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    qlog = rsi_quality.RsiQualityLog(opt, names) if quality and isinstance(opt, adapprox.torch.Adapprox) else None
    steps, ctx = cfg["steps"], cfg["ctx"]
    offs = torch.arange(ctx + 1)
    evals = sorted({min(steps, max(1, round(steps * k / cfg["evals"]))) for k in range(1, cfg["evals"] + 1)})
    curve, train_loss, norms, peak_bytes, t_start = [], [], [], 0, time.perf_counter()
    fb_s = step_s = 0.0
    timed = 0
    for step in range(steps):
        s = lr_scale(step, steps)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * s
        synchronize(device)
        t0 = time.perf_counter()
        w = train_data[starts[step][:, None] + offs].to(device)
        loss = loss_of(model, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            norms.append(torch.nn.utils.clip_grad_norm_(params, clip))
        synchronize(device)
        t1 = time.perf_counter()
        if qlog:
            qlog.before_step()
        ts = time.perf_counter()
        opt.step()
        synchronize(device)
        te = time.perf_counter()
        if qlog:
            qlog.after_step()
        if step > 0 or steps == 1:  # the first step allocates the state: left out of the timing
            fb_s += t1 - t0
            step_s += te - ts
            timed += 1
        train_loss.append(loss.item())
        peak_bytes = max(peak_bytes, state_bytes(opt))
        if step + 1 in evals:
            val = evaluate(model, val_data, ctx, cfg["val_windows"], device)
            nb = state_bytes(opt)
            curve.append(dict(step=step + 1, tokens=(step + 1) * cfg["batch"] * ctx, val_loss=val,
                              state_bytes=nb, ranks=ranks_of(opt, names), wall_s=time.perf_counter() - t_start))
            print(f"  [{name}{tag} seed {seed}] step {step + 1:5d}/{steps}  train "
                  f"{sum(train_loss[-20:]) / len(train_loss[-20:]):.4f}  val {val:.4f}  state {nb / 2**20:.2f} MiB"
                  f"  {time.perf_counter() - t_start:.0f} s", flush=True)
    norms = [float(x) for x in norms]
    fb_ms, step_ms = 1e3 * fb_s / timed, 1e3 * step_s / timed
    return dict(seed=seed, lr=lr, final_val_loss=curve[-1]["val_loss"], peak_state_bytes=peak_bytes,
                final_state_bytes=curve[-1]["state_bytes"], fwd_bwd_clip_ms=fb_ms, step_ms=step_ms,
                step_share=step_ms / (fb_ms + step_ms), wall_s=time.perf_counter() - t_start, curve=curve,
                train_loss=[sig(x) for x in train_loss], final_ranks=curve[-1]["ranks"],
                grad_norm=dict(median=statistics.median(norms), max=max(norms),
                               clipped_fraction=sum(x > clip for x in norms) / len(norms)) if norms else None,
                quality=qlog.summary() if qlog else None)


def combine_seeds(runs, note, n_params, shapes):
    """One row from its seeds' runs: mean final loss and its spread, mean times, the worst memory."""
    finals = [r["final_val_loss"] for r in runs]
    fb = statistics.fmean(r["fwd_bwd_clip_ms"] for r in runs)
    st = statistics.fmean(r["step_ms"] for r in runs)
    curve = []
    for i, c in enumerate(runs[0]["curve"]):
        vals = [r["curve"][i]["val_loss"] for r in runs]
        curve.append(dict(step=c["step"], tokens=c["tokens"], val_loss=statistics.fmean(vals), val_loss_min=min(vals),
                          val_loss_max=max(vals), state_bytes=max(r["curve"][i]["state_bytes"] for r in runs)))
    quality = [r["quality"] for r in runs if r["quality"]]
    return dict(lr=runs[0]["lr"], note=note, seeds=[r["seed"] for r in runs], final_val_loss=statistics.fmean(finals),
                final_val_loss_seeds=finals, final_val_loss_min=min(finals), final_val_loss_max=max(finals),
                final_val_loss_std=statistics.stdev(finals) if len(finals) > 1 else 0.0,
                peak_state_bytes=max(r["peak_state_bytes"] for r in runs),
                final_state_bytes=max(r["final_state_bytes"] for r in runs), adamw_equiv_bytes=2 * 4 * n_params,
                fwd_bwd_clip_ms=fb, step_ms=st, step_share=st / (fb + st), curve=curve,
                final_ranks=runs[0]["final_ranks"],
                ranks_seen=sorted({k for r in runs for k in r["final_ranks"].values()}),
                quality=rsi_quality.combine(quality) if quality else None, matrix_shapes=shapes, runs=runs)


def plot(results, adamw_bytes, title):
    plt = pyplot()
    if plt is None:
        print("plots skipped: matplotlib is not installed")
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in results.items():
        xs = [c["step"] for c in r["curve"]]
        line, = a.plot(xs, [c["val_loss"] for c in r["curve"]], marker=".", label=name)
        a.fill_between(xs, [c["val_loss_min"] for c in r["curve"]], [c["val_loss_max"] for c in r["curve"]],
                       color=line.get_color(), alpha=0.15, lw=0)
        x = 100 * r["peak_state_bytes"] / adamw_bytes
        b.errorbar([x], [r["final_val_loss"]], yerr=[[r["final_val_loss"] - r["final_val_loss_min"]],
                                                     [r["final_val_loss_max"] - r["final_val_loss"]]],
                   fmt="o", color=line.get_color(), capsize=3)
        b.annotate(name, (x, r["final_val_loss"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    finals = [r["final_val_loss"] for r in results.values()]
    lo, hi = min(finals), max(finals)
    a.set_ylim(lo - 0.05, max(hi + 0.6, lo + 1.0))
    a.set_xlabel("step")
    a.set_ylabel("validation loss (nats/byte)")
    a.set_title("validation loss against step (mean over seeds, band: min..max)", fontsize=9)
    a.grid(alpha=0.3)
    a.legend(fontsize=7)
    b.set_xlabel("optimizer state, % of AdamW's (peak over the run)")
    b.set_ylabel("final validation loss (mean, bars: min..max)")
    b.set_title("final validation loss against state memory", fontsize=9)
    b.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def report(results, adamw_bytes):
    """The printed tables; returns the targets."""
    rows = []
    for name, r in results.items():
        spread = f"{r['final_val_loss_min']:.4f}..{r['final_val_loss_max']:.4f}"
        rows.append((name, f"{r['lr']:g}", f"{r['final_val_loss']:.4f}", spread, f"{r['final_val_loss_std']:.4f}",
                     f"{r['peak_state_bytes'] / 2**10:.0f}", f"{100 * r['peak_state_bytes'] / adamw_bytes:.1f}%",
                     f"{r['fwd_bwd_clip_ms']:.1f}", f"{r['step_ms']:.1f}", f"{100 * r['step_share']:.0f}%",
                     f"{r['ranks_seen'][0]}..{r['ranks_seen'][-1]}" if r["ranks_seen"] else "-"))
    n_seeds = max(len(r["seeds"]) for r in results.values())
    print(table(("optimizer", "lr", f"val loss (mean of {n_seeds})", "min..max", "std", "state KiB", "% of AdamW",
                 "fwd+bwd+clip ms", "opt.step ms", "step share", "final ranks"), rows))
    qrows = []
    for name, r in results.items():
        q = r["quality"]
        if q:
            qrows.append((name, f"{q['tol']:g}", f"{q['max_over_run']:.4e}",
                          "-" if q["max_below_cap_over_run"] is None else f"{q['max_below_cap_over_run']:.4e}",
                          f"{100 * q['exceeded_tol_fraction']:.1f}%", f"{100 * q['exceeded_tol_below_cap_fraction']:.1f}%",
                          f"{100 * q['exceeded_slack_tol_below_cap_fraction']:.1f}%",
                          f"{100 * q['steps_with_param_at_cap_fraction']:.1f}%", f"{q['seconds']:.1f}"))
    if qrows:
        print("AS-RSI quality (float64 ||Q U^T - V||_F / ||V||_F of each step's new factors, max over the matrices):")
        print(table(("optimizer", "tol", "max error", "max below cap", "steps > tol", "> tol below cap",
                     f"> {rsi_quality.SLACK:g} tol below cap (want 0)", "with a matrix at cap", "log s"), qrows))

    targets = {}
    if "AdamW" in results:
        aw = results["AdamW"]
        others = {n: results[n] for n in ("Adafactor", PEER, "CAME") if n in results}

        def below(r, o):  # mean lower; separated (2 seeds or more): the rows' seed ranges do not overlap
            out = dict(value=r["final_val_loss"] - o["final_val_loss"], met=r["final_val_loss"] < o["final_val_loss"])
            if n_seeds > 1:
                out["separated"] = (r["final_val_loss_max"] < o["final_val_loss_min"]
                                    or o["final_val_loss_max"] < r["final_val_loss_min"])
            return out
        for name in (A09, A09F):
            if name in results:
                r = results[name]
                gap = r["final_val_loss"] / aw["final_val_loss"] - 1
                saved = 1 - r["peak_state_bytes"] / aw["peak_state_bytes"]
                targets[f"{name} within 1% of AdamW"] = dict(value=gap, met=gap <= 0.01)
                targets[f"{name} saves >= 1/3 of AdamW state"] = dict(value=saved, met=saved >= 1 / 3)
                for n, o in others.items():
                    targets[f"{name} below {n}"] = below(r, o)
        for name in (A0, A0F):
            if name in results:
                r = results[name]
                share = r["peak_state_bytes"] / aw["peak_state_bytes"]
                targets[f"{name} state < 15% of AdamW"] = dict(value=share, met=share < 0.15)
                if "Adafactor" in results:
                    targets[f"{name} below Adafactor"] = below(r, results["Adafactor"])
    for k, v in targets.items():
        sep = "" if "separated" not in v else ("  (seed ranges apart)" if v["separated"] else "  (seed ranges overlap)")
        print(f"target {k}: {v['value']:+.4f} -> {'met' if v['met'] else 'NOT met'}{sep}")
    return targets


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=SIZES, default="cpu",
                    help="preset of model and budget (default cpu; quick: checks that everything runs, in seconds)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (refused when CUDA is unavailable)")
    for k, v in SIZES["cpu"].items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None, help=f"override the preset (cpu: {v})")
    ap.add_argument("--evals", type=int, default=10, help="validation evaluations per run (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per row: --seed .. --seed+N-1 (default 3)")
    ap.add_argument("--clip", type=float, default=1.0,
                    help="clip the global gradient norm to this before every opt.step, every row (default 1.0; 0 = off)")
    ap.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                    help="AS-RSI quality log of the Adapprox rows, every step (default on)")
    ap.add_argument("--threads", type=int, default=2, help="torch and adapprox threads (default 2)")
    ap.add_argument("--optimizers", default=None,
                    help="comma-separated rows (default: " + ",".join(DEFAULT) + "; also: AdamW b2=0.95)")
    ap.add_argument("--lr", action="append", default=[], metavar="NAME=LR[,LR...]",
                    help="override one optimizer's lr; several values: run each (a sweep of that optimizer)")
    ap.add_argument("--sweep", default=None, metavar="F1,F2,...",
                    help="also run each optimizer at lr x each factor (e.g. 0.5,2); report the best")
    ap.add_argument("--out", default="train", help="results file name under bench/results (default train)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    if args.clip < 0:
        ap.error("--clip must be >= 0")

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
    seeds = list(range(args.seed, args.seed + args.seeds))
    setups = {s: seed_setup(s, cfg, len(train_data)) for s in seeds}
    probe = setups[seeds[0]][0]
    n_params = sum(p.numel() for p in probe.parameters())
    shapes = {n: list(p.shape) for n, p in probe.named_parameters() if p.dim() >= 2}
    tokens = cfg["steps"] * cfg["batch"] * cfg["ctx"]
    adamw_bytes = 2 * 4 * n_params
    print(f"GPT: {cfg['layers']} layers, d_model {cfg['d_model']}, {cfg['heads']} heads, context {cfg['ctx']}, "
          f"byte vocabulary, {n_params / 1e6:.2f}M params; device {device}, {args.threads} threads")
    print(f"corpus: {corpus['files']} stdlib files, {corpus['train_bytes'] / 1e6:.2f} MB train / "
          f"{corpus['val_bytes'] / 1e6:.2f} MB validation (whole files); budget {cfg['steps']} steps x {cfg['batch']} "
          f"x {cfg['ctx']} = {tokens / 1e6:.2f}M tokens ({tokens / corpus['train_bytes']:.2f} epochs); seeds {seeds}; "
          + (f"gradient norm clipped to {args.clip:g}" if args.clip > 0 else "no gradient clipping"))
    for n, why in skipped.items():
        print(f"  {n}: {why}")

    factors = [1.0] + ([float(f) for f in args.sweep.split(",")] if args.sweep else [])
    results, sweep = {}, {}
    for name in chosen:
        make = table_[name][0]
        if make is None:
            continue
        rows = {}
        grid = grids.get(name, [lrs[name] * f for f in factors])
        for lr in grid:
            runs = [train_one(name, make, lr, s, setups[s], (train_data, val_data), cfg, device, args.clip,
                              args.quality, tag="" if len(grid) == 1 else f" lr {lr:g}") for s in seeds]
            rows[lr] = combine_seeds(runs, table_[name][1], n_params, shapes)
        best = min(rows, key=lambda k: rows[k]["final_val_loss"])
        results[name] = rows[best]
        if len(grid) > 1:
            sweep[name] = {f"{lr:g}": r["final_val_loss"] for lr, r in sorted(rows.items())}
            print(f"  [{name}] sweep (mean over seeds): " + ", ".join(f"lr {k}: {v:.4f}" for k, v in sweep[name].items())
                  + f" -> best {best:g}" + ("  (AT THE EDGE of the grid)" if best in (min(rows), max(rows)) else ""))
    if not results:
        raise SystemExit("no optimizer ran (every chosen row was skipped)")

    targets = report(results, adamw_bytes)
    title = (f"GPT {cfg['layers']}x{cfg['d_model']} ({n_params / 1e6:.2f}M params), {tokens / 1e6:.2f}M tokens of stdlib "
             f"source, {len(seeds)} seed(s), clip {args.clip:g}, device {device}")
    fig = plot(results, adamw_bytes, title)
    png = save_figure(fig, args.out) if fig is not None else None
    qrows = {n: [run["quality"] for run in r["runs"]] for n, r in results.items() if r["quality"]}
    qfig = rsi_quality.plot(qrows, "AS-RSI relative error of each step's factors; " + title) if qrows else None
    qpng = save_figure(qfig, args.out + "_rsi_quality") if qfig is not None else None
    path = write_results(args.out, dict(
        config=dict(cfg, size=args.size, device=str(device), seeds=seeds, threads=args.threads, n_params=n_params,
                    tokens=tokens, betas=BETAS, schedule="linear warm-up 5%, cosine to 10%", weight_decay=0.0,
                    grad_clip_norm=args.clip or None, quality_log=args.quality, lr=lrs,
                    sweep_factors=factors[1:] or None,
                    seed_rule="weights: torch.manual_seed(s); batches: torch.Generator().manual_seed(1000003 + s); "
                              "Adapprox sketch seed: s",
                    timing="perf_counter around forward+backward+clip and around opt.step, the first step left out"),
        corpus=corpus, skipped=skipped, optimizers=results, sweep=sweep or None, targets=targets,
        plot=png.name if png else None, quality_plot=qpng.name if qpng else None))
    print(f"wrote {path}" + "".join(f" and {p}" for p in (png, qpng) if p))

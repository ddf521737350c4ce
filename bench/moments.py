"""Suite `moments`: how closely low-precision moments follow float32 ones.

One fixed sequence of gradients (64 x 48, per-element magnitudes exp(N(0, 1)), mean 0.3 of the
magnitude) goes into torch.optim.AdamW and into adapprox.torch.AdamW with each state_precision;
after --steps steps the moments it holds are decoded to float32 (by loading its state_dict into
a float32 optimizer) and compared with torch's: relative Frobenius error and relative bias
(sum of differences over sum of magnitudes), and the parameters' relative distance.
"""
from __future__ import annotations

import argparse

import torch

import adapprox.torch as at

from .common import table, write_results


def held_moments(precision, steps, seed=5):
    """(the moments adapprox.torch.AdamW at `precision` holds, decoded to float32; torch.optim.AdamW's
    moments; the two parameters) after `steps` steps of the gradient sequence of `seed`."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.exp(torch.randn(64, 48, generator=g))
    p, r = torch.zeros(64, 48, requires_grad=True), torch.zeros(64, 48, requires_grad=True)
    opt = at.AdamW([p], lr=1e-3, state_precision=precision)
    ref = torch.optim.AdamW([r], lr=1e-3)
    for _ in range(steps):
        grad = torch.randn(64, 48, generator=g) * scale + 0.3 * scale
        p.grad, r.grad = grad.clone(), grad.clone()
        opt.step()
        ref.step()
    full = at.AdamW([torch.zeros(64, 48, requires_grad=True)])
    sd = opt.state_dict()
    sd["param_groups"][0]["state_precision"] = "fp32"
    full.load_state_dict(sd)  # decoded by the state_precision conversion
    return next(iter(full.state.values())), ref.state[r], p, r


def run(precision, steps, seed=5):
    st, rst, p, r = held_moments(precision, steps, seed)
    out = dict(precision=precision, steps=steps, param_rel=((p - r).norm() / r.norm()).item())
    for k in ("exp_avg", "exp_avg_sq"):
        out[k + "_rel"] = ((st[k] - rst[k]).norm() / rst[k].norm()).item()
        out[k + "_bias"] = ((st[k] - rst[k]).sum() / rst[k].abs().sum()).item()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench moments", description=__doc__)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    results = [run(prec, args.steps) for prec in ("bf16", "8bit")]
    print(table(("state_precision", "steps", "m error", "m bias", "v error", "v bias", "params"),
                [(r["precision"], r["steps"], f"{100 * r['exp_avg_rel']:.1f}%", f"{100 * r['exp_avg_bias']:+.2f}%",
                  f"{100 * r['exp_avg_sq_rel']:.1f}%", f"{100 * r['exp_avg_sq_bias']:+.2f}%",
                  f"{100 * r['param_rel']:.1f}%") for r in results]))
    path = write_results("moments", dict(results=results))
    print(f"wrote {path}")

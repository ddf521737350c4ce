"""Suite `glm`: every optimizer of the library on small convex problems, full batch.

Problems (float32 parameters starting at zero; f* computed once in float64, by least squares or
L-BFGS, so the loss is reported as the suboptimality f - f*):

* ``breast-cancer``: L2-regularised logistic regression on scikit-learn's breast-cancer data
  (569 x 30, standardised features), weight vector + bias.
* ``digits``: L2-regularised multinomial regression on scikit-learn's digits (1797 x 64, pixels
  / 16), weight matrix 64 x 10 + bias.
* ``ls-isotropic``, ``ls-anisotropic``, ``ls-correlated``: matrix least squares
  0.5/n ||A X - B||^2, A n x d with rows drawn from N(0, S), X d x k, B = A X* + noise: S = I;
  S diagonal with eigenvalues log-spaced from 1 to 1/condition; S Toeplitz rho^|i-j|.

Each optimizer gets its best learning rate from one grid (the same for all, `--lrs`), chosen by
the final objective of the run (this is an optimisation benchmark: the training objective is the
score). Reported: f - f* after every iteration against iterations and against wall time (the time
of forward, backward and step; noisy on a shared machine), the best lr, and the final values.

Rows are one line each in `OPTIMIZERS`: (row name, class name in ``adapprox.torch``, keyword
arguments). A class that ``adapprox.torch`` does not have (yet) is skipped and listed as such.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

import adapprox
import adapprox.torch

from .common import pyplot, save_figure, sig, table, write_results

GRAM_LRS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)

# (row, class name in adapprox.torch, keyword arguments besides lr; "lrs" replaces the shared grid
# for that row). Adding an optimizer is one line.
OPTIMIZERS = [
    ("Adapprox", "Adapprox", dict(betas=(0.9, 0.999))),
    ("Adapprox b1=0", "Adapprox", dict(betas=(0.0, 0.999))),
    ("Adafactor (torch)", "Adafactor", dict()),
    ("Adafactor (paper, b1=0.9)", "Adafactor", dict(mode="paper", beta1=0.9, relative_step=False, scale_parameter=False)),
    ("Adam", "Adam", dict()),
    ("NAdam", "NAdam", dict()),
    ("RMSprop", "RMSprop", dict()),
    ("Adagrad", "Adagrad", dict()),
    ("SGD momentum 0.9", "SGD", dict(momentum=0.9)),
    ("SignSGD momentum 0.9", "SignSGD", dict(momentum=0.9)),
    # AdaGram's and FullMatrixAdagrad's step has norm below lr over the whole parameter, where a
    # diagonal method moves every coordinate by about lr: their grids reach higher.
    ("AdaGram rank 1", "AdaGram", dict(rank=1, lrs=GRAM_LRS)),
    ("AdaGram rank 2", "AdaGram", dict(rank=2, lrs=GRAM_LRS)),
    ("AdaGram rank 3", "AdaGram", dict(rank=3, lrs=GRAM_LRS)),
    ("AdaGram rank 4", "AdaGram", dict(rank=4, lrs=GRAM_LRS)),
    ("AdaGram rank 5", "AdaGram", dict(rank=5, lrs=GRAM_LRS)),
    # AdaGram with forgetting (forget = 0.9: the accumulated term discounted by 10% a step)
    ("AdaGram forget 0.9 rank 1", "AdaGram", dict(rank=1, forget=0.9, lrs=GRAM_LRS)),
    ("AdaGram forget 0.9 rank 2", "AdaGram", dict(rank=2, forget=0.9, lrs=GRAM_LRS)),
    ("AdaGram forget 0.9 rank 3", "AdaGram", dict(rank=3, forget=0.9, lrs=GRAM_LRS)),
    ("AdaGram forget 0.9 rank 4", "AdaGram", dict(rank=4, forget=0.9, lrs=GRAM_LRS)),
    ("AdaGram forget 0.9 rank 5", "AdaGram", dict(rank=5, forget=0.9, lrs=GRAM_LRS)),
    # an eigendecomposition per step (about 0.1 s at 640 elements): a shorter grid
    ("FullMatrixAdagrad", "FullMatrixAdagrad", dict(lrs=(1.0, 3.0, 10.0, 30.0))),
]
# Rows left out on purpose, with the reason (listed in the output like the skipped ones).
LEFT_OUT = {"AdamW": "with weight_decay=0 it is Adam (the objectives carry their own L2 term)"}

LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)


# ------------------------------------------------------------------------------------- problems

def _standardise(x):
    return (x - x.mean(0)) / x.std(0).clamp_min(1e-12)


def logistic(x, y, l2):
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    shapes = [(x.shape[1],), ()]

    def loss(w, b):
        z = x.to(w.dtype) @ w + b
        return F.binary_cross_entropy_with_logits(z, y.to(w.dtype)) + 0.5 * l2 * w.square().sum()
    return shapes, loss


def multinomial(x, y, classes, l2):
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.long)
    shapes = [(x.shape[1], classes), (classes,)]

    def loss(w, b):
        return F.cross_entropy(x.to(w.dtype) @ w + b, y) + 0.5 * l2 * w.square().sum()
    return shapes, loss


def least_squares(kind, n, d, k, condition, rho, noise, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    if kind == "isotropic":
        a = z
    elif kind == "anisotropic":
        a = z * torch.logspace(0, -math.log10(condition), d, dtype=torch.float64).sqrt()
    else:  # correlated: Toeplitz covariance rho^|i-j|
        idx = torch.arange(d, dtype=torch.float64)
        cov = rho ** (idx[:, None] - idx[None, :]).abs()
        a = z @ torch.linalg.cholesky(cov).T
    x_true = torch.randn(d, k, generator=g, dtype=torch.float64)
    b = a @ x_true + noise * torch.randn(n, k, generator=g, dtype=torch.float64)
    x_star = torch.linalg.lstsq(a, b).solution

    def loss(x):
        return 0.5 * (a.to(x.dtype) @ x - b.to(x.dtype)).square().sum() / n
    return [(d, k)], loss, loss(x_star).item()


def lbfgs_minimum(shapes, loss, iters=500):
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    opt = torch.optim.LBFGS(params, lr=1, max_iter=iters, tolerance_grad=1e-12, tolerance_change=1e-15,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = loss(*params)
        value.backward()
        return value
    opt.step(closure)
    return loss(*params).item()


PROBLEMS = ("breast-cancer", "digits", "ls-isotropic", "ls-anisotropic", "ls-correlated")


def build_problems(args, wanted):
    """name -> (parameter shapes, loss(*params), f*, description), for the names in `wanted`."""
    probs = {}
    try:
        from sklearn.datasets import load_breast_cancer, load_digits
    except ImportError:
        print("breast-cancer and digits skipped: scikit-learn is not installed")
        wanted = [w for w in wanted if w.startswith("ls-")]
    if "breast-cancer" in wanted:
        bc = load_breast_cancer()
        shapes, loss = logistic(_standardise(torch.as_tensor(bc.data)), bc.target, args.l2)
        probs["breast-cancer"] = (shapes, loss, lbfgs_minimum(shapes, loss),
                                  f"logistic, {bc.data.shape[0]} x {bc.data.shape[1]}, l2 {args.l2:g}")
    if "digits" in wanted:
        dg = load_digits()
        shapes, loss = multinomial(torch.as_tensor(dg.data) / 16.0, dg.target, 10, args.l2)
        probs["digits"] = (shapes, loss, lbfgs_minimum(shapes, loss),
                           f"multinomial, {dg.data.shape[0]} x {dg.data.shape[1]}, 10 classes, l2 {args.l2:g}")
    for kind in ("isotropic", "anisotropic", "correlated"):
        if "ls-" + kind not in wanted:
            continue
        shapes, loss, fstar = least_squares(kind, args.n, args.d, args.k, args.condition, args.rho, 0.1, args.seed)
        extra = {"isotropic": "S = I", "anisotropic": f"condition {args.condition:g}",
                 "correlated": f"Toeplitz rho {args.rho:g}"}[kind]
        probs["ls-" + kind] = (shapes, loss, fstar, f"least squares, A {args.n} x {args.d}, X {args.d} x {args.k}, {extra}")
    return probs


# ---------------------------------------------------------------------------------------- runs

def run(cls, kwargs, lr, shapes, loss, fstar, iters):
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    opt = cls(params, lr=lr, **kwargs)
    gaps, times, elapsed = [], [], 0.0
    for _ in range(iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        value = loss(*params)
        value.backward()
        opt.step()
        elapsed += time.perf_counter() - t0
        v = value.item()
        if not math.isfinite(v):
            return None
        gaps.append(v - fstar)
        times.append(elapsed)
    with torch.no_grad():
        final = loss(*[p.double() for p in params]).item() - fstar
    if not math.isfinite(final):
        return None
    return dict(gaps=gaps, times=times, final_gap=final)


def plot(results, problems, iters):
    plt = pyplot()
    if plt is None:
        print("plots skipped: matplotlib is not installed")
        return []
    figs = []
    for xkey, xlabel, name in (("iters", "iteration", "glm"), ("times", "wall time (s, noisy)", "glm_time")):
        fig, axes = plt.subplots(2, 3, figsize=(13, 7))
        axes = axes.ravel()
        handles = {}
        styles = {row: ("-", "--", ":")[i // 10] for i, row in enumerate(dict.fromkeys(
            row for prob in problems for row in results[prob]))}  # tab10 colours repeat after ten rows
        for ax, prob in zip(axes, problems):
            for row, r in results[prob].items():
                ys = [max(g, 1e-10) for g in r["gaps"]]
                xs = list(range(1, len(ys) + 1)) if xkey == "iters" else r["times"]
                h, = ax.plot(xs, ys, lw=1.0, ls=styles[row], label=row)
                handles.setdefault(row, h)
            ax.set_yscale("log")
            ax.set_title(prob, fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel("f - f*", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in axes[len(problems):]:
            ax.axis("off")
        axes[-1].legend(handles.values(), handles.keys(), loc="center", fontsize=8)
        fig.suptitle(f"full-batch convex problems, best lr per optimizer, {iters} iterations", fontsize=9)
        fig.tight_layout()
        figs.append((name, fig))
    return figs


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench glm", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=300, help="full-batch iterations per run (default 300)")
    ap.add_argument("--lrs", default=",".join(f"{x:g}" for x in LRS), help="learning-rate grid, same for all")
    ap.add_argument("--problems", default=None, help="comma-separated subset of " + ",".join(PROBLEMS))
    ap.add_argument("--optimizers", default=None, help="comma-separated subset of the rows")
    ap.add_argument("--l2", type=float, default=1e-3, help="L2 term of the regressions (default 1e-3)")
    ap.add_argument("--n", type=int, default=1000, help="least squares: rows of A")
    ap.add_argument("--d", type=int, default=50, help="least squares: columns of A")
    ap.add_argument("--k", type=int, default=10, help="least squares: columns of X and B")
    ap.add_argument("--condition", type=float, default=1e3, help="anisotropic: condition number of S")
    ap.add_argument("--rho", type=float, default=0.95, help="correlated: Toeplitz coefficient")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch and adapprox threads (default 1: small problems)")
    ap.add_argument("--out", default="glm", help="results file name under bench/results (default glm)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    adapprox.set_num_threads(args.threads)
    lrs = [float(x) for x in args.lrs.split(",")]

    rows, skipped = [], dict(LEFT_OUT)
    for row, cls_name, kwargs in OPTIMIZERS:
        if args.optimizers and row not in args.optimizers.split(","):
            continue
        cls = getattr(adapprox.torch, cls_name, None)
        if cls is None:
            skipped[row] = f"adapprox.torch.{cls_name} does not exist in this build"
        else:
            kw = dict(kwargs)
            rows.append((row, cls, kw, tuple(kw.pop("lrs", ()))))
    for row, why in skipped.items():
        print(f"skipped {row}: {why}")

    wanted = args.problems.split(",") if args.problems else list(PROBLEMS)
    unknown = [w for w in wanted if w not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown problems {unknown}; choose from {list(PROBLEMS)}")
    problems = build_problems(args, wanted)
    results, summary, t_start = {}, {}, time.perf_counter()
    for prob, (shapes, loss, fstar, desc) in problems.items():
        print(f"{prob}: {desc}; f* = {fstar:.6g}", flush=True)
        results[prob], summary[prob] = {}, {}
        for row, cls, kwargs, own_lrs in rows:
            grid = list(own_lrs) or lrs
            finals, best = {}, None
            for lr in grid:
                r = run(cls, kwargs, lr, shapes, loss, fstar, args.iters)
                finals[f"{lr:g}"] = None if r is None else r["final_gap"]
                if r is not None and (best is None or r["final_gap"] < best[1]["final_gap"]):
                    best = (lr, r)
            if best is None:
                print(f"  {row}: diverged at every lr")
                summary[prob][row] = dict(best_lr=None, final_gap=None, by_lr=finals)
                continue
            lr, r = best
            results[prob][row] = r
            summary[prob][row] = dict(best_lr=lr, final_gap=r["final_gap"], by_lr=finals,
                                      edge=lr in (min(grid), max(grid)), wall_s=r["times"][-1])
            print(f"  {row:28s} best lr {lr:<6g} f - f* {r['final_gap']:.3e}"
                  f"{'  (edge of the grid)' if lr in (min(grid), max(grid)) else ''}"
                  f"  ({time.perf_counter() - t_start:.0f} s)", flush=True)

    names = [r[0] for r in rows]
    lines = []
    for row in names:
        line = [row]
        for prob in problems:
            s = summary[prob].get(row, {})
            line.append("diverged" if s.get("final_gap") is None else f"{s['final_gap']:.2e} @{s['best_lr']:g}")
        lines.append(line)
    print("final f - f* @ best lr")
    print(table(["optimizer", *problems], lines))

    pngs = [save_figure(fig, args.out + name[3:], dpi=72).name for name, fig in plot(results, list(problems), args.iters)]
    every = max(1, args.iters // 100)  # the JSON keeps about 100 points per curve, 4 significant digits
    path = write_results(args.out, dict(
        config=dict(iters=args.iters, lrs=lrs, l2=args.l2, n=args.n, d=args.d, k=args.k, condition=args.condition,
                    rho=args.rho, seed=args.seed, threads=args.threads, init="zeros", dtype="float32",
                    rows={row: dict(cls=c.__name__, kwargs=kw, lrs=list(own) or None) for row, c, kw, own in rows}),
        problems={p: dict(description=v[3], fstar=v[2]) for p, v in problems.items()},
        skipped=skipped, summary=summary,
        curves={p: {row: dict(iteration=list(range(1, args.iters + 1))[every - 1::every],
                              gap=[sig(g) for g in r["gaps"][every - 1::every]],
                              time_s=[sig(t) for t in r["times"][every - 1::every]])
                    for row, r in res.items()} for p, res in results.items()},
        plots=pngs))
    print(f"wrote {path}" + (" and " + ", ".join(pngs) if pngs else ""))

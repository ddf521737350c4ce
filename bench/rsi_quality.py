"""AS-RSI quality log for `python -m bench train`: how well each step's factors fit the matrix
Adapprox meant them to approximate, recomputed independently in float64.

For every factored parameter of an ``adapprox.torch.Adapprox`` (N-D parameters viewed as
(shape[0], rest), as the optimizer views them) and every step t, with G_t the gradient as the
optimizer receives it (after the benchmark's gradient clipping) and Q_{t-1}, U_{t-1} the factors
in its state before the step (none on the first step)::

    V_t = beta2 Q_{t-1} U_{t-1}^T + (1 - beta2) G_t**2        (V_1 = (1 - beta2) G_1**2)
    err = ||Q_t U_t^T - V_t||_F / ||V_t||_F                    (0 when V_t = 0)

with Q_t, U_t the factors the step wrote. ``maximize`` does not enter (only G**2 does). Next to the
error: the rank k_t = Q_t.shape[1] and whether it sits at the rank cap (the optimizer's
max_rank, or max(1, min(m, n) // 4) when None; never above min(m, n), never below min_rank).
AS-RSI promises err <= tol whenever k_t is below the cap; at the cap it gives the best it can.
Its own error estimate, err^2 = ||V||_F^2 - sum_i sigma_i^2 from float32 products, cancels: the
exact error of a rank it accepted can sit a few tenths of a percent above tol. So the log counts
the steps over tol below the cap (strict) and, separately, those over SLACK x tol.
"""
from __future__ import annotations

import time

import torch

from .common import pyplot, sig

SLACK = 1.01  # "over tol" beyond the rounding of the core's own error estimate


def rank_cap(group, m: int, n: int) -> int:
    """The largest rank AS-RSI may pick for an m x n matrix (the core's resolve_rank_bounds)."""
    full = min(m, n)
    cap = min(full, group["max_rank"] if group["max_rank"] else max(1, full // 4))
    return max(cap, min(group["min_rank"], full))


class RsiQualityLog:
    """Call ``before_step()`` after the gradients are final (clipped) and ``after_step()`` right
    after ``opt.step()``; ``summary()`` gives the run's record. The work is outside the timed
    regions of the benchmark (``seconds`` says how much it cost)."""

    def __init__(self, opt, names):
        self.opt = opt
        self.params = []  # (name, parameter, group)
        named = dict(zip((id(p) for p in _params(opt)), names))
        for group in opt.param_groups:
            for p in group["params"]:
                if p.dim() >= 2 and p.numel() > 0:
                    self.params.append((named.get(id(p), f"param{len(self.params)}"), p, group))
        self.steps = []  # one dict per step
        self.per_param_max = {name: 0.0 for name, _, _ in self.params}
        self.tols = sorted({float(g["tol"]) for _, _, g in self.params})
        self.seconds = 0.0
        self._pending = None

    @torch.no_grad()
    def before_step(self):
        t0 = time.perf_counter()
        pending = []
        for name, p, group in self.params:
            if p.grad is None:
                continue
            beta2 = float(group["betas"][1])
            g = p.grad.detach().reshape(p.shape[0], -1).to(torch.float64)
            v = (1 - beta2) * g * g
            st = self.opt.state.get(p, {})
            if "factor_q" in st and st["factor_q"].shape[1] > 0:
                q = st["factor_q"].detach().to(torch.float64)  # a copy: the step may overwrite the factors
                u = st["factor_u"].detach().to(torch.float64)
                v += beta2 * (q @ u.T)
            pending.append((name, p, group, v))
        self._pending = pending
        self.seconds += time.perf_counter() - t0

    @torch.no_grad()
    def after_step(self):
        t0 = time.perf_counter()
        worst = None  # (err, name, rank, cap)
        worst_free = None  # the same over the parameters whose rank is below the cap
        bad, bad_slack, at_cap = [], [], 0
        for name, p, group, v in self._pending:
            st = self.opt.state[p]
            q = st["factor_q"].detach().to(torch.float64)
            u = st["factor_u"].detach().to(torch.float64)
            m, n = v.shape
            norm = torch.linalg.matrix_norm(v).item()
            err = torch.linalg.matrix_norm(q @ u.T - v).item() / norm if norm > 0 else 0.0
            k, cap = int(q.shape[1]), rank_cap(group, m, n)
            self.per_param_max[name] = max(self.per_param_max[name], err)
            rec = (err, name, k, cap)
            if worst is None or err > worst[0]:
                worst = rec
            if k < cap:
                if worst_free is None or err > worst_free[0]:
                    worst_free = rec
                if err > group["tol"]:
                    bad.append(name)
                if err > SLACK * group["tol"]:
                    bad_slack.append(name)
            else:
                at_cap += 1
        self._pending = None
        if worst is not None:
            self.steps.append(dict(err=worst[0], param=worst[1], rank=worst[2], cap=worst[3],
                                   err_below_cap=None if worst_free is None else worst_free[0],
                                   exceeded_below_cap=bad, exceeded_slack_below_cap=bad_slack, at_cap=at_cap))
        self.seconds += time.perf_counter() - t0

    def summary(self) -> dict:
        s = self.steps
        n = max(1, len(s))
        tol = max(self.tols) if self.tols else None
        free = [r["err_below_cap"] for r in s if r["err_below_cap"] is not None]
        return dict(
            tol=tol, steps=len(s), factored_params=len(self.params),
            max_rel_err=[sig(r["err"], 6) for r in s],  # per step, max over the parameters
            max_rel_err_below_cap=[None if r["err_below_cap"] is None else sig(r["err_below_cap"], 6) for r in s],
            # the matrix of max_rel_err: its name, rank and whether the rank is at its cap
            worst_param=[r["param"] for r in s], worst_rank=[r["rank"] for r in s],
            worst_at_cap=[r["rank"] >= r["cap"] for r in s],
            max_over_run=max((r["err"] for r in s), default=0.0),
            max_below_cap_over_run=max(free, default=None),
            exceeded_tol_fraction=sum(r["err"] > tol for r in s) / n if tol is not None else None,
            exceeded_tol_below_cap_steps=[i + 1 for i, r in enumerate(s) if r["exceeded_below_cap"]],
            exceeded_tol_below_cap_fraction=sum(bool(r["exceeded_below_cap"]) for r in s) / n,
            exceeded_tol_below_cap_params=sorted({x for r in s for x in r["exceeded_below_cap"]}),
            slack=SLACK,
            exceeded_slack_tol_below_cap_steps=[i + 1 for i, r in enumerate(s) if r["exceeded_slack_below_cap"]],
            exceeded_slack_tol_below_cap_fraction=sum(bool(r["exceeded_slack_below_cap"]) for r in s) / n,
            steps_with_param_at_cap_fraction=sum(r["at_cap"] > 0 for r in s) / n,
            per_param_max={k: sig(v, 6) for k, v in self.per_param_max.items()},
            seconds=round(self.seconds, 3))


def _params(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def combine(records) -> dict:
    """The seeds' records of one row together: their worst figures and the step-weighted fractions."""
    steps = sum(r["steps"] for r in records) or 1
    free = [r["max_below_cap_over_run"] for r in records if r["max_below_cap_over_run"] is not None]
    return dict(
        tol=records[0]["tol"],
        max_over_run=max(r["max_over_run"] for r in records),
        max_below_cap_over_run=max(free, default=None),
        exceeded_tol_fraction=sum(r["exceeded_tol_fraction"] * r["steps"] for r in records) / steps,
        exceeded_tol_below_cap_fraction=sum(r["exceeded_tol_below_cap_fraction"] * r["steps"] for r in records) / steps,
        slack=SLACK,
        exceeded_slack_tol_below_cap_fraction=sum(r["exceeded_slack_tol_below_cap_fraction"] * r["steps"]
                                                  for r in records) / steps,
        steps_with_param_at_cap_fraction=sum(r["steps_with_param_at_cap_fraction"] * r["steps"] for r in records) / steps,
        seconds=round(sum(r["seconds"] for r in records), 3))


def plot(rows: dict, title: str):
    """rows: row name -> list of per-seed records (summary()). Error per step, log scale, tol dashed;
    left the max over every matrix, right over the matrices whose rank is below its cap."""
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    tols = {rec["tol"] for records in rows.values() for rec in records if rec["tol"]}
    for ax, key, what in ((axes[0], "max_rel_err", "every matrix"),
                          (axes[1], "max_rel_err_below_cap", "matrices below their rank cap")):
        for name, records in rows.items():
            color = None
            for i, rec in enumerate(records):  # the first seed solid, the others faint
                pts = [(x, max(y, 1e-12)) for x, y in enumerate(rec[key], 1) if y is not None]
                line, = ax.plot([x for x, _ in pts], [y for _, y in pts], lw=1.0 if i == 0 else 0.6,
                                alpha=1.0 if i == 0 else 0.4, color=color, label=name if i == 0 else None)
                color = line.get_color()
        for tol in tols:
            ax.axhline(tol, color="k", ls="--", lw=1, label=f"tol {tol:g}")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"max over {what}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("||Q_t U_t^T - V_t||_F / ||V_t||_F (float64)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig

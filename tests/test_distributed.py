"""adapprox.torch under torch.distributed (gloo on CPU, 1, 2 and 4 processes).

DDP with every optimizer, and FSDP2 (fully_shard, DTensor parameters sharded by rows) with the
elementwise family, whose shards step locally with state sharded alike, and with AdaGram and
FullMatrixAdagrad, which gather each sharded parameter and step it whole on every rank. Each rank
feeds the same batch, so the averaged gradient equals the single-process one exactly (sums of 2
or 4 equal numbers and the division by 2 or 4 are exact), and results must equal the
single-process optimizer's bit for bit. The models have 7 and 3 output rows: neither rank count
divides them.

Adafactor and Adapprox, whose statistics span the whole matrix, step FSDP2's row shards with
those statistics all-reduced over ranks: they must match the single-process optimizer within
float32 rounding (sums run in another order), Adapprox with the same ranks, on a model whose
row counts (37, 6000, 11 and a 3-D parameter with 5 matrices) leave a rank with an empty shard
at 4 ranks, and a 6000-row matrix whose sketch takes the distributed CholeskyQR2 path.
Checkpoints saved with torch.distributed.checkpoint on 4 ranks load on 2 and continue. A rank
that refuses a step (bad input there) makes every rank raise; a rank that never reaches the
step makes the others raise when the collective timeout expires."""
from __future__ import annotations

import functools
import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import adapprox.torch as at

ELEMENTWISE = [("Adam", dict(weight_decay=0.1)), ("AdamW", dict(amsgrad=True)), ("NAdam", dict()),
               ("RMSprop", dict(momentum=0.9, centered=True)), ("Adagrad", dict(lr_decay=0.01)),
               ("SGD", dict(momentum=0.9, nesterov=True)), ("SignSGD", dict(momentum=0.9))]
FACTORED = [("Adafactor", dict()), ("Adapprox", dict(betas=(0.9, 0.999))), ("AdaGram", dict(rank=2)),
            ("FullMatrixAdagrad", dict())]
ROW_SHARDED = [("Adafactor", dict(lr=0.01)), ("Adafactor", dict(lr=0.01, mode="paper", beta1=0.9, weight_decay=0.1)),
               ("Adapprox", dict(lr=0.01, betas=(0.9, 0.999), rank=8, max_rank=24)),
               ("Adapprox", dict(lr=0.01, betas=(0.0, 0.99), cosine_guidance=False, tol=0.05, power_iters=2)),
               ("Adapprox", dict(lr=0.01, betas=(0.9, 0.99), cosine_guidance=True, weight_decay=0.1, warm_start=False)),
               ("Adapprox", dict(lr=0.01, betas=(0.9, 0.99), cosine_guidance=True, weight_decay=0.1))]
GATHERED = [("AdaGram", dict(rank=2)), ("FullMatrixAdagrad", dict())]  # sharded: stepped whole on every rank
STEPS = 3


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _batches():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(8, 5, generator=g) for _ in range(STEPS)]


def _single(name, kw):
    """The single-process run: parameters and state after STEPS steps."""
    m = _model()
    opt = getattr(at, name)(m.parameters(), lr=0.01, **kw)
    for x in _batches():
        opt.zero_grad()
        m(x).pow(2).sum().backward()
        opt.step()
    return [p.detach().clone() for p in m.parameters()], opt


def _rank_main(body):
    """A spawned rank: `body(rank, ..., out)` returns its result lines, or its traceback is kept;
    either is written to `out.RANK`, and the process leaves without interpreter teardown (one CI
    run saw a rank abort with "terminate called without an active exception" after its checks)."""
    @functools.wraps(body)
    def run(rank, *args):
        try:
            text = "\n".join(body(rank, *args))
        except BaseException:
            text = "FAIL\n" + traceback.format_exc()
        with open(f"{args[-1]}.{rank}", "w") as f:
            f.write(text)
        os._exit(0)
    return run


class _Wide(torch.nn.Module):
    """Linear 24 -> 37 -> 6000 -> 11 and a (5, 11, 3) parameter: rows 37, 6000, 11, 5 over ranks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(24, 37)
        self.b = torch.nn.Linear(37, 6000)
        self.c = torch.nn.Linear(6000, 11)
        self.w = torch.nn.Parameter(torch.randn(5, 11, 3) * 0.3)

    def forward(self, x):
        h = self.c(torch.tanh(self.b(torch.tanh(self.a(x)))))
        return torch.einsum("bi,kij->bkj", h, self.w)


def _wide_batches():
    g = torch.Generator().manual_seed(2)
    return [torch.randn(16, 24, generator=g) for _ in range(STEPS)]


def _wide_run(name, kw, m):
    opt = getattr(at, name)(m.parameters(), **kw)
    for x in _wide_batches():
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
    return opt


# Tolerances, relative to each tensor's largest element. Adafactor's sums only change order.
# Adapprox's factors come from an iterated randomized approximation of those sums: a rounding
# difference moves Q U^T slightly, and the gradients of the next steps with it. Measured here
# after 3 steps on 2 and 4 ranks: Adafactor 0 (bitwise); Adapprox 4e-5 to 1.3e-4 with the fresh
# sketch, 5e-4 to 6.2e-4 warm-started (one pass from the last basis is less converged than
# power iterations, so it moves more with rounding). A missing or partial all-reduce gives O(1).
TOLERANCE = {"Adafactor": 2e-5, "Adapprox": 2e-3}


def _close(a, b, what, rel):
    """The largest error relative to b's largest element; raises past `rel`."""
    scale = b.abs().max().item() if b.numel() else 0.0
    if a.shape == b.shape and (a.numel() == 0 or scale == 0):
        return (a - b).abs().max().item() if a.numel() else 0.0
    if a.shape != b.shape or not torch.allclose(a, b, rtol=rel, atol=rel * scale + 1e-12):
        err = (a - b).abs().max().item() / max(scale, 1e-30) if a.shape == b.shape else \
            f"shapes {tuple(a.shape)} {tuple(b.shape)}"
        raise AssertionError(f"{what} differs from the single-process run (max error {err:.3g} of the largest "
                             f"element, tolerance {rel})")
    return (a - b).abs().max().item() / scale


def _compare_rows(name, label, m, opt, ref_m, ref_opt):
    """Parameters and state within float32 rounding of the single-process run; Adapprox's second
    moment compared as Q U^T (the factors' column signs are arbitrary), its ranks exactly. Returns
    the largest relative error seen."""
    rel, worst = TOLERANCE[name], 0.0
    for i, (p, r) in enumerate(zip(m.parameters(), ref_m.parameters())):
        worst = max(worst, _close(_full(p.detach()), r.detach(), f"{label}: params[{i}]", rel))
        st, rst = opt.state[p], ref_opt.state[r]
        assert set(st) == set(rst), (label, i, set(st), set(rst))
        if "factor_q" in rst:
            q, u = _full(st["factor_q"]), _full(st["factor_u"])
            assert q.shape == rst["factor_q"].shape and u.shape == rst["factor_u"].shape, \
                f"{label}: params[{i}] rank {q.shape[1]}, single process {rst['factor_q'].shape[1]}"
            worst = max(worst, _close(q @ u.T, rst["factor_q"] @ rst["factor_u"].T, f"{label}: params[{i}] Q U^T", rel))
        for k, v in rst.items():
            if k not in ("factor_q", "factor_u"):
                worst = max(worst, _close(_full(st[k]).to(v.dtype), v, f"{label}: params[{i}] state '{k}'", rel))
    return worst


def _shard_all(m):
    from torch.distributed.fsdp import fully_shard
    for sub in (m.a, m.b, m.c):
        fully_shard(sub)
    fully_shard(m)
    return m


@_rank_main
def _rows_worker(rank, world, store, out):
    """Row-sharded Adafactor and Adapprox against the single-process run."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    lines = []
    for name, kw in ROW_SHARDED:
        ref_m = _Wide()
        ref_opt = _wide_run(name, kw, ref_m)
        m = _shard_all(_Wide())
        opt = _wide_run(name, kw, m)
        worst = _compare_rows(name, f"{name} {kw}", m, opt, ref_m, ref_opt)
        comm = opt.last_step_communication()
        assert (comm["collectives"] > 0 and comm["bytes"] > 0) == (world > 1), comm  # one rank: no collectives
        lines.append(f"ok {name} {kw}: max error {worst:.3g}")
    dist.barrier()  # leave together (see examples/fsdp_train.py)
    dist.destroy_process_group()
    return lines


@pytest.mark.parametrize("world", [1, 2, 4])
def test_row_sharded_factored_statistics_match_the_single_process_run(world, tmp_path):
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP2")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _spawn(_rows_worker, (world, str(tmp_path / "store"), str(tmp_path / "result")), world)
    for rank in range(world):
        text = (tmp_path / f"result.{rank}").read_text()
        assert not text.startswith("FAIL"), f"rank {rank}:\n{text}"
        assert len(text.splitlines()) == len(ROW_SHARDED), text


def _full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _compare(name, params, opt, ref_params, ref_opt):
    for i, (p, r) in enumerate(zip(params, ref_params)):
        if not torch.equal(_full(p.detach()), r):
            raise AssertionError(f"{name}: params[{i}] differs from the single-process run "
                                 f"(max {(_full(p.detach()) - r).abs().max().item():.3g})")
        st, rst = opt.state[p], ref_opt.state[list(ref_opt.state)[i]]
        for k, v in rst.items():
            if not torch.equal(_full(st[k]), v):
                raise AssertionError(f"{name}: params[{i}] state '{k}' differs from the single-process run")


def _spawn(fn, args, nprocs, timeout=240):
    """mp.spawn with a deadline: a hung collective fails the test instead of hanging the suite."""
    import time
    ctx = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise AssertionError(f"the {nprocs} processes did not finish within {timeout} s")


@_rank_main
def _worker(rank, world, store, mode, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    lines = []
    rows = ELEMENTWISE + (FACTORED if mode == "ddp" else GATHERED)
    for name, kw in rows:
        ref_params, ref_opt = _single(name, kw)
        m = _model()
        if mode == "ddp":
            m = torch.nn.parallel.DistributedDataParallel(m)
        else:
            from torch.distributed.fsdp import fully_shard
            fully_shard(m[0])
            fully_shard(m[2])
            fully_shard(m)
        opt = getattr(at, name)(m.parameters(), lr=0.01, **kw)
        for x in _batches():
            opt.zero_grad()
            m(x).pow(2).sum().backward()
            opt.step()
        _compare(name, list(m.parameters()), opt, ref_params, ref_opt)
        lines.append(f"ok {name}")
    dist.barrier()  # leave together (see examples/fsdp_train.py)
    dist.destroy_process_group()
    return lines


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_equals_the_single_process_optimizer(mode, world, tmp_path):
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    if mode == "fsdp":
        pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP2")
    out = tmp_path / "result"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _spawn(_worker, (world, str(tmp_path / "store"), mode, str(out)), world)
    for rank in range(world):
        text = (tmp_path / f"result.{rank}").read_text()
        assert not text.startswith("FAIL"), f"rank {rank}:\n{text}"
        expected = len(ELEMENTWISE) + len(FACTORED if mode == "ddp" else GATHERED)
        assert len(text.splitlines()) == expected, text


@_rank_main
def _dcp_worker(rank, world, store, phase, ckpt, out):
    """phase "save": STEPS - 1 steps under FSDP2, then model and optimizer state to `ckpt` through
    torch.distributed.checkpoint; phase "load": the same model on another rank count, state
    loaded from `ckpt`, one more step."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                         set_model_state_dict, set_optimizer_state_dict)
    from torch.distributed.fsdp import fully_shard
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    lines = []

    def small(name, kw):  # the 7 x 5 / 3 x 7 model: bitwise against one process
        m = _model()
        for sub in (m[0], m[2], m):
            fully_shard(sub)
        check = lambda m, opt: _compare(name, list(m.parameters()), opt, *_single(name, kw))
        return m, getattr(at, name)(m.parameters(), lr=0.01, **kw), _batches(), lambda y: y.pow(2).sum(), check

    def wide(name, kw):  # factored state as DTensors (Q by rows, U whole): within float32 rounding
        m = _shard_all(_Wide())

        def check(m, opt):
            ref_m = _Wide()
            _compare_rows(name, f"{name} {kw} (resharded)", m, opt, ref_m, _wide_run(name, kw, ref_m))
        return m, getattr(at, name)(m.parameters(), **kw), _wide_batches(), lambda y: y.pow(2).mean(), check

    cases = [(small, name, kw) for name, kw in ELEMENTWISE + GATHERED] + [(wide, name, kw) for name, kw in ROW_SHARDED]
    for j, (build, name, kw) in enumerate(cases):
        m, opt, batches, loss, check = build(name, kw)
        path = os.path.join(ckpt, f"{j}-{name}")
        if phase == "save":
            for x in batches[:-1]:
                opt.zero_grad()
                loss(m(x)).backward()
                opt.step()
            dcp.save({"model": get_model_state_dict(m), "optim": get_optimizer_state_dict(m, opt)},
                     checkpoint_id=path)
        else:
            state = {"model": get_model_state_dict(m), "optim": get_optimizer_state_dict(m, opt)}
            at.fit_state_to_checkpoint(state, path)  # low-rank factors at the saved ranks
            dcp.load(state, checkpoint_id=path)
            set_model_state_dict(m, state["model"])
            set_optimizer_state_dict(m, opt, state["optim"])
            opt.zero_grad()
            loss(m(batches[-1])).backward()
            opt.step()
            check(m, opt)
        lines.append(f"ok {name}")
    dist.barrier()  # leave together (see examples/fsdp_train.py)
    dist.destroy_process_group()
    return lines


def test_dcp_checkpoint_resharded_from_4_to_2_ranks_continues_exactly(tmp_path):
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP2")
    ckpt, out = tmp_path / "ckpt", tmp_path / "result"
    for phase, world in (("save", 4), ("load", 2)):
        _spawn(_dcp_worker, (world, str(tmp_path / f"store-{phase}"), phase, str(ckpt), f"{out}.{phase}"), world)
        for rank in range(world):
            text = (tmp_path / f"result.{phase}.{rank}").read_text()
            assert not text.startswith("FAIL"), f"{phase} rank {rank}:\n{text}"
            assert len(text.splitlines()) == len(ELEMENTWISE) + len(GATHERED) + len(ROW_SHARDED), text


@_rank_main
def _failure_worker(rank, world, store, out):
    """Rank 1 refuses a step (a corrupt step count there): every rank raises, nothing changes on
    any rank. Then rank 1 never calls step: rank 0 raises once the collective timeout expires,
    its parameters untouched."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    lines = []
    for name, kw in ROW_SHARDED[:3:2]:
        m = _shard_all(_Wide())
        opt = _wide_run(name, kw, m)  # a few good steps first: state exists
        opt.zero_grad()
        m(_wide_batches()[0]).pow(2).mean().backward()
        if rank == 1:
            opt.state[m.c.weight]["step"] = torch.tensor(-1.0)
        before = [_full(p.detach()).clone() for p in m.parameters()]
        state = {id(p): {k: _full(v).clone() for k, v in opt.state[p].items()} for p in m.parameters()}
        try:
            opt.step()
        except (ValueError, RuntimeError) as e:
            want = "'step' must be a whole number" if rank == 1 else "rank 1 of 2 refused this step"
            assert want in str(e), (rank, str(e))
        else:
            raise AssertionError(f"{name}: rank {rank} stepped although rank 1 refused")
        same = [torch.equal(_full(p.detach()), b) for p, b in zip(m.parameters(), before)]  # every rank gathers
        same_state = [(i, k) for i, p in enumerate(m.parameters()) for k, v in opt.state[p].items()
                      if not torch.equal(_full(v), state[id(p)][k])]
        assert all(same) and not same_state, (name, rank, same, same_state)
        lines.append(f"ok refused together {name}")
    import time
    at.set_collective_timeout(3)
    m = _shard_all(_Wide())
    opt = at.Adapprox(m.parameters())
    m(_wide_batches()[0]).pow(2).mean().backward()  # FSDP's own collectives: on both ranks
    if rank == 0:
        before = [p.detach().to_local().clone() for p in m.parameters()]
        t0 = time.monotonic()
        try:
            opt.step()
        except RuntimeError as e:
            assert "did not finish within 3.0 s" in str(e), str(e)
            assert time.monotonic() - t0 < 30
        else:
            raise AssertionError("a step whose peer never came did not raise")
        assert all(torch.equal(p.detach().to_local(), b) for p, b in zip(m.parameters(), before))
        assert not opt.state
    else:
        time.sleep(8)  # never steps
    lines.append("ok timeout")
    return lines


def test_a_rank_that_refuses_or_never_steps_fails_the_step_everywhere(tmp_path):
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP2")
    _spawn(_failure_worker, (2, str(tmp_path / "store"), str(tmp_path / "result")), 2)
    for rank in range(2):
        text = (tmp_path / f"result.{rank}").read_text()
        assert not text.startswith("FAIL"), f"rank {rank}:\n{text}"
        assert len(text.splitlines()) == 3, text

"""adapprox.torch under torch.distributed (gloo on CPU, 2 and 4 processes): DDP with every
optimizer, and FSDP2 (fully_shard, DTensor parameters sharded by rows) with the elementwise
family, whose shards step locally with state sharded alike. Each rank feeds the same batch, so
the averaged gradient equals the single-process one exactly (sums of 2 or 4 equal numbers and
the division by 2 or 4 are exact), and results must equal the single-process optimizer's bit for
bit. The models have 7 and 3 output rows: neither rank count divides them. Optimizers whose
statistics span the whole matrix refuse sharded parameters with a clear error."""
from __future__ import annotations

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


def _worker(rank, world, store, mode, out):
    try:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
        torch.set_num_threads(1)
        lines = []
        rows = ELEMENTWISE + (FACTORED if mode == "ddp" else [])
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
        if mode == "fsdp":
            for name, kw in FACTORED:
                m = _model()
                from torch.distributed.fsdp import fully_shard
                fully_shard(m)
                opt = getattr(at, name)(m.parameters(), **kw)
                m(_batches()[0]).sum().backward()
                before = [_full(p.detach()).clone() for p in m.parameters()]
                try:
                    opt.step()
                except NotImplementedError as e:
                    assert "sharded" in str(e) and all(torch.equal(_full(p.detach()), b)
                                                       for p, b in zip(m.parameters(), before))
                    lines.append(f"ok refused {name}")
                else:
                    raise AssertionError(f"{name} stepped sharded parameters without exact statistics")
        dist.destroy_process_group()
        with open(f"{out}.{rank}", "w") as f:
            f.write("\n".join(lines))
    except BaseException:
        with open(f"{out}.{rank}", "w") as f:
            f.write("FAIL\n" + traceback.format_exc())
    # The result is on disk: leave without interpreter teardown (one CI run saw a rank abort with
    # "terminate called without an active exception" after its checks; cause not yet found).
    os._exit(0)


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
        expected = len(ELEMENTWISE) + len(FACTORED)
        assert len(text.splitlines()) == expected, text


def _dcp_worker(rank, world, store, phase, ckpt, out):
    """phase "save": STEPS - 1 steps under FSDP2, then model and optimizer state to `ckpt` through
    torch.distributed.checkpoint; phase "load": the same model on another rank count, state
    loaded from `ckpt`, one more step."""
    try:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                             set_model_state_dict, set_optimizer_state_dict)
        from torch.distributed.fsdp import fully_shard
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
        torch.set_num_threads(1)
        lines = []
        for name, kw in ELEMENTWISE:
            m = _model()
            fully_shard(m[0])
            fully_shard(m[2])
            fully_shard(m)
            opt = getattr(at, name)(m.parameters(), lr=0.01, **kw)
            batches = _batches()
            path = os.path.join(ckpt, name)
            if phase == "save":
                for x in batches[:-1]:
                    opt.zero_grad()
                    m(x).pow(2).sum().backward()
                    opt.step()
                dcp.save({"model": get_model_state_dict(m), "optim": get_optimizer_state_dict(m, opt)},
                         checkpoint_id=path)
            else:
                state = {"model": get_model_state_dict(m), "optim": get_optimizer_state_dict(m, opt)}
                dcp.load(state, checkpoint_id=path)
                set_model_state_dict(m, state["model"])
                set_optimizer_state_dict(m, opt, state["optim"])
                opt.zero_grad()
                m(batches[-1]).pow(2).sum().backward()
                opt.step()
                ref_params, ref_opt = _single(name, kw)
                _compare(name, list(m.parameters()), opt, ref_params, ref_opt)
            lines.append(f"ok {name}")
        dist.destroy_process_group()
        with open(f"{out}.{phase}.{rank}", "w") as f:
            f.write("\n".join(lines))
    except BaseException:
        with open(f"{out}.{phase}.{rank}", "w") as f:
            f.write("FAIL\n" + traceback.format_exc())
    os._exit(0)


def test_dcp_checkpoint_resharded_from_4_to_2_ranks_continues_exactly(tmp_path):
    if not dist.is_available():
        pytest.skip("torch without distributed support")
    pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP2")
    ckpt, out = tmp_path / "ckpt", tmp_path / "result"
    for phase, world in (("save", 4), ("load", 2)):
        _spawn(_dcp_worker, (world, str(tmp_path / f"store-{phase}"), phase, str(ckpt), str(out)), world)
        for rank in range(world):
            text = (tmp_path / f"result.{phase}.{rank}").read_text()
            assert not text.startswith("FAIL"), f"{phase} rank {rank}:\n{text}"
            assert len(text.splitlines()) == len(ELEMENTWISE), text

"""Suite `distributed`: what a step of FSDP2-sharded parameters costs at 1, 2 and 4 ranks.

Parameters: the `step` suite's CPU set (GPT-2 ``small``: 4 layers, width 256, vocab 50257, tied
embeddings; 52 tensors, 16.3M parameters), as one ``nn.Module`` holding an ``nn.Parameter`` of
each shape, ``fully_shard``-ed (FSDP2: every parameter a DTensor split by rows, ``Shard(0)``).
The gradients are one fixed random set (seed 0, as in `step`), identical on every rank; each rank
sets its rows of it as the sharded parameters' ``.grad`` (``distribute_tensor`` with the
parameter's placements), so no forward or backward runs: only the optimizer step is timed.

The suite spawns the ranks itself (``torch.multiprocessing``, gloo, ``file://`` rendezvous) for
world sizes 1, 2 and 4, on one machine: the ranks share its cores (each rank gets
cpus // world threads, at least 1; at 4 ranks on 2 cores they are oversubscribed), so ms/step
across world sizes measures the communication's latency and overhead more than any speed-up.

Rows, with the `step` suite's names and hyperparameters: Adapprox at rank 1 and at its adaptive
default, Adafactor and, for reference, AdamW (elementwise: each rank steps its rows alone, no
communication). Each at world sizes 1, 2, 4 and "plain": ordinary tensors in one process, no
process group (what world 1 costs over no FSDP at all). Per row: median step time over the
timed steps (each step is the slowest rank's time, ranks released together by a barrier), the
all-reduces of a step (a range if they varied over the timed steps) and the bytes the last one
summed on rank 0 (``last_step_communication()``), the parameter bytes of the whole model, the
communication per step as a share of those, and the optimizer-state bytes on the fullest rank
(``memory_report()``, local shards).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import traceback

import torch

from .common import gpt2_shapes, table, write_results
from .step_time import ADAFACTOR, HYPER, MODELS

OPTIMIZERS = {  # name -> (adapprox.torch class name, keyword arguments)
    "adapprox rank 1": ("Adapprox", dict(min_rank=1, max_rank=1, **HYPER)),
    "adapprox default (adaptive)": ("Adapprox", HYPER),
    "adapprox Adafactor": ("Adafactor", ADAFACTOR),
    "adapprox AdamW": ("AdamW", HYPER),
}


class Params(torch.nn.Module):
    """Only parameters (``.`` is not allowed in a parameter name: ``_`` instead)."""

    def __init__(self, values):
        super().__init__()
        for name, v in values:
            self.register_parameter(name.replace(".", "_"), torch.nn.Parameter(v.clone()))


def _tensors(model):
    layers, width = MODELS[model]
    shapes = gpt2_shapes(layers, width)
    gen = torch.Generator().manual_seed(0)
    values = [(n, torch.randn(s, generator=gen) * 0.02) for n, s in shapes]
    grads = [torch.randn(s, generator=gen) * 1e-3 for _, s in shapes]
    return values, grads


def _worker(rank, world, store, out, model, names, warmup, steps):
    """One rank: every row of `names` on fresh sharded parameters; rank 0 writes the results to
    `out`. world 0: the plain reference, one process with ordinary tensors and no process group."""
    try:
        import torch.distributed as dist
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor import distribute_tensor

        import adapprox
        import adapprox.torch as at
        if world:
            dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
        threads = max(1, (os.cpu_count() or 1) // max(world, 1))
        torch.set_num_threads(threads)
        adapprox.set_num_threads(threads)
        values, grads = _tensors(model)
        result = dict(threads=threads, n_params=sum(v.numel() for _, v in values),
                      param_bytes=sum(v.numel() * v.element_size() for _, v in values), rows={})
        for name in names:
            cls, kw = OPTIMIZERS[name]
            m = fully_shard(Params(values)) if world else Params(values)
            params = list(m.parameters())
            for p, g in zip(params, grads):
                # src_data_rank=None: every rank holds the full gradient already, each keeps its rows
                p.grad = distribute_tensor(g, p.device_mesh, p.placements, src_data_rank=None) if world else g
                assert p.grad.shape == p.shape and (not world or p.grad.to_local().shape == p.to_local().shape)
            opt = getattr(at, cls)(params, **kw)
            times, collectives = [], []
            for i in range(warmup + steps):
                if world:
                    dist.barrier()  # every rank starts the step together
                t0 = time.perf_counter()
                opt.step()
                dt = torch.tensor(time.perf_counter() - t0, dtype=torch.float64)
                if world:
                    dist.all_reduce(dt, op=dist.ReduceOp.MAX)  # the step ends when its slowest rank does
                if i >= warmup:
                    times.append(dt.item())
                    collectives.append(opt.last_step_communication()["collectives"])
            comm = opt.last_step_communication()
            per_rank = [(comm, opt.memory_report()["total_bytes"])]
            if world:
                per_rank = [None] * world
                dist.all_gather_object(per_rank, (comm, opt.memory_report()["total_bytes"]))
            result["rows"][name] = dict(times_ms=[1e3 * t for t in times], median_ms=1e3 * statistics.median(times),
                                        collectives=comm["collectives"], comm_bytes=comm["bytes"],
                                        collectives_per_timed_step=collectives,
                                        comm_per_rank=[c for c, _ in per_rank],
                                        state_bytes_per_rank=[b for _, b in per_rank])
            del opt, m, params
        if world:
            dist.destroy_process_group()
        if rank == 0:
            with open(out, "w") as f:
                json.dump(result, f)
    except BaseException:
        with open(f"{out}.fail.{rank}", "w") as f:
            f.write(traceback.format_exc())
    # Leave without interpreter teardown once the result is written (as tests/test_distributed.py's
    # workers do: a rank once aborted at teardown there).
    os._exit(0)


def run_world(world, model, names, warmup, steps, timeout):
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        out = os.path.join(tmp, "result.json")
        ctx = mp.start_processes(_worker, args=(world, os.path.join(tmp, "store"), out, model, names, warmup, steps),
                                 nprocs=max(world, 1), join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                raise SystemExit(f"world {world}: the ranks did not finish within {timeout} s")
        fails = sorted(f for f in os.listdir(tmp) if ".fail." in f)
        if fails:
            raise SystemExit(f"world {world}: " + "\n".join(open(os.path.join(tmp, f)).read() for f in fails))
        with open(out) as f:
            return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench distributed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="small", choices=list(MODELS), help="parameter shapes (default small, "
                    "the `step` suite's CPU set)")
    ap.add_argument("--worlds", default="1,2,4", help="comma-separated world sizes (default 1,2,4)")
    ap.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(OPTIMIZERS))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a world size may take (default 600)")
    ap.add_argument("--no-plain", action="store_true", help="leave out the plain reference (ordinary tensors, "
                    "one process, no process group)")
    ap.add_argument("--out", default="distributed", help="results file name under bench/results")
    args = ap.parse_args(argv)
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_gloo_available():
        raise SystemExit("torch.distributed with gloo is not available in this torch build")
    worlds = [int(w) for w in args.worlds.split(",")]
    if min(worlds) < 1:
        raise SystemExit("--worlds: world sizes are >= 1")
    names = args.only.split(",") if args.only else list(OPTIMIZERS)
    unknown = set(names) - set(OPTIMIZERS)
    if unknown:
        raise SystemExit(f"--only: unknown rows {sorted(unknown)}; expected some of {list(OPTIMIZERS)}")
    layers, width = MODELS[args.model]
    runs = ([] if args.no_plain else [0]) + worlds  # 0: the plain reference
    print(f"GPT-2 {args.model} shapes ({layers} layers, width {width}), one fully_shard-ed module; worlds "
          f"{worlds}{'' if args.no_plain else ' and a plain 1-process reference'} on {os.cpu_count()} CPUs; "
          f"{args.warmup} warm-up + {args.steps} timed steps", flush=True)
    out = dict(config=dict(model=args.model, worlds=worlds, plain=not args.no_plain, warmup=args.warmup,
                           steps=args.steps,
                           optimizers={n: dict(cls=OPTIMIZERS[n][0], **OPTIMIZERS[n][1]) for n in names}),
               worlds={})
    label = lambda w: str(w) if w else "plain"  # noqa: E731
    for world in runs:
        t0 = time.monotonic()
        out["worlds"][label(world)] = res = run_world(world, args.model, names, args.warmup, args.steps, args.timeout)
        print(f"  world {label(world)}: {res['threads']} thread(s) per rank, {time.monotonic() - t0:.0f} s", flush=True)
    rows = []
    for name in names:
        for world in runs:
            res = out["worlds"][label(world)]
            r = res["rows"][name]
            r["comm_vs_params"] = r["comm_bytes"] / res["param_bytes"]
            lo, hi = min(r["collectives_per_timed_step"]), max(r["collectives_per_timed_step"])
            rows.append((name, label(world), f"{r['median_ms']:.1f}", lo if lo == hi else f"{lo}-{hi}",
                         r["comm_bytes"], res["param_bytes"], f"{r['comm_vs_params']:.4f}",
                         max(r["state_bytes_per_rank"])))
    print(table(("optimizer", "world", "ms/step", "collectives/step", "comm bytes/step", "param bytes",
                 "comm/param", "state bytes/rank (max)"), rows))
    path = write_results(args.out, out)
    print(f"wrote {path}")

"""Train a small GPT under FSDP2 (CPU, gloo) with adapprox.torch.AdamW and adapprox.torch.Adapprox.

    torchrun --nproc-per-node 2 examples/fsdp_train.py      # 2 ranks
    python examples/fsdp_train.py --steps 10                # 1 rank (its own 1-process gloo group)

Every transformer block and then the root module is ``fully_shard``-ed: each parameter is a
DTensor split by rows (``Shard(0)``) over the ranks. AdamW is elementwise and steps each rank's
rows on their own. Adapprox's second-moment factors span whole matrices, so its step all-reduces
the factored statistics over the ranks (``last_step_communication()`` counts those collectives).
Rank 0 prints per optimizer: final loss, each rank's optimizer-state bytes (``memory_report()``:
local shards), their ratio to AdamW's, median ms per training step and per optimizer step, and
the collectives and bytes all-reduced by the last step. Adapprox keeps a dense first moment here
(b1 = 0.9), so its state is about 0.7 of AdamW's; with b1 = 0 it would be a few percent.

Data: a synthetic "language": a fixed random bigram table where each token has 4 possible
successors (entropy ln 4 = 1.39 nats; a uniform guess costs ln 256 = 5.55). Every rank draws the
same global batch from the same seeded torch.Generator and keeps its own slice of the rows, so
the run is the same computation whatever the number of ranks (up to float rounding).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.fsdp import fully_shard

import adapprox
import adapprox.torch as at

VOCAB, D_MODEL, HEADS, SEQ, LAYERS = 256, 128, 4, 64, 2


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a GELU MLP, each with a residual."""

    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
        self.qkv, self.proj = nn.Linear(D_MODEL, 3 * D_MODEL), nn.Linear(D_MODEL, D_MODEL)
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, 4 * D_MODEL), nn.GELU(), nn.Linear(4 * D_MODEL, D_MODEL))

    def forward(self, x):
        b, t, _ = x.shape
        # (b, t, 3d) -> three (b, heads, t, d/heads) tensors
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, HEADS, D_MODEL // HEADS).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, D_MODEL))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, D_MODEL), nn.Embedding(SEQ, D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f, self.head = nn.LayerNorm(D_MODEL), nn.Linear(D_MODEL, VOCAB, bias=False)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def sharded_model():
    torch.manual_seed(0)  # the same initial weights for every optimizer (and on every rank)
    model = GPT()
    for block in model.blocks:  # each block its own FSDP unit, then the root (embeddings, ln_f, head)
        fully_shard(block)
    fully_shard(model)
    return model


def batches(steps, batch):
    """`steps` global batches of (batch, SEQ + 1) tokens from a seeded bigram chain, identical on
    every rank; each rank keeps rows rank, rank + world, ... of each."""
    g = torch.Generator().manual_seed(1234)
    successors = torch.randint(VOCAB, (VOCAB, 4), generator=g)  # the "grammar"
    out = []
    for _ in range(steps):
        seq = [torch.randint(VOCAB, (batch,), generator=g)]
        for _ in range(SEQ):
            seq.append(successors[seq[-1], torch.randint(4, (batch,), generator=g)])
        out.append(torch.stack(seq, 1)[dist.get_rank()::dist.get_world_size()])
    return out


def train(make_opt, data):
    model = sharded_model()
    opt = make_opt(model.parameters())
    losses, times, opt_times = [], [], []
    for tokens in data:
        t0 = time.perf_counter()
        logits = model(tokens[:, :-1])  # predict token t+1 from tokens <= t
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()  # FSDP2 reduce-scatters: each rank gets its rows of the mean gradient
        t1 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
        opt_times.append(time.perf_counter() - t1)
        mean = loss.detach().clone()
        dist.all_reduce(mean)  # each rank's loss is over its own slice: average over ranks
        losses.append(mean.item() / dist.get_world_size())
    comm = opt.last_step_communication()  # the all-reduces of the last step
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, opt.memory_report()["total_bytes"])
    skip = min(2, len(times) - 1)  # the first steps allocate state: leave them out of the timing
    return dict(losses=losses, state=per_rank, ms=1e3 * statistics.median(times[skip:]),
                opt_ms=1e3 * statistics.median(opt_times[skip:]), comm=comm)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8, help="global batch (sequences), split over the ranks")
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    if "RANK" in os.environ:  # under torchrun: the launcher set RANK, WORLD_SIZE, MASTER_ADDR/PORT
        dist.init_process_group("gloo")
    else:  # plain `python`: a 1-rank gloo group of our own (an in-process store: nothing to rendezvous)
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} must be a multiple of the {world} ranks")
    # The ranks share the machine's cores: split them between the ranks (torch's and adapprox's pools).
    threads = max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    adapprox.set_num_threads(threads)

    data = batches(args.steps, args.batch)
    runs = {"AdamW": train(lambda ps: at.AdamW(ps, lr=args.lr, weight_decay=0.01), data),
            "Adapprox": train(lambda ps: at.Adapprox(ps, lr=args.lr, betas=(0.9, 0.999), weight_decay=0.01), data)}
    if rank == 0:
        n_params = sum(p.numel() for p in GPT().parameters())
        print(f"world {world}, {args.steps} steps, global batch {args.batch} x {SEQ} tokens, "
              f"{n_params / 1e6:.2f}M parameters, {threads} thread(s) per rank")
        print(f"initial loss {runs['AdamW']['losses'][0]:.4f} (uniform guess ln 256 = 5.5452; best ln 4 = 1.3863)")
        head = ("optimizer", "final loss", "state bytes per rank", "vs AdamW", "ms/step", "opt ms/step",
                "collectives/step", "comm bytes/step")  # "vs AdamW": state summed over the ranks
        def line(cells):  # first column left-aligned, the others right-aligned under their headers
            return "  ".join(f"{c:>{len(h)}}" if i else f"{c:<9}" for i, (c, h) in enumerate(zip(cells, head)))
        print(line(head))
        for name, r in runs.items():
            print(line((name, f"{r['losses'][-1]:.4f}", ",".join(map(str, r["state"])),
                        f"{sum(r['state']) / sum(runs['AdamW']['state']):.3f}", f"{r['ms']:.1f}",
                        f"{r['opt_ms']:.1f}", r["comm"]["collectives"], r["comm"]["bytes"])))
    # Every rank leaves together: a rank that tears gloo down while rank 0 is still printing can
    # make the other's gloo threads abort at exit ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

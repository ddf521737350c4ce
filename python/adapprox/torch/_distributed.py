"""Row-sharded parameters (FSDP2's DTensors with ``Shard(0)``) for the factored optimizers.

The core steps each rank's rows and computes the statistics over the whole matrix through a
communicator (``cpp/include/adapprox/communicator.hpp``); here it is ``torch.distributed``'s
all-reduce on the parameter's process group, with a timeout, so that a rank that never reaches
a collective makes the others raise instead of hang. State is DTensors: buffers that follow the
parameter's rows (``factor_q``, Adafactor's ``row_var``, like-parameter ones) ``Shard(0)``,
the rest (``factor_u``, a matrix's ``col_var``) replicated.
"""
from __future__ import annotations

import datetime
import os

import torch

_TIMEOUT_S = float(os.environ.get("ADAPPROX_COLLECTIVE_TIMEOUT", "600"))


def set_collective_timeout(seconds: float) -> None:
    """Seconds a collective of a sharded step may wait for the other ranks before it raises
    RuntimeError (default 600, or ``ADAPPROX_COLLECTIVE_TIMEOUT``).

    Args:
        seconds: the wait in seconds, a number > 0; applies to every later sharded step.
    """
    global _TIMEOUT_S
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"seconds must be a number > 0, got {seconds!r}")
    _TIMEOUT_S = float(seconds)


def collective_timeout() -> float:
    return _TIMEOUT_S


class TorchCommunicator:
    """The core's communicator over one process group: ``allreduce_sum`` sums a NumPy array
    (a view of the core's buffer) over the group in place."""

    def __init__(self, group):
        import torch.distributed as dist
        self._dist, self.group = dist, group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        self.calls = 0  # collectives and the bytes they summed, for reports
        self.bytes = 0

    def allreduce_sum(self, array) -> None:
        t = torch.from_numpy(array)
        why = f"all-reduce of {t.numel()} numbers over {self.size} ranks did not finish within {_TIMEOUT_S} s " \
              "(adapprox.torch.set_collective_timeout) or failed"
        work = self._dist.all_reduce(t, group=self.group, async_op=True)
        try:
            done = work.wait(timeout=datetime.timedelta(seconds=_TIMEOUT_S))
        except RuntimeError as e:  # gloo raises on a timeout or a lost peer
            raise RuntimeError(f"{why}: {e}") from e
        if done is False:
            raise RuntimeError(why)
        self.calls += 1
        self.bytes += t.numel() * t.element_size()


def row_sharded(p) -> bool:
    """A DTensor split by rows over a 1-D mesh: what the factored optimizers step exactly."""
    from torch.distributed.tensor import Shard
    return (p.device_mesh.ndim == 1 and len(p.placements) == 1 and isinstance(p.placements[0], Shard)
            and p.placements[0].dim == 0 and p.dim() >= 1)


def communicator(p, cache: dict) -> TorchCommunicator:
    """One communicator per mesh and step (their counters add up the step's traffic)."""
    mesh = p.device_mesh
    comm = cache.get(id(mesh))
    if comm is None:
        comm = cache[id(mesh)] = TorchCommunicator(mesh.get_group())
    return comm


def _placements(spec, p):
    from torch.distributed.tensor import Replicate, Shard
    return [Shard(0)] if spec["like_param"] or spec["follows_rows"] else [Replicate()]


def shard_of(whole, p):
    """This rank's shard of `whole` (a plain tensor of p's global shape), as p's placements cut it."""
    from torch.distributed.tensor import DTensor, Replicate
    replicated = DTensor.from_local(whole, p.device_mesh, [Replicate()] * p.device_mesh.ndim, run_check=False)
    return replicated.redistribute(p.device_mesh, p.placements).to_local()


def new_state(spec, p, dtype):
    """A fixed-shape state buffer of a row-sharded parameter, as a DTensor of zeros."""
    from torch.distributed.tensor import zeros
    t = zeros(*spec["shape"], dtype=dtype, device_mesh=p.device_mesh, placements=_placements(spec, p))
    if spec["fill"]:
        t.fill_(spec["fill"])
    return t


def wrap(local, spec, p):
    """A factor the core allocated on this rank (its rows of factor_q, or the whole factor_u) as
    the DTensor the state keeps."""
    from torch.distributed.tensor import DTensor
    placements = _placements(spec, p)
    shape = list(local.shape)
    if placements[0].is_shard():
        shape[0] = p.shape[0]
    stride = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        stride[i] = stride[i + 1] * shape[i + 1]
    return DTensor.from_local(local, p.device_mesh, placements, run_check=False, shape=torch.Size(shape),
                              stride=tuple(stride))


def _resized_names():
    """State buffers whose shape the step chooses (low-rank factors), by the registry."""
    from .. import _core
    names = set()
    for algo in _core.algorithms():
        names |= {b["name"] for b in _core.schema(algo, {}, [4, 4], "float32") if b["resized"]}
    return names


def fit_state_to_checkpoint(state_dict: dict, checkpoint_id) -> dict:
    """Make the low-rank factors in ``state_dict`` (Adapprox's ``factor_q``/``factor_u``,
    AdaGram's ``factor_p``/``factor_q``) the shapes saved in a ``torch.distributed.checkpoint``
    checkpoint, in place, and return it.

    DCP loads into tensors that already have the saved shapes, and skips entries the target lacks.
    These factors change their rank as training goes (and AdaGram keeps none before its first
    real step), so a freshly built state, as ``get_optimizer_state_dict`` makes it, may hold
    another rank than the checkpoint, or no factor. Call this between
    ``get_optimizer_state_dict`` and ``dcp.load``; ``checkpoint_id`` is the path given to
    ``dcp.save`` (a ``StorageReader`` works too). A factor is resized with its tensor's mesh and
    placements, or created as a plain (replicated) tensor where the state has none yet.

    Args:
        state_dict: an optimizer state dict as ``get_optimizer_state_dict`` returns it; edited.
        checkpoint_id: the checkpoint's path (as given to ``dcp.save``) or a ``StorageReader``.
    """
    from torch.distributed.checkpoint import FileSystemReader
    reader = checkpoint_id if hasattr(checkpoint_id, "read_metadata") else FileSystemReader(checkpoint_id)
    saved = reader.read_metadata().state_dict_metadata
    resized = _resized_names()
    dicts = {}  # the flattened path of every dict in state_dict (DCP joins keys with ".")

    def visit(container, prefix):
        if isinstance(container, dict):
            dicts[prefix] = container
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in list(items):
            if isinstance(value, (dict, list)):
                visit(value, f"{prefix}.{key}" if prefix else str(key))

    visit(state_dict, "")
    for fqn, meta in saved.items():
        parent, _, name = fqn.rpartition(".")
        if name not in resized or parent not in dicts or not hasattr(meta, "size"):
            continue
        target, size = dicts[parent], tuple(meta.size)
        t = target.get(name)
        if t is None:
            target[name] = torch.zeros(size, dtype=meta.properties.dtype)
        elif torch.is_tensor(t) and tuple(t.shape) != size:
            target[name] = _zeros_like_placed(t, size)
    return state_dict


def _zeros_like_placed(t, size):
    """Zeros of `size` with t's dtype and, for a DTensor, its mesh and placements."""
    if hasattr(t, "device_mesh"):
        from torch.distributed.tensor import zeros
        return zeros(*size, dtype=t.dtype, device_mesh=t.device_mesh, placements=t.placements)
    return torch.zeros(size, dtype=t.dtype, device=t.device)

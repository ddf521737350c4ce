"""examples/fsdp_train.py under torchrun with 2 ranks (FSDP2, gloo on CPU), a few steps: both
optimizers train and report, and Adapprox holds less optimizer state than AdamW on every rank."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fsdp_train.py"


def test_fsdp_example_trains_with_both_optimizers_on_two_ranks():
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch without distributed (gloo) support")
    pytest.importorskip("torch.distributed.fsdp", reason="torch without FSDP2")
    # --standalone: torchrun picks a free port (no clash with another run on 29500).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(EXAMPLE), "--steps", "10"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("world 2,") for line in lines), out.stdout
    initial = float(next(line.split()[2] for line in lines if line.startswith("initial loss ")))
    # optimizer, final loss, state bytes per rank (comma-separated), vs AdamW, ms/step, opt ms/step,
    # collectives/step, comm bytes/step
    rows = {r[0]: r for r in (line.split() for line in lines) if r and r[0] in ("AdamW", "Adapprox") and len(r) == 8}
    assert set(rows) == {"AdamW", "Adapprox"}, out.stdout
    for name, r in rows.items():
        loss = float(r[1])
        assert math.isfinite(loss) and loss < initial, (name, loss, initial)
    adamw = [int(b) for b in rows["AdamW"][2].split(",")]
    ours = [int(b) for b in rows["Adapprox"][2].split(",")]
    assert len(adamw) == len(ours) == 2
    assert all(0 < o < a for o, a in zip(ours, adamw)), (ours, adamw)
    assert int(rows["AdamW"][6]) == 0 and int(rows["AdamW"][7]) == 0  # elementwise: local shards only
    assert int(rows["Adapprox"][6]) > 0 and int(rows["Adapprox"][7]) > 0  # factored statistics all-reduced

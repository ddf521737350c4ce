"""The Quick start demo runs (short version) and reports both optimizers."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def test_demo_quick_runs_and_reports_both_optimizers():
    out = subprocess.run([sys.executable, str(DEMO), "--quick"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line.split() for line in out.stdout.splitlines()
             if line.startswith(("AdamW ", "Adapprox ")) and len(line.split()) == 6]
    assert [row[0] for row in table] == ["AdamW", "Adapprox"]
    adamw_loss, ours_loss = float(table[0][1]), float(table[1][1])
    ours_ratio = float(table[1][3])
    assert ours_loss < 3.2 and adamw_loss < 3.2  # both learn (uniform bytes: ln 256 = 5.5)
    assert ours_ratio < 1.0  # less optimizer state than AdamW

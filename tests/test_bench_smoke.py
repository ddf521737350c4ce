"""Tiny runs of the benchmark suites (python -m bench ...): they run end to end and write JSON.

Plots need matplotlib and the glm data sets scikit-learn; without them the suites say what they
skipped, and these tests check that too. CAME rows appear only with came-pytorch installed.
"""
import importlib
import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


@pytest.fixture
def bench(tmp_path, monkeypatch, capsys):
    """Runs `python -m bench <suite> <args>` in this process (one torch import for all), results
    under tmp_path; torch's and adapprox's thread counts are restored afterwards."""
    import torch

    import adapprox
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.common
    import bench.__main__
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    threads = torch.get_num_threads(), adapprox.num_threads()

    def run(*args):
        capsys.readouterr()
        assert bench.__main__.main(list(args)) == 0
        return capsys.readouterr().out
    yield run
    torch.set_num_threads(threads[0])
    adapprox.set_num_threads(threads[1])


def test_train_tiny(bench, tmp_path):
    out = bench("train", "--steps", "6", "--evals", "2", "--layers", "1", "--d-model", "32",
                "--heads", "2", "--ctx", "16", "--batch", "2", "--val-windows", "4", "--corpus-mb", "0.2",
                "--threads", "1")
    res = json.loads((tmp_path / "train.json").read_text())
    names = set(res["optimizers"])
    assert {"AdamW", "Adafactor", "Adapprox b1=0.9", "Adapprox b1=0"} <= names
    for r in res["optimizers"].values():
        assert 0 < r["final_val_loss"] < 6 and len(r["curve"]) == 2
    assert res["optimizers"]["Adapprox b1=0"]["peak_state_bytes"] < res["optimizers"]["AdamW"]["peak_state_bytes"]
    assert res["optimizers"]["Adapprox b1=0.9"]["final_ranks"]  # ranks reported per matrix
    assert (tmp_path / "train.png").exists() == HAVE_MPL
    if not HAVE_MPL:
        assert "plots skipped" in out


def test_glm_tiny(bench, tmp_path):
    out = bench("glm", "--iters", "5", "--lrs", "0.01,0.1", "--n", "40", "--d", "6", "--k", "3",
                "--problems", "breast-cancer,ls-isotropic,ls-correlated")
    res = json.loads((tmp_path / "glm.json").read_text())
    expect = {"ls-isotropic", "ls-correlated"} | ({"breast-cancer"} if HAVE_SKLEARN else set())
    assert set(res["summary"]) == expect
    for rows in res["summary"].values():
        assert "Adapprox" in rows and "SGD momentum 0.9" in rows
    if not hasattr(__import__("adapprox.torch").torch, "AdaGram"):
        assert "AdaGram rank 4" in res["skipped"] and "skipped AdaGram rank 4" in out


def test_step_tiny(bench, tmp_path):
    bench("step", "--models", "tiny", "--warmup", "0", "--reps", "2", "--max-time", "0",
          "--only", "adapprox rank 1,pure-torch rank 1,torch AdamW foreach")
    res = json.loads((tmp_path / "step.json").read_text())
    tiny = res["models"]["tiny"]
    assert set(tiny["optimizers"]) == {"adapprox rank 1", "pure-torch rank 1", "torch AdamW foreach"}
    assert tiny["optimizers"]["torch AdamW foreach"]["state_vs_adamw"] == pytest.approx(1.0)
    assert "pure-torch / native Adapprox, rank 1" in tiny["ratios"]


def test_cuda_refused_clearly_without_cuda(monkeypatch):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.common import resolve_device
    with pytest.raises(SystemExit, match="CUDA is not available"):
        resolve_device("cuda")

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
import adapprox  # noqa: E402,F401  (at collection: an editable install's verbose rebuild needs a real stdout)
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
    """The quick path end to end: every row with two seeds, their losses, the opt.step share, and for
    the Adapprox rows the AS-RSI quality log, whose first two steps are recomputed here on their own
    (a fresh Adapprox run of seed 0, errors in float64 NumPy)."""
    import copy

    import numpy as np
    import torch

    import adapprox.torch
    from bench import train as T
    args = dict(steps=6, evals=2, layers=1, d_model=32, heads=2, ctx=16, batch=2, val_windows=4, corpus_mb=0.2)
    out = bench("train", *[x for k, v in args.items() for x in ("--" + k.replace("_", "-"), str(v))],
                "--threads", "1", "--seeds", "2", "--clip", "1.0")
    res = json.loads((tmp_path / "train.json").read_text())
    rows = res["optimizers"]
    have_peer = importlib.util.find_spec("pytorch_optimizer") is not None
    adapprox_rows = {T.A09, T.A09F, T.A0, T.A0F}
    assert {"AdamW", "Adafactor"} | adapprox_rows <= set(rows)
    assert (T.PEER in rows) == have_peer and (T.PEER in res["skipped"]) == (not have_peer)
    assert res["config"]["seeds"] == [0, 1] and res["config"]["grad_clip_norm"] == 1.0
    for name, r in rows.items():
        assert [run["seed"] for run in r["runs"]] == [0, 1]
        assert r["final_val_loss_seeds"] == [run["final_val_loss"] for run in r["runs"]]
        assert all(0 < x < 6 for x in r["final_val_loss_seeds"]) and len(r["curve"]) == 2
        assert r["final_val_loss"] == pytest.approx(sum(r["final_val_loss_seeds"]) / 2)
        assert r["final_val_loss_min"] <= r["final_val_loss"] <= r["final_val_loss_max"]
        assert r["step_ms"] > 0 and r["fwd_bwd_clip_ms"] > 0 and 0 < r["step_share"] < 1
        assert all(0 < run["step_share"] < 1 and run["grad_norm"]["median"] > 0 for run in r["runs"])
        assert (r["quality"] is not None) == (name in adapprox_rows)
    for name in adapprox_rows:
        r = rows[name]
        assert r["final_ranks"] and r["note"].count("warm_start=True" if "warm" in name else "warm_start=False") == 1
        for run in r["runs"]:
            q = run["quality"]
            assert q["steps"] == 6 and len(q["max_rel_err"]) == 6 and q["tol"] == 1e-2
            assert q["max_over_run"] == pytest.approx(max(q["max_rel_err"]), rel=1e-5)
            assert 0 <= q["exceeded_tol_below_cap_fraction"] <= 1
        assert r["quality"]["max_over_run"] == max(run["quality"]["max_over_run"] for run in r["runs"])
    assert rows[T.A0]["peak_state_bytes"] < rows["AdamW"]["peak_state_bytes"]
    assert (tmp_path / "train.png").exists() == HAVE_MPL
    assert (tmp_path / "train_rsi_quality.png").exists() == HAVE_MPL
    if not HAVE_MPL:
        assert "plots skipped" in out

    # Steps 1 and 2 of seed 0 of the b1 = 0.9 warm-start row, recomputed: V_1 = (1 - b2) G_1^2,
    # V_2 = b2 Q_1 U_1^T + (1 - b2) G_2^2, error of the new factors against it, max over matrices.
    cfg = dict(args, evals=2)
    train, _, _ = T.load_corpus(int(cfg["corpus_mb"] * 2**20))
    init, starts = T.seed_setup(0, cfg, len(train))
    model = copy.deepcopy(init)
    params = list(model.parameters())
    lr, b2 = T.LR[T.A09], 0.999
    opt = adapprox.torch.Adapprox(params, lr=lr, betas=(0.9, b2), seed=0, warm_start=True)
    expect = []
    for step in range(2):
        opt.param_groups[0]["lr"] = lr * T.lr_scale(step, cfg["steps"])
        loss = T.loss_of(model, train[starts[step][:, None] + torch.arange(cfg["ctx"] + 1)])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        v = {}
        for p in params:
            if p.dim() >= 2:
                g = p.grad.numpy().reshape(p.shape[0], -1).astype(np.float64)
                st = opt.state.get(p, {})
                old = st["factor_q"].numpy().astype(np.float64) @ st["factor_u"].numpy().astype(np.float64).T \
                    if st else 0.0
                v[p] = b2 * old + (1 - b2) * g * g
        opt.step()
        errs = [np.linalg.norm(opt.state[p]["factor_q"].numpy().astype(np.float64)
                               @ opt.state[p]["factor_u"].numpy().astype(np.float64).T - vp) / np.linalg.norm(vp)
                for p, vp in v.items()]
        expect.append(max(errs))
    logged = rows[T.A09]["runs"][0]["quality"]["max_rel_err"][:2]
    assert logged == pytest.approx(expect, rel=1e-5)
    assert expect[0] != pytest.approx(expect[1], rel=1e-3)  # two different steps, not one number twice


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

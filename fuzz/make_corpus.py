"""Writes the fuzzers' seed corpus: fuzz/corpus/spec/ (spec strings) and fuzz/corpus/state/
(small valid state files of several optimizers, a few KB each). Deterministic; rerun after a
change of the state format or of the spec keys:

    PYTHONPATH=<staged or installed adapprox> python fuzz/make_corpus.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import adapprox.numpy as anp
from adapprox import _core

HERE = Path(__file__).resolve().parent

SPECS = {
    "adapprox": "adapprox:lr=1e-3,rank=4,tol=1e-2,beta1=0.9",
    "adapprox_full": None,  # every key: filled in from _core.spec_defaults
    "adafactor": "adafactor",
    "adafactor_full": None,
    "adafactor_paper": "adafactor:mode=1,beta1=0.9,relative_step=0,scale_parameter=0,lr=0.01",
    "adafactor_eps": "adafactor:eps1=1e-30,eps2=1e-3,d=1,beta2_decay=-0.8",
    "adam": "adam:lr=0.001,beta1=0.9,beta2=0.999,eps=1e-8,amsgrad=1",
    "adamw": "adamw:weight_decay=0.01, maximize=true",
    "nadam": "nadam:lr=2e-3,momentum_decay=0.004,decoupled_weight_decay=1",
    "rmsprop": "rmsprop:lr=0.01,alpha=0.99,centered=1,momentum=0.9",
    "adagrad": "adagrad:lr=0.01,lr_decay=0,initial_accumulator_value=0.1",
    "sgd": "sgd:lr=0.1,momentum=0.9,nesterov=1",
    "signsgd": "signsgd:lr=1e-4",
    "adagram": "adagram:lr=0.1,rank=2,eps=1e-2,weight_decay=0.01",
    "fullmatrixadagrad": "fullmatrixadagrad:lr=0.1,lr_decay=0.01,eps=1e-10",
    "bad_values": " sgd : lr = 1e400 ,momentum=-0x1p3",
    "bad_syntax": "adam:lr=,,beta1=2:",
}


def full_spec(name: str) -> str:
    values = _core.spec_defaults(name)
    return name + ":" + ",".join(f"{k}={v!r}" for k, v in sorted(values.items()))


def states() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    out = {}
    makers = {
        "adapprox": lambda ps: anp.Adapprox(ps, lr=1e-2, rank=2, max_rank=3),
        "adam": lambda ps: anp.Adam(ps, amsgrad=True),
        "sgd": lambda ps: anp.SGD(ps, lr=0.1, momentum=0.9),
        "adafactor_torch": lambda ps: anp.Adafactor(ps),
        "adafactor_paper": lambda ps: anp.Adafactor(ps, mode="paper", lr=None, beta1=0.9),
        "adagram": lambda ps: anp.AdaGram(ps, rank=2),
        "fullmatrixadagrad": lambda ps: anp.FullMatrixAdagrad(ps),
    }
    for name, make in makers.items():
        # a matrix, a 3-D tensor, a vector and one parameter never stepped
        params = [rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((2, 3, 4)),
                  rng.standard_normal(5).astype(np.float32), np.zeros(3, np.float32)]
        if name == "adapprox":
            params[1] = params[1].astype(np.float32)  # Adapprox state is float32 for every dtype
        if name == "fullmatrixadagrad":  # n x n state: smaller tensors keep the seed under 8 KB
            params[:2] = [params[0][:3, :3].copy(), params[1][:, :2, :2].copy()]
        opt = make(params)
        for _ in range(2):
            opt.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params[:3]] + [None])
        out[name] = opt.save_native_state()
    return out


def widened_full_matrix() -> bytes:
    """A full-matrix state whose one vector claims 3000 elements while its stored sum stays 7 x 7:
    the loader refuses it, and the fuzz target must then step such shapes only when cheap (an
    n x n eigendecomposition per step is seconds at n = 3000, which libFuzzer calls a slow unit)."""
    opt = anp.FullMatrixAdagrad([np.zeros(7, np.float32)])
    opt.step([np.ones(7, np.float32)])
    data = opt.save_native_state()
    extent = b"\x01\x00\x00\x00" + (7).to_bytes(8, "little")  # ndim 1, extent 7
    at = data.index(extent) + 4
    body = data[:at] + (3000).to_bytes(8, "little") + data[at + 8:-8]
    return body + fnv1a(body).to_bytes(8, "little")


def fnv1a(data: bytes) -> int:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def main() -> None:
    spec_dir, state_dir = HERE / "corpus" / "spec", HERE / "corpus" / "state"
    for d in (spec_dir, state_dir):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    for name, text in SPECS.items():
        text = text or full_spec(name.removesuffix("_full"))
        (spec_dir / f"{name}.txt").write_text(text)
    for name, data in states().items():
        assert _core.load_state_check(data)
        (state_dir / f"{name}.bin").write_bytes(data)
    (state_dir / "fullmatrixadagrad_wide.bin").write_bytes(widened_full_matrix())
    print(f"wrote {len(SPECS)} specs to {spec_dir} and {len(list(state_dir.iterdir()))} states to {state_dir}")


if __name__ == "__main__":
    main()

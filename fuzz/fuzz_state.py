"""Fuzz target: the state loader (what adx_state_load and load_native_state run).

    python fuzz/fuzz_state.py -max_total_time=20 fuzz/corpus/state

Each input is tried as it is and with its trailing FNV-1a checksum recomputed (so that
mutations get past the checksum into the parser). For each: _core.decode_state, and
_core.load_state_check (a C++ Optimizer of the state's name loads it, hyperparameters
included), may raise only ValueError or TypeError and must agree on what they accept; a
state that decodes is then loaded into the NumPy optimizer of its name over parameters of
the saved shapes and stepped once, again raising nothing but ValueError or TypeError.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import expect_only, feedback, main  # noqa: E402

with atheris.instrument_imports(include=["adapprox"]):
    import numpy as np

    import adapprox.numpy as anp
    from adapprox import _core

BAD_INPUT = (ValueError, TypeError)
FRONTS = {"adapprox": anp.Adapprox, "adafactor": anp.Adafactor, "adam": anp.Adam, "adamw": anp.AdamW,
          "nadam": anp.NAdam, "rmsprop": anp.RMSprop, "adagrad": anp.Adagrad, "sgd": anp.SGD,
          "signsgd": anp.SignSGD, "adagram": anp.AdaGram, "fullmatrixadagrad": anp.FullMatrixAdagrad}
# What the decoder, the loaders and the steps can say (see feedback() in _common.py).
OUTCOMES = feedback([*FRONTS, "accepted", "checksum", "truncated", "magic", "format version", "implausible",
                     "bad shape", "negative step", "negative extent", "out of range", "appears twice", "not a word", "int64", "unknown dtype", "does not match its shape", "trailing",
                     "unknown", "rank", "factor_p", "factor_q", "sum", "elements", "factor_u", "exp_avg_sq", "exp_avg", "row_var", "col_var",
                     "variance", "max_exp_avg_sq", "momentum_buffer", "float32", "float64", "wrong", "required",
                     "after the first step", "different number", "another size", "does not fit", "saved by",
                     "must be", "whole number", "aliases", "dtype", "shape", "stepped", "ValueError",
                     "TypeError"])
MAX_NUMEL = 1 << 14  # larger saved shapes are decoded and loaded but not stepped
# A full-matrix step costs O(n^3) in a parameter's size n (an n x n eigendecomposition): n = 2048
# already takes seconds, which libFuzzer reports as a slow unit. Its cap keeps the search fast.
MAX_NUMEL_OF = {"fullmatrixadagrad": 1 << 9}
MAX_PARAMS = 16


def fnv1a(data: bytes) -> int:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def with_checksum(data: bytes) -> bytes:
    body = data[:-8]
    return body + fnv1a(body).to_bytes(8, "little")


def step_in_python(name: str, states: list, data: bytes) -> None:
    if name not in FRONTS or len(states) > MAX_PARAMS:
        return
    shapes = [(2,) if st is None else tuple(st[0]) for st in states]  # st: (shape, step, {name: array})
    cap = MAX_NUMEL_OF.get(name, MAX_NUMEL)
    if any(math.prod(d for d in s if d) > cap for s in shapes):  # zero extents beside huge ones too
        return
    f64 = [st is not None and any(a.dtype == np.float64 for a in st[2].values()) for st in states]
    params = [np.full(s, 0.5, np.float64 if w else np.float32) for s, w in zip(shapes, f64)]
    opt = FRONTS[name](params)
    outcome = [name]
    expect_only(BAD_INPUT, opt.load_native_state, data, outcome=outcome)
    expect_only(BAD_INPUT, opt.step, [np.full_like(p, 0.25) for p in params], outcome=outcome)
    OUTCOMES(" | ".join(outcome) + " | stepped")
    saved = opt.save_native_state()  # whatever loaded or stepped must save
    assert _core.decode_state(saved)[0] == name


def check(data: bytes) -> None:
    outcome: list = []
    decoded = expect_only(BAD_INPUT, _core.decode_state, data, outcome=outcome)
    spec = expect_only(BAD_INPUT, _core.load_state_check, data, outcome=outcome)
    OUTCOMES((decoded[0] if decoded else "") + " | " + " | ".join(outcome))
    if decoded is None:
        assert spec is None, "load_state_check accepted what decode_state refused"
        return
    name, hyper, states = decoded
    assert isinstance(name, str) and isinstance(hyper, dict) and isinstance(states, list)
    if spec is not None:
        assert spec.split(":")[0] == name and _core.canonical_spec(spec) == spec, spec
    step_in_python(name, states, data)


def test_one_input(data: bytes) -> None:
    check(data)
    if len(data) >= 24:
        fixed = with_checksum(data)
        if fixed != data:
            check(fixed)


if __name__ == "__main__":
    main(test_one_input)

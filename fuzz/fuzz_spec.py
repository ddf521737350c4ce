"""Fuzz target: the spec-string parser and optimizer creation (what adx_create runs).

    python fuzz/fuzz_spec.py -max_total_time=20 fuzz/corpus/spec

Each input, read as UTF-8 text, goes through _core.parse_spec and _core.canonical_spec, which
may raise only ValueError or TypeError. A spec that creates an optimizer must have a canonical
form that parses back to the same name and values and creates the same optimizer again.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import expect_only, feedback, main  # noqa: E402

with atheris.instrument_imports(include=["adapprox"]):
    from adapprox import _core

BAD_INPUT = (ValueError, TypeError)
NAMES = _core.algorithms()  # the registry: every optimizer
KEYS = sorted({k for n in NAMES for k in _core.spec_defaults(n)})
# What the parser and the optimizers can say (see feedback() in _common.py).
OUTCOMES = feedback([*NAMES, *KEYS, "accepted", "KEY=VALUE", "not a name", "twice", "finite number", "stray",
                     "longer than", "must start with", "unknown optimizer", "unknown key", "must be", "whole number",
                     ">= 0", "> 0", "[0, 1)", "only", "0 or 1", "paper", "torch", "ValueError", "TypeError"])


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    outcome: list = []
    parsed = expect_only(BAD_INPUT, _core.parse_spec, text, outcome=outcome)
    if parsed is None:
        OUTCOMES(outcome[0])
        return
    name, values = parsed
    assert isinstance(name, str) and name, parsed
    assert all(isinstance(k, str) and isinstance(v, float) and math.isfinite(v) for k, v in values.items()), parsed
    canonical = expect_only(BAD_INPUT, _core.canonical_spec, text, outcome=outcome)
    OUTCOMES(f"{name}|{','.join(values)}|{outcome[-1]}")
    if canonical is None:
        return
    again_name, again = _core.parse_spec(canonical)
    assert again_name == name, (text, canonical)
    assert set(again) == set(_core.spec_defaults(name)), (text, canonical)
    assert all(again[k] == v for k, v in values.items() if k not in ("eps1", "eps1_auto")), (text, canonical)
    assert _core.canonical_spec(canonical) == canonical, (text, canonical)


if __name__ == "__main__":
    main(test_one_input)

"""Replay a fuzz target without atheris: every seed of its corpus, then N random mutations of
the seeds (bytes flipped, inserted, deleted, spliced; seeded, so a run is repeatable).

    python fuzz/replay.py state 3000

For builds atheris cannot drive, such as the AddressSanitizer + UBSan build of the extension
(tests/test_sanitizers.py runs this under it). A stand-in for the atheris module is installed
first, so the targets import unchanged; their checks raise on any wrong outcome.
"""
from __future__ import annotations

import contextlib
import random
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _stub_atheris() -> None:
    stub = types.ModuleType("atheris")
    stub.instrument_imports = lambda **kw: contextlib.nullcontext()
    stub.instrument_func = lambda f: f
    sys.modules.setdefault("atheris", stub)


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 3 and b:
            del b[rng.randrange(len(b))]
        elif op == 4:
            other = rng.choice(seeds)
            i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
            b[i:] = other[j:]
    return bytes(b)


def main(argv: list[str]) -> int:
    target, count = argv[1], int(argv[2]) if len(argv) > 2 else 1000
    _stub_atheris()
    sys.path.insert(0, str(HERE))
    module = __import__(f"fuzz_{target}")
    seeds = [p.read_bytes() for p in sorted((HERE / "corpus" / target).iterdir()) if p.is_file()]
    for s in seeds:
        module.test_one_input(s)
    rng = random.Random(0)
    for _ in range(count):
        module.test_one_input(mutate(rng, rng.choice(seeds), seeds))
    print(f"replayed {len(seeds)} seeds and {count} mutations of fuzz_{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

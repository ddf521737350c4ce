"""Shared plumbing of the atheris fuzz targets (fuzz_spec.py, fuzz_state.py).

libFuzzer writes new inputs into the first corpus directory it is given and crash files into
the working directory. So that a run never changes the repository, corpus directories inside
fuzz/corpus/ are read as seeds only (a fresh temporary directory is put first to receive what
the run finds; ADAPPROX_FUZZ_GROW_CORPUS=1 turns this off, to grow the seed corpus on purpose),
and artifacts go to a temporary directory unless -artifact_prefix= is given. libFuzzer prints
where a crash file was written.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def libfuzzer_argv(argv: list[str]) -> list[str]:
    args = list(argv)
    flags = [a for a in args[1:] if a.startswith("-")]
    dirs = [a for a in args[1:] if not a.startswith("-")]
    if not any(f.startswith("-artifact_prefix=") for f in flags):
        flags.append("-artifact_prefix=" + tempfile.mkdtemp(prefix="adapprox-fuzz-artifacts-") + os.sep)
    if dirs and os.environ.get("ADAPPROX_FUZZ_GROW_CORPUS") != "1":
        first = Path(dirs[0]).resolve()
        if first == CORPUS or CORPUS in first.parents:
            dirs.insert(0, tempfile.mkdtemp(prefix="adapprox-fuzz-corpus-"))
    return [args[0], *flags, *dirs]


def feedback(words):
    """A function ``f(text)`` with one instrumented branch per word of `words` found in `text`.

    atheris sees coverage of Python code only (the native core is built without coverage
    instrumentation), so without this every input looks alike: libFuzzer would drop the seed
    corpus down to one input and mutate blindly. Calling f with a description of what the core
    did (its error message, the optimizer it loaded) gives each distinct outcome its own
    coverage, so inputs that reach new outcomes are kept and mutated further."""
    import atheris

    src = "def f(text):\n" + "".join(f"    if {w!r} in text:\n        pass\n" for w in words) + "    return text\n"
    scope: dict = {}
    exec(compile(src, "<adapprox-fuzz-feedback>", "exec"), scope)
    return atheris.instrument_func(scope["f"])


def expect_only(errors, fn, *args, outcome=None):
    """fn(*args), or None if it raised one of `errors` (anything else propagates: a finding).
    The error message, or "accepted", is appended to the list `outcome` if given."""
    try:
        result = fn(*args)
    except errors as e:
        if outcome is not None:
            outcome.append(f"{type(e).__name__}: {e}")
        return None
    if outcome is not None:
        outcome.append("accepted")
    return result


def main(test_one_input) -> None:
    import atheris

    atheris.Setup(libfuzzer_argv(sys.argv), test_one_input)
    atheris.Fuzz()

"""Where a factored step's time goes: the native core's phase timers, switched on for a block."""
from __future__ import annotations

import contextlib

from . import _core


class PhaseTimes:
    """Seconds per phase of the factored steps run inside a :func:`phase_times` block.

    ``seconds`` and ``calls`` map each phase (sketch, products, orthonormalise, eigen, factors,
    update, factored_step) to its total and how often it was entered. ``factored_step`` is the
    whole step of every factored parameter; the other phases lie inside it, and ``other`` is what
    remains (allocation, copies, bookkeeping). Totals are summed over threads: where small
    parameters step side by side they can exceed the wall time.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @property
    def other(self) -> float:
        inner = sum(s for name, s in self.seconds.items() if name != "factored_step")
        return self.seconds.get("factored_step", 0.0) - inner

    def __repr__(self):
        parts = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.seconds.items())
        return f"PhaseTimes({parts})"


@contextlib.contextmanager
def phase_times():
    """Time the native phases of the steps taken in the block::

        with adapprox.phase_times() as t:
            opt.step()
        print(t.seconds["products"], t.other)

    The timers are process-wide: steps taken by other threads meanwhile count too.
    """
    result = PhaseTimes()
    _core.reset_phase_times()
    _core.set_phase_timing(True)
    try:
        yield result
    finally:
        _core.set_phase_timing(False)
        for name, (seconds, calls) in _core.phase_times().items():
            result.seconds[name], result.calls[name] = seconds, calls

"""One lock per optimizer object: the thread-safety contract of both fronts.

Methods marked ``@serialised`` (step, loading and saving state) run one at a time per optimizer:
two threads stepping one optimizer take turns, so no update is lost and no state tensor is
replaced under another step. The native step releases the GIL, which is why the lock is needed.
Separate optimizers share nothing and never wait for each other.
"""
from __future__ import annotations

import functools
import threading


def _lock_of(obj) -> threading.RLock:
    lock = obj.__dict__.get("_adapprox_lock")
    if lock is None:  # dict.setdefault is atomic under the GIL: every thread gets the same lock
        lock = obj.__dict__.setdefault("_adapprox_lock", threading.RLock())
    return lock


def serialised(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _lock_of(self):
            return method(self, *args, **kwargs)
    return wrapper


def drop_lock(state: dict) -> dict:
    """For __getstate__: a lock is neither copied nor pickled (a copy gets its own)."""
    state.pop("_adapprox_lock", None)
    return state

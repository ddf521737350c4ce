"""Ctrl-C inside a long native step: the step stops between parameters (and between AS-RSI's
subspace iterations), every parameter is either stepped in full or untouched, and the signal's
exception reaches the caller. References: the same step run to the end on copies."""
from __future__ import annotations

import _thread
import ctypes
import signal
import threading
import time

import numpy as np
import pytest
import torch

import adapprox.numpy as anp
import adapprox.torch as at
from test_c_abi_interop import DLTensor
from test_hardening import Handle, dl, lib  # noqa: F401  (the C ABI fixture)

# Long enough to interrupt on 2 cores (about 1 s), short enough for the suite.
SHAPE, COUNT = (384, 384), 12
HYPER = dict(rank=32, max_rank=64, power_iters=32, oversample=32, tol=0.0)


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(SHAPE, generator=g) for _ in range(COUNT)]
    grads = [torch.randn(SHAPE, generator=g) for _ in range(COUNT)]
    return params, grads


def _torch_opt(params, grads):
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    return ps, at.Adapprox(ps, lr=1e-2, **HYPER)


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Ctrl-C as a fresh interpreter has it: Python's default handler, which raises
    KeyboardInterrupt. Code run earlier in the same process (a launcher, a library) may have
    replaced it (torch's elastic agent installs one that raises its own exception; SIG_IGN or
    SIG_DFL make _thread.interrupt_main do nothing), which these tests are not about."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _interrupt_after(delay):
    timer = threading.Timer(delay, _thread.interrupt_main)
    timer.start()
    return timer


def _full_step_time_and_reference():
    """A full first step's time, measured warm (a cold first step in the process, which starts the
    thread pool and faults in memory, can take several times as long, and an interrupt timed
    from it would come after the step had ended), and its result as the reference."""
    params, grads = _problem()
    _torch_opt(params, grads)[1].step()  # warm-up
    ps, opt = _torch_opt(params, grads)
    t0 = time.perf_counter()
    opt.step()
    return time.perf_counter() - t0, params, grads, ps, opt


def test_ctrl_c_stops_a_long_torch_step_between_parameters():
    full, params, grads, ref_ps, ref = _full_step_time_and_reference()
    assert full > 0.2, f"the step is too short ({full:.3f} s) to interrupt"
    ps, opt = _torch_opt(params, grads)
    timer = _interrupt_after(full / 4)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    elapsed = time.perf_counter() - t0
    timer.join()
    assert elapsed < full * 0.75, f"stopped after {elapsed:.3f} s of a {full:.3f} s step"
    stepped = [i for i, p in enumerate(ps) if p in opt.state]
    assert len(stepped) < COUNT, "the interrupt did not stop the step"
    for i, (p, r, p0) in enumerate(zip(ps, ref_ps, params)):
        if i in stepped:  # in full: the reference's parameter and state, bitwise
            assert torch.equal(p.detach(), r.detach())
            st, rst = opt.state[p], ref.state[r]
            assert st.keys() == rst.keys()
            for k in st:
                assert torch.equal(st[k], rst[k]), (i, k)
        else:  # untouched: no state, the parameter as it was
            assert torch.equal(p.detach(), p0)
    # The optimizer goes on: the next step steps every parameter (the untouched ones for the first time).
    opt.step()
    assert all(int(opt.state[p]["step"]) == (2 if i in stepped else 1) for i, p in enumerate(ps))
    assert all(torch.isfinite(p).all() for p in ps)


def test_a_signal_handler_that_does_not_raise_lets_the_step_finish():
    full, params, grads, ref_ps, ref = _full_step_time_and_reference()
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        ps, opt = _torch_opt(params, grads)
        timer = _interrupt_after(full / 4)
        opt.step()
        timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIGINT]  # the handler ran during the step, not after it
    assert all(torch.equal(p.detach(), r.detach()) for p, r in zip(ps, ref_ps))


def test_ctrl_c_stops_a_numpy_step_and_keeps_whole_parameters():
    params, grads = _problem(1)
    params = [p.numpy() for p in params]
    grads = [g.numpy() for g in grads]
    ref_p = [p.copy() for p in params]
    anp.Adapprox([p.copy() for p in params], lr=1e-2, **HYPER).step(grads)  # warm-up (as above)
    ref = anp.Adapprox(ref_p, lr=1e-2, **HYPER)
    t0 = time.perf_counter()
    ref.step(grads)
    full = time.perf_counter() - t0
    mine = [p.copy() for p in params]
    opt = anp.Adapprox(mine, lr=1e-2, **HYPER)
    timer = _interrupt_after(full / 4)
    with pytest.raises(KeyboardInterrupt):
        opt.step(grads)
    timer.join()
    assert len(opt.state) < COUNT
    for i in range(COUNT):
        if i in opt.state:
            np.testing.assert_array_equal(mine[i], ref_p[i])
            for k, v in opt.state[i].items():
                np.testing.assert_array_equal(v, ref.state[i][k])
        else:
            np.testing.assert_array_equal(mine[i], params[i])


POLL = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


def test_c_abi_interrupt_callback(lib):  # noqa: F811
    lib.adx_set_interrupt.argtypes = [ctypes.c_void_p, POLL, ctypes.c_void_p]
    spec = "adapprox:lr=0.01," + ",".join(f"{k}={v}" for k, v in HYPER.items())
    params, grads = _problem(2)
    params = [p.numpy() for p in params]
    grads = [g.numpy() for g in grads]
    keep = []
    ref_p = [p.copy() for p in params]
    ref = Handle(lib, spec)
    assert ref.step([dl(p, keep=keep) for p in ref_p], [dl(g, keep=keep) for g in grads]) == 0, ref.error()

    calls = []

    def poll(_ctx):  # asks to stop at the second poll (about 40 ms into the step)
        calls.append(1)
        return int(len(calls) >= 2)

    callback = POLL(poll)
    mine = [p.copy() for p in params]
    h = Handle(lib, spec)
    assert lib.adx_set_interrupt(h.h, callback, None) == 0
    status = h.step([dl(p, keep=keep) for p in mine], [dl(g, keep=keep) for g in grads])
    assert status == 10, (status, h.error())  # ADX_ERR_INTERRUPTED
    assert "interrupted" in h.error()
    stepped = [i for i in range(COUNT) if not np.array_equal(mine[i], params[i])]
    assert len(stepped) < COUNT
    for i in stepped:
        np.testing.assert_array_equal(mine[i], ref_p[i])
    # Without the callback (NULL) the next step runs to the end.
    assert lib.adx_set_interrupt(h.h, ctypes.cast(None, POLL), None) == 0
    assert h.step([dl(p, keep=keep) for p in mine], [dl(g, keep=keep) for g in grads]) == 0, h.error()
    assert all(np.isfinite(p).all() for p in mine)
    assert len(calls) == 2

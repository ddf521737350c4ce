"""State crosses the C ABI both ways: saved in Python, continued through libadapprox (ctypes),
and the other way round, on exactly the same trajectory."""
import ctypes
from pathlib import Path

import numpy as np
import pytest

import adapprox.numpy as anp


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32),
                ("ndim", ctypes.c_int32), ("code", ctypes.c_uint8), ("bits", ctypes.c_uint8),
                ("lanes", ctypes.c_uint16), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class COptimizer:
    """A thin ctypes wrapper of adapprox.h, for the test only."""

    def __init__(self, lib, spec):
        self.lib = lib
        self.handle = ctypes.c_void_p()
        self.check(lib.adx_create(spec.encode(), ctypes.byref(self.handle)))

    def check(self, status):
        if status != 0:
            raise RuntimeError(f"status {status}: {self.lib.adx_last_error().decode()}")

    def step(self, params, grads):
        keep = []

        def tensors(arrays):
            out = (DLTensor * len(arrays))()
            for t, a in zip(out, arrays):
                shape = (ctypes.c_int64 * a.ndim)(*a.shape)
                keep.append(shape)
                t.data, t.device_type, t.ndim = a.ctypes.data, 1, a.ndim
                t.code, t.bits, t.lanes, t.shape = 2, a.itemsize * 8, 1, shape
            return out

        self.check(self.lib.adx_step(self.handle, tensors(params), tensors(grads), len(params),
                                     ctypes.c_double(-1.0)))

    def save(self):
        size = ctypes.c_size_t()
        self.check(self.lib.adx_state_size(self.handle, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        written = ctypes.c_size_t()
        self.check(self.lib.adx_state_save(self.handle, buf, size, ctypes.byref(written)))
        return buf.raw[: written.value]

    def load(self, data):
        self.check(self.lib.adx_state_load(self.handle, data, len(data)))

    def __del__(self):
        self.lib.adx_destroy(self.handle)


@pytest.fixture(scope="module")
def lib(cpp_build):
    found = sorted(Path(cpp_build).rglob("libadapprox.so*"))
    assert found, "libadapprox.so was not built"
    lib = ctypes.CDLL(str(found[0]))
    lib.adx_last_error.restype = ctypes.c_char_p
    lib.adx_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.adx_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_double]
    lib.adx_state_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    lib.adx_state_save.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    lib.adx_state_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.adx_destroy.argtypes = [ctypes.c_void_p]
    return lib


CASES = [
    ("adapprox:lr=0.01,rank=2,max_rank=6,weight_decay=0.1", lambda ps: anp.Adapprox(ps, lr=0.01, rank=2, max_rank=6,
                                                                                    weight_decay=0.1)),
    ("adam:lr=0.01,weight_decay=0.1,amsgrad=1", lambda ps: anp.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("adafactor:lr=0.05,weight_decay=0.1", lambda ps: anp.Adafactor(ps, lr=0.05, weight_decay=0.1)),
    ("adafactor:mode=1,beta1=0.9,weight_decay=0.01", lambda ps: anp.Adafactor(ps, mode="paper", lr=None, beta1=0.9,
                                                                             weight_decay=0.01)),
    ("adagram:lr=0.2,rank=3,weight_decay=0.01", lambda ps: anp.AdaGram(ps, lr=0.2, rank=3, weight_decay=0.01)),
    ("fullmatrixadagrad:lr=0.2,lr_decay=0.1", lambda ps: anp.FullMatrixAdagrad(ps, lr=0.2, lr_decay=0.1)),
]


@pytest.mark.parametrize("spec, make", CASES, ids=["adapprox", "adam", "adafactor-torch", "adafactor-paper",
                                                 "adagram", "fullmatrixadagrad"])
@pytest.mark.parametrize("python_first", [True, False], ids=["python-to-c", "c-to-python"])
def test_state_crosses_the_abi(lib, spec, make, python_first):
    rng = np.random.default_rng(0)
    w0 = [rng.standard_normal((24, 10)).astype(np.float32), rng.standard_normal(10).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in w0] for _ in range(10)]

    # Reference: Python all the way.
    ref = [w.copy() for w in w0]
    opt = make(ref)
    for g in grads:
        opt.step(g)

    w = [x.copy() for x in w0]
    if python_first:
        first = make(w)
        for g in grads[:5]:
            first.step(g)
        second = COptimizer(lib, spec)
        second.load(first.save_native_state())
        for g in grads[5:]:
            second.step(w, g)
    else:
        first = COptimizer(lib, spec)
        for g in grads[:5]:
            first.step(w, g)
        second = make(w)
        second.load_native_state(first.save())
        for g in grads[5:]:
            second.step(g)
    for a, b in zip(w, ref):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kw", [{}, dict(mode="paper", lr=None, beta1=0.9, eps=(1e-20, 1e-3), d=2.0),
                                dict(mode="paper", lr=0.02, relative_step=False, scale_parameter=False, maximize=True)],
                         ids=["torch", "paper-beta1", "paper-fixed-step"])
def test_adafactor_hyperparameters_saved_by_python_are_the_spec_keys(lib, kw):
    """The hyperparameters Python stores are exactly the C++ API's spec keys, so adx_state_load
    takes them, and adx_spec then reports the same optimizer as Python's settings."""
    from adapprox import _core
    w = [np.ones((3, 4)), np.ones(4)]
    opt = anp.Adafactor(w, **kw)
    opt.step([np.full((3, 4), 0.5), np.full(4, 0.5)])
    data = opt.save_native_state()
    name, hyper, states = _core.decode_state(data)
    assert name == "adafactor" and set(hyper) == set(_core.spec_defaults("adafactor"))
    assert [{str(b.dtype) for b in s[2].values()} for s in states] == [{"float64"}, {"float64"}]
    c = COptimizer(lib, "adafactor")
    c.load(data)  # the hyperparameters travel with the state through the C ABI
    assert _core.load_state_check(data) == _core.canonical_spec(_core.load_state_check(data))
    again = anp.Adafactor([x.copy() for x in w], **kw)
    again.load_native_state(c.save())
    assert all(np.array_equal(a, b) for a, b in zip(again.state_dict()["state"][0].values(),
                                                      opt.state_dict()["state"][0].values()))


def test_corrupt_state_is_refused_by_python():
    w = [np.zeros((4, 3), np.float32)]
    opt = anp.Adapprox(w)
    opt.step([np.ones((4, 3), np.float32)])
    data = bytearray(opt.save_native_state())
    data[-20] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        opt.load_native_state(bytes(data))
    with pytest.raises(ValueError, match="truncated"):
        opt.load_native_state(bytes(data[:10]))

"""State crosses the C ABI both ways: saved in Python, continued through libadapprox (ctypes),
and the other way round, on exactly the same trajectory."""
import ctypes
from pathlib import Path

import numpy as np
import pytest

import adapprox.numpy as anp
from adapprox import _core


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

    def load(self, data, keep_hyperparameters=False):
        self.check(self.lib.adx_state_load_ex(self.handle, data, len(data), 1 if keep_hyperparameters else 0))

    def spec(self):
        buf = ctypes.create_string_buffer(4096)
        need = ctypes.c_size_t()
        self.check(self.lib.adx_spec(self.handle, buf, len(buf), ctypes.byref(need)))
        return buf.value.decode()

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
    lib.adx_state_load_ex.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
    lib.adx_spec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
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
    ("adamw:lr=0.01,state_precision=8bit", lambda ps: anp.AdamW(ps, lr=0.01, state_precision="8bit")),
    ("adapprox:lr=0.01,rank=2,state_precision=2", lambda ps: anp.Adapprox(ps, lr=0.01, rank=2, state_precision="8bit")),
]


@pytest.mark.parametrize("spec, make", CASES, ids=["adapprox", "adam", "adafactor-torch", "adafactor-paper",
                                                 "adagram", "fullmatrixadagrad", "adamw-8bit", "adapprox-8bit"])
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


LOAD_RULE_CASES = [  # (saved optimizer, loading optimizer with other hyperparameters), both NumPy
    (lambda ps: anp.Adam(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1),
     lambda ps: anp.Adam(ps, lr=0.5, betas=(0.9, 0.999))),
    (lambda ps: anp.Adapprox(ps, lr=0.01, rank=2, max_rank=6, tol=0.05),
     lambda ps: anp.Adapprox(ps, lr=0.1, rank=3, max_rank=None)),
    (lambda ps: anp.Adafactor(ps, mode="paper", lr=None, beta1=0.9, eps=(None, 1e-3), d=2.0),
     lambda ps: anp.Adafactor(ps, lr=0.05, weight_decay=0.1)),
    (lambda ps: anp.Adafactor(ps, lr=0.05, eps=(1e-20, 2e-3)),
     lambda ps: anp.Adafactor(ps, mode="paper", lr=0.02, relative_step=False, scale_parameter=False)),
    (lambda ps: anp.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), lambda ps: anp.SGD(ps, lr=0.3, momentum=0.5)),
]


def spec_of(opt):
    """A NumPy optimizer's hyperparameters as the C++ API's canonical spec."""
    from adapprox import _core
    return _core.canonical_spec(f"{opt.algorithm}:" + ",".join(f"{k}={v!r}" for k, v in opt._hyper(opt.hyper).items()))


@pytest.mark.parametrize("saver, loader", LOAD_RULE_CASES, ids=["adam", "adapprox", "adafactor-paper-to-torch",
                                                                 "adafactor-torch-to-paper", "sgd"])
@pytest.mark.parametrize("keep", [False, True], ids=["restore", "keep"])
def test_c_and_python_agree_on_hyperparameters_after_a_load(lib, saver, loader, keep):
    """One rule: loading restores the saved hyperparameters (keep_hyperparameters / the C flag
    keeps the live ones), so the same bytes give the same optimizer in C and in Python, and they
    continue on the same trajectory."""
    rng = np.random.default_rng(1)
    w0 = [rng.standard_normal((12, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in w0] for _ in range(6)]
    src = saver([w.copy() for w in w0])
    for g in grads[:3]:
        src.step(g)
    data = src.save_native_state()

    w_py, w_c = [x.copy() for x in w0], [x.copy() for x in w0]
    py = loader(w_py)
    live = spec_of(py)
    c = COptimizer(lib, live)
    assert c.spec() == live
    if keep and saver is LOAD_RULE_CASES[2][0]:
        # Kept hyperparameters must fit the state: torch mode keeps no first moment. Both refuse.
        with pytest.raises(ValueError, match="exp_avg"):
            py.load_native_state(data, keep_hyperparameters=True)
        with pytest.raises(RuntimeError, match="status 7"):
            c.load(data, keep_hyperparameters=True)
        return
    py.load_native_state(data, keep_hyperparameters=keep)
    c.load(data, keep_hyperparameters=keep)
    assert spec_of(py) == c.spec() == (live if keep else spec_of(src))
    assert live != spec_of(src)
    for g in grads[3:]:
        py.step(g)
        c.step(w_c, g)
    for a, b in zip(w_py, w_c):
        assert np.array_equal(a, b)


def test_torch_front_restores_saved_hyperparameters_into_its_groups(lib):
    torch = pytest.importorskip("torch")
    import adapprox.torch as at
    w = torch.nn.Parameter(torch.ones(6, 4))
    src = at.Adam([w], lr=0.01, betas=(0.8, 0.95), amsgrad=True)
    w.grad = torch.full_like(w, 0.5)
    src.step()
    data = src.save_native_state()
    c = COptimizer(lib, "adam:lr=0.3")
    c.load(data)
    v = torch.nn.Parameter(torch.ones(6, 4))
    dst = at.Adam([v], lr=0.3)
    dst.load_native_state(data)
    g = dst.param_groups[0]
    assert g["lr"] == 0.01 and tuple(g["betas"]) == (0.8, 0.95) and g["amsgrad"] is True
    from adapprox import _core
    assert _core.canonical_spec(c.spec()) == _core.canonical_spec(
        "adam:" + ",".join(f"{k}={x!r}" for k, x in dst._spec_hyper(g).items()))
    kept = at.Adam([torch.nn.Parameter(torch.ones(6, 4))], lr=0.3, amsgrad=True)
    kept.load_native_state(data, keep_hyperparameters=True)
    assert kept.param_groups[0]["lr"] == 0.3 and kept.param_groups[0]["amsgrad"] is True
    # Kept hyperparameters must fit the state: without AMSGrad's maximum it is refused, unchanged.
    plain = at.Adam([torch.nn.Parameter(torch.ones(6, 4))], lr=0.3)
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        plain.load_native_state(data, keep_hyperparameters=True)
    assert not plain.state and plain.param_groups[0]["amsgrad"] is False
    # Two groups that differ cannot take one saved set: refused, nothing changed.
    a, b = torch.nn.Parameter(torch.ones(6, 4)), torch.nn.Parameter(torch.ones(3))
    two = at.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    two_data = at.Adam([torch.nn.Parameter(torch.ones(6, 4)), torch.nn.Parameter(torch.ones(3))]).save_native_state()
    with pytest.raises(ValueError, match="keep_hyperparameters=True"):
        two.load_native_state(two_data)
    assert [g["lr"] for g in two.param_groups] == [0.1, 0.5]
    two.load_native_state(two_data, keep_hyperparameters=True)
    assert [g["lr"] for g in two.param_groups] == [0.1, 0.5]


def test_c_handle_converts_8bit_state_it_loads(lib):
    """8-bit state saved by Python, loaded by a float32 C handle: the handle decodes it (the values
    the codes stand for), and steps on; loaded back into an 8-bit optimizer it is encoded again."""
    rng = np.random.default_rng(1)
    w = [rng.standard_normal((24, 40)).astype(np.float32)]
    opt = anp.AdamW(w, lr=0.01, state_precision="8bit")
    for _ in range(3):
        opt.step([rng.standard_normal((24, 40)).astype(np.float32)])
    codes, absmax = opt.state[0]["exp_avg"], opt.state[0]["exp_avg_absmax"]
    c = COptimizer(lib, "adamw:lr=0.01")
    c.load(opt.save_native_state(), keep_hyperparameters=True)
    name, _, states = _core.decode_state(c.save())
    bufs = states[0][2]
    assert set(bufs) == {"exp_avg", "exp_avg_sq"} and bufs["exp_avg"].dtype == np.float32
    scale = np.repeat(absmax, 256)[:codes.size].reshape(codes.shape)
    lo = np.minimum(np.abs(bufs["exp_avg"]), scale)
    assert np.all(np.abs(bufs["exp_avg"]) <= scale * (1 + 1e-6)) and np.all(lo >= 0)
    assert np.array_equal(np.sign(bufs["exp_avg"]), np.where(codes & 127, np.where(codes & 128, -1, 1), 0))
    c.step(w, [rng.standard_normal((24, 40)).astype(np.float32)])
    back = anp.AdamW([w[0].copy()], lr=0.01, state_precision="8bit")
    back.load_native_state(c.save(), keep_hyperparameters=True)
    assert back.state[0]["exp_avg"].dtype == np.uint8 and back.state[0]["exp_avg_absmax"].shape == (4,)

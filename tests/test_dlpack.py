"""DLPack boundary: in-place updates, refusals that change nothing, capsule ownership."""
import sys

import numpy as np
import pytest

import adapprox
import adapprox.numpy as anp
from adapprox import _core


def snapshot(opt):
    return {i: {k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}
            for i, s in opt.state_dict()["state"].items()}


def same(a, b):
    return a.keys() == b.keys() and all(
        a[i].keys() == b[i].keys() and all(np.array_equal(a[i][k], b[i][k]) for k in a[i]) for i in a)


def test_in_place_update_is_seen_through_views():
    base = np.zeros(24, np.float32)
    w = base.reshape(6, 4)  # a view: the optimizer must write into `base`
    opt = anp.Adapprox([w], lr=0.1)
    opt.step([np.ones((6, 4), np.float32)])
    assert np.all(base < 0) and np.shares_memory(base, w)


def test_in_place_update_is_seen_through_torch():
    torch = pytest.importorskip("torch")
    import adapprox.torch as atorch
    arr = np.zeros((5, 3), np.float32)
    p = torch.nn.Parameter(torch.from_numpy(arr))
    opt = atorch.Adapprox([p], lr=0.1)
    p.grad = torch.ones(5, 3)
    opt.step()
    assert np.all(arr < 0)


class FakeDevice:
    """An array that claims to live on a CUDA device. A CPU-only build refuses it before asking
    for a capsule; a build with the CUDA backend asks (with a stream) and refuses the step (the
    gradient is on the CPU, and this machine may have no GPU)."""

    def __init__(self):
        self.host = np.ones((4, 3), np.float32)

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kw):
        assert _core.cuda_built(), "a CPU-only build must refuse a CUDA array before exporting it"
        assert kw.get("stream") is not None, "a CUDA array must be asked for the step's stream"
        from test_hardening import cuda_claiming_capsule
        return cuda_claiming_capsule(self.host)


def cases():
    f32 = lambda *s: np.ones(s, np.float32)  # noqa: E731
    ro = f32(4, 3)
    ro.setflags(write=False)
    return [
        ("int dtype", [np.ones((4, 3), np.int32)], [np.ones((4, 3), np.int32)], TypeError, r"params\[1\].*dtype"),
        ("grad dtype", [f32(4, 3)], [np.ones((4, 3), np.float64)], TypeError, r"params\[1\].*dtype"),
        ("shape mismatch", [f32(4, 3)], [f32(3, 4)], ValueError, r"params\[1\].*shape"),
        ("non-contiguous", [f32(3, 4).T], [f32(4, 3)], ValueError, r"params\[1\].*strides"),
        ("read-only", [ro], [f32(4, 3)], ValueError, r"params\[1\].*read-only"),
        ("device", [FakeDevice()], [f32(4, 3)], ValueError, r"params\[1\].*device"),
        ("not an array", [[1.0, 2.0]], [f32(2)], TypeError, r"params\[1\].*DLPack"),
        ("grad not contiguous", [f32(4, 3)], [np.ones((3, 4), np.float32).T], ValueError,
         r"params\[1\]: the gradient's strides"),
    ]


@pytest.mark.parametrize("name, bad_param, bad_grad, exc, pattern", cases(), ids=[c[0] for c in cases()])
def test_bad_input_raises_and_changes_nothing(name, bad_param, bad_grad, exc, pattern):
    good = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    params = [good] + bad_param
    opt = anp.Adapprox(params, lr=0.1)
    opt.step([np.ones_like(good), None])  # some state exists before the bad step
    before_p, before_s = good.copy(), snapshot(opt)
    with pytest.raises(exc, match=pattern):
        opt.step([np.ones_like(good)] + bad_grad)
    assert np.array_equal(good, before_p)  # the valid parameter was not stepped either
    assert same(snapshot(opt), before_s)


def test_bad_grad_count():
    w = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="grads"):
        anp.Adapprox([w]).step([])


def test_capsule_deleter_runs_exactly_once():
    w = np.zeros((8, 8), np.float32)
    g = np.ones((8, 8), np.float32)
    opt = anp.Adapprox([w])
    rw, rg = sys.getrefcount(w), sys.getrefcount(g)
    for _ in range(50):
        opt.step([g])
    # Each consumed capsule holds a reference to its array until its deleter runs: a missing
    # deleter call would leak references, a double call would drop below the baseline.
    assert sys.getrefcount(w) == rw and sys.getrefcount(g) == rg
    with pytest.raises(ValueError):
        opt.step([np.ones((7, 8), np.float32)])
    assert sys.getrefcount(w) == rw


def test_legacy_producer_without_max_version():
    class Legacy:
        def __init__(self, a):
            self.a = a

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

        def __dlpack__(self, stream=None):  # no max_version keyword: a pre-1.0 producer
            return self.a.__dlpack__()

    w = np.zeros((4, 4), np.float32)
    anp.Adapprox([Legacy(w)], lr=0.1).step([Legacy(np.ones((4, 4), np.float32))])
    assert np.all(w < 0)


def test_torch_tensor_requiring_grad_is_refused_by_torch_not_copied():
    torch = pytest.importorskip("torch")
    p = torch.zeros(3, 3, requires_grad=True)
    with pytest.raises(Exception):
        anp.Adapprox([p]).step([torch.ones(3, 3)])


def test_float64_params_update_in_place():
    w = np.zeros((5, 4), np.float64)
    anp.Adapprox([w], lr=0.1).step([np.ones((5, 4))])
    assert w.dtype == np.float64 and np.all(w < 0)


def test_empty_and_scalar_parameters():
    e, s = np.zeros((0, 3), np.float32), np.zeros((), np.float32)
    opt = anp.Adapprox([e, s], lr=0.1)
    opt.step([np.zeros((0, 3), np.float32), np.ones((), np.float32)])
    assert s < 0 and opt.memory_report()["params"][0]["state_bytes"] == 0


def test_threads_are_configurable():
    n = adapprox.num_threads()
    try:
        adapprox.set_num_threads(1)
        assert adapprox.num_threads() == 1
    finally:
        adapprox.set_num_threads(n)

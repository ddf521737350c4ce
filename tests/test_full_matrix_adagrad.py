"""FullMatrixAdagrad against a float64 NumPy implementation (tests/reference.py), step by step,
plus its size limit, its state and its refusals. The table-wide checks (state_dict resume, bf16,
bad input, empty tensors) are in test_battery.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import adapprox.numpy as anp
import adapprox.torch as at
from adapprox import _core
from reference import DenseFullMatrixAdagrad

CASES = {
    "plain": dict(lr=0.1),
    "decay-wd": dict(lr=0.3, lr_decay=0.05, weight_decay=0.1, eps=1e-6),
    "maximize": dict(lr=0.05, maximize=True, eps=1e-3),
}


@pytest.mark.parametrize("shape", [(7,), (3, 4), (), (2, 3, 2)], ids=["7", "3x4", "scalar", "2x3x2"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_float64_numpy_step_by_step(case, shape):
    kw = CASES[case]
    rng = np.random.default_rng(0)
    w = np.array(rng.standard_normal(shape))
    ref = DenseFullMatrixAdagrad(w.size, **kw)
    opt = anp.FullMatrixAdagrad([w], **kw)
    theta = w.copy()
    # Rounding in directions of eigenvalue ~eps is amplified by 1/sqrt(eps) in G^-1/2 g, in
    # either implementation: the agreement to expect is ~1e-16 / sqrt(eps) (1e-11 at eps 1e-10).
    tol = 1e-13 / np.sqrt(kw.get("eps", 1e-10))
    for t in range(20):
        g = np.array(rng.standard_normal(shape) + 0.5 * theta)  # depends on the iterate
        theta = ref.step(theta, g)
        opt.step([g])
        np.testing.assert_allclose(w, theta, rtol=tol, atol=tol, err_msg=f"step {t + 1}")
    # The state is the plain sum of the gradients' outer products (weight decay included).
    assert opt.state_dict()["state"][0]["sum"].shape == (w.size, w.size)
    np.testing.assert_allclose(opt.state_dict()["state"][0]["sum"], ref.S, rtol=tol, atol=tol * np.abs(ref.S).max())


def test_float32_parameters_track_the_float64_reference():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 6)).astype(np.float32)
    ref = DenseFullMatrixAdagrad(w.size, lr=0.2, weight_decay=0.01)
    opt = anp.FullMatrixAdagrad([w], lr=0.2, weight_decay=0.01)
    theta = w.astype(np.float64)
    for _ in range(20):
        g = (rng.standard_normal(w.shape) + theta).astype(np.float32)
        theta = ref.step(w.astype(np.float64), g)  # the reference continues from our float32 values
        opt.step([g])
        assert w.dtype == np.float32
        np.testing.assert_allclose(w, theta, rtol=1e-6, atol=1e-7)


def test_first_step_is_the_normalised_gradient():
    # G_1 = eps I + g g^T has g as an eigenvector (eigenvalue eps + |g|^2): G^-1/2 g = g / sqrt(eps + |g|^2).
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = at.FullMatrixAdagrad([p], lr=2.0, eps=1e-2)
    p.grad = torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)
    opt.step()
    assert torch.allclose(p.detach(), -2.0 * p.grad / np.sqrt(25.01), rtol=1e-14)


@pytest.mark.parametrize("name, kw", [("FullMatrixAdagrad", dict(weight_decay=0.01)), ("AdaGram", dict(rank=3))])
def test_torch_and_numpy_fronts_agree_bitwise(name, kw):  # AdaGram's too: the same native step
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    p = torch.from_numpy(w.copy()).requires_grad_()
    a, b = getattr(anp, name)([w], **kw), getattr(at, name)([p], **kw)
    for _ in range(6):
        g = rng.standard_normal(w.shape).astype(np.float32)
        a.step([g])
        p.grad = torch.from_numpy(g.copy())
        b.step()
    assert np.array_equal(w, p.detach().numpy())


def test_size_limit_is_a_clear_error_and_changes_nothing():
    limit = _core.FULL_MATRIX_MAX_NUMEL
    assert limit == 4096
    small, big = np.ones(3), np.ones(limit + 1)
    opt = anp.FullMatrixAdagrad([small, big])
    with pytest.raises(ValueError, match=r"params\[1\].*n <= 4096.*4097.*AdaGram"):
        opt.step([np.ones(3), np.ones(limit + 1)])
    assert (small == 1).all() and (big == 1).all() and opt.state == {}
    ok = np.ones(limit // 64)  # 64 elements: fine
    anp.FullMatrixAdagrad([ok]).step([np.ones_like(ok)])
    assert (ok < 1).all()


@pytest.mark.parametrize("kw, match", [(dict(eps=0.0), "eps"), (dict(lr=-1.0), "lr"), (dict(lr_decay=-1.0), "lr_decay"),
                                       (dict(weight_decay=-0.1), "weight_decay")])
@pytest.mark.parametrize("cls", [at.FullMatrixAdagrad, at.AdaGram, anp.FullMatrixAdagrad, anp.AdaGram],
                         ids=["torch", "torch-AdaGram", "numpy", "numpy-AdaGram"])
def test_bad_hyperparameters_are_named(kw, match, cls):  # shared by AdaGram (gram.hpp)
    param = torch.zeros(2, requires_grad=True) if cls.__module__.startswith("adapprox.torch") else np.zeros(2)
    with pytest.raises(ValueError, match=match):
        cls([param], **kw)

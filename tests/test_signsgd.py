"""SignSGD against a float64 NumPy implementation of its documented update."""
import numpy as np
import pytest

import adapprox.numpy as anp


def reference(theta, grads, lr, momentum, wd):
    theta, m = theta.astype(np.float64), np.zeros_like(theta, dtype=np.float64)
    for g in grads:
        if momentum > 0:
            m = momentum * m + (1 - momentum) * g
            d = np.sign(m)
        else:
            d = np.sign(g)
        theta = theta - lr * (d + wd * theta)
    return theta


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("shape", [(1,), (7, 13), (4097,), (3, 4, 5)])
def test_matches_reference(shape, momentum, dtype, tol):
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(50)]
    w = theta0.copy()
    opt = anp.SignSGD([w], lr=1e-2, momentum=momentum, weight_decay=0.1)
    for g in grads:
        opt.step([g])
    ref = reference(theta0, grads, 1e-2, momentum, 0.1)
    assert np.abs(w - ref).max() / np.abs(ref).max() < tol

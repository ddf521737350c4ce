"""JAX arrays are immutable, yet JAX exports their buffers through DLPack without a read-only
flag: the NumPy front, which steps parameters in place, must refuse them before writing."""
import numpy as np
import pytest

import adapprox.numpy as anp

jnp = pytest.importorskip("jax.numpy")


@pytest.mark.parametrize("make", [lambda ps: anp.SGD(ps, lr=1.0), lambda ps: anp.Adam(ps, lr=0.1),
                                  lambda ps: anp.Adapprox(ps, lr=0.1)], ids=["sgd", "adam", "adapprox"])
def test_jax_parameters_are_refused_and_left_alone(make):
    w = jnp.zeros((4, 3))
    alias = w
    with pytest.raises(TypeError, match=r"params\[1\] is a JAX array.*immutable.*adapprox\.jax"):
        make([np.zeros(2, np.float32), w])
    assert np.array_equal(np.asarray(alias), np.zeros((4, 3)))


def test_jax_gradients_are_read_not_written():
    w = np.ones((4, 3), np.float32)
    g = jnp.full((4, 3), 0.5, dtype=jnp.float32)
    anp.SGD([w], lr=1.0).step([g])
    assert np.array_equal(w, np.full((4, 3), 0.5, np.float32))
    assert np.array_equal(np.asarray(g), np.full((4, 3), 0.5, np.float32))

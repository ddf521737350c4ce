"""Standalone AS-RSI: A ~ Q @ U.T with an adaptively chosen rank."""
from __future__ import annotations

from . import _core


def as_rsi(A, *, rank=1, min_rank=1, max_rank=None, tol=1e-2, oversample=5, power_iters=1, seed=0):
    """Randomized low-rank approximation ``A ~ Q @ U.T`` by adaptive subspace iteration.

    A Gaussian sketch of width ``k + oversample`` is refined by ``power_iters`` rounds of
    subspace iteration (each re-orthonormalised by Householder QR); the rank is the smallest
    ``k`` in ``[min_rank, max_rank]`` whose relative Frobenius error
    ``||A - Q U^T||_F / ||A||_F`` is at most ``tol``, the starting ``rank`` being doubled with
    a fresh sketch while the tolerance is out of the sketch's reach.

    Parameters
    ----------
    A : array supporting DLPack (NumPy, PyTorch CPU tensor, JAX, ...), 2-D, float32 or float64.
        Read only; never modified.
    rank : starting rank. min_rank, max_rank : bounds (``max_rank=None`` means
        ``max(1, min(m, n) // 4)``; both are capped at ``min(m, n)``).
    tol : target relative Frobenius error. oversample, power_iters : sketch settings.
    seed : the sketch is a deterministic function of the seed.

    Returns
    -------
    (Q, U, rel_err): NumPy arrays of A's dtype, Q of shape (m, k) with orthonormal columns and
    U of shape (n, k), and the exact relative error of Q @ U.T (up to rounding).
    """
    return _core.as_rsi(A, int(rank), int(min_rank), 0 if max_rank is None else int(max_rank), float(tol),
                        int(oversample), int(power_iters), int(seed))

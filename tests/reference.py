"""Independent float64 NumPy references used by the tests (no adapprox code inside)."""
from __future__ import annotations

import numpy as np


class DenseAdapprox:
    """The Adapprox formula with the second moment kept dense, in float64.

    V = b2 V + (1 - b2) G^2; Mhat = G / (sqrt(V) + eps); Mhat /= max(1, RMS(Mhat) / d);
    M = b1 M + (1 - b1) Mhat (M = Mhat if b1 == 0); theta -= lr (M + wd theta).
    This is what the low-rank optimizer must reproduce whenever its factorization is exact.
    """

    def __init__(self, theta, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_threshold=1.0, weight_decay=0.0):
        self.theta = np.array(theta, dtype=np.float64)
        self.lr, (self.b1, self.b2), self.eps, self.d, self.wd = lr, betas, eps, clip_threshold, weight_decay
        self.v = np.zeros_like(self.theta)
        self.m = np.zeros_like(self.theta)

    def step(self, g):
        g = np.asarray(g, dtype=np.float64)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mhat = g / (np.sqrt(self.v) + self.eps)
        rms = np.sqrt(np.mean(mhat * mhat))
        mhat = mhat / max(1.0, rms / self.d)
        self.m = self.b1 * self.m + (1 - self.b1) * mhat if self.b1 > 0 else mhat
        self.theta = self.theta - self.lr * (self.m + self.wd * self.theta)
        return self.theta


def truncated_svd_error(a, k):
    """Optimal relative Frobenius error of a rank-k approximation (Eckart-Young)."""
    s = np.linalg.svd(np.asarray(a, dtype=np.float64), compute_uv=False)
    return float(np.sqrt(np.sum(s[k:] ** 2) / np.sum(s ** 2)))

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


def gram_gradient(g, theta, weight_decay, maximize):
    """torch.optim.Adagrad's gradient: negated when maximizing, then L2 weight decay added."""
    g = -np.asarray(g, np.float64) if maximize else np.asarray(g, np.float64)
    return g + weight_decay * np.asarray(theta, np.float64)


class DenseFullMatrixAdagrad:
    """Full-matrix AdaGrad on a flattened parameter, in float64: S += g g^T, G = eps I + S,
    theta -= lr / (1 + (t - 1) lr_decay) * G^(-1/2) g, with G^(-1/2) from numpy's eigh."""

    def __init__(self, n, lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False):
        self.S = np.zeros((n, n))
        self.lr, self.lr_decay, self.wd, self.eps, self.maximize = lr, lr_decay, weight_decay, eps, maximize
        self.t = 0

    def direction(self, g, theta):
        self.t += 1
        g = gram_gradient(g, theta, self.wd, self.maximize).ravel()
        self.S += np.outer(g, g)
        lam, V = np.linalg.eigh(self.S + self.eps * np.eye(len(g)))
        return V @ ((V.T @ g) / np.sqrt(lam))

    def step(self, theta, g):
        """The next parameter value (float64) from `theta` and gradient `g`."""
        d = self.direction(g, theta)
        return np.asarray(theta, np.float64) - self.lr / (1 + (self.t - 1) * self.lr_decay) * d.reshape(np.shape(theta))


class DenseAdagramFactor:
    """AdaGram's factor kept dense and exact (no rank limit), float64: L_0 = sqrt(eps) I,
    gbar = L^-1 g, s = |gbar|^2, L <- L (I + a gbar gbar^T) with a = (sqrt(1 + s) - 1) / s,
    direction L_new^-1 g (solved, not through the update formula)."""

    def __init__(self, n, eps):
        self.L = np.sqrt(eps) * np.eye(n)
        self.G = eps * np.eye(n)

    def direction(self, g):
        g = np.asarray(g, np.float64).ravel()
        gbar = np.linalg.solve(self.L, g)
        s = gbar @ gbar
        if s > 0:
            self.L = self.L @ (np.eye(len(g)) + (np.sqrt(1 + s) - 1) / s * np.outer(gbar, gbar))
        self.G += np.outer(g, g)
        return np.linalg.solve(self.L, g)


def _thin_qr(a):
    return np.linalg.qr(a, mode="reduced")


class LowRankAdagram:
    """AdaGram with L^-1 = (I - W) / sqrt(eps), W kept as P Q^T of rank <= r, in float64. Growth
    W <- W + b gbar (gbar - W^T gbar)^T with b = (1 - 1/sqrt(1+s)) / s; beyond rank r one KSL
    projector-splitting step (K, S backward, L) from W with that increment. Returns the direction
    gbar / sqrt(1 + s)."""

    def __init__(self, n, eps, rank, forget=1.0):
        self.P, self.Q = np.zeros((n, 0)), np.zeros((n, 0))
        self.eps, self.r, self.forget = eps, min(rank, n), forget

    @property
    def W(self):
        return self.P @ self.Q.T

    def direction(self, g):
        g = np.asarray(g, np.float64).ravel()
        self.P = self.forget * self.P  # W <- forget W
        gbar = (g - self.P @ (self.Q.T @ g)) / np.sqrt(self.eps)
        s = gbar @ gbar
        if s == 0:
            return gbar
        b = (1 - 1 / np.sqrt(1 + s)) / s
        p, q = b * gbar, gbar - self.Q @ (self.P.T @ gbar)
        if self.P.shape[1] < self.r:
            self.P, self.Q = np.c_[self.P, p], np.c_[self.Q, q]
        else:
            V0, R = _thin_qr(self.Q)
            Y0 = self.P @ R.T                      # W = Y0 V0^T
            dAV0 = np.outer(p, q @ V0)
            U1, S_hat = _thin_qr(Y0 + dAV0)        # K-step
            S_tilde = S_hat - U1.T @ dAV0          # S-step, backward
            L1 = V0 @ S_tilde.T + np.outer(q, p @ U1)
            V1, S1t = _thin_qr(L1)                 # L-step
            self.P, self.Q = U1 @ S1t.T, V1
        return gbar / np.sqrt(1 + s)


class DenseForgettingAdagram:
    """AdaGram with forgetting on a dense inverse factor M = L^-1 (n x n, float64), no low-rank
    form: each step M <- forget M + (1 - forget) I / sqrt(eps), gbar = M g, s = |gbar|^2,
    r = sqrt(1 + s), direction gbar / r, then M <- (I - gbar gbar^T / (r (1 + r))) M."""

    def __init__(self, n, eps, forget):
        self.M = np.eye(n) / np.sqrt(eps)
        self.eps, self.forget = eps, forget

    def direction(self, g):
        g = np.asarray(g, np.float64).ravel()
        n = len(g)
        self.M = self.forget * self.M + (1 - self.forget) * np.eye(n) / np.sqrt(self.eps)
        gbar = self.M @ g
        r = np.sqrt(1 + gbar @ gbar)
        self.M = (np.eye(n) - np.outer(gbar, gbar) / (r * (1 + r))) @ self.M
        return gbar / r

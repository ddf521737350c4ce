// Adapprox's per-element math (the algorithm: ../adapprox.cpp). With r = (Q U^T)_ij the low-rank
// reconstruction and sq = g^2:
//   V_ij   = b2 r + (1 - b2) sq              (what AS-RSI factors; ||V||_F uses it)
//   den_ij = b2 |r| + (1 - b2) sq            (the denominator: nonnegative however r rounds)
//   Mhat   = scale sign g / (sqrt(den) + eps) (0 where den + eps = 0, i.e. g = 0)
//   M      = b1 M + (1 - b1) Mhat;  theta <- theta - lr (M + wd theta)   (Mhat without a first moment)
#pragma once

#include "hd.hpp"

namespace adapprox::math {

// A zero denominator happens only where g = 0 (b2 < 1), so g / safe(d) is then exactly 0. NaN
// passes through (a non-finite gradient must show in the parameter, never only in the factors).
ADX_HD float safe_den(float d) { return d == 0 ? 1.0f : d; }

ADX_HD float ema_value(float r, float sq, float b2) { return b2 * r + (1 - b2) * sq; }
ADX_HD float ema_den(float r, float sq, float b2) { return b2 * abs_(r) + (1 - b2) * sq; }

ADX_HD float mhat_of(float g, float den, float eps) { return g / safe_den(sqrt_(den) + eps); }

struct AdapproxUpdate {
  float b1, eps, lr, wd, scale, sign;
};

// One element: the first moment (if m) and theta; returns Mhat's scaled value and writes M.
ADX_HD void adapprox_element(const AdapproxUpdate& a, float g, float den, float* m, float& theta) {
  const float mh = (a.scale * a.sign) * mhat_of(g, den, a.eps);
  const float step = m ? (*m = a.b1 * *m + (1 - a.b1) * mh) : mh;
  theta = theta - a.lr * (step + a.wd * theta);
}

}  // namespace adapprox::math

// Adam / AdamW / AMSGrad per element (torch.optim.Adam's single-tensor order). With g negated
// under maximize:
//   L2: g <- g + wd p;  decoupled: p <- p (1 - lr wd)
//   m <- lerp(m, g, 1 - b1);  v <- v b2 + (1 - b2) g g;  amsgrad: vmax <- max(vmax, v)
//   p <- p - (lr / (1 - b1^t)) m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)
#pragma once
#include <cmath>

#include "hd.hpp"

namespace adapprox::math {

template <class T>
struct AdamCoef {
  T sign, wd, decay, w1, w1c, b2, omb2, bc2_sqrt, eps, neg_step;
  bool small_weight;
};

// Scalars in double (as torch forms them in Python), rounded once to T; t = the step number.
template <class T>
AdamCoef<T> adam_coef(double lr, double b1, double b2, double eps, double wd, bool maximize, double t) {
  AdamCoef<T> c;
  c.sign = maximize ? T(-1) : T(1);
  c.wd = T(wd);
  c.decay = T(1 - lr * wd);
  c.w1 = T(1 - b1);
  c.w1c = T(1) - c.w1;
  c.small_weight = std::abs(c.w1) < T(0.5);
  c.b2 = T(b2);
  c.omb2 = T(1 - b2);
  c.bc2_sqrt = T(std::pow(1 - std::pow(b2, t), 0.5));
  c.eps = T(eps);
  c.neg_step = T(-(lr / (1 - std::pow(b1, t))));
  return c;
}

template <class T, bool Ams, int Wd>
ADX_HD void adam_element(const AdamCoef<T>& c, T& p, T g, T& m, T& v, T* vmax) {
  T gi = c.sign * g;
  T pi = p;
  if (Wd == kDecoupled) pi = pi * c.decay;
  if (Wd == kL2) gi = gi + c.wd * pi;
  const T mi = lerp_(m, gi, c.w1, c.w1c, c.small_weight);
  m = mi;
  T vi = v * c.b2;
  vi = vi + c.omb2 * gi * gi;
  v = vi;
  T den;
  if (Ams) {
    const T a = *vmax;
    const T mx = (a > vi || a != a) ? a : vi;  // torch.maximum: NaN propagates
    *vmax = mx;
    den = sqrt_(mx) / c.bc2_sqrt + c.eps;
  } else {
    den = sqrt_(vi) / c.bc2_sqrt + c.eps;
  }
  p = pi + c.neg_step * mi / den;
}

}  // namespace adapprox::math

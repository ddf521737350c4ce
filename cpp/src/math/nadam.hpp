// NAdam per element (torch.optim.NAdam, single tensor). mu_t = b1 (1 - 0.5 * 0.96^(t psi)),
// mu_product = prod_{i<=t} mu_i (kept as state). With g negated under maximize:
//   L2: g <- g + wd p;  decoupled: p <- p (1 - lr wd)
//   m <- lerp(m, g, 1 - b1);  v <- v b2 + (1 - b2) g g;  den = sqrt(v / (1 - b2^t)) + eps
//   p <- p - lr (1 - mu_t) / (1 - mu_product) g / den - lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / den
#pragma once
#include <cmath>

#include "hd.hpp"

namespace adapprox::math {

// mu_t = b1 (1 - 0.5 * 0.96^(t psi)), psi = momentum_decay
inline double nadam_mu(double b1, double momentum_decay, double t) {
  return b1 * (1.0 - 0.5 * std::pow(0.96, t * momentum_decay));
}

template <class T>
struct NadamCoef {
  T sign, wd, decay, w1, w1c, b2, omb2, bc2, eps, coef_g, coef_m;
  bool small_weight;
};

template <class T>
NadamCoef<T> nadam_coef(double lr, double b1, double b2, double eps, double wd, bool maximize, double t, double mu,
                        double mu_next, double mu_product) {
  NadamCoef<T> c;
  c.sign = maximize ? T(-1) : T(1);
  c.wd = T(wd);
  c.decay = T(1 - lr * wd);
  c.w1 = T(1 - b1);
  c.w1c = T(1) - c.w1;
  c.small_weight = std::abs(c.w1) < T(0.5);
  c.b2 = T(b2);
  c.omb2 = T(1 - b2);
  c.bc2 = T(1 - std::pow(b2, t));
  c.eps = T(eps);
  c.coef_g = T(-lr * (1.0 - mu) / (1.0 - mu_product));
  c.coef_m = T((-lr * mu_next) / (1.0 - mu_product * mu_next));
  return c;
}

template <class T, int Wd>
ADX_HD void nadam_element(const NadamCoef<T>& c, T& p, T g, T& m, T& v) {
  T gi = c.sign * g;
  T pi = p;
  if (Wd == kDecoupled) pi = pi * c.decay;
  if (Wd == kL2) gi = gi + c.wd * pi;
  const T mi = lerp_(m, gi, c.w1, c.w1c, c.small_weight);
  m = mi;
  T vi = v * c.b2;
  vi = vi + c.omb2 * gi * gi;
  v = vi;
  const T den = sqrt_(vi / c.bc2) + c.eps;
  pi = pi + c.coef_g * gi / den;
  p = pi + c.coef_m * mi / den;
}

}  // namespace adapprox::math

// Adafactor's per-element rules (../adafactor.cpp has the algorithm and both modes' formulas):
// the EMA of the statistics, the update U of one element, and the final update of theta (and
// of the first moment in paper mode).
#pragma once
#include <limits>

#include "hd.hpp"

namespace adapprox::math {

// torch's lerp: exact at weight 1 (the first step copies the new statistic).
template <class T>
ADX_HD T adafactor_lerp(T a, T b, T w) {
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

// Factored: U_ij = sign g_ij a_i b_j, a_i = 1 / sqrt(R_i), b_j = sqrt(mean(R) / C_j) (formed in
// double and rounded once), with torch mode's clamp min(a_i b_j, 1 / eps1).
template <class T>
struct FactoredRule {
  T sign;   // -1 under maximize
  T limit;  // torch mode: 1 / eps1; paper mode: +inf
  ADX_HD T operator()(T g, T a, T b) const {
    T s = a * b;
    s = s > limit ? limit : s;  // NaN stays NaN, as torch's clamp
    return (sign * g) * s;
  }
};

// 1 / sqrt(R_i) and sqrt(mean(R) / C_j), in double; paper mode maps a zero statistic to 0 (U = 0).
template <class T>
ADX_HD T adafactor_row_factor(double r, bool paper) {
  return paper && r == 0 ? T(0) : static_cast<T>(1 / sqrt_(r));
}
template <class T>
ADX_HD T adafactor_col_factor(double c, double mean_r, bool paper) {
  return paper && c == 0 ? T(0) : static_cast<T>(sqrt_(mean_r / c));
}

// Dense (0-D/1-D): U = sign g / sqrt(V), torch mode clamping V to eps1^2.
template <class T>
struct UpdateRule {
  bool paper;
  T e1sq;
  T sign;
  ADX_HD T operator()(T v, T g) const {
    if (paper) return v == T(0) ? T(0) : sign * g / sqrt_(v);
    v = v < e1sq ? e1sq : v;  // NaN stays NaN, as torch's clamp
    return sign * g * (T(1) / sqrt_(v));
  }
};

//   torch mode:  theta <- theta * (1 - lr wd) + (-alpha / denom) U
//   paper mode:  step = (alpha / denom) U;  with b1: m <- b1 m + (1 - b1) step, step = m
//                theta <- theta - alpha wd theta - step
enum class ApplyMode { torch, paper, paper_momentum };

template <class T>
struct ApplyScalars {
  T decay;  // torch: 1 - lr * wd; paper: alpha * wd
  T scale;  // torch: -alpha / denom; paper: alpha / denom
  T b1;
};

template <ApplyMode Mode, class T>
ADX_HD void apply_one(const ApplyScalars<T>& c, T& th, T* m, T u) {
  if (Mode == ApplyMode::torch) {
    th = th * c.decay + c.scale * u;
  } else {
    T step = c.scale * u;
    if (Mode == ApplyMode::paper_momentum) {
      *m = c.b1 * *m + (T(1) - c.b1) * step;
      step = *m;
    }
    th = th - c.decay * th - step;
  }
}

// The step size from the sums of theta^2 and U^2 over the parameter's N elements:
//   alpha = max(eps2, RMS(theta)) rho (or rho without scale_parameter),
//   denom = max(1, RMS(U) / d); the scalars of apply_one.
template <class T>
ADX_HD ApplyScalars<T> adafactor_apply_scalars(double theta_sq, double u_sq, double n, double rho, bool paper,
                                               bool scale_parameter, double eps2, double d, double lr,
                                               double weight_decay, double beta1) {
  const double sqrt_n = sqrt_(n);
  const double rms_theta = sqrt_(theta_sq) / sqrt_n;
  const double alpha = (paper && !scale_parameter) ? rho : (eps2 < rms_theta ? rms_theta : eps2) * rho;  // std::max
  const double r = sqrt_(u_sq) / (sqrt_n * d);
  const double denom = 1.0 < r ? r : 1.0;
  ApplyScalars<T> ac{};
  if (paper) {
    ac.decay = static_cast<T>(alpha * weight_decay);
    ac.scale = static_cast<T>(alpha / denom);
    ac.b1 = static_cast<T>(beta1);
  } else {
    ac.decay = static_cast<T>(1 - lr * weight_decay);
    ac.scale = static_cast<T>(-alpha / denom);
  }
  return ac;
}

}  // namespace adapprox::math

// SignSGD / Signum per element, with g negated under maximize:
//   momentum b > 0: m <- b m + (1 - b) g, p <- p - lr (sign(m) + wd p);  else p <- p - lr (sign(g) + wd p)
// sign(NaN) = NaN (x - x carries it), so a non-finite gradient shows in the parameter.
#pragma once

#include "hd.hpp"

namespace adapprox::math {

template <class T>
ADX_HD T sign_of(T x) {
  return T((x > 0) - (x < 0)) + (x - x);
}

template <class T>
struct SignSgdCoef {
  T lr, wd, b, s;
};

template <class T>
SignSgdCoef<T> signsgd_coef(double lr, double wd, double momentum, bool maximize) {
  return {T(lr), T(wd), T(momentum), maximize ? T(-1) : T(1)};
}

template <class T>
ADX_HD void signsgd_element(const SignSgdCoef<T>& c, T& p, T g) {
  p = p - c.lr * (sign_of(c.s * g) + c.wd * p);
}

template <class T>
ADX_HD void signum_element(const SignSgdCoef<T>& c, T& p, T g, T& m) {
  m = c.b * m + (1 - c.b) * (c.s * g);
  p = p - c.lr * (sign_of(m) + c.wd * p);
}

}  // namespace adapprox::math

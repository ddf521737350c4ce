// RMSprop per element (torch.optim.RMSprop, single tensor), with g negated under maximize:
//   g <- g + wd p;  s <- s alpha + (1 - alpha) g g
//   centered: a <- lerp(a, g, 1 - alpha), avg = sqrt(s - a a) + eps;  else avg = sqrt(s) + eps
//   momentum: b <- b mu + g / avg, p <- p - lr b;  else p <- p - lr g / avg
// The multiply-adds torch's vectorised kernels fuse are fma here.
#pragma once
#include <cmath>

#include "hd.hpp"

namespace adapprox::math {

template <class T>
struct RmspropCoef {
  T alpha, w, wc, eps, neg_lr, wd, mu;
  bool maximize, decay, small;
};

template <class T>
RmspropCoef<T> rmsprop_coef(double lr, double alpha, double eps, double wd, double momentum, bool maximize) {
  RmspropCoef<T> c;
  c.alpha = T(alpha);
  c.w = T(1.0 - alpha);
  c.wc = T(1) - c.w;
  c.eps = T(eps);
  c.neg_lr = T(-lr);
  c.wd = T(wd);
  c.mu = T(momentum);
  c.maximize = maximize;
  c.decay = wd != 0;
  c.small = std::fabs(c.w) < T(0.5);
  return c;
}

template <class T, bool Centered, bool Momentum>
ADX_HD void rmsprop_element(const RmspropCoef<T>& c, T& p, T g, T& sq, T* ga, T* buf) {
  T gi = c.maximize ? -g : g;
  if (c.decay) gi = fma_(c.wd, p, gi);          // grad.add(param, alpha=wd)
  const T s = fma_(c.w * gi, gi, sq * c.alpha);  // square_avg.mul_(alpha).addcmul_(g, g, value=1-alpha)
  sq = s;
  T avg;
  if (Centered) {
    const T a = c.small ? fma_(c.w, gi - *ga, *ga) : fma_(-(gi - *ga), c.wc, gi);  // grad_avg.lerp_(g, w)
    *ga = a;
    avg = sqrt_(fma_(-a, a, s));  // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
  } else {
    avg = sqrt_(s);
  }
  avg = avg + c.eps;
  if (Momentum) {
    const T m = *buf * c.mu + gi / avg;  // buf.mul_(b).addcdiv_(g, avg)
    *buf = m;
    p = fma_(c.neg_lr, m, p);  // param.add_(buf, alpha=-lr)
  } else {
    p = p + c.neg_lr * gi / avg;  // param.addcdiv_(g, avg, value=-lr)
  }
}

}  // namespace adapprox::math

// SGD per element (torch.optim.SGD, single tensor), with g negated under maximize:
//   g <- g + wd p
//   momentum b > 0: buf <- g at the first step, else buf b + (1 - dampening) g;
//                   d = g + b buf (nesterov) or buf
//   p <- p - lr d   (d = g without momentum)
#pragma once

#include "hd.hpp"

namespace adapprox::math {

template <class T>
struct SgdCoef {
  T neg_lr, wd, b, keep;
  bool maximize, nesterov, decay, first;
};

template <class T>
SgdCoef<T> sgd_coef(double lr, double momentum, double dampening, double wd, bool nesterov, bool maximize,
                    bool first) {
  SgdCoef<T> c;
  c.neg_lr = T(-lr);
  c.wd = T(wd);
  c.b = T(momentum);
  c.keep = T(1.0 - dampening);
  c.maximize = maximize;
  c.nesterov = nesterov;
  c.decay = wd != 0;
  c.first = first;
  return c;
}

template <class T>
ADX_HD T sgd_grad(const SgdCoef<T>& c, T p, T g) {
  T gi = c.maximize ? -g : g;
  if (c.decay) gi = fma_(c.wd, p, gi);  // grad.add(param, alpha=wd)
  return gi;
}

template <class T>
ADX_HD void sgd_element(const SgdCoef<T>& c, T& p, T g) {
  p = fma_(c.neg_lr, sgd_grad(c, p, g), p);
}

template <class T>
ADX_HD void sgd_momentum_element(const SgdCoef<T>& c, T& p, T g, T& buf) {
  const T gi = sgd_grad(c, p, g);
  const T m = c.first ? gi : fma_(c.keep, gi, buf * c.b);  // buf.mul_(b).add_(g, alpha=1-dampening)
  buf = m;
  const T d = c.nesterov ? fma_(c.b, m, gi) : m;  // grad.add(buf, alpha=b)
  p = fma_(c.neg_lr, d, p);                      // param.add_(d, alpha=-lr)
}

}  // namespace adapprox::math

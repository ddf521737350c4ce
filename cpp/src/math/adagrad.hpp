// Adagrad per element (torch.optim.Adagrad, single tensor), with g negated under maximize:
//   g <- g + wd p;  s <- s + g g;  p <- p - clr g / (sqrt(s) + eps),  clr = lr / (1 + (t - 1) lr_decay)
#pragma once

#include "hd.hpp"

namespace adapprox::math {

template <class T>
struct AdagradCoef {
  T neg_clr, wd, eps;
  bool maximize, decay;
};

template <class T>
AdagradCoef<T> adagrad_coef(double lr, double lr_decay, double eps, double wd, bool maximize, double t) {
  AdagradCoef<T> c;
  c.neg_clr = T(-(lr / (1 + (t - 1) * lr_decay)));
  c.wd = T(wd);
  c.eps = T(eps);
  c.maximize = maximize;
  c.decay = wd != 0;
  return c;
}

template <class T>
ADX_HD void adagrad_element(const AdagradCoef<T>& c, T& p, T g, T& sum) {
  T gi = c.maximize ? -g : g;
  if (c.decay) gi = fma_(c.wd, p, gi);  // grad.add(param, alpha=wd)
  const T s = fma_(gi, gi, sum);       // state_sum.addcmul_(g, g, value=1)
  sum = s;
  const T std_ = sqrt_(s) + c.eps;     // state_sum.sqrt().add_(eps)
  p = p + c.neg_clr * gi / std_;       // param.addcdiv_(g, std, value=-clr)
}

}  // namespace adapprox::math

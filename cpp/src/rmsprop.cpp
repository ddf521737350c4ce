// RMSprop: torch.optim.RMSprop's update (torch 2.13, _single_tensor_rmsprop).
//   g = maximize ? -grad : grad;   g += wd * p                       (when wd != 0)
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg^2) + eps
//   otherwise: avg = sqrt(square_avg) + eps
//   momentum b > 0:  momentum_buffer = b * momentum_buffer + g / avg;  p -= lr * momentum_buffer
//   otherwise:       p -= lr * g / avg
// Operation order follows torch's tensor ops (lerp included) so float32 results agree closely.
#include <cmath>

#include "elementwise_kernel.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

// Centered and Momentum are template arguments so that each variant's loop is branch-free and vectorises.
template <bool Centered, bool Momentum, class T>
void rmsprop_loop(const Hyper& h, int64_t n, T* p, const T* g, T* const* bufs) {
  const double alpha_d = h.at("alpha"), wd_d = h.at("weight_decay"), mom_d = h.at("momentum");
  const T alpha = T(alpha_d), w = T(1.0 - alpha_d), eps = T(h.at("eps"));
  const T neg_lr = T(-h.at("lr")), wd = T(wd_d), b = T(mom_d), one_minus_w = T(1) - w;
  const bool maximize = flag(h, "maximize"), decay = wd_d != 0, small = std::fabs(w) < T(0.5);
  T* sq = bufs[0];
  T* ga = Centered ? bufs[1] : nullptr;
  T* buf = Momentum ? bufs[Centered ? 2 : 1] : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    T gi = maximize ? -g[i] : g[i];
    if (decay) gi = fmadd(wd, p[i], gi);          // grad.add(param, alpha=wd)
    const T s = fmadd(w * gi, gi, sq[i] * alpha);  // square_avg.mul_(alpha).addcmul_(g, g, value=1-alpha)
    sq[i] = s;
    T avg;
    if constexpr (Centered) {
      // grad_avg.lerp_(g, w), as torch's CPU lerp: self + w (end - self) for |w| < 0.5, else end - (end - self)(1 - w)
      const T a = small ? fmadd(w, gi - ga[i], ga[i]) : fmadd(-(gi - ga[i]), one_minus_w, gi);
      ga[i] = a;
      avg = std::sqrt(fmadd(-a, a, s));  // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    } else {
      avg = std::sqrt(s);
    }
    avg = avg + eps;
    if constexpr (Momentum) {
      const T m = buf[i] * b + gi / avg;  // buf.mul_(b).addcdiv_(g, avg)
      buf[i] = m;
      p[i] = fmadd(neg_lr, m, p[i]);  // param.add_(buf, alpha=-lr)
    } else {
      p[i] = p[i] + neg_lr * gi / avg;  // param.addcdiv_(g, avg, value=-lr)
    }
  }
}

template <class T>
void rmsprop_variant(const Hyper& h, int64_t n, T* p, const T* g, T* const* bufs) {
  const bool centered = flag(h, "centered"), momentum = h.at("momentum") > 0;
  if (centered && momentum) rmsprop_loop<true, true>(h, n, p, g, bufs);
  else if (centered) rmsprop_loop<true, false>(h, n, p, g, bufs);
  else if (momentum) rmsprop_loop<false, true>(h, n, p, g, bufs);
  else rmsprop_loop<false, false>(h, n, p, g, bufs);
}

struct RmspropKernel {
  template <class T>
  void operator()(const Hyper& h, const ElementwiseState&, int64_t n, T* p, const T* g, T* const* bufs) const {
    rmsprop_variant(h, n, p, g, bufs);
  }
};

class Rmsprop final : public KernelAlgorithm<RmspropKernel> {
 public:
  std::string name() const override { return "rmsprop"; }
  std::string summary() const override { return "torch.optim.RMSprop (plain, centered, with momentum)"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = {
        hp_real("lr", 1e-2, "learning rate"),
        hp_real("alpha", 0.99, "smoothing constant of the squared average"),
        hp_real("eps", 1e-8, "added to the denominator"),
        hp_real("weight_decay", 0.0, "L2 penalty"),
        hp_real("momentum", 0.0, "momentum factor"),
        hp_flag("centered", false, "normalize by the variance estimate"),
        hp_flag("maximize", false, "maximize the objective"),
    };
    return hp;
  }
  // Order matters: run() finds grad_avg and momentum_buffer by position.
  std::vector<std::string> buffer_names(const Hyper& h) const override {
    std::vector<std::string> names{"square_avg"};
    if (flag(h, "centered")) names.push_back("grad_avg");
    if (h.at("momentum") > 0) names.push_back("momentum_buffer");
    return names;
  }
};

}  // namespace

const Algorithm* rmsprop() {
  static const Rmsprop a;
  return &a;
}

}  // namespace adapprox::algorithms

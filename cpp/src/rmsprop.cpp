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
#include "math/rmsprop.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

// Centered and Momentum are template arguments so that each variant's loop is branch-free and vectorises.
template <bool Centered, bool Momentum, class T>
void rmsprop_loop(const math::RmspropCoef<T>& c, int64_t n, T* p, const T* g, T* const* bufs) {
  T* sq = bufs[0];
  T* ga = Centered ? bufs[1] : nullptr;
  T* buf = Momentum ? bufs[Centered ? 2 : 1] : nullptr;
  for (int64_t i = 0; i < n; ++i)
    math::rmsprop_element<T, Centered, Momentum>(c, p[i], g[i], sq[i], Centered ? ga + i : nullptr,
                                                 Momentum ? buf + i : nullptr);
}

struct RmspropKernel {
  static void cuda(const Hyper& h, std::vector<Slot>& s, const cuda::States& st, size_t first, void* stream) {
    cuda::rmsprop_step(h, s, st, first, stream);
  }

  template <class T>
  void operator()(const Hyper& h, const ElementwiseState&, int64_t n, T* p, const T* g, T* const* bufs) const {
    const auto c = math::rmsprop_coef<T>(h.at("lr"), h.at("alpha"), h.at("eps"), h.at("weight_decay"),
                                         h.at("momentum"), flag(h, "maximize"));
    const bool centered = flag(h, "centered"), momentum = h.at("momentum") > 0;
    if (centered && momentum) rmsprop_loop<true, true>(c, n, p, g, bufs);
    else if (centered) rmsprop_loop<true, false>(c, n, p, g, bufs);
    else if (momentum) rmsprop_loop<false, true>(c, n, p, g, bufs);
    else rmsprop_loop<false, false>(c, n, p, g, bufs);
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
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return hp;
  }
  // centered divides by sqrt(square_avg - grad_avg^2), a difference of two moments: rounded
  // separately to 8 or 16 bits, it can go negative (NaN) where the variance is a few percent of
  // square_avg, so low-precision state is refused for it.
  void validate(const Hyper& h) const override {
    if (flag(h, "centered") && state_precision(h) != StatePrecision::f32)
      throw Error(ErrorKind::value, std::string("centered=True needs state_precision fp32 (the variance "
                                                "square_avg - grad_avg^2 is lost to the rounding of low-precision "
                                                "moments), got ") + precision_name(state_precision(h)));
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

// SGD with momentum, dampening and Nesterov: torch.optim.SGD's update (torch 2.13, _single_tensor_sgd).
//   g = maximize ? -grad : grad;   g += wd * p                       (when wd != 0)
//   momentum b != 0:  buf = g                                        (first step: a copy, no dampening)
//                     buf = b * buf + (1 - dampening) * g            (later steps)
//                     d = nesterov ? g + b * buf : buf
//   otherwise d = g;   p -= lr * d
// The front creates momentum_buffer for the first step (ElementwiseState::fresh), which overwrites it with g.
// Scalars are formed in double and rounded to the math type once, as torch does for Python scalars.
#include <cmath>
#include <limits>

#include "elementwise_kernel.hpp"
#include "math/sgd.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

struct SgdKernel {
  static void cuda(const Hyper& h, std::vector<Slot>& s, const cuda::States& st, size_t first, void* stream) {
    cuda::sgd_step(h, s, st, first, stream);
  }

  template <class T>
  void operator()(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) const {
    const auto c = math::sgd_coef<T>(h.at("lr"), h.at("momentum"), h.at("dampening"), h.at("weight_decay"),
                                     flag(h, "nesterov"), flag(h, "maximize"), st.fresh);
    if (h.at("momentum") == 0) {
      for (int64_t i = 0; i < n; ++i) math::sgd_element(c, p[i], g[i]);
      return;
    }
    T* buf = bufs[0];
    for (int64_t i = 0; i < n; ++i) math::sgd_momentum_element(c, p[i], g[i], buf[i]);
  }
};

class Sgd final : public KernelAlgorithm<SgdKernel> {
 public:
  std::string name() const override { return "sgd"; }
  std::string summary() const override { return "torch.optim.SGD (momentum, dampening, Nesterov)"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = {
        hp_real("lr", 1e-3, "learning rate"),
        hp_real("momentum", 0.0, "momentum factor"),
        HyperParam{"dampening", 0.0, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
                   false, false, false, "dampening of the momentum"},
        hp_real("weight_decay", 0.0, "L2 penalty"),
        hp_flag("nesterov", false, "Nesterov momentum"),
        hp_flag("maximize", false, "maximize the objective"),
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return hp;
  }
  void validate(const Hyper& h) const override {
    if (flag(h, "nesterov")) {
      require(h.at("momentum") > 0, "momentum", "> 0 when nesterov=True (Nesterov momentum requires a momentum)",
              h.at("momentum"));
      require(h.at("dampening") == 0, "dampening", "0 when nesterov=True (Nesterov momentum requires zero dampening)",
              h.at("dampening"));
    }
  }
  // As torch.optim.SGD: no step counter; the momentum buffer starts as the first gradient.
  bool counts_steps() const override { return false; }
  std::vector<std::string> buffer_names(const Hyper& h) const override {
    if (h.at("momentum") != 0) return {"momentum_buffer"};
    return {};
  }
};

}  // namespace

const Algorithm* sgd() {
  static const Sgd a;
  return &a;
}

}  // namespace adapprox::algorithms

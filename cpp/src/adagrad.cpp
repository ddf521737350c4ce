// Adagrad: torch.optim.Adagrad's update (torch 2.13, _single_tensor_adagrad, dense gradients).
//   g = maximize ? -grad : grad;   g += wd * p                       (when wd != 0)
//   clr = lr / (1 + (step - 1) * lr_decay)
//   sum += g * g                  (sum starts at initial_accumulator_value)
//   p -= clr * g / (sqrt(sum) + eps)
// The front creates `sum` filled with initial_accumulator_value (the schema says so).
#include <cmath>

#include "elementwise_kernel.hpp"
#include "math/adagrad.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

struct AdagradKernel {
  static void cuda(const Hyper& h, std::vector<Slot>& s, const cuda::States& st, size_t first, void* stream) {
    cuda::adagrad_step(h, s, st, first, stream);
  }

  template <class T>
  void operator()(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) const {
    const auto c = math::adagrad_coef<T>(h.at("lr"), h.at("lr_decay"), h.at("eps"), h.at("weight_decay"),
                                         flag(h, "maximize"), static_cast<double>(st.step));
    T* sum = bufs[0];
    for (int64_t i = 0; i < n; ++i) math::adagrad_element(c, p[i], g[i], sum[i]);
  }
};

class Adagrad final : public KernelAlgorithm<AdagradKernel> {
 public:
  std::string name() const override { return "adagrad"; }
  std::string summary() const override { return "torch.optim.Adagrad (dense gradients)"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = {
        hp_real("lr", 1e-2, "learning rate"),
        hp_real("lr_decay", 0.0, "clr = lr / (1 + (t - 1) lr_decay)"),
        hp_real("weight_decay", 0.0, "L2 penalty"),
        hp_real("initial_accumulator_value", 0.0, "starting value of sum"),
        hp_real("eps", 1e-10, "added to the denominator"),
        hp_flag("maximize", false, "maximize the objective"),
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return hp;
  }
  std::vector<std::string> buffer_names(const Hyper&) const override { return {"sum"}; }
  std::string fill_from(const std::string&) const override { return "initial_accumulator_value"; }
};

}  // namespace

const Algorithm* adagrad() {
  static const Adagrad a;
  return &a;
}

}  // namespace adapprox::algorithms

// Adagrad: torch.optim.Adagrad's update (torch 2.13, _single_tensor_adagrad, dense gradients).
//   g = maximize ? -grad : grad;   g += wd * p                       (when wd != 0)
//   clr = lr / (1 + (step - 1) * lr_decay)
//   sum += g * g                  (sum starts at initial_accumulator_value)
//   p -= clr * g / (sqrt(sum) + eps)
// The front creates `sum` filled with initial_accumulator_value (the schema says so).
#include <cmath>

#include "elementwise_kernel.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

template <class T>
void adagrad_loop(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g,
                                         T* const* bufs) {
  const double wd_d = h.at("weight_decay");
  const double clr = h.at("lr") / (1 + double(st.step - 1) * h.at("lr_decay"));
  const T neg_clr = T(-clr), wd = T(wd_d), eps = T(h.at("eps"));
  const bool maximize = flag(h, "maximize"), decay = wd_d != 0;
  T* sum = bufs[0];
  for (int64_t i = 0; i < n; ++i) {
    T gi = maximize ? -g[i] : g[i];
    if (decay) gi = fmadd(wd, p[i], gi);                  // grad.add(param, alpha=wd)
    const T s = fmadd(gi, gi, sum[i]);      // state_sum.addcmul_(g, g, value=1)
    sum[i] = s;
    const T std_ = std::sqrt(s) + eps;                           // state_sum.sqrt().add_(eps)
    p[i] = p[i] + neg_clr * gi / std_;                           // param.addcdiv_(g, std, value=-clr)
  }
}

struct AdagradKernel {
  template <class T>
  void operator()(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) const {
    adagrad_loop(h, st, n, p, g, bufs);
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

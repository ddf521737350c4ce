// NAdam (Dozat 2016) as in torch.optim.NAdam (_single_tensor_nadam). At step t, g negated first
// under maximize:
//   L2:        g <- g + wd * p              decoupled: p <- p * (1 - lr * wd)     (only wd != 0)
//   mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay)),  mu_{t+1} likewise with t + 1
//   mu_product <- mu_product * mu_t        (per-parameter scalar, starts at 1)
//   m <- lerp(m, g, 1 - b1);   v <- v * b2 + (1 - b2) * g * g
//   d = sqrt(v / (1 - b2^t)) + eps
//   p <- p + (-lr (1 - mu_t) / (1 - mu_product)) * g / d
//   p <- p + (-lr mu_{t+1} / (1 - mu_product * mu_{t+1})) * m / d
// mu_product_float32 = 1 keeps mu_product rounded to float32 after each product, as torch does
// (it holds mu_product in a scalar tensor of the default dtype, float32 unless changed); the torch
// front sets it from torch.get_default_dtype() so float64 parameters match torch exactly too.
#include <cmath>

#include "elementwise_kernel.hpp"
#include "math/nadam.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

double nadam_mu(const Hyper& h, double step) { return math::nadam_mu(h.at("beta1"), h.at("momentum_decay"), step); }

template <class T, int Wd>
void nadam_loop(const math::NadamCoef<T>& c, int64_t n, T* p, const T* g, T* m, T* v) {
  for (int64_t i = 0; i < n; ++i) math::nadam_element<T, Wd>(c, p[i], g[i], m[i], v[i]);
}

struct NadamKernel {
  static void cuda(const Hyper& h, std::vector<Slot>& s, const cuda::States& st, size_t first, void* stream) {
    cuda::nadam_step(h, s, st, first, stream);
  }

  template <class T>
  void operator()(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) const {
    const double wd = h.at("weight_decay");
    const double step = static_cast<double>(st.step);
    // mu_product already includes mu_t (begin_step)
    const auto c = math::nadam_coef<T>(h.at("lr"), h.at("beta1"), h.at("beta2"), h.at("eps"), wd, flag(h, "maximize"),
                                       step, nadam_mu(h, step), nadam_mu(h, step + 1), st.scalars.at("mu_product"));
    const int mode = wd == 0 ? math::kNoDecay : flag(h, "decoupled_weight_decay") ? math::kDecoupled : math::kL2;
    if (mode == math::kNoDecay) nadam_loop<T, math::kNoDecay>(c, n, p, g, bufs[0], bufs[1]);
    else if (mode == math::kL2) nadam_loop<T, math::kL2>(c, n, p, g, bufs[0], bufs[1]);
    else nadam_loop<T, math::kDecoupled>(c, n, p, g, bufs[0], bufs[1]);
  }
};

class Nadam final : public KernelAlgorithm<NadamKernel> {
 public:
  std::string name() const override { return "nadam"; }
  std::string summary() const override { return "torch.optim.NAdam (Nesterov momentum with momentum decay)"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = {
        hp_real("lr", 2e-3, "learning rate"),
        hp_unit("beta1", 0.9, "decay of the first moment (betas[0])"),
        hp_unit("beta2", 0.999, "decay of the second moment (betas[1])"),
        hp_real("eps", 1e-8, "added to the denominator"),
        hp_real("weight_decay", 0.0, "L2 penalty (decoupled with decoupled_weight_decay)"),
        hp_real("momentum_decay", 4e-3, "psi in mu_t = beta1 (1 - 0.5 * 0.96^(t psi))"),
        hp_flag("decoupled_weight_decay", false, "AdamW-style weight decay"),
        hp_flag("maximize", false, "maximize the objective"),
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return hp;
  }
  std::vector<std::string> buffer_names(const Hyper&) const override { return {"exp_avg", "exp_avg_sq"}; }
  std::vector<std::pair<std::string, double>> scalar_names() const override { return {{"mu_product", 1.0}}; }
  // mu_product *= mu_t, rounded to the storage dtype as torch's scalar tensor is (float32: a
  // float32 product).
  void begin_step(ElementwiseState& st, const Hyper& h, const std::map<std::string, DType>& dtypes) const override {
    double mp = st.scalars.at("mu_product");
    const double mu = nadam_mu(h, static_cast<double>(st.step));
    if (dtypes.at("mu_product") == DType::f32)
      mp = static_cast<double>(static_cast<float>(mp) * static_cast<float>(mu));
    else
      mp *= mu;
    st.scalars["mu_product"] = mp;
  }
};

}  // namespace

const Algorithm* nadam() {
  static const Nadam a;
  return &a;
}

}  // namespace adapprox::algorithms

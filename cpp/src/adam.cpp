// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with the AMSGrad option, as in
// torch.optim.Adam / AdamW (_single_tensor_adam). At step t, with g negated first under maximize:
//   Adam (L2):        g <- g + wd * p                    (only when wd != 0)
//   AdamW (decoupled): p <- p * (1 - lr * wd)            (only when wd != 0)
//   m <- lerp(m, g, 1 - b1);   v <- v * b2 + (1 - b2) * g * g
//   amsgrad:           v_max <- max(v_max, v), used in place of v below
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Scalars are formed in double (as torch does in Python) and rounded once to the math type; the
// elementwise operations follow torch's order so float32 results track torch closely. The
// per-element math is math/adam.hpp, shared with the CUDA kernel.
// "adam" takes decoupled_weight_decay as an option (torch 2.13's Adam does too); "adamw" always
// decouples and defaults weight_decay to 1e-2.
#include <cmath>

#include "elementwise_kernel.hpp"
#include "math/adam.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

using math::kDecoupled;
using math::kL2;
using math::kNoDecay;

template <class T, bool Ams, int Wd>
void adam_loop(const math::AdamCoef<T>& c, int64_t n, T* p, const T* g, T* m, T* v, T* vmax) {
  for (int64_t i = 0; i < n; ++i) math::adam_element<T, Ams, Wd>(c, p[i], g[i], m[i], v[i], Ams ? vmax + i : nullptr);
}

template <bool AlwaysDecoupled>
struct AdamKernel {
  static void cuda(const Hyper& h, std::vector<Slot>& s, const cuda::States& st, size_t first, void* stream) {
    cuda::adam_step(h, s, st, first, AlwaysDecoupled, stream);
  }

  template <class T>
  void operator()(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) const {
    const double wd = h.at("weight_decay");
    const bool decoupled = AlwaysDecoupled || flag(h, "decoupled_weight_decay");
    const bool ams = flag(h, "amsgrad");
    const auto c = math::adam_coef<T>(h.at("lr"), h.at("beta1"), h.at("beta2"), h.at("eps"), wd, flag(h, "maximize"),
                                      static_cast<double>(st.step));
    T* m = bufs[0];
    T* v = bufs[1];
    T* vmax = ams ? bufs[2] : nullptr;
    const int mode = wd == 0 ? kNoDecay : decoupled ? kDecoupled : kL2;
    if (ams) {
      if (mode == kNoDecay) adam_loop<T, true, kNoDecay>(c, n, p, g, m, v, vmax);
      else if (mode == kL2) adam_loop<T, true, kL2>(c, n, p, g, m, v, vmax);
      else adam_loop<T, true, kDecoupled>(c, n, p, g, m, v, vmax);
    } else {
      if (mode == kNoDecay) adam_loop<T, false, kNoDecay>(c, n, p, g, m, v, vmax);
      else if (mode == kL2) adam_loop<T, false, kL2>(c, n, p, g, m, v, vmax);
      else adam_loop<T, false, kDecoupled>(c, n, p, g, m, v, vmax);
    }
  }
};

std::vector<HyperParam> adam_hyper(double weight_decay, bool decoupled_option) {
  std::vector<HyperParam> hp = {
      hp_real("lr", 1e-3, "learning rate"),
      hp_unit("beta1", 0.9, "decay of the first moment (betas[0])"),
      hp_unit("beta2", 0.999, "decay of the second moment (betas[1])"),
      hp_real("eps", 1e-8, "added to the denominator"),
      hp_real("weight_decay", weight_decay, decoupled_option ? "L2 penalty (decoupled with decoupled_weight_decay)"
                                                             : "decoupled weight decay"),
      hp_flag("amsgrad", false, "keep the running maximum of the second moment"),
      hp_flag("maximize", false, "maximize the objective"),
      state_precision_param(),
      stochastic_rounding_param(),
  };
  if (decoupled_option) hp.push_back(hp_flag("decoupled_weight_decay", false, "AdamW-style weight decay"));
  return hp;
}

std::vector<std::string> adam_buffers(const Hyper& h) {
  if (flag(h, "amsgrad")) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

class Adam final : public KernelAlgorithm<AdamKernel<false>> {
 public:
  std::string name() const override { return "adam"; }
  std::string summary() const override { return "torch.optim.Adam (L2 or decoupled weight decay, AMSGrad)"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = adam_hyper(0.0, true);
    return hp;
  }
  std::vector<std::string> buffer_names(const Hyper& h) const override { return adam_buffers(h); }
};

class AdamW final : public KernelAlgorithm<AdamKernel<true>> {
 public:
  std::string name() const override { return "adamw"; }
  std::string summary() const override { return "torch.optim.AdamW (decoupled weight decay, AMSGrad)"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = adam_hyper(1e-2, false);
    return hp;
  }
  std::vector<std::string> buffer_names(const Hyper& h) const override { return adam_buffers(h); }
};

}  // namespace

const Algorithm* adam() {
  static const Adam a;
  return &a;
}
const Algorithm* adamw() {
  static const AdamW a;
  return &a;
}

}  // namespace adapprox::algorithms

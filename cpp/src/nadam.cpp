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
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

double nadam_mu(const Hyper& h, double step) {
  return h.at("beta1") * (1.0 - 0.5 * std::pow(0.96, step * h.at("momentum_decay")));
}

enum WeightDecay { kNone = 0, kL2 = 1, kDecoupled = 2 };

template <class T>
struct NadamScalars {
  T sign, wd, decay, w1, w1c, b2, omb2, bc2, eps, coef_g, coef_m;
  bool small_weight;
};

template <class T, int Wd>
void nadam_loop(const NadamScalars<T>& c, int64_t n, T* p, const T* g, T* m, T* v) {
  for (int64_t i = 0; i < n; ++i) {
    T gi = c.sign * g[i];
    T pi = p[i];
    if (Wd == kDecoupled) pi = pi * c.decay;
    if (Wd == kL2) gi = gi + c.wd * pi;
    const T mi = c.small_weight ? m[i] + c.w1 * (gi - m[i]) : gi - (gi - m[i]) * c.w1c;
    m[i] = mi;
    T vi = v[i] * c.b2;
    vi = vi + c.omb2 * gi * gi;
    v[i] = vi;
    const T den = std::sqrt(vi / c.bc2) + c.eps;
    pi = pi + c.coef_g * gi / den;
    p[i] = pi + c.coef_m * mi / den;
  }
}

struct NadamKernel {
  template <class T>
  void operator()(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) const {
    const double lr = h.at("lr"), b1 = h.at("beta1"), b2 = h.at("beta2"), wd = h.at("weight_decay");
    const double step = static_cast<double>(st.step);
    const double mu = nadam_mu(h, step), mu_next = nadam_mu(h, step + 1);
    const double mu_product = st.scalars.at("mu_product");  // already includes mu_t (begin_step)
    const double mu_product_next = mu_product * mu_next;
    NadamScalars<T> c;
    c.sign = flag(h, "maximize") ? T(-1) : T(1);
    c.wd = T(wd);
    c.decay = T(1 - lr * wd);
    c.w1 = T(1 - b1);
    c.w1c = T(1) - c.w1;
    c.small_weight = std::abs(c.w1) < T(0.5);
    c.b2 = T(b2);
    c.omb2 = T(1 - b2);
    c.bc2 = T(1 - std::pow(b2, step));
    c.eps = T(h.at("eps"));
    c.coef_g = T(-lr * (1.0 - mu) / (1.0 - mu_product));
    c.coef_m = T((-lr * mu_next) / (1.0 - mu_product_next));
    const int mode = wd == 0 ? kNone : flag(h, "decoupled_weight_decay") ? kDecoupled : kL2;
    if (mode == kNone) nadam_loop<T, kNone>(c, n, p, g, bufs[0], bufs[1]);
    else if (mode == kL2) nadam_loop<T, kL2>(c, n, p, g, bufs[0], bufs[1]);
    else nadam_loop<T, kDecoupled>(c, n, p, g, bufs[0], bufs[1]);
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

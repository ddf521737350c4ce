// SignSGD / Signum (Bernstein et al. 2018), with decoupled weight decay:
//   without momentum:  theta -= lr * (sign(g) + wd * theta)
//   with momentum b:   m = b m + (1 - b) g;   theta -= lr * (sign(m) + wd * theta)
// sign(0) = 0. With maximize, g is negated first.
#include "elementwise_kernel.hpp"
#include "math/signsgd.hpp"
#include "algorithms.hpp"

namespace adapprox::algorithms {
namespace {

// sign(x) for finite x, NaN for NaN and +-inf (x - x): a non-finite gradient or momentum shows in
// the parameter instead of stepping it by a healthy-looking +-lr (the library's NaN policy).
struct SignSgdKernel {
  static void cuda(const Hyper& h, std::vector<Slot>& s, const cuda::States& st, size_t first, void* stream) {
    cuda::signsgd_step(h, s, st, first, stream);
  }

  template <class T>
  void operator()(const Hyper& h, const ElementwiseState&, int64_t n, T* p, const T* g, T* const* bufs) const {
    const auto c = math::signsgd_coef<T>(h.at("lr"), h.at("weight_decay"), h.at("momentum"), flag(h, "maximize"));
    if (c.b > 0) {
      T* m = bufs[0];
      for (int64_t i = 0; i < n; ++i) math::signum_element(c, p[i], g[i], m[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) math::signsgd_element(c, p[i], g[i]);
    }
  }
};

class SignSgd final : public KernelAlgorithm<SignSgdKernel> {
 public:
  std::string name() const override { return "signsgd"; }
  std::string summary() const override { return "sign descent; Signum with momentum; decoupled weight decay"; }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> hp = {
        hp_real("lr", 1e-3, "learning rate (the step of every coordinate)"),
        hp_unit("momentum", 0.0, "EMA factor of the gradient whose sign is taken"),
        hp_real("weight_decay", 0.0, "decoupled weight decay"),
        hp_flag("maximize", false, "maximize the objective"),
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return hp;
  }
  std::vector<std::string> buffer_names(const Hyper& h) const override {
    if (h.at("momentum") > 0) return {"momentum_buffer"};
    return {};
  }
};

}  // namespace

const Algorithm* signsgd() {
  static const SignSgd a;
  return &a;
}

}  // namespace adapprox::algorithms

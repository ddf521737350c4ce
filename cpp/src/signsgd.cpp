// SignSGD / Signum (Bernstein et al. 2018), with decoupled weight decay:
//   without momentum:  theta -= lr * (sign(g) + wd * theta)
//   with momentum b:   m = b m + (1 - b) g;   theta -= lr * (sign(m) + wd * theta)
// sign(0) = 0. With maximize, g is negated first.
#include "elementwise_kernel.hpp"
#include "elementwise_registry.hpp"

namespace adapprox::algorithms {
namespace {

template <class T>
inline T sign_of(T x) {
  return T((x > 0) - (x < 0));
}

struct SignSgdKernel {
  template <class T>
  void operator()(const Hyper& h, const ElementwiseState&, int64_t n, T* p, const T* g, T* const* bufs) const {
    const T lr = T(h.at("lr")), wd = T(h.at("weight_decay")), b = T(h.at("momentum"));
    const T s = flag(h, "maximize") ? T(-1) : T(1);
    if (b > 0) {
      T* m = bufs[0];
      for (int64_t i = 0; i < n; ++i) {
        m[i] = b * m[i] + (1 - b) * (s * g[i]);
        p[i] = p[i] - lr * (sign_of(m[i]) + wd * p[i]);
      }
    } else {
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] - lr * (sign_of(s * g[i]) + wd * p[i]);
    }
  }
};

class SignSgd final : public KernelAlgorithm<SignSgdKernel> {
 public:
  std::string name() const override { return "signsgd"; }
  Hyper defaults() const override {
    return {{"lr", 1e-3}, {"momentum", 0.0}, {"weight_decay", 0.0}, {"maximize", 0}};
  }
  void validate(const Hyper& h) const override {
    require_nonneg(h, "lr");
    require_unit(h, "momentum");
    require_nonneg(h, "weight_decay");
  }
  std::vector<std::string> buffer_names(const Hyper& h) const override {
    if (h.at("momentum") > 0) return {"momentum_buffer"};
    return {};
  }
};

}  // namespace

std::unique_ptr<ElementwiseAlgorithm> make_signsgd() { return std::make_unique<SignSgd>(); }

}  // namespace adapprox::algorithms

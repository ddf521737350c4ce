// NAdam on CUDA: the per-element math of ../src/math/nadam.hpp in one multi-tensor launch per
// dtype; mu_product is advanced on the host (ElementwiseState) before the launch.
#include <cmath>

#include "../src/cuda_steps.hpp"
#include "../src/math/nadam.hpp"
#include "multi_tensor.cuh"

namespace adapprox::cuda {
namespace {

template <int Wd>
struct NadamOp {
  template <class T>
  __device__ void operator()(const math::NadamCoef<T>& c, T& p, T g, T* const* b, int64_t i) const {
    math::nadam_element<T, Wd>(c, p, g, b[0][i], b[1][i]);
  }
};

double mu_at(const Hyper& h, double t) { return math::nadam_mu(h.at("beta1"), h.at("momentum_decay"), t); }

struct NadamCoefs {
  const Hyper& h;
  const States& st;
  template <class T>
  math::NadamCoef<T> operator()(size_t i) const {
    const double t = static_cast<double>(st[i].step);
    return math::nadam_coef<T>(h.at("lr"), h.at("beta1"), h.at("beta2"), h.at("eps"), h.at("weight_decay"),
                               h.at("maximize") != 0, t, mu_at(h, t), mu_at(h, t + 1), st[i].scalars.at("mu_product"));
  }
};

}  // namespace

void nadam_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first, void* stream) {
  const NadamCoefs coefs{h, st};
  const int wd = h.at("weight_decay") == 0 ? math::kNoDecay
                 : h.at("decoupled_weight_decay") != 0 ? math::kDecoupled : math::kL2;
  if (wd == math::kNoDecay) run_multi_tensor<math::NadamCoef>(slots, first, coefs, NadamOp<math::kNoDecay>{}, stream);
  else if (wd == math::kL2) run_multi_tensor<math::NadamCoef>(slots, first, coefs, NadamOp<math::kL2>{}, stream);
  else run_multi_tensor<math::NadamCoef>(slots, first, coefs, NadamOp<math::kDecoupled>{}, stream);
}

}  // namespace adapprox::cuda

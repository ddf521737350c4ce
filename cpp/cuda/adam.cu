// Adam / AdamW / AMSGrad on CUDA: the per-element math of ../src/math/adam.hpp in one
// multi-tensor launch per dtype.
#include "../src/cuda_steps.hpp"
#include "../src/math/adam.hpp"
#include "multi_tensor.cuh"

namespace adapprox::cuda {
namespace {

template <bool Ams, int Wd>
struct AdamOp {
  template <class T>
  __device__ void operator()(const math::AdamCoef<T>& c, T& p, T g, T* const* b, int64_t i) const {
    math::adam_element<T, Ams, Wd>(c, p, g, b[0][i], b[1][i], Ams ? b[2] + i : nullptr);
  }
};

struct AdamCoefs {
  const Hyper& h;
  const States& st;
  template <class T>
  math::AdamCoef<T> operator()(size_t i) const {
    return math::adam_coef<T>(h.at("lr"), h.at("beta1"), h.at("beta2"), h.at("eps"), h.at("weight_decay"),
                              h.at("maximize") != 0, static_cast<double>(st[i].step));
  }
};

template <bool Ams>
void run(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first, int wd, void* stream) {
  const AdamCoefs coefs{h, st};
  if (wd == math::kNoDecay) run_multi_tensor<math::AdamCoef>(slots, first, coefs, AdamOp<Ams, math::kNoDecay>{}, stream);
  else if (wd == math::kL2) run_multi_tensor<math::AdamCoef>(slots, first, coefs, AdamOp<Ams, math::kL2>{}, stream);
  else run_multi_tensor<math::AdamCoef>(slots, first, coefs, AdamOp<Ams, math::kDecoupled>{}, stream);
}

}  // namespace

void adam_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first, bool always_decoupled,
               void* stream) {
  const bool decoupled = always_decoupled || h.at("decoupled_weight_decay") != 0;
  const int wd = h.at("weight_decay") == 0 ? math::kNoDecay : decoupled ? math::kDecoupled : math::kL2;
  if (h.at("amsgrad") != 0) run<true>(h, slots, st, first, wd, stream);
  else run<false>(h, slots, st, first, wd, stream);
}

}  // namespace adapprox::cuda

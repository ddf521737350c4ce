// RMSprop on CUDA: the per-element math of ../src/math/rmsprop.hpp in one multi-tensor launch
// per dtype.
#include "../src/cuda_steps.hpp"
#include "../src/math/rmsprop.hpp"
#include "multi_tensor.cuh"

namespace adapprox::cuda {
namespace {

template <bool Centered, bool Momentum>
struct RmspropOp {
  template <class T>
  __device__ void operator()(const math::RmspropCoef<T>& c, T& p, T g, T* const* b, int64_t i) const {
    math::rmsprop_element<T, Centered, Momentum>(c, p, g, b[0][i], Centered ? b[1] + i : nullptr,
                                                 Momentum ? b[Centered ? 2 : 1] + i : nullptr);
  }
};

struct RmspropCoefs {
  const Hyper& h;
  template <class T>
  math::RmspropCoef<T> operator()(size_t) const {
    return math::rmsprop_coef<T>(h.at("lr"), h.at("alpha"), h.at("eps"), h.at("weight_decay"), h.at("momentum"),
                                 h.at("maximize") != 0);
  }
};

}  // namespace

void rmsprop_step(const Hyper& h, std::vector<Slot>& slots, const States&, size_t first, void* stream) {
  const RmspropCoefs coefs{h};
  const bool centered = h.at("centered") != 0, momentum = h.at("momentum") > 0;
  if (centered && momentum) run_multi_tensor<math::RmspropCoef>(slots, first, coefs, RmspropOp<true, true>{}, stream);
  else if (centered) run_multi_tensor<math::RmspropCoef>(slots, first, coefs, RmspropOp<true, false>{}, stream);
  else if (momentum) run_multi_tensor<math::RmspropCoef>(slots, first, coefs, RmspropOp<false, true>{}, stream);
  else run_multi_tensor<math::RmspropCoef>(slots, first, coefs, RmspropOp<false, false>{}, stream);
}

}  // namespace adapprox::cuda

// SignSGD / Signum on CUDA: the per-element math of ../src/math/signsgd.hpp in one
// multi-tensor launch per dtype.
#include "../src/cuda_steps.hpp"
#include "../src/math/signsgd.hpp"
#include "multi_tensor.cuh"

namespace adapprox::cuda {
namespace {

struct SignOp {
  template <class T>
  __device__ void operator()(const math::SignSgdCoef<T>& c, T& p, T g, T* const*, int64_t) const {
    math::signsgd_element(c, p, g);
  }
};

struct SignumOp {
  template <class T>
  __device__ void operator()(const math::SignSgdCoef<T>& c, T& p, T g, T* const* b, int64_t i) const {
    math::signum_element(c, p, g, b[0][i]);
  }
};

struct SignCoefs {
  const Hyper& h;
  template <class T>
  math::SignSgdCoef<T> operator()(size_t) const {
    return math::signsgd_coef<T>(h.at("lr"), h.at("weight_decay"), h.at("momentum"), h.at("maximize") != 0);
  }
};

}  // namespace

void signsgd_step(const Hyper& h, std::vector<Slot>& slots, const States&, size_t first, void* stream) {
  if (h.at("momentum") > 0) run_multi_tensor<math::SignSgdCoef>(slots, first, SignCoefs{h}, SignumOp{}, stream);
  else run_multi_tensor<math::SignSgdCoef>(slots, first, SignCoefs{h}, SignOp{}, stream);
}

}  // namespace adapprox::cuda

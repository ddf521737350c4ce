// SGD (momentum, dampening, Nesterov) on CUDA: the per-element math of ../src/math/sgd.hpp in
// one multi-tensor launch per dtype.
#include "../src/cuda_steps.hpp"
#include "../src/math/sgd.hpp"
#include "multi_tensor.cuh"

namespace adapprox::cuda {
namespace {

struct SgdOp {
  template <class T>
  __device__ void operator()(const math::SgdCoef<T>& c, T& p, T g, T* const*, int64_t) const {
    math::sgd_element(c, p, g);
  }
};

struct SgdMomentumOp {
  template <class T>
  __device__ void operator()(const math::SgdCoef<T>& c, T& p, T g, T* const* b, int64_t i) const {
    math::sgd_momentum_element(c, p, g, b[0][i]);
  }
};

struct SgdCoefs {
  const Hyper& h;
  const States& st;
  template <class T>
  math::SgdCoef<T> operator()(size_t i) const {
    return math::sgd_coef<T>(h.at("lr"), h.at("momentum"), h.at("dampening"), h.at("weight_decay"),
                             h.at("nesterov") != 0, h.at("maximize") != 0, st[i].fresh);
  }
};

}  // namespace

void sgd_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first, void* stream) {
  if (h.at("momentum") == 0) run_multi_tensor<math::SgdCoef>(slots, first, SgdCoefs{h, st}, SgdOp{}, stream);
  else run_multi_tensor<math::SgdCoef>(slots, first, SgdCoefs{h, st}, SgdMomentumOp{}, stream);
}

}  // namespace adapprox::cuda

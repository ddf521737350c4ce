// Adagrad on CUDA: the per-element math of ../src/math/adagrad.hpp in one multi-tensor launch
// per dtype.
#include "../src/cuda_steps.hpp"
#include "../src/math/adagrad.hpp"
#include "multi_tensor.cuh"

namespace adapprox::cuda {
namespace {

struct AdagradOp {
  template <class T>
  __device__ void operator()(const math::AdagradCoef<T>& c, T& p, T g, T* const* b, int64_t i) const {
    math::adagrad_element(c, p, g, b[0][i]);
  }
};

struct AdagradCoefs {
  const Hyper& h;
  const States& st;
  template <class T>
  math::AdagradCoef<T> operator()(size_t i) const {
    return math::adagrad_coef<T>(h.at("lr"), h.at("lr_decay"), h.at("eps"), h.at("weight_decay"),
                                 h.at("maximize") != 0, static_cast<double>(st[i].step));
  }
};

}  // namespace

void adagrad_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first, void* stream) {
  run_multi_tensor<math::AdagradCoef>(slots, first, AdagradCoefs{h, st}, AdagradOp{}, stream);
}

}  // namespace adapprox::cuda

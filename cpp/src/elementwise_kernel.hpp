// Internal: boilerplate for an ElementwiseAlgorithm whose update is one templated kernel.
//
//   struct AdamKernel {
//     template <class T> void operator()(const Hyper& h, const ElementwiseState& st, int64_t n,
//                                        T* p, const T* g, T* const* bufs) const { ... }
//     static void cuda(...);  // its CUDA step (cuda_steps.hpp)
//   };
//   class Adam final : public KernelAlgorithm<AdamKernel> { ... name/summary/hyper_params/buffer_names ... };
#pragma once
#include <sstream>
#include <string>

#include "adapprox/elementwise.hpp"
#include "cuda_steps.hpp"
#include "isa_dispatch.hpp"

namespace adapprox {

template <class Kernel>
class KernelAlgorithm : public ElementwiseAlgorithm {
 public:
  void run(const Hyper& h, const ElementwiseState& st, int64_t n, float* p, const float* g,
           float* const* bufs) const final {
    dispatch(h, st, n, p, g, bufs);
  }
  void run(const Hyper& h, const ElementwiseState& st, int64_t n, double* p, const double* g,
           double* const* bufs) const final {
    dispatch(h, st, n, p, g, bufs);
  }

 protected:
  void run_cuda(const Hyper& h, std::vector<Slot>& slots, const std::vector<ElementwiseState>& states,
                size_t first_buffer, void* stream) const final {
    Kernel::cuda(h, slots, states, first_buffer, stream);
  }

 private:
  // Each kernel is compiled for x86-64-v4 and v3 as well, picked at run time (adapprox/isa.hpp).
  template <class T>
  static void dispatch(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) {
    with_best_isa([&] { Kernel{}(h, st, n, p, g, bufs); });
  }
};

// Cross-hyperparameter checks for validate(), naming the hyperparameter.
inline std::string fmt_number(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}
inline void require(bool ok, const std::string& key, const std::string& expected, double got) {
  if (!ok) throw Error(ErrorKind::value, key + " must be " + expected + ", got " + fmt_number(got));
}
inline bool flag(const Hyper& h, const std::string& key) { return h.at(key) != 0; }

}  // namespace adapprox

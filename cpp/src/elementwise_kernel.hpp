// Internal: boilerplate for an ElementwiseAlgorithm whose update is one templated kernel.
//
//   struct AdamKernel {
//     template <class T> void operator()(const Hyper& h, const ElementwiseState& st, int64_t n,
//                                        T* p, const T* g, T* const* bufs) const { ... }
//   };
//   class Adam final : public KernelAlgorithm<AdamKernel> { ... name/defaults/validate/buffer_names ... };
#pragma once
#include <sstream>
#include <string>

#include "adapprox/elementwise.hpp"
#include "isa.hpp"

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

 private:
  // Each kernel is compiled for x86-64-v4 and v3 as well, picked at run time (isa.hpp).
  template <class T>
  static void dispatch(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) {
    with_best_isa([&] { Kernel{}(h, st, n, p, g, bufs); });
  }
};

// Range checks that name the hyperparameter, for validate().
inline std::string fmt_number(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}
inline void require(bool ok, const std::string& key, const std::string& expected, double got) {
  if (!ok) throw Error(ErrorKind::value, key + " must be " + expected + ", got " + fmt_number(got));
}
inline void require_nonneg(const Hyper& h, const std::string& key) {
  require(h.at(key) >= 0, key, ">= 0", h.at(key));
}
inline void require_unit(const Hyper& h, const std::string& key) {  // [0, 1)
  require(h.at(key) >= 0 && h.at(key) < 1, key, "in [0, 1)", h.at(key));
}
inline bool flag(const Hyper& h, const std::string& key) { return h.at(key) != 0; }

}  // namespace adapprox

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

namespace adapprox {

// On x86-64 (GCC) each kernel is also compiled, whole (flatten), for x86-64-v4 (AVX-512) and
// x86-64-v3 (AVX2), picked at run time from what the CPU has. Contraction into FMA stays off, so
// every version rounds exactly like the baseline one: results do not depend on the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define ADAPPROX_ISA_CLONES 1
#define ADAPPROX_ISA(arch) __attribute__((target("arch=" arch), optimize("fp-contract=off"), flatten))
inline int cpu_level() {  // 4: AVX-512 (F, BW, DQ, VL), 3: AVX2 + FMA, 0: baseline
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      return 4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 3;
    return 0;
  }();
  return level;
}
#endif

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
  template <class T>
  static void dispatch(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) {
#ifdef ADAPPROX_ISA_CLONES
    const int level = cpu_level();
    if (level == 4) return run_v4(h, st, n, p, g, bufs);
    if (level == 3) return run_v3(h, st, n, p, g, bufs);
#endif
    Kernel{}(h, st, n, p, g, bufs);
  }
#ifdef ADAPPROX_ISA_CLONES
  template <class T>
  ADAPPROX_ISA("x86-64-v4")
  static void run_v4(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) {
    Kernel{}(h, st, n, p, g, bufs);
  }
  template <class T>
  ADAPPROX_ISA("x86-64-v3")
  static void run_v3(const Hyper& h, const ElementwiseState& st, int64_t n, T* p, const T* g, T* const* bufs) {
    Kernel{}(h, st, n, p, g, bufs);
  }
#endif
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

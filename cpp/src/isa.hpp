// Internal: run-time choice of instruction set for hot loops (GCC on x86-64 Linux).
#pragma once

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

// Calls f() compiled whole (flatten inlines everything f calls) for the best instruction set the
// CPU has; elsewhere just f(). Contraction into FMA stays off, so results do not depend on the CPU.
#ifdef ADAPPROX_ISA_CLONES
template <class F>
ADAPPROX_ISA("x86-64-v4")
void run_v4_isa(const F& f) { f(); }
template <class F>
ADAPPROX_ISA("x86-64-v3")
void run_v3_isa(const F& f) { f(); }
#endif
template <class F>
inline void with_best_isa(const F& f) {
#ifdef ADAPPROX_ISA_CLONES
  const int level = cpu_level();
  if (level == 4) return run_v4_isa(f);
  if (level == 3) return run_v3_isa(f);
#endif
  f();
}

}  // namespace adapprox

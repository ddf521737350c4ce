// Internal: multiply-adds fused exactly where torch's CPU kernels fuse them, so float32
// results match torch.optim to the last bit where possible.
#pragma once
#include <cmath>

namespace adapprox::algorithms {

// torch's CPU kernels fuse `a + alpha * b` (add with alpha, addcmul, lerp) into one fused multiply-add
// in their AVX2/AVX-512 builds and use plain arithmetic in their baseline build. We do the same: the
// loop is compiled twice, with FMA (x86-64-v3, chosen at run time when the CPU has it) and without,
// and madd<Fused> marks exactly the operations torch fuses (contraction is off in the FMA build).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ADAPPROX_FUSED_TARGET __attribute__((target("arch=x86-64-v3"), optimize("fp-contract=off")))
inline bool cpu_has_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#elif defined(FP_FAST_FMA) && defined(FP_FAST_FMAF)
#define ADAPPROX_FUSED_TARGET
inline bool cpu_has_fma() { return true; }
#else
#define ADAPPROX_FUSED_TARGET
inline bool cpu_has_fma() { return false; }
#endif
#if defined(__GNUC__)
#define ADAPPROX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ADAPPROX_ALWAYS_INLINE inline
#endif

template <bool Fused, class T>
inline T madd(T a, T b, T c) {  // a * b + c
  if constexpr (Fused) return std::fma(a, b, c);
  else return a * b + c;
}

}  // namespace adapprox::algorithms

// Per-element math shared by the CPU kernels (cpp/src) and the CUDA kernels (cpp/cuda): every
// function here is compiled for the host and, under nvcc, for the device, so the CPU tests
// exercise the arithmetic the GPU runs. Contraction is off on both sides (-ffp-contract=off,
// nvcc --fmad=false): a * b + c rounds twice unless written as fma, which rounds once everywhere.
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define ADX_HD __host__ __device__ __forceinline__
#else
#define ADX_HD inline
#endif

namespace adapprox::math {

// sqrt, fma and |x| that are correctly rounded on both sides (CUDA's sqrtf is IEEE unless
// -use_fast_math, which the build never sets).
ADX_HD float sqrt_(float x) {
#ifdef __CUDA_ARCH__
  return sqrtf(x);
#else
  return std::sqrt(x);
#endif
}
ADX_HD double sqrt_(double x) {
#ifdef __CUDA_ARCH__
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}
ADX_HD float fma_(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return fmaf(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
ADX_HD double fma_(double a, double b, double c) {
#ifdef __CUDA_ARCH__
  return ::fma(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
ADX_HD float abs_(float x) {
#ifdef __CUDA_ARCH__
  return fabsf(x);
#else
  return std::fabs(x);
#endif
}
ADX_HD double abs_(double x) {
#ifdef __CUDA_ARCH__
  return ::fabs(x);
#else
  return std::fabs(x);
#endif
}

// torch's CPU lerp(self, end, w): self + w (end - self) for |w| < 0.5, else
// end - (end - self)(1 - w); `small` = |w| < 0.5, `wc` = 1 - w.
template <class T>
ADX_HD T lerp_(T self, T end, T w, T wc, bool small) {
  return small ? self + w * (end - self) : end - (end - self) * wc;
}

// Weight decay as torch applies it: none, L2 (g + wd p) or decoupled (p (1 - lr wd)).
enum WeightDecay { kNoDecay = 0, kL2 = 1, kDecoupled = 2 };

}  // namespace adapprox::math
